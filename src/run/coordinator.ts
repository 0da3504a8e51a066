/**
 * One run over P processes: this process checks the input and the folder, takes the lock and writes
 * run.json once; each child process is the usual Piscina pool over its share of the rows (a finer shard
 * of the same hash) with its own log; here the rows are counted into one progress bar, the children's
 * summaries into one, and the records are rebuilt from every share's log. Threads of one process wait on
 * each other (allocator, libuv's one queue, V8's platform); processes do not.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FatalError, UsageError } from '../errors.js';
import { evenShare } from '../shard.js';
import type { DownloadOptions } from '../options.js';
import { rmSync } from 'node:fs';
import type { OutputStore } from '../output/store.js';
import { openRun, prepareOutput, publishRecords, rebuildRecords } from './setup.js';
import { machineSummary, storeRetries } from './summary.js';
import type { RunHooks } from './run.js';
import { Progress } from './progress.js';
import type { HostSummary, Summary } from './progress.js';
import type { RowResult } from '../result.js';
import type { Bound } from '../fetch/in-flight.js';
import { noBounds } from './monitor.js';

const SHARE_PROCESS = fileURLToPath(new URL('./share-process.js', import.meta.url));

/** What the progress bar needs of a settled row, as a child sends it. */
export type RowTally = Pick<RowResult, 'status' | 'error' | 'http_status' | 'bytes' | 'attempts' | 'source'>;

/** Messages from a share's process to the coordinator. */
export type ShareMessage =
  | { t: 'planned'; selected: number; todo: number; skippedFailed: number }
  | { t: 'rows'; rows: RowTally[]; inFlight: number }
  | { t: 'warn'; message: string }
  | { t: 'done'; summary: Summary }
  | { t: 'fatal'; exitCode: number; message: string };

/** Messages from the coordinator to a share's process. */
export type CoordinatorMessage = { t: 'start'; options: DownloadOptions } | { t: 'stop'; hard: boolean };

/** The options of process `index` of `count`: its threads, and its share of every run-wide limit. */
export function shareOptions(o: DownloadOptions, index: number, count: number): DownloadOptions {
  return {
    ...o,
    threads: evenShare(o.threads, index, count),
    share: { index, count, reason: 'a process of this run' },
    // Limits of the whole run, split so that the shares add up to them: the host sees one polite client.
    memoryBudgetBytes: evenShare(o.memoryBudgetBytes, index, count),
    maxRps: o.maxRps === null ? null : o.maxRps / count,
    maxHostConnections: o.maxHostConnections === null ? null : Math.max(1, evenShare(o.maxHostConnections, index, count)),
    quiet: true,
    json: false,
    maxFailureRate: null,
  };
}

interface Share {
  child: ChildProcess;
  planned: boolean;
  inFlight: number;
  summary: Summary | null;
  fatal: { exitCode: number; message: string } | null;
  /** How the process ended when it ended without a summary. */
  died: string | null;
  exited: Promise<void>;
}

/** `pcb download` over o.processes processes, as one run. */
export async function runCoordinated(o: DownloadOptions, hooks: RunHooks = {}): Promise<Summary> {
  const { started, paths, source, store, lock } = await openRun(o, hooks.warn);
  try {
    const { settings } = await prepareOutput(o, source, paths, store);
    source.close();
    const run = await runShares(o, hooks, store);
    // Every share's log is closed: the records of the run (or of its --shard) come from all of them.
    const records = await rebuildRecords(o, paths, settings, run.progress.done);
    await publishRecords(o, paths, store, records.dest);
    rmSync(paths.tmpDir, { recursive: true, force: true });
    return mergeSummaries(o, run, records, started, store);
  } finally {
    lock.release();
  }
}

interface SharesRun {
  shares: Share[];
  progress: Progress;
  stopping: boolean;
}

async function runShares(o: DownloadOptions, hooks: RunHooks, store: OutputStore): Promise<SharesRun> {
  const count = o.processes;
  const waiting: RowTally[] = [];
  let progress: Progress | null = null;
  let stopping = false;
  const shares: Share[] = [];
  const planned = { selected: 0, todo: 0, skippedFailed: 0 };
  let fatal: { exitCode: number; message: string } | null = null;

  const stopAll = (hard: boolean) => {
    for (const s of shares) if (s.child.connected) s.child.send({ t: 'stop', hard } satisfies CoordinatorMessage);
  };
  const startProgress = () => {
    if (progress || !shares.every((s) => s.planned || s.died || s.fatal)) return;
    progress = new Progress(planned.todo, { quiet: o.quiet || o.json, warn: !o.quiet, tty: Boolean(process.stderr.isTTY) });
    progress.inFlight = () => shares.reduce((n, s) => n + s.inFlight, 0);
    for (const r of waiting.splice(0)) progress.add(r as RowResult);
  };

  for (let index = 0; index < count; index++) {
    const options = shareOptions(o, index, count);
    const child = fork(SHARE_PROCESS, [], {
      // Each process sizes libuv's threadpool to its own threads (bin/pcb sized this one's to all of them).
      env: { ...process.env, UV_THREADPOOL_SIZE: String(Math.min(1024, options.threads + 4)) },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    const share: Share = { child, planned: false, inFlight: 0, summary: null, fatal: null, died: null, exited: Promise.resolve() };
    share.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        if (!share.summary && !share.fatal) share.died = `process ${index + 1} of ${count} ended (${signal ?? `exit ${code}`}) before it finished`;
        share.inFlight = 0;
        startProgress();
        resolve();
      });
    });
    child.on('error', () => undefined);
    child.on('message', (m: ShareMessage) => {
      switch (m.t) {
        case 'planned':
          share.planned = true;
          planned.selected += m.selected;
          planned.todo += m.todo;
          planned.skippedFailed += m.skippedFailed;
          startProgress();
          break;
        case 'rows':
          share.inFlight = m.inFlight;
          if (progress) for (const r of m.rows) (progress as Progress).add(r as RowResult);
          else waiting.push(...m.rows);
          break;
        case 'warn':
          hooks.warn?.(m.message);
          break;
        case 'done':
          share.summary = m.summary;
          break;
        case 'fatal':
          share.fatal = { exitCode: m.exitCode, message: m.message };
          // The same plan fails the same way in every share: stop the others and say it once.
          fatal ??= share.fatal;
          stopAll(true);
          break;
      }
    });
    child.send({ t: 'start', options } satisfies CoordinatorMessage);
    shares.push(share);
  }

  hooks.onStart?.(async (hard) => {
    stopping = true;
    (progress as Progress | null)?.stop();
    stopAll(hard);
    if (!hard) return;
    for (const s of shares) s.child.kill('SIGKILL');
    // Only once every process is gone can no upload begin behind the abort pass (a process that had not heard the
    // second signal yet could start one); then their journals are final, and the store lists what they never journaled.
    await Promise.all(shares.map((s) => s.exited));
    await store.abortOpen(o.shard).catch(() => undefined);
  });

  await Promise.all(shares.map((s) => s.exited));
  if (fatal) {
    const { exitCode, message } = fatal as { exitCode: number; message: string };
    throw exitCode === 2 ? new UsageError(message) : new FatalError(message);
  }
  startProgress();
  const done = progress as unknown as Progress;
  done.stop();
  return { shares, progress: done, stopping };
}

/** One summary of the run from its processes' summaries: counts added, shares weighted by the rows each settled. */
function mergeSummaries(
  o: DownloadOptions,
  run: SharesRun,
  records: { dest: { manifest: string; metadata: string }; recordsS: number },
  started: number,
  store: OutputStore,
): Summary {
  const parts = run.shares.map((s) => s.summary).filter((s): s is Summary => s !== null);
  const sum = (f: (s: Summary) => number) => parts.reduce((n, s) => n + f(s), 0);
  const wall = (Date.now() - started) / 1000;
  const processed = run.progress.done;
  const own = process.cpuUsage();
  const cpuS = sum((s) => s.cpu_s) + (own.user + own.system) / 1e6;
  const limitedBy = noBounds();
  const weight = Math.max(
    1,
    sum((s) => s.processed),
  );
  for (const s of parts) for (const k of Object.keys(limitedBy) as Bound[]) limitedBy[k] += (s.limited_by[k] * Math.max(1, s.processed)) / weight;
  const hosts = mergeHosts(parts.flatMap((s) => s.hosts));
  const errors = { ...run.progress.errors };
  const skippedFailed = sum((s) => s.skipped_failed);
  return {
    ...machineSummary(o, { errors, skippedFailed, limitedBy, hosts, cpuS, wallS: wall, processes: o.processes }),
    input: o.input,
    out: store.summaryPlace.out,
    state_dir: store.summaryPlace.stateDir,
    upload_retries: storeRetries(
      store,
      sum((s) => s.upload_retries ?? 0),
    ),
    shard: o.shard ? `${o.shard.index}/${o.shard.count}` : null,
    shard_reason: o.shard?.reason ?? null,
    selected: sum((s) => s.selected),
    processed,
    ok: run.progress.ok,
    failed: run.progress.failed,
    skipped: sum((s) => s.skipped),
    skipped_failed: skippedFailed,
    errors,
    http_statuses: { ...run.progress.httpStatuses },
    bytes_downloaded: run.progress.bytes,
    wall_s: wall,
    images_per_s: processed / Math.max(wall, 1e-3),
    images_per_s_per_thread: processed / Math.max(wall, 1e-3) / o.threads,
    threads: o.threads,
    concurrency: o.concurrency,
    in_flight_peak: sum((s) => s.in_flight_peak),
    parked_peak: sum((s) => s.parked_peak),
    in_flight_limit: sum((s) => s.in_flight_limit),
    limited_by: limitedBy,
    hosts,
    requests: run.progress.requests,
    connections_opened: sum((s) => s.connections_opened),
    interrupted: run.stopping || parts.some((s) => s.interrupted),
    manifest: store.recordUrl(records.dest.manifest),
    metadata: store.recordUrl(records.dest.metadata),
    first_dispatch_s: parts.reduce<number | null>((m, s) => (s.first_dispatch_s === null ? m : Math.min(m ?? Infinity, s.first_dispatch_s)), null),
    cpu_s: cpuS,
    processes: o.processes,
    process_failures: run.shares.map((s) => s.died).filter((d): d is string => d !== null),
    // Every process holds its own peak: together they are at most their sum.
    peak_rss_bytes: sum((s) => s.peak_rss_bytes) + process.resourceUsage().maxRSS * 1024,
    rendition_fallbacks: o.cdnResize === 'none' ? null : run.progress.renditionFallbacks,
    records_s: records.recordsS,
    memory_held_peak_bytes: sum((s) => s.memory_held_peak_bytes),
  };
}

/** Each host once: rows, pushback and limits added over the processes (each held a share of the host). */
function mergeHosts(all: HostSummary[]): HostSummary[] {
  const byHost = new Map<string, HostSummary>();
  for (const h of all) {
    const m = byHost.get(h.host);
    if (!m) byHost.set(h.host, { ...h });
    else {
      m.rows += h.rows;
      m.limit += h.limit;
      m.http_429 += h.http_429;
      m.http_503 += h.http_503;
      m.drops += h.drops;
      m.not_sent += h.not_sent;
    }
  }
  return [...byHost.values()].sort((a, b) => b.rows - a.rows).slice(0, 5);
}
