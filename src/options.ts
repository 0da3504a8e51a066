import os from 'node:os';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import type { Shard } from './shard.js';
import { UsageError } from './errors.js';
import { VERSION, PROJECT_URL } from './version.js';

export const VECTOR_SIZE = 2048;

export type ResizeMode = 'shortest-side' | 'area' | 'none';
/** The written image's format. */
export type OutputFormat = 'png' | 'jpeg' | 'webp';
export type CdnResize = 'none' | 'imgix';

/** An S3 output: `s3://bucket/prefix`. */
export interface S3Target {
  bucket: string;
  /** Key prefix without a trailing slash; '' for the bucket's root. */
  prefix: string;
}

/** `pcb download` after parsing and validation: every option typed, every default filled. */
export interface DownloadOptions {
  input: string;
  out: string;
  urlColumn: string;
  idColumn: string;
  captionColumn: string;
  captionColumnExplicit: boolean;
  fallbackCaptionColumn: string;
  fallbackCaptionColumnExplicit: boolean;
  where: string | null;
  limit: number | null;
  resize: ResizeMode;
  resolution: number;
  format: OutputFormat;
  quality: number;
  pngCompression: number;
  pngFilter: boolean;
  threads: number;
  /** Rows in flight per thread, fixed; 'auto': the in-flight controller sets them. */
  concurrency: number | 'auto';
  chunkSize: number;
  retries: number;
  backoffMs: number;
  timeoutMs: number;
  maxBytes: number;
  maxRps: number | null;
  /** Hard ceiling on one host's open requests; null: none but the host's own feedback. */
  maxHostConnections: number | null;
  memoryBudgetBytes: number;
  userAgent: string;
  ignoreOptOut: boolean;
  allowPrivateNetwork: boolean;
  cdnResize: CdnResize;
  cdnHosts: string[];
  /** --verify-hash: the input column holding each image's hash, and its algorithm. */
  verifyHash: VerifyHash | null;
  /** null for the whole input (no --shard, or a count of 1). */
  shard: Shard | null;
  /** Processes the run is split over, each a pool of `threads / processes` threads over a share of the rows. */
  processes: number;
  /** Set by the coordinator in each of its processes: which share of the (shard's) rows this one takes. */
  share: Shard | null;
  /** With `--out s3://…`: the bucket and prefix the samples and records go to (`out` is then the local state folder). */
  remote: S3Target | null;
  overwrite: boolean;
  retryFailed: boolean;
  manifest: string | null;
  quiet: boolean;
  json: boolean;
  /** Exit 3 when the failed share of the rows processed is above this; null: never. */
  maxFailureRate: number | null;
  outputFormat: 'files' | 'webdataset' | 'parquet';
  /** Samples per tar or parquet shard. */
  samplesPerShard: number;
}

export const DEFAULT_USER_AGENT = `pcb/${VERSION} (+${PROJECT_URL})`;
export const DEFAULT_MEMORY_FRACTION = 0.25;
/**
 * The default PNG: adaptive row filtering at zlib level 5. On 54 real photographs from five of Debian's
 * wallpaper packages (1024 px) it writes 1.011x the bytes of Pillow's default PNG (the reference script's),
 * 1.043x on the worst package (mate's nature photos), for 0.70x the encode CPU of level 6 (Pillow's own
 * level: 1.029x there); level 4 is 1.049x and level 3 1.068x on mate's (`npm run bench:photos`).
 */
export const PNG_DEFAULTS = { compression: 5, filter: true } as const;

/** Commander argument parsers: each names the option, what it expects and what it got. */
export function intOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} takes a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ' up'}, got '${value}'.`);
    }
    return n;
  };
}

/** `auto`, or a whole number in range. */
export function autoOrInt(name: string, min: number, max: number) {
  const int = intOption(name, min, max);
  return (value: string): number | 'auto' => {
    if (value.trim() === 'auto') return 'auto';
    try {
      return int(value);
    } catch {
      throw new InvalidArgumentError(`${name} takes auto or a whole number from ${min} to ${max}, got '${value}'.`);
    }
  };
}

export function numberOption(name: string, min: number, inclusive = false) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (inclusive ? n < min : n <= min)) {
      throw new InvalidArgumentError(`${name} takes a number ${inclusive ? `of ${min} or more` : `above ${min}`}, got '${value}'.`);
    }
    return n;
  };
}

export function fractionOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
      throw new InvalidArgumentError(`${name} takes a fraction from 0 to 1 (e.g. 0.2 for 20 %), got '${value}'.`);
    }
    return n;
  };
}

export const HASH_ALGORITHMS = ['sha256', 'md5'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];
export interface VerifyHash {
  column: string;
  algorithm: HashAlgorithm;
}

/** `--verify-hash <column>[:sha256|md5]`: the algorithm after the last colon, sha256 when none is named. */
export function verifyHashOption(value: string): VerifyHash {
  const m = /^(.+?)(?::([^:]*))?$/.exec(value);
  const column = m?.[1] ?? '';
  const algorithm = (m?.[2] ?? 'sha256').toLowerCase();
  if (!column.trim()) throw new InvalidArgumentError(`--verify-hash takes <column>[:sha256|md5], got '${value}'.`);
  if (!(HASH_ALGORITHMS as readonly string[]).includes(algorithm))
    throw new InvalidArgumentError(`--verify-hash: the algorithm is one of ${HASH_ALGORITHMS.join(', ')}, got '${m?.[2]}'.`);
  return { column, algorithm: algorithm as HashAlgorithm };
}

export function choiceOption<T extends string>(name: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`${name} is one of ${choices.join(', ')}, got '${value}'.`);
    }
    return value as T;
  };
}

/** Sizes like 4G, 512M, 1048576. */
export function bytesOption(name: string) {
  return (value: string): number => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$/i.exec(value);
    if (!m) throw new InvalidArgumentError(`${name} takes a size in bytes (e.g. 104857600, 512M, 4G), got '${value}'.`);
    const unit = (m[2] ?? '').toLowerCase()[0] ?? '';
    const mult = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit] ?? 1;
    const n = Math.floor(Number(m[1]) * mult);
    if (n < 1) throw new InvalidArgumentError(`${name} must be at least 1 byte, got '${value}'.`);
    return n;
  };
}

export function defaultThreads(): number {
  return os.availableParallelism();
}

/**
 * Threads in one process before a second process pays: measured on 16 cores, 4 processes of 4 threads
 * kept within 0.8-1.0x of the best layout on every workload, where one process of 16 threads fell to 0.4x
 * of 16 processes on small images (see docs/performance.md).
 */
export const THREADS_PER_PROCESS = 4;

/** `--processes auto`: one process per THREADS_PER_PROCESS threads; never more processes than threads. */
export function resolveProcesses(given: number | 'auto', threads: number): number {
  const n = given === 'auto' ? Math.ceil(threads / THREADS_PER_PROCESS) : given;
  return Math.max(1, Math.min(n, threads));
}

/** The soft limit on open files (sockets included), from /proc on Linux; 1024 where it cannot be read. */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    // not Linux
  }
  return 1024;
}

export function defaultMemoryBudget(): number {
  return Math.floor(os.totalmem() * DEFAULT_MEMORY_FRACTION);
}

/** DuckDB reads whole vectors; a partial one would be read anyway. */
export function roundChunkSize(n: number): number {
  return Math.ceil(n / VECTOR_SIZE) * VECTOR_SIZE;
}

/** Checks that involve more than one option. */
export function validateCombination(o: DownloadOptions): void {
  if (o.resize === 'shortest-side' && (o.resolution < 64 || !Number.isInteger(o.resolution))) {
    throw new UsageError(`--resolution for --resize shortest-side is a whole number of pixels, at least 64; got ${o.resolution}.`);
  }
  if (o.resize === 'area' && o.resolution > 1000) {
    throw new UsageError(`--resolution for --resize area is in megapixels (e.g. 1.0); got ${o.resolution}.`);
  }
  if (o.overwrite && o.retryFailed) {
    throw new UsageError(`--overwrite already redoes every row; drop --retry-failed.`);
  }
}
