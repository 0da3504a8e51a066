/**
 * How many rows the pool keeps in flight (`--concurrency auto`): enough that no worker waits for bytes
 * while the CPU has room. Pure, fed one sample per tick; the pool enforces the number it returns.
 *
 * In the manner of TCP Vegas, the queue is the signal: starving workers (the CPU idle, nothing ready,
 * the limit in use) raise the limit; a long queue of ready rows lowers it; anything between holds it.
 * Little's law sizes a raise: to keep the CPU fed at `capacity` rows/s while a row takes `fetchMs` to
 * arrive, `capacity × fetchMs` rows must be fetching, plus a few ready per worker; so a run at 1.5 s
 * to first byte reaches its limit in one step, not by +1 steps. After each change the controller holds
 * for one fetch time, as TCP changes its window once per round trip: the rows of a change take that
 * long to arrive, and reacting sooner to the same starvation or glut overshoots (measured: 36 → 1,024
 * → 20 in flight at 1.5 s without the hold). Growth stops while rows wait for the memory budget, which
 * more rows cannot buy, or sleep because a host asked for less; rows waiting for a host's limit, the rate
 * cap or a retry after no answer at all are parked outside the count.
 */

export interface DemandSample {
  /** Rows at work in the pool now: fetching, ready or on the CPU (not those parked: see poolBounds). */
  inFlight: number;
  /** Rows whose bytes are in, waiting for a worker's CPU slot (averaged over the tick). */
  ready: number;
  /** How busy the CPU was over the tick for pcb, 0..1: its own CPU over the cores it may use, or the workers' CPU slots or event loops, whichever is fuller. */
  busy: number;
  /** Rows waiting for a host's limit, the rate cap or a Retry-After (averaged over the tick). */
  hostWaiting: number;
  /** Rows waiting for room in the memory budget (averaged over the tick). */
  budgetWaiting: number;
  /** Rows waiting for the store to take their upload, or all of them while the run waits for tars to upload (averaged over the tick). */
  storeWaiting: number;
  /** Rows sleeping before a retry the host asked for with an HTTP answer, 408/425/429/5xx (averaged over the tick). */
  heldBack: number;
  /** Rows per second the CPU can take when fed (cores over the process's CPU per row), null before the first rows. */
  capacity: number | null;
  /** Mean time of a successful download, first request slot held to last byte (no waits for limits), null before the first. */
  fetchMs: number | null;
  /** The input has run out: the pool is not full because there is nothing left to send. */
  exhausted: boolean;
}

export type Bound = 'cpu' | 'network' | 'host' | 'budget' | 'store';

/** At or above this share of the CPU, a tick is CPU-bound (a loaded machine seldom shows 100 %). */
export const CPU_BOUND = 0.9;

/** What held the run back during one tick. */
export function classifyTick(s: Pick<DemandSample, 'busy' | 'hostWaiting' | 'budgetWaiting' | 'storeWaiting' | 'inFlight'>): Bound {
  if (s.busy >= CPU_BOUND) return 'cpu';
  // Half the rows at work waiting on the bucket: the store (or the link to it) held the run back, whatever else waited.
  if (s.storeWaiting > 0 && s.storeWaiting >= s.inFlight / 2) return 'store';
  if (s.budgetWaiting >= 0.5) return 'budget';
  if (s.hostWaiting >= 0.5) return 'host';
  return 'network';
}

export interface InFlightLimits {
  threads: number;
  /** Never fewer in flight than this. */
  min: number;
  /** Never more: open sockets and rows held by the workers. */
  max: number;
}

/** Ready rows per worker that count as "enough": past twice this, more in flight only holds memory. */
const READY_PER_THREAD = 2;
/** Where a run starts: what the fixed default of earlier versions kept in flight (16 per thread plus 2 ready). */
export const START_PER_THREAD = 18;

export class InFlightController {
  limit: number;
  /** No change before this time: the rows of the last change must arrive before their effect can be seen. */
  private holdUntil = 0;

  constructor(private readonly o: InFlightLimits) {
    this.limit = clamp(o.threads * START_PER_THREAD, o.min, o.max);
  }

  /** Rows Little's law says should be in flight: the CPU's rate times the time a row takes to arrive, plus a few ready. */
  private estimate(s: DemandSample): number | null {
    if (s.capacity === null || s.fetchMs === null) return null;
    return (s.capacity * s.fetchMs) / 1000 + this.o.threads * READY_PER_THREAD;
  }

  /** `atMs`: a monotonic clock, for the hold after each change. */
  onSample(s: DemandSample, atMs: number): number {
    const { threads } = this.o;
    if (atMs < this.holdUntil) return this.limit;
    // Rows waiting for the budget, or put back by a host: more rows would only queue behind the same wall,
    // or press on a host that asked for less. Rows waiting for a host's limit are parked outside `inFlight`
    // (see poolBounds): when a host is the wall, the rows at work stop pressing, and the limit stops growing.
    const blocked = s.budgetWaiting >= 0.5 || s.heldBack >= 0.5;
    const pressed = s.inFlight >= this.limit * 0.9;
    const starving = s.busy < CPU_BOUND && s.ready < threads * 0.5 && pressed && !blocked && !s.exhausted;
    const target = threads * READY_PER_THREAD;
    const glutted = s.ready > target * 2;
    const est = this.estimate(s);
    let next = this.limit;
    // Growth waits for the first rows to arrive: until then there is nothing to measure, and a slow start is not starvation.
    if (starving && est !== null) next = Math.max(this.limit * 1.5, est);
    // Too many ready: take the surplus off, half of it at a time.
    else if (glutted) next = this.limit - (s.ready - target) / 2;
    next = clamp(Math.round(next), this.o.min, this.o.max);
    if (next !== this.limit) this.holdUntil = atMs + Math.max(200, s.fetchMs ?? 0);
    this.limit = next;
    return this.limit;
  }
}

function clamp(n: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, n));
}
