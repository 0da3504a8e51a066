import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { FatalError, RowError } from './errors.js';
import type { DownloadOptions } from './options.js';
import { Source, countPlan, streamTasks } from './source.js';
import type { Plan } from './source.js';
import { ensureWritableDir } from './output.js';
import { RowLog, STATE_DIR, allLogPaths, buildDoneTable, logPath, recordPaths, removeStaleTemps, shardTag, writeRecords } from './manifest.js';
import { RowPool } from './pool.js';
import type { WorkerConfig } from './pool.js';
import { createSharedBuffer } from './shared-limits.js';
import { Progress } from './progress.js';
import type { Summary } from './progress.js';
import { checkId } from './row.js';
import { failedResult } from './result.js';
import type { RowResult } from './result.js';

/** What a run leaves in `.pcb/run.json`: how the folder was made, for `pcb config` and `pcb status`. */
export interface RunRecord {
  input: string;
  urlColumn: string;
  idColumn: string;
  captionColumn: string | null;
  fallbackCaptionColumn: string | null;
  resize: string;
  resolution: number;
  format: string;
  where: string | null;
  limit: number | null;
}

export function readRunRecord(out: string): RunRecord | null {
  try {
    return JSON.parse(readFileSync(path.join(out, STATE_DIR, 'run.json'), 'utf8')) as RunRecord;
  } catch {
    return null;
  }
}

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, file);
}

export interface RunHooks {
  /** Called once the pool runs, with a function that stops the run (signals). */
  onStart?: (stop: (hard: boolean) => void) => void;
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
  // Each shard owns its temporary folder: cleaning it never touches another live shard's files.
  const tmpDir = path.join(stateDir, `tmp${shardTag(o.shard) ? '.' + shardTag(o.shard) : ''}`);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir);
  removeStaleTemps(o.out);
  removeStaleTemps(stateDir);
  const record: RunRecord = {
    input: path.resolve(o.input), urlColumn: o.urlColumn, idColumn: o.idColumn,
    captionColumn: source.has(o.captionColumn) ? o.captionColumn : null,
    fallbackCaptionColumn: source.has(o.fallbackCaptionColumn) ? o.fallbackCaptionColumn : null,
    resize: o.resize, resolution: o.resolution, format: o.format, where: o.where, limit: o.limit,
  };
  writeJsonAtomic(path.join(stateDir, 'run.json'), record);

  const logs = allLogPaths(o.out);
  const plan: Plan = {
    urlColumn: o.urlColumn, idColumn: o.idColumn, captionColumn: record.captionColumn, fallbackColumn: record.fallbackCaptionColumn,
    where: o.where, shard: o.shard, limit: o.limit,
    doneTable: o.overwrite || !logs.length ? null : await buildDoneTable(source.conn, o.out, logs, o.retryFailed),
  };
  const { selected, todo } = await countPlan(source, plan);

  const log = new RowLog(logPath(o.out, o.shard));
  const progress = new Progress(todo, { quiet: o.quiet || o.json, warn: !o.quiet, tty: Boolean(process.stderr.isTTY) });
  const settle = (r: RowResult) => { log.append(r); progress.add(r); };
  const config: WorkerConfig = {
    out: path.resolve(o.out), tmpDir: path.resolve(tmpDir),
    resize: { mode: o.resize, resolution: o.resolution, format: o.format, quality: o.quality, pngCompression: o.pngCompression, pngFilter: o.pngFilter },
    policy: {
      timeoutMs: o.timeoutMs, maxBytes: o.maxBytes, retries: o.retries, backoffMs: o.backoffMs, userAgent: o.userAgent,
      allowPrivateNetwork: o.allowPrivateNetwork, ignoreOptOut: o.ignoreOptOut,
    },
    cdnResize: o.cdnResize, cdnHosts: o.cdnHosts, concurrency: o.concurrency,
    limits: { buffer: createSharedBuffer(), maxRps: o.maxRps, maxHostConnections: o.maxHostConnections, memoryBudgetBytes: o.memoryBudgetBytes },
  };
  const pool = todo > 0 ? new RowPool(config, o.threads, settle, (task, err) => {
    settle(failedResult(task, new RowError('decode_error', `worker failed: ${(err as Error)?.message ?? err}`), Date.now()));
  }) : null;

  let stopping = false;
  let firstDispatchS: number | null = null;
  hooks.onStart?.((hard) => {
    stopping = true;
    if (hard) { pool?.abandon(); log.close(); progress.stop(); }
  });

  try {
    outer: for await (const batch of streamTasks(source, plan, o.chunkSize)) {
      for (const task of batch) {
        if (stopping) break outer;
        if (task.occurrence > 1 && isValidId(task.id)) {
          settle(failedResult(task, new RowError('duplicate_id', `id ${task.id} already appears in an earlier row`), Date.now()));
          continue;
        }
        firstDispatchS ??= (Date.now() - started) / 1000;
        await pool!.submit(task);
      }
    }
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
  try {
    await writeRecords(source.conn, recordLogs, path.resolve(o.input), dest);
  } catch (err) {
    throw new FatalError(`could not write the records in ${o.out}: ${(err as Error).message.split('\n')[0]}; the log in ${stateDir} is intact, rerun to rebuild them`);
  }
  rmSync(tmpDir, { recursive: true, force: true });
  const wall = progress.elapsedS;
  const cpu = process.cpuUsage();
  const processed = progress.done;
  return {
    input: o.input, out: o.out, shard: o.shard ? `${o.shard.index}/${o.shard.count}` : null, shard_reason: o.shard?.reason ?? null,
    selected, processed, ok: progress.ok, failed: progress.failed, skipped: selected - todo, errors: progress.errors,
    bytes_downloaded: progress.bytes, wall_s: wall, images_per_s: processed / Math.max(wall, 1e-3),
    images_per_s_per_thread: processed / Math.max(wall, 1e-3) / o.threads, threads: o.threads, concurrency: o.concurrency,
    interrupted: stopping, manifest: dest.manifest, metadata: dest.metadata, first_dispatch_s: firstDispatchS,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  };
}

function isValidId(id: string | null): boolean {
  try { checkId(id); return true; } catch { return false; }
}
