/**
 * Closed tars leave the run's temporary folder for the store once their rows are logged: renamed into a
 * folder, uploaded to a bucket. Whatever the store, a tar in it never holds a sample the log does not know.
 */
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { RowResult } from '../result.js';
import type { Store } from './store.js';
import { splitMemberPath, tarIndexPath } from './tars.js';

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

  constructor(
    private readonly store: Store,
    private readonly tmpDir: string,
  ) {
    this.dir = path.join(tmpDir, 'uploading');
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
    for (const f of [tarIndexPath(name), name]) renameSync(path.join(this.tmpDir, f), path.join(this.dir, f));
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
    const index = tarIndexPath(name);
    try {
      await this.store.putFile(index, path.join(this.dir, index));
      await this.store.putFile(name, path.join(this.dir, name));
      this.uploaded++;
    } catch (err) {
      this.failed.push({
        rows: this.rows.get(name) ?? [],
        message: `tar ${name} could not be stored in ${this.store.label}: ${(err as Error)?.message ?? err}`,
      });
      await this.store.remove(index).catch(() => undefined);
    } finally {
      this.rows.delete(name);
      rmSync(path.join(this.dir, index), { force: true });
      rmSync(path.join(this.dir, name), { force: true });
    }
  }

  /** Waits for every upload; the rows of the tars the store refused, to log again as failed. */
  async drain(): Promise<{ rows: Pick<RowResult, 'row' | 'id' | 'url'>[]; message: string }[]> {
    if (this.active > 0 || (this.waiting.length > 0 && !this.stopped))
      await new Promise<void>((r) => {
        this.idle.push(r);
      });
    return this.failed.splice(0);
  }
}
