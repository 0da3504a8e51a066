import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { FatalError, POLICY_REFUSALS, RowError, UsageError } from './errors.js';
import { composeShard } from './options.js';
import type { DownloadOptions, Shard } from './options.js';
import { Source, buildDuplicateTable, closeDuckDB, countPlan, openDuckDB, streamTasks } from './source.js';
import type { Plan } from './source.js';
import { ensureWritableDir, makeDirs } from './output.js';
import {
  STATE_DIR,
  allLogPaths,
  eachName,
  shardLogPaths,
  checkSettings,
  lockPath,
  logPath,
  readRunRecord,
  recordPaths,
  removeStaleTemps,
  runRecordPath,
  shardTag,
  tmpDirPath,
  writeJsonAtomic,
} from './folder.js';
import type { FileSettings, RunRecord } from './folder.js';
import { FolderLock } from './lock.js';
import { RowLog } from './row-log.js';
import { buildDoneTable, buildPreviousTable, writeRecords } from './records.js';
import { RowPool } from './pool.js';
import type { WorkerConfig } from './worker-config.js';
import { SharedLimits, createSharedBuffer } from './shared-limits.js';
import { Progress } from './progress.js';
import type { HostSummary, Summary } from './progress.js';
import type { Bound } from './in-flight.js';
import { RunMonitor, noBounds, poolBounds } from './run-monitor.js';
import { boundHint } from './bound-hint.js';
import { allocatorHint, detectAllocator, formatAllocator } from './allocator.js';
import os from 'node:os';
import { openFileLimit } from './options.js';
import { discardWorkerTars, finalizeLeftovers, orphanIndexSweep, publishTar, removeShardTars } from './tars.js';
import { checkId } from './row.js';
import { failedResult } from './result.js';
import type { RowResult } from './result.js';
import { duckMessage } from './sql.js';
import type { RemoteOutput } from './remote-output.js';

export interface RunHooks {
  /** Called once the pool runs, with a function that stops the run (signals). */
  /** `stop(true)` resolves once what must not outlive the process is undone (open multipart uploads aborted). */
  onStart?: (stop: (hard: boolean) => Promise<void>) => void;
  /** Warnings for the user (a stale lock taken over); silent by default. */
  warn?: (msg: string) => void;
  /** What the run will do, once planned (before any row is dispatched). */
  onPlanned?: (counts: { selected: number; todo: number; skippedFailed: number }) => void;
  /** Each row as it settles, after it is logged. */
  onSettled?: (r: RowResult) => void;
  /** Once the pool runs: how many rows it holds at any moment, and a way to write the log's buffered lines now. */
  onPool?: (inFlight: () => number, flushLog: () => void) => void;
}

/** The shard whose files (log, lock, temporary folder, tars) this process writes: a process's share is a finer shard. */
export function fileShard(o: DownloadOptions): Shard | null {
  return o.share ? composeShard(o.shard, o.share) : o.shard;
}

/** The file-shaping settings of this run, as run.json records them. */
function fileSettings(o: DownloadOptions, source: Source): FileSettings {
  return {
    urlColumn: o.urlColumn,
    idColumn: o.idColumn,
    captionColumn: source.has(o.captionColumn) ? o.captionColumn : null,
    fallbackCaptionColumn: source.has(o.fallbackCaptionColumn) ? o.fallbackCaptionColumn : null,
    resize: o.resize,
    resolution: o.resolution,
    format: o.format,
    quality: o.format === 'png' ? null : o.quality,
    pngCompression: o.format === 'png' ? o.pngCompression : null,
    pngFilter: o.format === 'png' ? o.pngFilter : null,
    outputFormat: o.outputFormat,
  };
}

/** A --where that DuckDB accepts up front can still fail on the data (a cast): that is the user's filter, exit 2. */
async function withWhere<T>(where: string | null, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (where && !(err instanceof UsageError) && !(err instanceof FatalError)) {
      throw new UsageError(`--where ${JSON.stringify(where)} failed on this input's rows: ${duckMessage(err)}`);
    }
    throw err;
  }
}

/** `pcb download`: plan in DuckDB, dispatch to the pool, log every settled row, rebuild the records. */
export async function runDownload(o: DownloadOptions, hooks: RunHooks = {}): Promise<Summary> {
  const started = Date.now();
  const source = await openChecked(o);
  const remote = await openRemote(o);
  const lock = acquireLock(o, fileShard(o), hooks);
  try {
    return await runLocked(o, source, started, hooks, lock, remote);
  } finally {
    lock.release();
  }
}

/** The input opened with its columns and --where checked, the output folder writable: everything before the lock. */
export async function openChecked(o: DownloadOptions): Promise<Source> {
  const source = await Source.open(o.input);
  source.requireColumn(o.urlColumn, '--url-column');
  source.requireColumn(o.idColumn, '--id-column');
  if (o.captionColumnExplicit) source.requireColumn(o.captionColumn, '--caption-column');
  if (o.fallbackCaptionColumnExplicit) source.requireColumn(o.fallbackCaptionColumn, '--fallback-caption-column');
  await source.checkWhere(o.where);

  await ensureWritableDir(o.out);
  // Shards started side by side make it at the same moment: a look, then mkdir, failed one of them with EEXIST.
  await makeDirs(path.join(o.out, STATE_DIR));
  return source;
}

/** An S3 output, checked before any download: the bucket exists and the credentials may write there. */
export async function openRemote(o: DownloadOptions): Promise<RemoteOutput | null> {
  if (!o.remote) return null;
  const { RemoteOutput } = await import('./remote-output.js');
  const remote = new RemoteOutput(o.remote, o.retries, o.out, o.timeoutMs);
  // A process's share: its coordinator checked the bucket once for the whole run.
  if (!o.share) await remote.check();
  return remote;
}

/** The records and run.json, uploaded beside the samples (each object whole); the local copies stay with the state. */
export async function uploadRecords(o: DownloadOptions, remote: RemoteOutput, dest: { manifest: string; metadata: string }): Promise<void> {
  const files = [dest.manifest, dest.metadata].filter((f) => existsSync(f) && path.dirname(path.resolve(f)) === path.resolve(o.out));
  await remote.upload([...files.map((f) => ({ name: path.basename(f), file: f })), { name: `${STATE_DIR}/run.json`, file: runRecordPath(o.out) }]);
}

export function acquireLock(o: DownloadOptions, shard: Shard | null, hooks: RunHooks): FolderLock {
  return FolderLock.acquire(lockPath(o.out, shard), `${o.out}${shard ? ` (shard ${shardTag(shard)})` : ''}`, hooks.warn ?? (() => undefined));
}

async function runLocked(
  o: DownloadOptions,
  source: Source,
  started: number,
  hooks: RunHooks,
  lock: FolderLock,
  remote: RemoteOutput | null,
): Promise<Summary> {
  // A process's share: the coordinator made the folder ready and rebuilds the records once every share is done.
  const { settings, tmpDir, layoutBefore } = o.share ? prepareShare(o, source) : prepareFolder(o, source);
  if (remote && !o.share) await remote.prepare(o.shard, o.overwrite && o.outputFormat === 'webdataset');
  const planned = await planRows(o, source, settings, layoutBefore, remote);
  hooks.onPlanned?.(planned);
  const run = await dispatchRows(o, source, planned, { started, tmpDir, hooks, lock, remote });
  source.close();
  const records = o.share ? { dest: recordPaths(o.out, o.shard, o.manifest), recordsS: 0 } : await rebuildRecords(o, settings, run.progress.done);
  if (remote && !o.share) await uploadRecords(o, remote, records.dest);
  rmSync(tmpDir, { recursive: true, force: true });
  return summarize(o, planned, run, records, remote);
}

/** A process's share of a run: a fresh temporary folder of its own; the folder's settings were checked by the coordinator. */
function prepareShare(o: DownloadOptions, source: Source): { settings: FileSettings; tmpDir: string; layoutBefore: string | null } {
  const tmpDir = tmpDirPath(o.out, fileShard(o));
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir);
  const before = readRunRecord(o.out);
  return { settings: fileSettings(o, source), tmpDir, layoutBefore: before?.layoutBefore ?? null };
}

/** The folder made ours: its settings checked and recorded, a fresh temporary folder, dead runs' temps gone. */
export function prepareFolder(o: DownloadOptions, source: Source): { settings: FileSettings; tmpDir: string; layoutBefore: string | null } {
  const stateDir = path.join(o.out, STATE_DIR);
  const settings = fileSettings(o, source);
  const before = readRunRecord(o.out);
  checkSettings(o.out, before, settings, o.overwrite);
  // The lock makes this shard's temporary folder ours alone: whatever is in it is a dead run's.
  const tmpDir = tmpDirPath(o.out, o.shard);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir);
  // One listing of the folder serves both sweeps: dead runs' temporary files and indexes left without their tar.
  const orphans = orphanIndexSweep(o.out, o.shard);
  removeStaleTemps(o.out, orphans.see);
  orphans.sweep();
  removeStaleTemps(stateDir);
  // Every row is redone: the tars of this shard (all of them without --shard) would hold their old samples.
  if (o.overwrite) removeShardTars(o.out, o.shard);
  const layoutBefore = before ? `${before.format} ${before.outputFormat ?? 'files'}` : null;
  // layoutBefore is kept for the run's processes, which read run.json after it is rewritten here.
  const record: RunRecord = { ...settings, input: path.resolve(o.input), where: o.where, limit: o.limit, cdnResize: o.cdnResize, layoutBefore };
  writeJsonAtomic(runRecordPath(o.out), record);
  return { settings, tmpDir, layoutBefore };
}

interface Planned {
  plan: Plan;
  selected: number;
  todo: number;
  skippedFailed: number;
}

/** What this run does: the rows selected (where → shard → limit), less those done before. */
async function planRows(
  o: DownloadOptions,
  source: Source,
  settings: FileSettings,
  layoutBefore: string | null,
  remote: RemoteOutput | null,
): Promise<Planned> {
  const logs = allLogPaths(o.out);
  // --overwrite into another format or layout: the rows' old images go once their new ones are in place.
  const formatChanged = o.overwrite && layoutBefore !== null && layoutBefore !== `${o.format} ${o.outputFormat}`;
  const plan: Plan = {
    urlColumn: o.urlColumn,
    idColumn: o.idColumn,
    captionColumn: settings.captionColumn,
    fallbackColumn: settings.fallbackCaptionColumn,
    where: o.where,
    shard: o.shard,
    share: o.share,
    limit: o.limit,
    withColumns: o.outputFormat === 'webdataset',
    doneTable:
      o.overwrite || !logs.length
        ? null
        : await buildDoneTable(
            source.conn,
            // One listing of where the samples are: the folder, or the bucket's prefix.
            (visit) => (remote ? remote.names(fileShard(o), visit) : eachName(o.out, visit)),
            logs,
            { retryFailed: o.retryFailed, allowPrivateNetwork: o.allowPrivateNetwork, ignoreOptOut: o.ignoreOptOut },
            // The last run's manifest, when no log changed since: each row's latest outcome without parsing every log line.
            currentManifest(o, logs),
          ),
    previousTable: formatChanged && logs.length ? await buildPreviousTable(source.conn, logs) : null,
  };
  const counts = await withWhere(o.where, async () => {
    plan.duplicateTable = await buildDuplicateTable(source, plan);
    return countPlan(source, plan);
  });
  return { plan, ...counts };
}

/** The unsharded folder's manifest when it is newer than every log, else null. */
function currentManifest(o: DownloadOptions, logs: string[]): string | null {
  if (o.shard) return null;
  const dest = recordPaths(o.out, null, o.manifest);
  return recordsCurrent(dest, logs) ? dest.manifest : null;
}

/** What the dispatch stage leaves for the summary. */
interface Dispatched {
  progress: Progress;
  stopping: boolean;
  firstDispatchS: number | null;
  limitsBuffer: SharedArrayBuffer;
  monitor: RunMonitor | null;
}

/** Rows per worker under auto: a bound on sockets (half the process's open files), not on throughput. */
function autoTasksPerWorker(threads: number): number {
  return Math.max(16, Math.min(512, Math.floor(openFileLimit() / 2 / threads)));
}

function workerConfig(o: DownloadOptions, tmpDir: string, limitsBuffer: SharedArrayBuffer): WorkerConfig {
  return {
    out: path.resolve(o.out),
    tmpDir: path.resolve(tmpDir),
    resize: { mode: o.resize, resolution: o.resolution, format: o.format, quality: o.quality, pngCompression: o.pngCompression, pngFilter: o.pngFilter },
    policy: {
      timeoutMs: o.timeoutMs,
      maxBytes: o.maxBytes,
      retries: o.retries,
      backoffMs: o.backoffMs,
      userAgent: o.userAgent,
      allowPrivateNetwork: o.allowPrivateNetwork,
      ignoreOptOut: o.ignoreOptOut,
    },
    cdnResize: o.cdnResize,
    cdnHosts: o.cdnHosts,
    output: {
      remote: o.remote,
      uploadAttempts: o.retries + 1,
      uploadTimeoutMs: o.timeoutMs,
      format: o.outputFormat,
      samplesPerTar: o.samplesPerTar,
      tarPrefix: shardTag(fileShard(o)) || 'pcb',
      run: Date.now().toString(36),
    },
    tasksPerWorker: o.concurrency === 'auto' ? autoTasksPerWorker(o.threads) : o.concurrency + 2,
    limits: {
      buffer: limitsBuffer,
      maxRps: o.maxRps,
      maxHostConnections: o.maxHostConnections,
      memoryBudgetBytes: o.memoryBudgetBytes,
      processes: o.share?.count ?? 1,
    },
  };
}

/** The pool at work: rows streamed from DuckDB, each settled row logged, the in-flight limit following demand. */
async function dispatchRows(
  o: DownloadOptions,
  source: Source,
  { plan, todo }: Planned,
  run: { started: number; tmpDir: string; hooks: RunHooks; lock: FolderLock; remote: RemoteOutput | null },
): Promise<Dispatched> {
  const uploads =
    run.remote && o.outputFormat === 'webdataset' ? new (await import('./remote-output.js')).TarUploads(run.remote, run.tmpDir, fileShard(o)) : null;
  const log = new RowLog(logPath(o.out, fileShard(o)));
  const progress = new Progress(todo, { quiet: o.quiet || o.json, warn: !o.quiet, tty: Boolean(process.stderr.isTTY) });
  const limitsBuffer = createSharedBuffer(o.threads);
  const config = workerConfig(o, run.tmpDir, limitsBuffer);
  const sizing = { threads: o.threads, perThread: o.concurrency === 'auto' ? null : o.concurrency, tasksPerWorker: config.tasksPerWorker };
  let monitor: RunMonitor | null = null;
  const settle = (result: RowResult) => {
    const { closedTar, ...r } = result;
    log.append(r);
    uploads?.track(r);
    // A full tar enters the folder only once every row in it is in the log (the log is written first).
    if (closedTar) {
      log.flush();
      if (uploads) uploads.publish(closedTar);
      else publishTar(run.tmpDir, o.out, closedTar);
    }
    progress.add(r);
    monitor?.settled(r.url);
    run.hooks.onSettled?.(r);
  };
  const pool =
    todo > 0
      ? new RowPool(
          config,
          o.threads,
          poolBounds(sizing).start,
          settle,
          (task, err) => {
            settle(failedResult(task, new RowError('internal_error', `worker crashed: ${(err as Error)?.message ?? err}`), Date.now()));
          },
          undefined,
          // A crashed worker's open tar may hold samples of rows that are tried again elsewhere: it never enters
          // the folder, and the rows logged in it are redone by the next run.
          (threadId) => discardWorkerTars(run.tmpDir, threadId),
        )
      : null;
  if (pool) {
    monitor = new RunMonitor(limitsBuffer, pool, sizing);
    if (uploads) monitor.storeHeld = () => uploads.holding;
    monitor.start();
    progress.inFlight = () => pool.inFlight;
    run.hooks.onPool?.(
      () => pool.inFlight,
      () => log.flush(),
    );
  }

  let stopping = false;
  let settled = pool === null;
  let firstDispatchS: number | null = null;
  run.hooks.onStart?.(async (hard) => {
    stopping = true;
    // The bar ends first, so that what the caller prints next starts on a line of its own.
    progress.stop();
    if (hard) {
      pool?.abandon();
      log.close();
      run.lock.release();
      // No invisible parts left behind (and billed): the next run would abort them, but it may never come.
      if (run.remote && !o.share) await run.remote.abortJournaled(fileShard(o)).catch(() => undefined);
    }
  });

  try {
    // Nothing to do: the plan's stream is not read at all (at 567,597 rows it took 1.9 s to yield nothing).
    await withWhere(o.where, async () => {
      if (!pool) return;
      outer: for await (const batch of streamTasks(source, plan, o.chunkSize)) {
        for (const task of batch) {
          if (stopping) break outer;
          if (task.duplicate && isValidId(task.id)) {
            settle(failedResult(task, new RowError('duplicate_id', `id ${task.id} already appears in an earlier row`), Date.now()));
            continue;
          }
          firstDispatchS ??= (Date.now() - run.started) / 1000;
          // A store slower than the workers: rows wait here, not closed tars on local disk.
          if (uploads) await uploads.room();
          await pool!.submit(task);
        }
      }
    });
    monitor?.inputDone();
    if (pool) {
      if (stopping) {
        // Let rows in flight finish for a few seconds; the rest are redone by the next run.
        await Promise.race([pool.drain(), new Promise((r) => setTimeout(r, 5000).unref())]);
        settled = pool.inFlight === 0;
        pool.abandon();
      } else {
        await pool.drain();
        settled = true;
      }
    }
  } finally {
    monitor?.stop();
    progress.stop();
    if (pool) await pool.destroy().catch(() => undefined);
  }
  try {
    // The workers' open tars close into the folder once every row in them is logged; a run cut off with rows
    // still in flight leaves them in its temporary folder, and the next run redoes their rows.
    if (settled && o.outputFormat === 'webdataset') finalizeLeftovers(run.tmpDir, o.out, uploads ? (name) => uploads.publish(name) : undefined);
    // A tar the bucket refused: its rows are not there, and the records say so.
    for (const refused of (await uploads?.drain()) ?? []) {
      for (const row of refused.rows) {
        log.append(
          failedResult({ ...row, caption: null, fallback: null, srcWidth: null, srcHeight: null }, new RowError('write_error', refused.message), Date.now()),
        );
        progress.revise('write_error');
      }
    }
  } finally {
    log.close();
  }
  return { progress, stopping, firstDispatchS, limitsBuffer, monitor };
}

/** manifest.parquet and metadata.parquet rebuilt from the logs, in a DuckDB of their own. */
export async function rebuildRecords(
  o: DownloadOptions,
  settings: FileSettings,
  processed: number,
): Promise<{ dest: ReturnType<typeof recordPaths>; recordsS: number }> {
  const dest = recordPaths(o.out, o.shard, o.manifest);
  // The shard's own log and its processes' logs (every log for the whole input).
  const recordLogs = shardLogPaths(o.out, o.shard);
  const recordsStarted = Date.now();
  // A rerun that settled nothing leaves records that are newer than every log and the input as they are.
  if (processed === 0 && recordsCurrent(dest, [...recordLogs, o.input])) return { dest, recordsS: 0 };
  const recordsConn = await openDuckDB();
  try {
    await writeRecords(
      recordsConn,
      recordLogs,
      {
        input: path.resolve(o.input),
        captionColumn: settings.captionColumn,
        fallbackCaptionColumn: settings.fallbackCaptionColumn,
        outputFormat: o.outputFormat,
      },
      dest,
    );
  } catch (err) {
    throw new FatalError(
      `could not write the records in ${o.out}: ${duckMessage(err)}; the log in ${path.join(o.out, STATE_DIR)} is intact, rerun to rebuild them`,
    );
  } finally {
    closeDuckDB(recordsConn);
  }
  return { dest, recordsS: (Date.now() - recordsStarted) / 1000 };
}

/**
 * Both records exist and were written after the last change to any of `sources` (strictly after: on a
 * filesystem with coarse times, a log line of the same tick may be newer, and the logs are then read).
 */
function recordsCurrent(dest: { manifest: string; metadata: string }, sources: string[]): boolean {
  const mtime = (f: string) => (existsSync(f) ? statSync(f).mtimeMs : Number.NaN);
  const written = Math.min(mtime(dest.manifest), mtime(dest.metadata));
  return Number.isFinite(written) && sources.every((f) => mtime(f) < written);
}

/** The hosts with the most rows, with the limit each settled on and the pushback it gave. */
function hostSummaries(run: Dispatched, o: DownloadOptions): HostSummary[] {
  if (!run.monitor) return [];
  return run.monitor.busiestHosts(5).map(({ host, rows }) => {
    const r = SharedLimits.hostReport(run.limitsBuffer, host, o.maxHostConnections);
    return { host, rows, limit: r.limit, http_429: r.http429, http_503: r.http503, drops: r.drops, not_sent: r.notSent };
  });
}

function summarize(
  o: DownloadOptions,
  planned: Planned,
  run: Dispatched,
  records: { dest: ReturnType<typeof recordPaths>; recordsS: number },
  remote: RemoteOutput | null,
): Summary {
  const { progress } = run;
  const { selected, todo, skippedFailed } = planned;
  const wall = progress.elapsedS;
  const cpu = process.cpuUsage();
  const processed = progress.done;
  const limitedBy = run.monitor?.shares() ?? noBounds();
  const hosts = hostSummaries(run, o);
  const snap = SharedLimits.snapshot(run.limitsBuffer);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    ...machineSummary(o, { errors: progress.errors, skippedFailed, limitedBy, hosts, cpuS, wallS: wall, processes: 1 }),
    input: o.input,
    out: remote ? remote.url : o.out,
    state_dir: remote ? o.out : null,
    shard: o.shard ? `${o.shard.index}/${o.shard.count}` : null,
    shard_reason: o.shard?.reason ?? null,
    selected,
    processed,
    ok: progress.ok,
    failed: progress.failed,
    skipped: selected - todo,
    skipped_failed: skippedFailed,
    errors: progress.errors,
    http_statuses: progress.httpStatuses,
    bytes_downloaded: progress.bytes,
    wall_s: wall,
    images_per_s: processed / Math.max(wall, 1e-3),
    images_per_s_per_thread: processed / Math.max(wall, 1e-3) / o.threads,
    threads: o.threads,
    concurrency: o.concurrency,
    in_flight_peak: run.monitor?.peakInFlight ?? 0,
    parked_peak: run.monitor?.peakParked ?? 0,
    in_flight_limit: run.monitor?.limit ?? 0,
    limited_by: limitedBy,
    hosts,
    requests: progress.requests,
    connections_opened: snap.connections,
    interrupted: run.stopping,
    manifest: remote ? remote.urlOf(path.basename(records.dest.manifest)) : records.dest.manifest,
    metadata: remote ? remote.urlOf(path.basename(records.dest.metadata)) : records.dest.metadata,
    upload_retries: remote ? snap.uploadRetries + remote.takeRetries() : null,
    first_dispatch_s: run.firstDispatchS,
    cpu_s: cpuS,
    processes: 1,
    process_failures: [],
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    rendition_fallbacks: o.cdnResize === 'none' ? null : progress.renditionFallbacks,
    records_s: records.recordsS,
    memory_held_peak_bytes: SharedLimits.peakKiB(run.limitsBuffer) * 1024,
  };
}

/**
 * What the summary says of how the run used the machine, the same for one process and a coordinated
 * run: the cores it kept busy, the allocator, the hints, and what bound it in a sentence.
 */
export function machineSummary(
  o: DownloadOptions,
  run: {
    errors: Record<string, number>;
    skippedFailed: number;
    limitedBy: Record<Bound, number>;
    hosts: HostSummary[];
    cpuS: number;
    wallS: number;
    processes: number;
  },
): Pick<Summary, 'hints' | 'limited_by_hint' | 'cores_available' | 'cores_busy' | 'allocator'> {
  const cores = os.availableParallelism();
  const coresBusy = coresBusyShare(run.cpuS, run.wallS, cores);
  const allocator = detectAllocator();
  return {
    hints: [...hints(o, run.errors, run.skippedFailed), ...[allocatorHint(allocator, o.threads)].filter((h) => h !== null)],
    limited_by_hint: boundHint(run.limitedBy, {
      concurrency: o.concurrency,
      maxHostConnections: o.maxHostConnections,
      maxRps: o.maxRps,
      pushback: run.hosts.reduce((n, h) => n + h.http_429 + h.http_503, 0),
      threads: o.threads,
      processes: run.processes,
      cores,
      coresBusy,
    }),
    cores_available: cores,
    cores_busy: coresBusy,
    allocator: formatAllocator(allocator),
  };
}

/** CPU-seconds over wall-seconds over the cores: the share of the machine's cores the run kept busy. */
function coresBusyShare(cpuS: number, wallS: number, cores: number): number {
  return wallS > 0 ? Math.min(1, cpuS / wallS / cores) : 0;
}

/** What the user could change, when rows failed in a way a flag decides. */
function hints(o: DownloadOptions, errors: Record<string, number>, skippedFailed: number): string[] {
  const out = POLICY_REFUSALS.filter((r) => errors[r.code] && !r.lifted(o)).map(
    (r) => `${errors[r.code]} rows were refused as ${r.code} (${r.why}): add ${r.flag} if you mean to fetch them; the rerun retries them`,
  );
  if (skippedFailed && !o.retryFailed) out.push(`${skippedFailed} of the skipped rows failed for good before: --retry-failed retries them`);
  return out;
}

function isValidId(id: string | null): boolean {
  try {
    checkId(id);
    return true;
  } catch {
    return false;
  }
}
