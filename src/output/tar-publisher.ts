/**
 * Closed shards leave the run's temporary folder for the store once their rows are logged: renamed into a
 * folder, uploaded to a bucket. Whatever the store, a shard in it never holds a sample the log does not know.
 * A tar goes with its index; a parquet shard is made from its spool here, on the way (parquet-shards.ts).
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { RowResult } from '../result.js';
import type { Column } from '../input/source.js';
import { closeDuckDB, openDuckDB } from '../input/source.js';
import type { Store } from './store.js';
import { splitMemberPath, tarIndexPath } from './tars.js';
import { DATASET_CARD, PARQUET_EXT, spoolDir, spoolToParquet } from './parquet-shards.js';

/** Tars uploading at once; more closed tars than this wait on local disk. */
const TARS_AT_ONCE = 2;
/** Closed tars waiting for an upload before the run stops sending rows: the local disk is not the buffer of a slow store. */
const TARS_WAITING = 4;

/**
 * Closed tars go into the store as their rows are logged, two at a time, each index first. When the store
 * takes them slower than the workers fill them (a bucket), room() holds the run back rather than let tars
 * pile up on local disk. A tar the store refuses (after the SDK's retries) has its rows logged again as
 * `write_error`, so that the records say what the store holds and the next run redoes them.
 */
export class TarPublisher {
  private readonly waiting: string[] = [];
  private active = 0;
  private readonly idle: (() => void)[] = [];
  private roomWaiter: (() => void) | null = null;
  private readonly rows = new Map<string, Pick<RowResult, 'row' | 'id' | 'url'>[]>();
  private readonly failed: { rows: Pick<RowResult, 'row' | 'id' | 'url'>[]; message: string }[] = [];
  private readonly dir: string;
  uploaded = 0;
  /** DuckDB, opened for the first parquet shard: it turns spools into shards. */
  private duck: Promise<DuckDBConnection> | null = null;
  private carded = false;
  /** The conversion under way: the next waits for it. */
  private converting: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly tmpDir: string,
    /** The input's columns with their types: a parquet shard keeps them. */
    private readonly columns: Column[] = [],
  ) {
    this.dir = path.join(tmpDir, 'uploading');
  }

  /** The files a closed shard is made of in the temporary folder: a tar and its index, or a parquet shard's spool. */
  private parts(name: string): string[] {
    return name.endsWith(PARQUET_EXT) ? [path.basename(spoolDir(this.tmpDir, name))] : [tarIndexPath(name), name];
  }

  /** What goes into the store, in order, made from the parts in the upload folder: the index before its tar, or the parquet shard. */
  private async made(name: string): Promise<string[]> {
    if (!name.endsWith(PARQUET_EXT)) return [tarIndexPath(name), name];
    // One thread, one shard at a time: DuckDB then holds one row group, whatever the shard's size (with two
    // threads, a shard of 1,000 photographs at 1024 px peaked at 900 MB; with one, 340 MB, as did one of 100).
    this.duck ??= openDuckDB(1);
    const duck = await this.duck;
    const made = this.converting.then(() => spoolToParquet(duck, spoolDir(this.dir, name), path.join(this.dir, name), this.columns));
    this.converting = made.catch(() => false);
    if (!(await made)) return [];
    if (!this.carded) {
      // The dataset card: load_dataset("<out>") reads the shards, not pcb's records beside them.
      await this.store.putAll([{ name: 'README.md', data: DATASET_CARD }]);
      this.carded = true;
    }
    return [name];
  }

  /** An ok row's sample is in a tar still open or uploading. */
  track(r: RowResult): void {
    const member = r.status === 'ok' && r.path ? splitMemberPath(r.path) : null;
    if (!member) return;
    const { tar } = member;
    let list = this.rows.get(tar);
    if (!list) this.rows.set(tar, (list = []));
    list.push({ row: r.row, id: r.id, url: r.url });
  }

  publish(name: string): void {
    // Out of the temporary folder at once: the end of the run closes what is left there, and must not see it.
    mkdirSync(this.dir, { recursive: true });
    for (const f of this.parts(name)) if (existsSync(path.join(this.tmpDir, f))) renameSync(path.join(this.tmpDir, f), path.join(this.dir, f));
    this.waiting.push(name);
    this.pump();
  }

  /** The run is waiting for room (see room()). */
  get holding(): boolean {
    return this.roomWaiter !== null;
  }

  /** Null while fewer than TARS_WAITING closed tars wait for the store, else a promise of room (a row costs no await meanwhile). */
  room(): Promise<void> | null {
    if (this.waiting.length < TARS_WAITING) return null;
    return new Promise((r) => {
      this.roomWaiter = r;
    });
  }

  private stopped = false;

  /** No new upload begins (a second Ctrl-C): what is left is aborted, and the next run redoes its rows. */
  stop(): void {
    this.stopped = true;
  }

  private pump(): void {
    while (!this.stopped && this.active < TARS_AT_ONCE && this.waiting.length > 0) {
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
        if (this.active === 0 && (this.waiting.length === 0 || this.stopped)) for (const w of this.idle.splice(0)) w();
      });
    }
  }

  private async send(name: string): Promise<void> {
    let files: string[] = [];
    try {
      files = await this.made(name);
      for (const f of files) await this.store.putFile(f, path.join(this.dir, f));
      if (files.length) this.uploaded++;
    } catch (err) {
      this.failed.push({
        rows: this.rows.get(name) ?? [],
        message: `shard ${name} could not be stored in ${this.store.label}: ${(err as Error)?.message ?? err}`,
      });
      // A tar's index without its tar names nothing: it goes (the shard itself was the last to go in).
      for (const f of files.slice(0, -1)) await this.store.remove(f).catch(() => undefined);
    } finally {
      this.rows.delete(name);
      for (const f of new Set([...this.parts(name), ...files])) rmSync(path.join(this.dir, f), { recursive: true, force: true });
    }
  }

  /** Waits for every upload; the rows of the tars the store refused, to log again as failed. */
  async drain(): Promise<{ rows: Pick<RowResult, 'row' | 'id' | 'url'>[]; message: string }[]> {
    if (this.active > 0 || (this.waiting.length > 0 && !this.stopped))
      await new Promise<void>((r) => {
        this.idle.push(r);
      });
    if (this.duck) closeDuckDB(await this.duck);
    this.duck = null;
    return this.failed.splice(0);
  }
}
