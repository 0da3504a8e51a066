import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { FatalError, POLICY_REFUSALS, RowError, UsageError } from './errors.js';
import type { DownloadOptions } from './options.js';
import { Source, buildDuplicateTable, closeDuckDB, countPlan, openDuckDB, streamTasks } from './source.js';
import type { Plan } from './source.js';
import { ensureWritableDir } from './output.js';
import {
  STATE_DIR,
  allLogPaths,
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
import type { Summary } from './progress.js';
import { checkId } from './row.js';
import { failedResult } from './result.js';
import type { RowResult } from './result.js';
import { duckMessage } from './sql.js';

export interface RunHooks {
  /** Called once the pool runs, with a function that stops the run (signals). */
  onStart?: (stop: (hard: boolean) => void) => void;
  /** Warnings for the user (a stale lock taken over); silent by default. */
  warn?: (msg: string) => void;
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
  const source = await Source.open(o.input);
  source.requireColumn(o.urlColumn, '--url-column');
  source.requireColumn(o.idColumn, '--id-column');
  if (o.captionColumnExplicit) source.requireColumn(o.captionColumn, '--caption-column');
  if (o.fallbackCaptionColumnExplicit) source.requireColumn(o.fallbackCaptionColumn, '--fallback-caption-column');
  await source.checkWhere(o.where);

  await ensureWritableDir(o.out);
  const stateDir = path.join(o.out, STATE_DIR);
  if (!existsSync(stateDir)) mkdirSync(stateDir);
  const lock = FolderLock.acquire(lockPath(o.out, o.shard), `${o.out}${o.shard ? ` (shard ${shardTag(o.shard)})` : ''}`, hooks.warn ?? (() => undefined));
  try {
    return await runLocked(o, source, started, hooks, lock);
  } finally {
    lock.release();
  }
}

async function runLocked(o: DownloadOptions, source: Source, started: number, hooks: RunHooks, lock: FolderLock): Promise<Summary> {
  const stateDir = path.join(o.out, STATE_DIR);
  const settings = fileSettings(o, source);
  const before = readRunRecord(o.out);
  checkSettings(o.out, before, settings, o.overwrite);
  // The lock makes this shard's temporary folder ours alone: whatever is in it is a dead run's.
  const tmpDir = tmpDirPath(o.out, o.shard);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir);
  removeStaleTemps(o.out);
  removeStaleTemps(stateDir);
  const record: RunRecord = { ...settings, input: path.resolve(o.input), where: o.where, limit: o.limit, cdnResize: o.cdnResize };
  writeJsonAtomic(runRecordPath(o.out), record);

  const logs = allLogPaths(o.out);
  const formatChanged = o.overwrite && before !== null && before.format !== o.format;
  const plan: Plan = {
    urlColumn: o.urlColumn,
    idColumn: o.idColumn,
    captionColumn: settings.captionColumn,
    fallbackColumn: settings.fallbackCaptionColumn,
    where: o.where,
    shard: o.shard,
    limit: o.limit,
    doneTable:
      o.overwrite || !logs.length
        ? null
        : await buildDoneTable(source.conn, o.out, logs, {
            retryFailed: o.retryFailed,
            allowPrivateNetwork: o.allowPrivateNetwork,
            ignoreOptOut: o.ignoreOptOut,
          }),
    previousTable: formatChanged && logs.length ? await buildPreviousTable(source.conn, logs) : null,
  };
  const { selected, todo, skippedFailed } = await withWhere(o.where, async () => {
    plan.duplicateTable = await buildDuplicateTable(source, plan);
    return countPlan(source, plan);
  });

  const log = new RowLog(logPath(o.out, o.shard));
  const progress = new Progress(todo, { quiet: o.quiet || o.json, warn: !o.quiet, tty: Boolean(process.stderr.isTTY) });
  const settle = (r: RowResult) => {
    log.append(r);
    progress.add(r);
  };
  const limitsBuffer = createSharedBuffer(o.threads);
  const config: WorkerConfig = {
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
    concurrency: o.concurrency,
    limits: { buffer: limitsBuffer, maxRps: o.maxRps, maxHostConnections: o.maxHostConnections, memoryBudgetBytes: o.memoryBudgetBytes },
  };
  const pool =
    todo > 0
      ? new RowPool(config, o.threads, settle, (task, err) => {
          settle(failedResult(task, new RowError('internal_error', `worker crashed: ${(err as Error)?.message ?? err}`), Date.now()));
        })
      : null;

  let stopping = false;
  let firstDispatchS: number | null = null;
  hooks.onStart?.((hard) => {
    stopping = true;
    // The bar ends first, so that what the caller prints next starts on a line of its own.
    progress.stop();
    if (hard) {
      pool?.abandon();
      log.close();
      lock.release();
    }
  });

  try {
    await withWhere(o.where, async () => {
      outer: for await (const batch of streamTasks(source, plan, o.chunkSize)) {
        for (const task of batch) {
          if (stopping) break outer;
          if (task.duplicate && isValidId(task.id)) {
            settle(failedResult(task, new RowError('duplicate_id', `id ${task.id} already appears in an earlier row`), Date.now()));
            continue;
          }
          firstDispatchS ??= (Date.now() - started) / 1000;
          await pool!.submit(task);
        }
      }
    });
    if (pool) {
      if (stopping) {
        // Let rows in flight finish for a few seconds; the rest are redone by the next run.
        await Promise.race([pool.drain(), new Promise((r) => setTimeout(r, 5000).unref())]);
        pool.abandon();
      } else {
        await pool.drain();
      }
    }
  } finally {
    progress.stop();
    log.close();
    if (pool) await pool.destroy().catch(() => undefined);
  }

  const dest = recordPaths(o.out, o.shard, o.manifest);
  const recordLogs = o.shard ? [logPath(o.out, o.shard)] : allLogPaths(o.out);
  const recordsStarted = Date.now();
  // The plan's DuckDB goes before the records start: a fresh one holds only what the records need.
  source.close();
  const recordsConn = await openDuckDB();
  try {
    await writeRecords(
      recordsConn,
      recordLogs,
      { input: path.resolve(o.input), captionColumn: settings.captionColumn, fallbackCaptionColumn: settings.fallbackCaptionColumn },
      dest,
    );
  } catch (err) {
    throw new FatalError(`could not write the records in ${o.out}: ${duckMessage(err)}; the log in ${stateDir} is intact, rerun to rebuild them`);
  } finally {
    closeDuckDB(recordsConn);
  }
  const recordsS = (Date.now() - recordsStarted) / 1000;
  rmSync(tmpDir, { recursive: true, force: true });
  const wall = progress.elapsedS;
  const cpu = process.cpuUsage();
  const processed = progress.done;
  return {
    input: o.input,
    out: o.out,
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
    hints: hints(o, progress.errors, skippedFailed),
    bytes_downloaded: progress.bytes,
    wall_s: wall,
    images_per_s: processed / Math.max(wall, 1e-3),
    images_per_s_per_thread: processed / Math.max(wall, 1e-3) / o.threads,
    threads: o.threads,
    concurrency: o.concurrency,
    interrupted: stopping,
    manifest: dest.manifest,
    metadata: dest.metadata,
    first_dispatch_s: firstDispatchS,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    rendition_fallbacks: o.cdnResize === 'none' ? null : progress.renditionFallbacks,
    records_s: recordsS,
    memory_held_peak_bytes: SharedLimits.peakKiB(limitsBuffer) * 1024,
  };
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
