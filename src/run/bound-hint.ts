/** What bound a run, in a sentence: the stage that held it back most, and what would move it (or that nothing needs to). */
import type { Bound } from '../fetch/in-flight.js';

export interface BoundContext {
  concurrency: number | 'auto';
  maxHostConnections: number | null;
  maxRps: number | null;
  /** Pushback answers (429/503) from every host. */
  pushback: number;
  /** Worker threads of the whole run (every process). */
  threads: number;
  processes: number;
  /** Cores this machine gives the run. */
  cores: number;
  /** CPU-seconds over wall-seconds over cores: 1 when every core was busy the whole run. */
  coresBusy: number;
}

/** Below this share of the cores' time, a run whose workers were all busy was waiting inside the process, not on the CPU. */
export const CORES_BUSY_ENOUGH = 0.8;

/** The stage with the largest share; null when nothing was measured (an empty or instant run). */
export function dominantBound(shares: Record<Bound, number>): Bound | null {
  const [top, share] = (Object.entries(shares) as [Bound, number][]).sort((a, b) => b[1] - a[1])[0];
  return share > 0 ? top : null;
}

export function boundHint(shares: Record<Bound, number>, c: BoundContext): string | null {
  const top = dominantBound(shares);
  if (top === null) return null;
  const pct = `${Math.round(shares[top] * 100)} %`;
  switch (top) {
    case 'cpu':
      return cpuHint(pct, c);
    case 'network':
      return c.concurrency === 'auto'
        ? `network-bound (${pct} of the run): workers waited for bytes with the CPU free; the link's bandwidth is the limit: --cdn-resize imgix fetches smaller renditions`
        : `network-bound (${pct} of the run): workers waited for bytes with the CPU free; drop --concurrency ${c.concurrency} (auto keeps enough downloads in flight)`;
    case 'host': {
      const ceilings = [
        c.maxHostConnections !== null ? `--max-host-connections ${c.maxHostConnections}` : null,
        c.maxRps !== null ? `--max-rps ${c.maxRps}` : null,
      ].filter(Boolean);
      if (c.pushback > 0 || !ceilings.length) {
        return `host-bound (${pct} of the run): the hosts pushed back (${c.pushback} answers of 429/503) and pcb held each at the limit it accepts; spread the rows over more hosts, or nothing to change`;
      }
      return `host-bound (${pct} of the run): requests waited for ${ceilings.join(' and ')}; raise it if the host allows`;
    }
    case 'budget':
      return `memory-bound (${pct} of the run): downloads waited for room in --memory-budget; raise it if the machine has the memory`;
    case 'store':
      return `store-bound (${pct} of the run): rows waited for the bucket to take their uploads with the CPU free; the store or the link to it is the limit: run pcb in the bucket's region, or nearer the endpoint`;
  }
}

/** Workers busy is CPU-bound only when the cores were: otherwise say where the idle cores went. */
function cpuHint(pct: string, c: BoundContext): string {
  const busy = `${Math.round(c.coresBusy * 100)} % of ${c.cores} cores`;
  if (c.threads < c.cores) {
    return `CPU-bound (${pct} of the run): every worker was busy, but ${c.threads} ${c.threads === 1 ? 'thread' : 'threads'} cannot use ${c.cores} cores (${busy} busy): --threads ${c.cores}`;
  }
  if (c.coresBusy >= CORES_BUSY_ENOUGH) {
    return `CPU-bound (${pct} of the run, ${busy} busy): every worker was busy resizing; nothing to change but more cores or cheaper output (--format jpeg)`;
  }
  return c.processes < Math.ceil(c.threads / 2)
    ? `workers busy (${pct} of the run) but only ${busy} busy: threads waited on each other inside the process; --processes ${Math.ceil(c.threads / 2)} runs them as separate processes`
    : `workers busy (${pct} of the run) but only ${busy} busy: the machine's cores are shared with other work, or pcb's main process is the bottleneck`;
}
