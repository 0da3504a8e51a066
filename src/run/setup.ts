/**
 * What a run does before its first row and after its last, the same for one process and a coordinated
 * run: the input and output checked, the store opened, the lock taken, the folder made ready and
 * recorded, and the records rebuilt and handed to the store at the end.
 */
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { FatalError } from '../errors.js';
import type { DownloadOptions } from '../options.js';
import { Source, closeDuckDB, openDuckDB } from '../input/source.js';
import { ensureWritableDir, makeDirs } from '../output/atomic.js';
import { checkSettings, removeStaleTemps, writeJsonAtomic } from '../output/folder.js';
import type { FileSettings, RunRecord } from '../output/folder.js';
import { FolderLock } from '../output/lock.js';
import { RunPaths } from '../output/paths.js';
import type { RecordPaths } from '../output/paths.js';
import { writeRecords } from '../output/records.js';
import { openStore, storeSpec } from '../output/store.js';
import type { OutputStore } from '../output/store.js';
import { duckMessage } from '../sql.js';

/** The file-shaping settings of this run, as run.json records them. */
export function fileSettings(o: DownloadOptions, source: Source): FileSettings {
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

/** The input opened with its columns and --where checked, the state folder writable: everything before the lock. */
export async function openChecked(o: DownloadOptions, paths: RunPaths): Promise<Source> {
  const source = await Source.open(o.input);
  source.requireColumn(o.urlColumn, '--url-column');
  source.requireColumn(o.idColumn, '--id-column');
  if (o.verifyHash) source.requireColumn(o.verifyHash.column, '--verify-hash');
  if (o.captionColumnExplicit) source.requireColumn(o.captionColumn, '--caption-column');
  if (o.fallbackCaptionColumnExplicit) source.requireColumn(o.fallbackCaptionColumn, '--fallback-caption-column');
  await source.checkWhere(o.where);

  await ensureWritableDir(paths.out);
  // Shards started side by side make it at the same moment: a look, then mkdir, failed one of them with EEXIST.
  await makeDirs(paths.stateDir);
  return source;
}

/** The run's store, checked before any download: it takes writes (a process's share: its coordinator checked, once for the run). */
export async function openRunStore(o: DownloadOptions, paths: RunPaths): Promise<OutputStore> {
  const store = await openStore(storeSpec(o, paths));
  if (!o.share) await store.check(true);
  return store;
}

export function acquireLock(paths: RunPaths, warn: ((msg: string) => void) | undefined): FolderLock {
  return FolderLock.acquire(paths.lock, paths.label, warn ?? (() => undefined));
}

/** What a run holds from its start: the checked input, its paths, its store and its lock (release it at the end). */
export interface Opened {
  started: number;
  paths: RunPaths;
  source: Source;
  store: OutputStore;
  lock: FolderLock;
}

/** Everything before the first row, in order: input and state folder checked, the store checked, the lock taken. */
export async function openRun(o: DownloadOptions, warn: ((msg: string) => void) | undefined): Promise<Opened> {
  const started = Date.now();
  const paths = RunPaths.of(o);
  const source = await openChecked(o, paths);
  const store = await openRunStore(o, paths);
  return { started, paths, source, store, lock: acquireLock(paths, warn) };
}

export interface Prepared {
  settings: FileSettings;
  /** `<format> <layout>` of the folder before this run. */
  layoutBefore: string | null;
}

/** A fresh temporary folder of this process's own: the lock makes it ours alone, so whatever is in it is a dead run's. */
function freshTmpDir(paths: RunPaths): void {
  rmSync(paths.tmpDir, { recursive: true, force: true });
  mkdirSync(paths.tmpDir);
}

/** A process's share of a run: a fresh temporary folder; the folder's settings were checked by the coordinator. */
export function prepareShare(o: DownloadOptions, source: Source, paths: RunPaths): Prepared {
  freshTmpDir(paths);
  return { settings: fileSettings(o, source), layoutBefore: paths.runRecordRead()?.layoutBefore ?? null };
}

/** The output made ours: its settings checked and recorded, a fresh temporary folder, dead runs' leftovers gone. */
export async function prepareOutput(o: DownloadOptions, source: Source, paths: RunPaths, store: OutputStore): Promise<Prepared> {
  const settings = fileSettings(o, source);
  const before = paths.runRecordRead();
  checkSettings(o.out, before, settings, o.overwrite);
  freshTmpDir(paths);
  await store.prepare(o.shard, o.overwrite);
  removeStaleTemps(paths.stateDir);
  const layoutBefore = before ? `${before.format} ${before.outputFormat ?? 'files'}` : null;
  // layoutBefore is kept for the run's processes, which read run.json after it is rewritten here.
  const record: RunRecord = { ...settings, input: path.resolve(o.input), where: o.where, limit: o.limit, cdnResize: o.cdnResize, layoutBefore };
  writeJsonAtomic(paths.runRecord, record);
  return { settings, layoutBefore };
}

/**
 * Both records exist and were written after the last change to any of `sources` (strictly after: on a
 * filesystem with coarse times, a log line of the same tick may be newer, and the logs are then read).
 */
export function recordsCurrent(dest: RecordPaths, sources: string[]): boolean {
  const mtime = (f: string) => (existsSync(f) ? statSync(f).mtimeMs : Number.NaN);
  const written = Math.min(mtime(dest.manifest), mtime(dest.metadata));
  return Number.isFinite(written) && sources.every((f) => mtime(f) < written);
}

/** manifest.parquet and metadata.parquet rebuilt from the logs, in a DuckDB of their own. */
export async function rebuildRecords(
  o: DownloadOptions,
  paths: RunPaths,
  settings: FileSettings,
  processed: number,
): Promise<{ dest: RecordPaths; recordsS: number }> {
  const dest = paths.records;
  // The shard's own log and its processes' logs (every log for the whole input).
  const recordLogs = paths.shardLogs();
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
    throw new FatalError(`could not write the records in ${o.out}: ${duckMessage(err)}; the log in ${paths.stateDir} is intact, rerun to rebuild them`);
  } finally {
    closeDuckDB(recordsConn);
  }
  return { dest, recordsS: (Date.now() - recordsStarted) / 1000 };
}

/** The records and run.json handed to the store beside the samples (where it does not hold them already). */
export async function publishRecords(o: DownloadOptions, paths: RunPaths, store: OutputStore, dest: RecordPaths): Promise<void> {
  const files = [dest.manifest, dest.metadata].filter((f) => existsSync(f) && path.dirname(path.resolve(f)) === path.resolve(o.out));
  await store.publishRecords([
    ...files.map((f) => ({ name: path.basename(f), file: f })),
    { name: `${path.basename(paths.stateDir)}/run.json`, file: paths.runRecord },
  ]);
}
