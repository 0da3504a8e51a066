/**
 * WebDataset output: tar shards of samples (`<key>.<ext>`, `<key>.txt`, `<key>.json`, consecutive),
 * each with a webshart index beside it (`<name>.json`: every member's offset and length, the image's
 * width, height, aspect and caption). A worker owns its open tar, written under the run's temporary
 * folder and renamed into place when it closes (full, or at the end of the run), index first: a torn tar
 * is never in the folder, and after kill -9 only the open tars' rows are redone.
 */
import { closeSync, existsSync, ftruncateSync, openSync, readSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { archiveEnd, packMembers, scanTar } from './tar.js';
import type { MemberInput, ScannedMember } from './tar.js';
import { eachName, tempName } from './folder.js';
import { tagInShard } from '../shard.js';
import type { Shard } from '../shard.js';
import { isSpoolName, shardOfSpool } from './parquet-shards.js';

export const TAR_EXT = '.tar';

/** The index of a tar: webshart's `<name>.json` beside `<name>.tar`. */
export function tarIndexPath(tar: string): string {
  return tar.slice(0, -TAR_EXT.length) + '.json';
}

/**
 * A WebDataset key for an id: WebDataset splits a member's name at its first dot, so `.` is written
 * `%2E` (and `%` itself `%25`, so that two ids never share a key).
 */
export function sampleKey(id: string): string {
  return id.replace(/%/g, '%25').replace(/\./g, '%2E');
}

/** The manifest's path of a member: `<tar>/<member>`. */
export function memberPath(tar: string, member: string): string {
  return `${tar}/${member}`;
}

/** Splits a manifest path into shard (a tar or a parquet file) and member; null for a flat file's path. */
export function splitMemberPath(p: string): { tar: string; member: string } | null {
  const m = /^([^/]+\.(?:tar|parquet))\/(.+)$/.exec(p);
  return m ? { tar: m[1], member: m[2] } : null;
}

const SIDECARS = /\.(txt|json)$/;

/**
 * Writes the index of a closed tar, streamed member by member (memory does not grow with the tar):
 * each image's offset and length, its geometry and caption from its sample's .json.
 */
export function writeTarIndex(tar: string, index: string, members: ScannedMember[] = scanTar(tar).members): { samples: number } {
  const fd = openSync(tar, 'r');
  const tmp = tempName(index);
  const out = openSync(tmp, 'w');
  let samples = 0;
  try {
    writeSync(out, `{"path":${JSON.stringify(path.basename(tar))},"filesize":${statSync(tar).size},"includes_image_geometry":true,"files":{`);
    let first = true;
    const entry = (name: string, v: Record<string, unknown>) => {
      writeSync(out, `${first ? '' : ','}${JSON.stringify(name)}:${JSON.stringify(v)}`);
      first = false;
    };
    // Members come as image, .txt, .json per sample: the image's entry waits for its .json.
    let image: { name: string; offset: number; length: number } | null = null;
    let caption: string | null = null;
    for (const m of members) {
      if (!SIDECARS.test(m.name)) {
        if (image) entry(image.name, { offset: image.offset, length: image.length });
        image = m;
        caption = null;
        continue;
      }
      const body = Buffer.alloc(m.length);
      readSync(fd, body, 0, m.length, m.offset);
      if (m.name.endsWith('.txt')) caption = body.toString('utf8');
      else if (image) {
        const meta = JSON.parse(body.toString('utf8')) as { width?: number; height?: number };
        const geometry = meta.width && meta.height ? { width: meta.width, height: meta.height, aspect: meta.width / meta.height } : {};
        entry(image.name, { offset: image.offset, length: image.length, ...geometry, ...(caption !== null ? { caption } : {}) });
        image = null;
        samples++;
      }
      entry(m.name, { offset: m.offset, length: m.length });
    }
    if (image) entry(image.name, { offset: image.offset, length: image.length });
    writeSync(out, '}}\n');
  } finally {
    closeSync(out);
    closeSync(fd);
  }
  renameSync(tmp, index);
  return { samples };
}

/**
 * Closes a temporary tar where it is: cut after its last whole sample (a member cut off by a kill is
 * dropped), the archive's end written, its index written beside it. False (and the file gone) when it
 * holds no whole sample.
 */
export function closeTar(tmpTar: string): boolean {
  const scan = scanTar(tmpTar);
  // The last whole sample ends after its .json member.
  let end = 0;
  for (const m of scan.members) if (m.name.endsWith('.json')) end = m.offset + m.length + ((512 - (m.length % 512)) % 512);
  if (end === 0) {
    rmSync(tmpTar, { force: true });
    return false;
  }
  const fd = openSync(tmpTar, 'r+');
  try {
    ftruncateSync(fd, end);
    writeSync(fd, archiveEnd(end), 0, undefined, end);
  } finally {
    closeSync(fd);
  }
  // The scan above already has the members: the index is written from it, without reading the headers again.
  writeTarIndex(
    tmpTar,
    tarIndexPath(tmpTar),
    scan.members.filter((m) => m.offset < end),
  );
  return true;
}

/**
 * Every shard a run left open in its temporary folder, published (the end of a run that logged every row):
 * a tar closed first, a parquet shard's spool handed over as it is (the publisher turns it into the shard).
 */
export function finalizeLeftovers(tmpDir: string, publish: (name: string) => void): string[] {
  if (!existsSync(tmpDir)) return [];
  const done: string[] = [];
  for (const f of readdirSync(tmpDir).sort()) {
    const name = isSpoolName(f) ? shardOfSpool(f) : f.endsWith(TAR_EXT) && closeTar(path.join(tmpDir, f)) ? f : null;
    if (!name) continue;
    publish(name);
    done.push(name);
  }
  return done;
}

/** The temporary tars and parquet spools of a worker that died: named `…-w<threadId>-…`. */
export function discardWorkerTars(tmpDir: string, threadId: number): void {
  if (!existsSync(tmpDir)) return;
  for (const n of readdirSync(tmpDir)) if (n.includes(`-w${threadId}-`)) rmSync(path.join(tmpDir, n), { recursive: true, force: true });
}

/**
 * Indexes of this shard whose tar is not there (a kill between the two renames) name nothing, so they go.
 * Only this shard's: another shard running beside it publishes its index a moment before its tar, and
 * that index is not an orphan. `see` takes the folder's names as another listing passes them (the
 * stale-temporary sweep's), so the folder of a million images is listed once for both; `sweep` then
 * removes the orphans.
 */
export function orphanIndexSweep(out: string, shard: Shard | null): { see: (name: string) => void; sweep: () => void } {
  const names = new Set<string>();
  return {
    see: (n) => {
      const m = TAR_NAME.exec(n);
      if (m && tagInShard(m[1], shard)) names.add(n);
    },
    sweep: () => {
      for (const n of names) if (isTarIndexName(n) && !names.has(n.slice(0, -'.json'.length) + TAR_EXT)) rmSync(path.join(out, n), { force: true });
    },
  };
}

/** Names pcb gives its shards: `<prefix>-<run>-w<worker>-<seq>.tar` (or `.parquet`), the prefix naming the --shard. */
export function shardName(prefix: string, run: string, worker: number, seq: number, ext = TAR_EXT): string {
  return `${prefix}-${run}-w${worker}-${String(seq).padStart(5, '0')}${ext}`;
}

const TAR_NAME = /^(shard-\d+-of-\d+|pcb)-[a-z0-9]+-w\d+-\d{5}\.(tar|json|parquet)$/;
/** The shard tag a tar's (or index's) name starts with: `pcb` or `shard-<i>-of-<n>`; '' for another name. */
export function tarShardTag(n: string): string {
  return TAR_NAME.exec(n)?.[1] ?? '';
}

export function isTarIndexName(n: string): boolean {
  return TAR_NAME.test(n) && n.endsWith('.json');
}
export function isTarName(n: string): boolean {
  return TAR_NAME.test(n) && n.endsWith(TAR_EXT);
}
/** A shard pcb wrote: a tar or a parquet file (not an index). */
export function isShardName(n: string): boolean {
  return TAR_NAME.test(n) && !n.endsWith('.json');
}

/** The tars (and their indexes) and parquet shards of one --shard's name prefix (null: every one), gone: --overwrite of a folder. */
export function removeShardTars(out: string, shard: Shard | null): void {
  const doomed: string[] = [];
  eachName(out, (n) => {
    const m = TAR_NAME.exec(n);
    if (m && tagInShard(m[1], shard)) doomed.push(n);
  });
  for (const n of doomed) rmSync(path.join(out, n), { force: true });
}

export interface TarShardOptions {
  tmpDir: string;
  /** `pcb`, or the shard's tag: keeps shards' tars apart in one folder. */
  prefix: string;
  /** This run's id: keeps reruns' tars apart. */
  run: string;
  worker: number;
  samplesPerTar: number;
}

/**
 * One worker's open tar: samples appended in order, the tar closed and a new one opened every n samples.
 * Synchronous on the worker thread, as the flat layout writes its files: one write per sample, no
 * threadpool round trip, and no two appends can interleave.
 */
export class TarShardWriter {
  private fd: number | null = null;
  private tmp = '';
  private name = '';
  private size = 0;
  private samples = 0;
  private seq = 0;

  constructor(private readonly o: TarShardOptions) {}

  /** Appends one sample's members: the tar's name, and whether this sample filled and closed it. */
  add(members: MemberInput[]): { tar: string; closed: boolean } {
    if (this.fd === null) {
      this.name = shardName(this.o.prefix, this.o.run, this.o.worker, this.seq++);
      this.tmp = path.join(this.o.tmpDir, this.name);
      this.fd = openSync(this.tmp, 'w');
      this.size = 0;
      this.samples = 0;
    }
    const fd = this.fd;
    const { bytes } = packMembers(members, this.size);
    try {
      for (let done = 0; done < bytes.length; ) {
        const n = writeSync(fd, bytes, done, bytes.length - done, this.size + done);
        if (n === 0) throw new Error(`no byte written to ${this.tmp}`);
        done += n;
      }
    } catch (err) {
      // A failed write leaves no part of the sample behind: the tar stays whole up to the last sample.
      try {
        ftruncateSync(fd, this.size);
      } catch {
        /* the write's own error is the one to report */
      }
      throw err;
    }
    this.size += bytes.length;
    this.samples++;
    const tar = this.name;
    if (this.samples < this.o.samplesPerTar) return { tar, closed: false };
    // Full: closed where it is; the main thread moves it into the folder once this row is logged.
    closeSync(fd);
    this.fd = null;
    closeTar(this.tmp);
    return { tar, closed: true };
  }
}
