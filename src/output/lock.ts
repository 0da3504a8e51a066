/**
 * One writer per folder (per shard): a lock file in `.pcb/` naming host, pid and start time, refreshed
 * while the run lives. Every lock pcb takes (folder, shard, a process's share, an S3 output's state)
 * is judged by one rule (staleReason): a holder that stopped refreshing, or on this host a pid that is
 * gone, a zombie, or another process started after the lock was taken, no longer holds it, and the lock
 * is taken over with a warning that names the old holder.
 */
import { rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { FatalError } from '../errors.js';
import { readJson, writeJsonAtomic } from './folder.js';
import { processState } from './process-state.js';

export interface LockHolder {
  host: string;
  pid: number;
  started: number;
  refreshed: number;
  token: string;
}

export const LOCK_REFRESH_MS = 30_000;
/** A lock not refreshed for this long is taken over (its holder refreshes it every LOCK_REFRESH_MS). */
export const LOCK_STALE_MS = 5 * 60_000;
/** /proc's start times are rounded to the boot time's whole second: a holder may seem to start this much after its lock. */
const START_SLACK_MS = 2_000;

const readHolder = (file: string) => readJson<LockHolder>(file);

/** Why the holder no longer counts, or null while it does. */
export function staleReason(h: LockHolder, now = Date.now()): string | null {
  const age = now - h.refreshed;
  if (!(age <= LOCK_STALE_MS)) return `not refreshed for ${Math.round(age / 1000)} s`;
  if (h.host !== os.hostname()) return null;
  const p = processState(h.pid);
  if (!p.alive) return `pid ${h.pid} on this host is gone`;
  if (p.startedMs !== null && p.startedMs > h.started + START_SLACK_MS) {
    return `pid ${h.pid} on this host is another process now, started ${new Date(p.startedMs).toISOString()}, after the lock was taken`;
  }
  return null;
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
      if (!current) throw new FatalError(`${what} is in use by another pcb that is starting (lock ${file}); try again in a few seconds`);
      const seen = Math.max(0, Math.round((now - current.refreshed) / 1000));
      throw new FatalError(
        `${what} is in use by pcb pid ${current.pid} on ${current.host}, running since ${new Date(current.started).toISOString()}, lock refreshed ${seen} s ago (${file}); wait for it to finish, or use another --out or --shard. If no pcb runs there (on ${current.host}: ps -o pid,lstart,args -p ${current.pid}), delete ${file} and rerun`,
      );
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
