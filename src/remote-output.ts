/**
 * The main thread's side of an S3 output: the check before any download, the one listing a resume reads,
 * closed tars uploaded once their rows are logged (and their rows marked failed if the store refuses
 * them), multipart uploads a killed run left open aborted, and the records uploaded at the end. Workers
 * upload flat files themselves (writer.ts).
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
  s3ErrorText,
  takeRetries,
  uploadFile,
} from './s3.js';
import type { SamplePlace } from './commands/verify.js';
import type { UploadJournal } from './s3.js';
import { s3Url } from './s3-url.js';
import type { S3Target } from './s3-url.js';
import { STATE_DIR, readJson, shardTag, tagInShard, writeJsonAtomic } from './folder.js';
import type { Shard } from './options.js';
import { TAR_EXT, isTarIndexName, tarIndexPath, tarShardTag } from './tars.js';
import type { RowResult } from './result.js';

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

export class RemoteOutput {
  readonly client: S3Client;

  constructor(
    readonly target: S3Target,
    retries: number,
    /** The local state folder (the output's stand-in: `.pcb/` lives there). */
    private readonly stateOut: string,
    timeoutMs = 30_000,
  ) {
    this.client = createS3Client(retries, timeoutMs);
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

  get url(): string {
    return s3Url(this.target);
  }

  /** Requests of this process's main thread sent again (the check, tars, records), since the last call. */
  takeRetries(): number {
    return takeRetries(this.client);
  }

  urlOf(name: string): string {
    return `${this.url}/${name}`;
  }

  check(write = true): Promise<void> {
    return write ? checkWritable(this.client, this.target) : checkBucket(this.client, this.target);
  }

  /**
   * The prefix's names, listed once, for the done set; meanwhile the indexes of this shard whose tar is
   * missing (a kill between the two uploads) are found, and deleted after the listing.
   */
  async names(shard: Shard | null, visit: (name: string) => void): Promise<void> {
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
    const mine = (name: string) => name.endsWith(TAR_EXT) && tagInShard(tarShardTag(name), shard);
    // This machine's journals of the shard (its processes' included), then the store's own list where it has one.
    await this.abortJournaled(shard);
    await abortOpenUploads(this.client, this.target, mine);
    if (!removeTars) return;
    const doomed: string[] = [];
    await listObjects(this.client, this.target, (name) => {
      if ((mine(name) || (isTarIndexName(name) && tagInShard(tarShardTag(name), shard))) && !name.includes('/')) doomed.push(name);
    });
    for (const name of doomed) await deleteObject(this.client, this.target, name);
  }

  /**
   * The multipart uploads open in this machine's journals of the shard (its processes' included),
   * aborted, all at once: before a run, and when a second Ctrl-C ends one at once.
   */
  async abortJournaled(shard: Shard | null): Promise<void> {
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
  }

  /**
   * Local files as objects (tars, the records, run.json): each whole or not at all. In order when
   * `ordered` (a tar's index before the tar), else all at once: one round trip to a distant store, not one a file.
   */
  async upload(files: { name: string; file: string }[], shard: Shard | null = null, ordered = false): Promise<void> {
    const journal = this.journalFor(shard);
    if (ordered) for (const f of files) await uploadFile(this.client, this.target, f.name, f.file, journal);
    else await Promise.all(files.map((f) => uploadFile(this.client, this.target, f.name, f.file, journal)));
  }
}

/** An S3 output as verify reads and repairs it: one listing, objects fetched as needed, tars into a temporary folder. */
export function s3Place(remote: RemoteOutput, tmpDir: string): SamplePlace {
  const { client, target } = remote;
  const fetchTo = async (name: string): Promise<string | null> => {
    const data = await getObject(client, target, name);
    if (!data) return null;
    mkdirSync(tmpDir, { recursive: true });
    const file = path.join(tmpDir, name.replace(/\//g, '_'));
    writeFileSync(file, data);
    return file;
  };
  return {
    label: remote.url,
    names: async () => {
      const names = new Set<string>();
      await listObjects(client, target, (n) => names.add(n));
      return names;
    },
    bytes: (name, at, length) => getObjectRange(client, target, name, at, length),
    tarFile: fetchTo,
    text: async (name) => (await getObject(client, target, name))?.toString('utf8') ?? null,
    remove: (name) => deleteObject(client, target, name),
    // An object already gone is nothing to move (the copy finds no source).
    moveAside: (name, dir, as) =>
      moveObject(client, target, name, `${STATE_DIR}/${dir}/${as}`).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err))),
  };
}

/** Tars uploading at once; more closed tars than this wait on local disk. */
const TARS_AT_ONCE = 2;
/** Closed tars waiting for an upload before the run stops sending rows: the local disk is not the buffer of a slow store. */
const TARS_WAITING = 4;

/**
 * Closed tars leave the temporary folder for the bucket as their rows are logged, two at a time, each
 * index first. When the store takes them slower than the workers fill them, room() holds the run back
 * rather than let tars pile up on local disk. A tar the store refuses (after the SDK's retries) has its
 * rows logged again as `write_error`, so that the records say what the bucket holds and the next run
 * redoes them.
 */
export class TarUploads {
  private readonly waiting: string[] = [];
  private active = 0;
  private readonly idle: (() => void)[] = [];
  private roomWaiter: (() => void) | null = null;
  private readonly rows = new Map<string, Pick<RowResult, 'row' | 'id' | 'url'>[]>();
  private readonly failed: { rows: Pick<RowResult, 'row' | 'id' | 'url'>[]; message: string }[] = [];
  private readonly dir: string;
  uploaded = 0;

  constructor(
    private readonly remote: RemoteOutput,
    private readonly tmpDir: string,
    /** The shard whose files this process writes: names its journal of open uploads. */
    private readonly shard: Shard | null,
  ) {
    this.dir = path.join(tmpDir, 'uploading');
  }

  /** An ok row's sample is in a tar still open or uploading. */
  track(r: RowResult): void {
    if (r.status !== 'ok' || !r.path) return;
    const tar = r.path.slice(0, r.path.indexOf('/'));
    let list = this.rows.get(tar);
    if (!list) this.rows.set(tar, (list = []));
    list.push({ row: r.row, id: r.id, url: r.url });
  }

  publish(name: string): void {
    // Out of the temporary folder at once: the end of the run closes what is left there, and must not see it.
    mkdirSync(this.dir, { recursive: true });
    for (const f of [tarIndexPath(name), name]) renameSync(path.join(this.tmpDir, f), path.join(this.dir, f));
    this.waiting.push(name);
    this.pump();
  }

  /** The run is waiting for room (see room()). */
  get holding(): boolean {
    return this.roomWaiter !== null;
  }

  /** Resolves once fewer than TARS_WAITING closed tars wait for an upload. */
  room(): Promise<void> {
    if (this.waiting.length < TARS_WAITING) return Promise.resolve();
    return new Promise((r) => {
      this.roomWaiter = r;
    });
  }

  private pump(): void {
    while (this.active < TARS_AT_ONCE && this.waiting.length > 0) {
      const name = this.waiting.shift()!;
      this.active++;
      void this.send(name).finally(() => {
        this.active--;
        this.pump();
        if (this.waiting.length < TARS_WAITING) {
          const r = this.roomWaiter;
          this.roomWaiter = null;
          r?.();
        }
        if (this.active === 0 && this.waiting.length === 0) for (const w of this.idle.splice(0)) w();
      });
    }
  }

  private async send(name: string): Promise<void> {
    const index = tarIndexPath(name);
    try {
      await this.remote.upload(
        [
          { name: index, file: path.join(this.dir, index) },
          { name, file: path.join(this.dir, name) },
        ],
        this.shard,
        true,
      );
      this.uploaded++;
    } catch (err) {
      this.failed.push({ rows: this.rows.get(name) ?? [], message: `tar ${name} could not be uploaded to ${this.remote.url}: ${s3ErrorText(err)}` });
      await deleteObject(this.remote.client, this.remote.target, index).catch(() => undefined);
    } finally {
      this.rows.delete(name);
      rmSync(path.join(this.dir, index), { force: true });
      rmSync(path.join(this.dir, name), { force: true });
    }
  }

  /** Waits for every upload; the rows of the tars the store refused, to log again as failed. */
  async drain(): Promise<{ rows: Pick<RowResult, 'row' | 'id' | 'url'>[]; message: string }[]> {
    if (this.active > 0 || this.waiting.length > 0)
      await new Promise<void>((r) => {
        this.idle.push(r);
      });
    return this.failed.splice(0);
  }
}
