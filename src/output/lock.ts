/**
 * One writer per folder (per shard): a lock file in `.pcb/` naming host, pid and start time, refreshed
 * while the run lives. A lock whose holder is gone (a dead pid on this host) or silent (no refresh for
 * minutes, from another host) is taken over with a warning.
 */
import { rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { FatalError } from '../errors.js';
import { isAlive, readJson, writeJsonAtomic } from './folder.js';

export interface LockHolder {
  host: string;
  pid: number;
  started: number;
  refreshed: number;
  token: string;
}

export const LOCK_REFRESH_MS = 30_000;
/** A lock from another host not refreshed for this long is taken over. */
export const LOCK_STALE_MS = 5 * 60_000;

const readHolder = (file: string) => readJson<LockHolder>(file);

/** Why the holder no longer counts, or null while it does. */
export function staleReason(h: LockHolder, now = Date.now()): string | null {
  if (h.host === os.hostname()) return isAlive(h.pid) ? null : `pid ${h.pid} on this host is gone`;
  const age = now - h.refreshed;
  return age > LOCK_STALE_MS ? `not refreshed for ${Math.round(age / 1000)} s` : null;
}

export class FolderLock {
  private readonly timer: NodeJS.Timeout;
  private released = false;

  private constructor(
    readonly file: string,
    private readonly holder: LockHolder,
  ) {
    this.timer = setInterval(() => this.refresh(), LOCK_REFRESH_MS);
    this.timer.unref();
  }

  /** Takes the lock, or exits 1 naming who holds it. `warn` hears about a stale lock taken over. */
  static acquire(file: string, what: string, warn: (msg: string) => void): FolderLock {
    const now = Date.now();
    const holder: LockHolder = { host: os.hostname(), pid: process.pid, started: now, refreshed: now, token: randomBytes(8).toString('hex') };
    try {
      writeFileSync(file, JSON.stringify(holder) + '\n', { flag: 'wx' });
      return new FolderLock(file, holder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new FatalError(`cannot lock ${what} (${(err as NodeJS.ErrnoException).code}); check the folder's permissions`);
    }
    const current = readHolder(file);
    // An unreadable lock is a torn write by a killed run, unless it is brand new (its writer is mid-write).
    const reason = current ? staleReason(current, now) : now - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) > 5000 ? 'unreadable' : null;
    if (!reason) {
      const who = current
        ? `pcb pid ${current.pid} on ${current.host}, running since ${new Date(current.started).toISOString()}`
        : 'another pcb that is starting';
      throw new FatalError(`${what} is in use by ${who} (lock ${file}); wait for it to finish, or use another --out or --shard`);
    }
    writeJsonAtomic(file, holder);
    if (readHolder(file)?.token !== holder.token) throw new FatalError(`${what} was taken by another pcb at the same moment (lock ${file}); try again`);
    warn(`took over the lock of ${what} (${reason}${current ? `: pcb pid ${current.pid} on ${current.host}` : ''})`);
    return new FolderLock(file, holder);
  }

  private refresh(): void {
    if (this.released) return;
    const current = readHolder(this.file);
    if (current && current.token !== this.holder.token) return; // taken over: not ours to write any more
    this.holder.refreshed = Date.now();
    try {
      writeJsonAtomic(this.file, this.holder);
    } catch {
      /* next refresh tries again */
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    if (readHolder(this.file)?.token === this.holder.token) rmSync(this.file, { force: true });
  }
}
