/**
 * An output folder's own state: where pcb keeps its bookkeeping (`.pcb/`), the names of logs and
 * records per shard, `run.json` (how the folder's files are made), and temporary names that say whose they are.
 */
import { existsSync, opendirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { processState } from './process-state.js';

export const STATE_DIR = '.pcb';

/** This host's name as it may appear in a file name. */
export const HOST = os.hostname().replace(/[^A-Za-z0-9_.-]/g, '_') || 'host';

/** Temporary names carry host and pid, so cleanup can tell a dead run's leftovers from another host's live files. */
export function tempName(file: string): string {
  return `${file}.tmp-${HOST}-${process.pid}`;
}

/** Another host's leftovers are removed only when nobody could still be writing them. */
const FOREIGN_TEMP_AGE_MS = 24 * 3600 * 1000;

/**
 * Remove temporary files (`*.tmp-<host>-<pid>`) that a killed pcb left in a folder: this host's when
 * their pid is gone, another host's only when a day old. A live process's own are left alone. `alsoSee`
 * is shown every name of the listing, for another sweep of the same folder.
 */
export function removeStaleTemps(dir: string, alsoSee: (name: string) => void = () => undefined): void {
  if (!existsSync(dir)) return;
  const stale: string[] = [];
  eachName(dir, (name) => {
    alsoSee(name);
    const m = /\.tmp-(.+)-(\d+)$/.exec(name);
    if (!m) return;
    const file = path.join(dir, name);
    const pid = Number(m[2]);
    const dead =
      m[1] === HOST
        ? pid !== process.pid && !processState(pid).alive
        : Date.now() - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? Date.now()) > FOREIGN_TEMP_AGE_MS;
    if (dead) stale.push(file);
  });
  for (const file of stale) rmSync(file, { force: true });
}

/**
 * Each entry's name in `dir`, read a batch at a time: a flat folder of a million images never becomes one
 * array (readdirSync's held ~90 MB of the main thread's heap at 1.1 M names, and took 4× as long).
 */
export function eachName(dir: string, visit: (name: string) => void): void {
  const d = opendirSync(dir, { bufferSize: 1024 });
  try {
    for (let entry = d.readSync(); entry !== null; entry = d.readSync()) visit(entry.name);
  } finally {
    d.closeSync();
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = tempName(file);
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  renameSync(tmp, file);
}

/** Settings that shape the files: a folder is made with one value of each. */
export interface FileSettings {
  urlColumn: string;
  idColumn: string;
  captionColumn: string | null;
  fallbackCaptionColumn: string | null;
  resize: string;
  resolution: number;
  format: string;
  /** jpeg/webp only (null for png). */
  quality: number | null;
  /** png only (null for jpeg/webp). */
  pngCompression: number | null;
  pngFilter: boolean | null;
  /** files or webdataset. */
  outputFormat: string;
}

/** What a run leaves in `.pcb/run.json`: how the folder was made, for config, status, merge and the next run. */
export interface RunRecord extends FileSettings {
  input: string;
  where: string | null;
  limit: number | null;
  cdnResize: string;
  /** `<format> <layout>` of the folder before this run rewrote run.json (its processes read it here). */
  layoutBefore?: string | null;
}

const OPTION_NAMES: Record<keyof FileSettings, string> = {
  urlColumn: '--url-column',
  idColumn: '--id-column',
  captionColumn: '--caption-column',
  fallbackCaptionColumn: '--fallback-caption-column',
  resize: '--resize',
  resolution: '--resolution',
  format: '--format',
  quality: '--quality',
  pngCompression: '--png-compression',
  pngFilter: '--png-filter',
  outputFormat: '--output-format',
};

/** What a run.json written before a setting existed meant by its absence. */
const BEFORE_IT_EXISTED: Partial<FileSettings> = { outputFormat: 'files' };

/** A JSON file pcb wrote, or null when it is missing or torn. */
export function readJson<T>(file: string): T | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** The settings of `next` that differ from the folder's, as "--format jpeg → png"; keys an older run.json lacks are not compared. */
export function settingDifferences(folder: Partial<FileSettings>, next: FileSettings): string[] {
  const diffs: string[] = [];
  for (const key of Object.keys(OPTION_NAMES) as (keyof FileSettings)[]) {
    const had = key in folder ? folder[key] : BEFORE_IT_EXISTED[key];
    if (had === undefined || had === next[key]) continue;
    diffs.push(`${OPTION_NAMES[key]} ${String(had ?? 'none')} → ${String(next[key] ?? 'none')}`);
  }
  return diffs;
}

/** The flags that give the folder's own value of each differing setting (a default changed since, say). */
function folderFlags(folder: Partial<FileSettings>, next: FileSettings): string {
  const flags: string[] = [];
  for (const key of Object.keys(OPTION_NAMES) as (keyof FileSettings)[]) {
    const had = key in folder ? folder[key] : BEFORE_IT_EXISTED[key];
    if (had === undefined || had === null || had === next[key]) continue;
    const flag = OPTION_NAMES[key];
    flags.push(typeof had === 'boolean' ? (had ? flag : flag.replace(/^--/, '--no-')) : `${flag} ${had}`);
  }
  return flags.join(' ');
}

/** A folder is made one way: refuse (exit 2) a run whose file settings differ, unless it redoes everything. */
export function checkSettings(out: string, folder: Partial<FileSettings> | null, next: FileSettings, overwrite: boolean): void {
  if (!folder || overwrite) return;
  const diffs = settingDifferences(folder, next);
  if (diffs.length) {
    const keep = folderFlags(folder, next);
    throw new UsageError(
      `${out} was made with other settings (${diffs.join(', ')}); ${keep ? `to resume it, pass its own (${keep}); ` : ''}add --overwrite to redo every row with the new ones, or choose another --out`,
    );
  }
}
