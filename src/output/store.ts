/**
 * Where samples live, behind one interface: a local folder or an S3 prefix. The layouts write through it,
 * and verify, status, merge and report read through it; `openStore` is the one place that chooses. A
 * store never knows the layout: tars are whole local files it takes in (`putFile`), flat samples are
 * groups of objects (`putAll`).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import type { DownloadOptions, S3Target } from '../options.js';
import type { RunPaths } from './paths.js';
import type { Shard } from '../shard.js';

/** Bytes read of a file, an object or a tar member, and the size of the whole. */
export interface Slice {
  data: Buffer;
  size: number;
}

export interface Store {
  /** What the store is called in messages: the folder, or s3://bucket/prefix. */
  readonly label: string;
  /** Its writes hold their bytes in memory until stored (an upload): they count against the memory budget meanwhile. */
  readonly holdsBytes: boolean;
  /** Every name at the top of the store, a batch at a time (a folder of a million images is never one array). */
  list(visit: (name: string) => void): Promise<void>;
  names(): Promise<Set<string>>;
  /** `length` bytes of a file or object from `at` (all of it: null), and its whole size; null when it is not there. */
  bytes(name: string, at: number, length: number | null): Promise<Slice | null>;
  text(name: string): Promise<string | null>;
  /** A local path to read a tar from (an object is fetched once into a temporary file), or null when it is not there. */
  tarFile(name: string): Promise<string | null>;
  /** Objects that appear together or not at all: each whole, and if one fails the others are removed again. */
  putAll(items: { name: string; data: Buffer | string }[]): Promise<void>;
  /** A local file becomes the object `name`, whole or not at all (the local file may be gone afterwards). */
  putFile(name: string, file: string): Promise<void>;
  remove(name: string): Promise<void>;
  /** Moves an object aside under the state's `.pcb/<dir>/` (stray images, damaged tars), named so no trainer takes it for an image. */
  moveAside(name: string, dir: string, as: string): Promise<void>;
}

/** What a run asks of its output beyond reading and writing samples: the checks and chores before, after and on interrupt. */
export interface OutputStore extends Store {
  /** Where the store is, as the summary names it (`out`), and the local state folder when that is elsewhere. */
  readonly summaryPlace: { out: string; stateDir: string | null };
  /** Before any download: the store exists and takes writes (`write`), or can be read. */
  check(write: boolean): Promise<void>;
  /** Before a run of `shard`: what killed runs left (temporary files, orphan indexes, open uploads) cleared; its tars removed for --overwrite. */
  prepare(shard: Shard | null, removeTars: boolean): Promise<void>;
  /** The names a resume compares with its log, listed once; orphans of `shard` found on the way are removed. */
  shardNames(shard: Shard | null, visit: (name: string) => void): Promise<void>;
  /** Uploads this machine left open for `shard`, aborted (a second Ctrl-C, or before a run). */
  abortOpen(shard: Shard | null): Promise<void>;
  /** The records (local files) put beside the samples where they are not already there. */
  publishRecords(files: { name: string; file: string }[]): Promise<void>;
  /** Where a record written locally at `file` is for the user: the file itself, or its object's URL. */
  recordUrl(file: string): string;
  /** Requests the store asked to have sent again since the last call; null where nothing is sent. */
  takeRetries(): number | null;
}

/** How to open a store, as plain data (sent to every worker once). */
export interface StoreSpec {
  /** The local folder with the run's state (`.pcb/`): the output itself, or an S3 output's state folder. */
  out: string;
  /** Where temporary files go: same filesystem as a folder output, so that a rename puts them in place. */
  tmpDir: string;
  remote: S3Target | null;
  retries: number;
  timeoutMs: number;
  /** The shard whose journal of open multipart uploads this store keeps. */
  shard: Shard | null;
}

/** How a run's store is opened, in the main thread and in every worker: the one place the options choose it. */
export function storeSpec(o: DownloadOptions, paths: RunPaths): StoreSpec {
  return {
    out: path.resolve(paths.out),
    tmpDir: path.resolve(paths.tmpDir),
    remote: o.remote,
    retries: o.retries,
    timeoutMs: o.timeoutMs,
    shard: paths.fileShard,
  };
}

/** The store a spec names: a folder, or a bucket (the AWS SDK is loaded only then). */
export async function openStore(spec: StoreSpec): Promise<OutputStore> {
  if (!spec.remote) return new (await import('./folder-store.js')).FolderStore(spec.out, spec.tmpDir);
  return new (await import('./bucket.js')).BucketStore(spec.remote, spec);
}

/** `length` bytes from `at` of the part of a file at `offset` (of `partLength` bytes, or to its end). */
/** The same slice of bytes already in memory (a sample read from a parquet shard). */
export function readSliceOf(data: Buffer, at: number, length: number | null): Slice {
  const end = length === null ? data.length : Math.min(data.length, at + length);
  return { data: data.subarray(Math.min(at, data.length), end), size: data.length };
}

export function readSlice(file: string, offset: number, partLength: number | null, at: number, length: number | null): Slice {
  const fd = openSync(file, 'r');
  try {
    const size = partLength ?? fstatSync(fd).size - offset;
    const n = Math.max(0, Math.min(length ?? size, size - at));
    const data = Buffer.alloc(n);
    readSync(fd, data, 0, n, offset + at);
    return { data, size };
  } finally {
    closeSync(fd);
  }
}

/** Every name `list` visits, as one set (for the checks that need it whole). */
export async function collectNames(list: (visit: (name: string) => void) => Promise<void>): Promise<Set<string>> {
  const names = new Set<string>();
  await list((n) => names.add(n));
  return names;
}
