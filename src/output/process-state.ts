/**
 * Whether a pid on this host is a live process, and since when: what a lock or a temporary file's owner
 * is judged by. `kill(pid, 0)` alone says yes for a zombie (exited, not yet reaped) and for whatever
 * process got the pid later; Linux's /proc/<pid>/stat says which, with the process's state and start time.
 */
import { readFileSync } from 'node:fs';

export interface ProcessState {
  /** Running (or sleeping): not gone, not a zombie. */
  alive: boolean;
  /** When it started (ms since the epoch); null where /proc cannot say. */
  startedMs: number | null;
}

/** Clock ticks per second of /proc's times: USER_HZ, 100 on every Linux architecture Node runs on. */
const USER_HZ = 100;

let bootMs: number | null | undefined;

/** The boot time, from /proc/stat's `btime` (whole seconds); null without /proc. */
function bootTimeMs(): number | null {
  if (bootMs === undefined) {
    try {
      const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
      bootMs = m ? Number(m[1]) * 1000 : null;
    } catch {
      bootMs = null;
    }
  }
  return bootMs;
}

/** What `kill(pid, 0)` says: the pid exists (EPERM: another user's process). */
function signalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function processState(pid: number): ProcessState {
  if (!Number.isInteger(pid) || pid <= 0) return { alive: false, startedMs: null };
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // No such process where /proc works; elsewhere, only a signal can tell.
    return bootTimeMs() !== null ? { alive: false, startedMs: null } : { alive: signalable(pid), startedMs: null };
  }
  // `pid (comm) state ...`: comm may hold spaces and parentheses, so the fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const ticks = Number(fields[19]);
  const boot = bootTimeMs();
  return {
    alive: state !== 'Z' && state !== 'X' && state !== 'x',
    startedMs: boot !== null && Number.isFinite(ticks) ? boot + (ticks * 1000) / USER_HZ : null,
  };
}
