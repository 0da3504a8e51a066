/**
 * An S3 prefix as a store: objects put whole (a PUT, or a multipart upload noted in a journal so that a
 * killed run's are aborted by the next), the one listing a resume reads, verify's reads by byte range,
 * and the records uploaded at the end. Its run state (log, lock, temporary files) stays in a local folder.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  abortOpenUploads,
  abortUpload,
  checkBucket,
  checkWritable,
  createS3Client,
  deleteObject,
  getObject,
  getObjectRange,
  isNotFound,
  listObjects,
  moveObject,
  putObject,
  s3ErrorText,
  takeRetries,
  uploadFile,
} from './s3.js';
import type { OutputStore, Slice, StoreSpec } from './store.js';
import { collectNames } from './store.js';
import type { UploadJournal } from './s3.js';
import { s3Url } from './s3-url.js';
import type { S3Target } from './s3-url.js';
import { STATE_DIR, readJson, removeStaleTemps, writeJsonAtomic } from './folder.js';
import { shardTag, tagInShard } from '../shard.js';
import type { Shard } from '../shard.js';
import { TAR_EXT, isShardName, isTarIndexName, tarShardTag } from './tars.js';

/**
 * The multipart uploads this process has open, in the state folder (`.pcb/uploads.<shard>.json`): some
 * S3-compatible stores cannot list them, so a killed run's are found here and aborted by the next.
 */
class FileJournal implements UploadJournal {
  private readonly open: Record<string, string>;

  constructor(private readonly file: string) {
    this.open = readJson<Record<string, string>>(file) ?? {};
  }

  opened(key: string, uploadId: string): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    this.open[uploadId] = key;
    writeJsonAtomic(this.file, this.open);
  }

  closed(uploadId: string): void {
    delete this.open[uploadId];
    writeJsonAtomic(this.file, this.open);
  }

  entries(): [string, string][] {
    return Object.entries(this.open);
  }
}

/** A tar or parquet shard of `shard` (or a tar's index) at the top of the prefix. */
function isShardTarOrIndex(name: string, shard: Shard | null): boolean {
  return (isShardName(name) || isTarIndexName(name)) && !name.includes('/') && tagInShard(tarShardTag(name), shard);
}

export class BucketStore implements OutputStore {
  readonly holdsBytes = true;
  readonly client: S3Client;
  readonly label: string;
  readonly summaryPlace: { out: string; stateDir: string | null };
  /** The local state folder (the output's stand-in: `.pcb/` lives there). */
  private readonly stateOut: string;
  private readonly tmpDir: string;
  /** The journal of the multipart uploads this store opens. */
  private readonly shard: Shard | null;

  constructor(
    readonly target: S3Target,
    spec: Pick<StoreSpec, 'out' | 'tmpDir' | 'retries' | 'timeoutMs' | 'shard'>,
  ) {
    this.client = createS3Client(spec.retries, spec.timeoutMs);
    this.stateOut = spec.out;
    this.tmpDir = spec.tmpDir;
    this.shard = spec.shard;
    this.label = s3Url(target);
    this.summaryPlace = { out: this.label, stateDir: spec.out };
  }

  /** One journal per file, shared by the uploads that run at once (each keeps the others' entries). */
  private readonly journals = new Map<string, FileJournal>();

  private journalFor(shard: Shard | null): FileJournal {
    return this.journalAt(`uploads${shard ? `.${shardTag(shard)}` : ''}.json`);
  }

  private journalAt(name: string): FileJournal {
    const file = path.join(this.stateOut, STATE_DIR, name);
    let j = this.journals.get(file);
    if (!j) this.journals.set(file, (j = new FileJournal(file)));
    return j;
  }

  takeRetries(): number {
    return takeRetries(this.client);
  }

  recordUrl(file: string): string {
    return `${this.label}/${path.basename(file)}`;
  }

  check(write = true): Promise<void> {
    return write ? checkWritable(this.client, this.target) : checkBucket(this.client, this.target);
  }

  list(visit: (name: string) => void): Promise<void> {
    return listObjects(this.client, this.target, visit);
  }

  names(): Promise<Set<string>> {
    return collectNames((visit) => this.list(visit));
  }

  bytes(name: string, at: number, length: number | null): Promise<Slice | null> {
    return getObjectRange(this.client, this.target, name, at, length);
  }

  async text(name: string): Promise<string | null> {
    return (await getObject(this.client, this.target, name))?.toString('utf8') ?? null;
  }

  /** An object fetched once into the temporary folder. */
  async tarFile(name: string): Promise<string | null> {
    const data = await getObject(this.client, this.target, name);
    if (!data) return null;
    mkdirSync(this.tmpDir, { recursive: true });
    const file = path.join(this.tmpDir, name.replace(/\//g, '_'));
    writeFileSync(file, data);
    return file;
  }

  /** All at once (a row waits one round trip to the store, not two); if any fails, the others are deleted again. */
  async putAll(items: { name: string; data: Buffer | string }[]): Promise<void> {
    const puts = await Promise.allSettled(items.map(({ name, data }) => putObject(this.client, this.target, name, data)));
    const failed = puts.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (!failed) return;
    // Half a sample is no sample: what was stored goes again, and a rerun redoes the row.
    await Promise.all(
      items.map(({ name }, i) => (puts[i].status === 'fulfilled' ? deleteObject(this.client, this.target, name).catch(() => undefined) : null)),
    );
    throw new Error(`upload to ${this.label} failed: ${s3ErrorText(failed.reason)}`);
  }

  async putFile(name: string, file: string): Promise<void> {
    try {
      await uploadFile(this.client, this.target, name, file, this.journalFor(this.shard));
    } catch (err) {
      throw new Error(s3ErrorText(err));
    }
  }

  async remove(name: string): Promise<void> {
    try {
      await deleteObject(this.client, this.target, name);
    } catch (err) {
      throw new Error(`delete from ${this.label} failed: ${s3ErrorText(err)}`);
    }
  }

  /** An object already gone is nothing to move (the copy finds no source). */
  moveAside(name: string, dir: string, as: string): Promise<void> {
    return moveObject(this.client, this.target, name, `${STATE_DIR}/${dir}/${as}`).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
  }

  /**
   * The prefix's names, listed once, for the done set; meanwhile the indexes of this shard whose tar is
   * missing (a kill between the two uploads) are found, and deleted after the listing.
   */
  async shardNames(shard: Shard | null, visit: (name: string) => void): Promise<void> {
    const tars = new Set<string>();
    const indexes: string[] = [];
    await listObjects(this.client, this.target, (name) => {
      visit(name);
      if (name.endsWith(TAR_EXT)) tars.add(name);
      else if (isTarIndexName(name) && tagInShard(tarShardTag(name), shard)) indexes.push(name);
    });
    for (const index of indexes) if (!tars.has(index.slice(0, -'.json'.length) + TAR_EXT)) await deleteObject(this.client, this.target, index);
  }

  /** Before a run: the multipart uploads this shard's killed runs left open, aborted; with --overwrite, its tars deleted. */
  async prepare(shard: Shard | null, removeTars: boolean): Promise<void> {
    // The state folder's own leftovers: records a killed run was writing.
    removeStaleTemps(this.stateOut);
    await this.abortOpen(shard);
    if (!removeTars) return;
    const doomed: string[] = [];
    await listObjects(this.client, this.target, (name) => {
      if (isShardTarOrIndex(name, shard)) doomed.push(name);
    });
    for (const name of doomed) await deleteObject(this.client, this.target, name);
  }

  /**
   * The multipart uploads of this shard's tars left open (its processes' included), aborted: those in
   * this machine's journals, all at once, then those the store lists. The listing finds an upload the
   * store created but whose id never reached pcb (a process killed while the answer was on its way), so it
   * was never journaled. Before a run, and when a second Ctrl-C ends one (once nothing can start another).
   */
  async abortOpen(shard: Shard | null): Promise<void> {
    const dir = path.join(this.stateOut, STATE_DIR);
    const journals = existsSync(dir)
      ? readdirSync(dir).filter((f) => {
          const m = /^uploads(?:\.(.+))?\.json$/.exec(f);
          return m !== null && tagInShard(m[1] ?? '', shard);
        })
      : [];
    await Promise.all(
      journals.flatMap((f) => {
        const journal = this.journalAt(f);
        return journal.entries().map(([uploadId, key]) => abortUpload(this.client, this.target.bucket, key, uploadId, journal));
      }),
    );
    await abortOpenUploads(this.client, this.target, (name) => isShardName(name) && isShardTarOrIndex(name, shard));
  }

  /** Local files as objects (the records, run.json), each whole or not at all, all at once: one round trip to a distant store. */
  async publishRecords(files: { name: string; file: string }[]): Promise<void> {
    const journal = this.journalFor(this.shard);
    await Promise.all(files.map((f) => uploadFile(this.client, this.target, f.name, f.file, journal)));
  }
}
