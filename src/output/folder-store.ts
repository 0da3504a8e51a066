/** A local folder as a store: files written under a temporary name in the run's temporary folder, then renamed into place. */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Shard } from '../shard.js';
import { writeAtomic } from './atomic.js';
import { STATE_DIR, eachName, removeStaleTemps } from './folder.js';
import type { OutputStore, Slice } from './store.js';
import { collectNames, readSlice } from './store.js';
import { orphanIndexSweep, removeShardTars } from './tars.js';

export class FolderStore implements OutputStore {
  readonly holdsBytes = false;
  readonly label: string;
  readonly summaryPlace: { out: string; stateDir: string | null };

  constructor(
    private readonly out: string,
    /** Where writes are staged: on the folder's filesystem. */
    private readonly tmpDir: string,
  ) {
    this.label = out;
    this.summaryPlace = { out, stateDir: null };
  }

  private at(name: string): string {
    return path.join(this.out, name);
  }

  async list(visit: (name: string) => void): Promise<void> {
    eachName(this.out, visit);
  }

  names(): Promise<Set<string>> {
    return collectNames((visit) => this.list(visit));
  }

  async bytes(name: string, at: number, length: number | null): Promise<Slice | null> {
    return existsSync(this.at(name)) ? readSlice(this.at(name), 0, null, at, length) : null;
  }

  async text(name: string): Promise<string | null> {
    return existsSync(this.at(name)) ? readFileSync(this.at(name), 'utf8') : null;
  }

  async tarFile(name: string): Promise<string | null> {
    return existsSync(this.at(name)) ? this.at(name) : null;
  }

  /** In order, each renamed into place whole; a failure removes what this call wrote before it. */
  async putAll(items: { name: string; data: Buffer | string }[]): Promise<void> {
    let written = 0;
    try {
      for (const { name, data } of items) {
        writeAtomic(this.out, this.tmpDir, name, data);
        written++;
      }
    } catch (err) {
      for (const { name } of items.slice(0, written)) rmSync(this.at(name), { force: true });
      throw err;
    }
  }

  async putFile(name: string, file: string): Promise<void> {
    renameSync(file, this.at(name));
  }

  async remove(name: string): Promise<void> {
    rmSync(this.at(name), { force: true });
  }

  async moveAside(name: string, dir: string, as: string): Promise<void> {
    mkdirSync(path.join(this.out, STATE_DIR, dir), { recursive: true });
    if (existsSync(this.at(name))) renameSync(this.at(name), path.join(this.out, STATE_DIR, dir, as));
  }

  /** The state folder is the folder: checked writable with it before any store is opened. */
  async check(): Promise<void> {}

  async prepare(shard: Shard | null, removeTars: boolean): Promise<void> {
    // One listing of the folder serves both sweeps: dead runs' temporary files and indexes left without their tar.
    const orphans = orphanIndexSweep(this.out, shard);
    removeStaleTemps(this.out, orphans.see);
    orphans.sweep();
    // Every row is redone: the tars of this shard (all of them without --shard) would hold their old samples.
    if (removeTars) removeShardTars(this.out, shard);
  }

  async shardNames(_shard: Shard | null, visit: (name: string) => void): Promise<void> {
    eachName(this.out, visit);
  }

  async abortOpen(): Promise<void> {}

  /** Records are written in the folder itself. */
  async publishRecords(): Promise<void> {}

  recordUrl(file: string): string {
    return file;
  }

  takeRetries(): number | null {
    return null;
  }
}
