/**
 * One process's run, wired from the stages: open the input and the store, lock, prepare, plan, dispatch
 * rows to the pool (each settled row logged), rebuild the records, summarize. The store was chosen once
 * (output/store.ts); nothing here knows which store it is.
 */
import { rmSync } from 'node:fs';
import { RowError } from '../errors.js';
import { openFileLimit } from '../options.js';
import type { DownloadOptions } from '../options.js';
import { streamTasks } from '../input/source.js';
import { checkId } from '../input/row.js';
import { createSharedBuffer } from '../fetch/shared-limits.js';
import type { RunPaths } from '../output/paths.js';
import { RowLog } from '../output/row-log.js';
import { TarPublisher } from '../output/tar-publisher.js';
import { discardWorkerTars, finalizeLeftovers } from '../output/tars.js';
import { failedResult } from '../result.js';
import type { RowResult } from '../result.js';
import { RunMonitor, poolBounds } from './monitor.js';
import { planRows, withWhere } from './plan.js';
import type { Planned } from './plan.js';
import { RowPool } from './pool.js';
import { Progress } from './progress.js';
import type { Summary } from './progress.js';
import { openRun, prepareOutput, prepareShare, publishRecords, rebuildRecords } from './setup.js';
import type { Opened } from './setup.js';
import { storeSpec } from '../output/store.js';
import { summarize } from './summary.js';
import type { Dispatched } from './summary.js';
import type { WorkerConfig } from './worker-config.js';

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

/** `pcb download`: plan in DuckDB, dispatch to the pool, log every settled row, rebuild the records. */
export async function runDownload(o: DownloadOptions, hooks: RunHooks = {}): Promise<Summary> {
  const opened = await openRun(o, hooks.warn);
  try {
    return await runLocked(o, { ...opened, hooks });
  } finally {
    opened.lock.release();
  }
}

/** What one process's run holds from its start to its end. */
interface RunContext extends Opened {
  hooks: RunHooks;
}

async function runLocked(o: DownloadOptions, run: RunContext): Promise<Summary> {
  const { source, paths, store } = run;
  // A process's share: the coordinator made the output ready and rebuilds the records once every share is done.
  const prepared = o.share ? prepareShare(o, source, paths) : await prepareOutput(o, source, paths, store);
  const planned = await planRows(o, source, paths, store, prepared);
  run.hooks.onPlanned?.(planned);
  const dispatched = await dispatchRows(o, planned, run);
  source.close();
  const records = o.share ? { dest: paths.records, recordsS: 0 } : await rebuildRecords(o, paths, prepared.settings, dispatched.progress.done);
  if (!o.share) await publishRecords(o, paths, store, records.dest);
  rmSync(paths.tmpDir, { recursive: true, force: true });
  return summarize(o, planned, dispatched, records, store);
}

/** Rows per worker under auto: a bound on sockets (half the process's open files), not on throughput. */
function autoTasksPerWorker(threads: number): number {
  return Math.max(16, Math.min(512, Math.floor(openFileLimit() / 2 / threads)));
}

function workerConfig(o: DownloadOptions, paths: RunPaths, limitsBuffer: SharedArrayBuffer): WorkerConfig {
  return {
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
    verifyHash: o.verifyHash?.algorithm ?? null,
    output: {
      store: storeSpec(o, paths),
      format: o.outputFormat,
      samplesPerShard: o.samplesPerShard,
      tarPrefix: paths.tarPrefix,
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
async function dispatchRows(o: DownloadOptions, { plan, todo }: Planned, run: RunContext): Promise<Dispatched> {
  const { source, paths } = run;
  const tars = new TarPublisher(run.store, paths.tmpDir, source.columns);
  const log = new RowLog(paths.log);
  const progress = new Progress(todo, { quiet: o.quiet || o.json, warn: !o.quiet, tty: Boolean(process.stderr.isTTY) });
  const limitsBuffer = createSharedBuffer(o.threads);
  const config = workerConfig(o, paths, limitsBuffer);
  const sizing = { threads: o.threads, perThread: o.concurrency === 'auto' ? null : o.concurrency, tasksPerWorker: config.tasksPerWorker };
  let monitor: RunMonitor | null = null;
  const settle = (result: RowResult) => {
    const { closedTar, ...r } = result;
    log.append(r);
    tars.track(r);
    // A full tar enters the store only once every row in it is in the log (the log is written first).
    if (closedTar) {
      log.flush();
      tars.publish(closedTar);
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
          (threadId) => discardWorkerTars(paths.tmpDir, threadId),
        )
      : null;
  if (pool) {
    monitor = new RunMonitor(limitsBuffer, pool, sizing);
    monitor.storeHeld = () => tars.holding;
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
      // No tar begins its upload behind the abort pass below.
      tars.stop();
      log.close();
      run.lock.release();
      // No invisible parts left behind (and billed): the next run would abort them, but it may never come.
      if (!o.share) await run.store.abortOpen(paths.fileShard).catch(() => undefined);
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
          const room = tars.room();
          if (room) await room;
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
    // The workers' open shards close into the folder once every row in them is logged; a run cut off with rows
    // still in flight leaves them in its temporary folder, and the next run redoes their rows.
    if (settled) finalizeLeftovers(paths.tmpDir, (name) => tars.publish(name));
    // A tar the store refused: its rows are not there, and the records say so.
    for (const refused of await tars.drain()) {
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

function isValidId(id: string | null): boolean {
  try {
    checkId(id);
    return true;
  } catch {
    return false;
  }
}
