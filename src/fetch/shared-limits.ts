/**
 * Limits shared by every worker thread of the pool through one SharedArrayBuffer: a request-rate
 * scheduler (--max-rps), a per-host limit on open requests that follows each host's answers (see
 * host-limit.ts; --max-host-connections is its ceiling), the downloaded-bytes budget (--memory-budget),
 * and the gauges the main thread samples to size the pool and say what bound the run.
 * Each worker also keeps what it holds in a ledger slot of its own, so that when a worker dies the main
 * thread gives back its host slots, bytes and gauges (a dead thread's `finally` blocks never run).
 * Hand-written because no kept library shares state across worker_threads.
 */
import { CIRCUIT, HOST_LIMIT, circuitPause, initialHostLimit, isSilence, nextHostLimit } from './host-limit.js';
import { NotSent } from '../errors.js';
import type { Answer } from './host-limit.js';

const HOST_SLOTS = 1024;
/** Where no --max-host-connections is set: a bound on sockets, not a politeness rule. */
export const HOST_CEILING = 4096;
/**
 * Gauges a worker keeps in its ledger slot: rows in each state right now, and its event loop's use (‰).
 * Rows sleeping before a retry: `backoff` after a failure with no HTTP answer (the pool parks them: see
 * poolBounds), `heldBack` after the host answered "later" (408/425/429/5xx: they still count as the host's load).
 */
export const GAUGES = ['ready', 'busy', 'hostWaiting', 'budgetWaiting', 'loop', 'backoff', 'heldBack', 'storing'] as const;
export type Gauge = (typeof GAUGES)[number];
/** Per ledger slot: owner thread id, KiB held, KiB of them settled (whole bodies), the gauges, then a count per host slot. */
const LEDGER_HEAD = 3 + GAUGES.length;
const LEDGER_WIDTH = LEDGER_HEAD + HOST_SLOTS;
/** Header: next request time (µs, BigInt64) · KiB held · KiB settled · the most KiB ever held · the overdraft ticket. */
const HEADER_BYTES = 24;
/** Running totals (BigInt64): µs of successful downloads, their count, connections opened. */
const COUNTERS = ['fetchUs', 'fetches', 'connections', 'uploadRetries'] as const;
type Counter = (typeof COUNTERS)[number];
/**
 * Per host slot, Int32: open requests · limit ×1024 (0: not yet set) · threshold ×1024 · 429s · 503s ·
 * timeouts and dropped connections · silent failures in a row · circuit openings in a row · requests
 * not sent while the circuit was open · which host (hostHash) the silences and the circuit belong to:
 * hosts that share a slot share its limit, but one host's silence never closes the circuit to another.
 */
const HOST_FIELDS = ['open', 'limit', 'threshold', 'http429', 'http503', 'drops', 'silent', 'opens', 'notSent', 'who'] as const;
type HostField = (typeof HOST_FIELDS)[number];
const FIXED = 1024;

export interface SharedLimitsInit {
  buffer: SharedArrayBuffer;
  maxRps: number | null;
  /** The hard ceiling on one host's limit; null: HOST_CEILING. */
  maxHostConnections: number | null;
  /** Processes of the run this one is a share of: each host's limit starts at this process's share. */
  processes?: number;
  memoryBudgetBytes: number;
}

/** Room for `workers` live workers at once (crashed ones are replaced, and their slots freed). */
export function createSharedBuffer(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(
    HEADER_BYTES + COUNTERS.length * 8 + HOST_SLOTS * 16 + HOST_SLOTS * HOST_FIELDS.length * 4 + ledgerSlots(workers) * LEDGER_WIDTH * 4,
  );
}

function ledgerSlots(workers: number): number {
  return workers * 2 + 8;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A host's 32-bit FNV-1a hash, never 0 (0 marks a slot's circuit as nobody's). */
export function hostHash(host: string): number {
  let h = 2166136261;
  for (let i = 0; i < host.length; i++) h = Math.imul(h ^ host.charCodeAt(i), 16777619);
  return h | 0 || 1;
}

/** The slot a host's hash falls in (hosts that share one share its limit). */
function slotOf(hash: number): number {
  return (hash >>> 0) % HOST_SLOTS;
}

export function hostSlot(host: string): number {
  return slotOf(hostHash(host));
}

function views(buffer: SharedArrayBuffer) {
  let at = HEADER_BYTES;
  const counters = new BigInt64Array(buffer, at, COUNTERS.length);
  at += COUNTERS.length * 8;
  const lastCut = new BigInt64Array(buffer, at, HOST_SLOTS);
  at += HOST_SLOTS * 8;
  /** When an open circuit lets its next probe through (ms since the epoch; 0: closed). */
  const pausedUntil = new BigInt64Array(buffer, at, HOST_SLOTS);
  at += HOST_SLOTS * 8;
  const host = Object.fromEntries(HOST_FIELDS.map((f, k) => [f, new Int32Array(buffer, at + k * HOST_SLOTS * 4, HOST_SLOTS)])) as Record<HostField, Int32Array>;
  at += HOST_FIELDS.length * HOST_SLOTS * 4;
  const ledgerInts = (buffer.byteLength - at) / 4;
  return {
    next: new BigInt64Array(buffer, 0, 1),
    held: new Int32Array(buffer, 8, 1),
    settled: new Int32Array(buffer, 12, 1),
    peak: new Int32Array(buffer, 16, 1),
    overdraft: new Int32Array(buffer, 20, 1),
    counters,
    lastCut,
    pausedUntil,
    host,
    ledger: new Int32Array(buffer, at, ledgerInts),
    slots: ledgerInts / LEDGER_WIDTH,
  };
}

/** Waits with a growing pause (2 → 50 ms) until `ready()` says go. */
async function until(ready: () => boolean): Promise<void> {
  for (let delay = 2; !ready(); delay = Math.min(delay * 2, 50)) await sleep(delay);
}

/** What the main thread reads each tick: the gauges summed over live workers, and the running totals. */
export type Snapshot = Record<Gauge, number> & Record<Counter, number>;

/** One host's state, for the summary. */
export interface HostReport {
  limit: number;
  open: number;
  http429: number;
  http503: number;
  drops: number;
  /** Requests not sent because the host had stopped answering (its circuit was open). */
  notSent: number;
}

/** A held request slot on one host: give it back with the answer, which moves the host's limit. */
export interface HostPermit {
  done(answer: Answer, httpStatus?: number | null): void;
}

export class SharedLimits {
  private readonly v: ReturnType<typeof views>;
  /** This worker's ledger slot (its start in `ledger`). */
  private readonly mine: number;

  constructor(
    private readonly init: SharedLimitsInit,
    owner: number,
  ) {
    this.v = views(init.buffer);
    let slot = -1;
    for (let s = 0; s < this.v.slots && slot < 0; s++) {
      if (Atomics.compareExchange(this.v.ledger, s * LEDGER_WIDTH, 0, owner) === 0) slot = s;
    }
    if (slot < 0) throw new Error('no free ledger slot for a new worker');
    this.mine = slot * LEDGER_WIDTH;
  }

  /** Waits for this request's turn under --max-rps (retries included); a burst of one second is allowed. */
  async takeRequestToken(): Promise<void> {
    if (!this.init.maxRps) return;
    const interval = BigInt(Math.max(1, Math.round(1e6 / this.init.maxRps)));
    for (;;) {
      const now = BigInt(Date.now()) * 1000n;
      const prev = Atomics.load(this.v.next, 0);
      const floor = now - 1_000_000n + interval;
      const slot = prev > floor ? prev : floor;
      if (Atomics.compareExchange(this.v.next, 0, prev, slot + interval) !== prev) continue;
      const waitUs = slot - now;
      if (waitUs > 0n) await this.waiting('hostWaiting', () => sleep(Number(waitUs / 1000n)));
      return;
    }
  }

  /** Counts this worker's row in a gauge while `wait` runs. */
  async waiting<T>(gauge: Gauge, wait: () => Promise<T>): Promise<T> {
    this.gauge(gauge, 1);
    try {
      return await wait();
    } finally {
      this.gauge(gauge, -1);
    }
  }

  gauge(gauge: Gauge, delta: number): void {
    Atomics.add(this.v.ledger, this.mine + 3 + GAUGES.indexOf(gauge), delta);
  }

  setGauge(gauge: Gauge, value: number): void {
    Atomics.store(this.v.ledger, this.mine + 3 + GAUGES.indexOf(gauge), value);
  }

  count(counter: Counter, n: number): void {
    Atomics.add(this.v.counters, COUNTERS.indexOf(counter), BigInt(Math.round(n)));
  }

  private get hostCeiling(): number {
    return this.init.maxHostConnections ?? HOST_CEILING;
  }

  /** The host's limit now (whole requests). */
  private hostLimit(i: number): number {
    const fx = Atomics.load(this.v.host.limit, i);
    const limit = fx === 0 ? initialHostLimit(this.hostCeiling, this.init.processes ?? 1).limit : fx / FIXED;
    return Math.max(HOST_LIMIT.min, Math.min(this.hostCeiling, Math.floor(limit)));
  }

  /**
   * Holds one of the host's request slots, shared by all workers, under the host's limit; the permit's
   * done() gives it back with the answer. Waiters sleep on the slot's counter and wake when it moves.
   */
  async acquireHost(host: string): Promise<HostPermit> {
    const who = hostHash(host);
    const i = slotOf(who);
    let probe = false;
    const open = this.v.host.open;
    let counted = false;
    let cur = 0;
    for (;;) {
      // Checked again after each wait: rows that queued before the circuit opened are not sent either.
      try {
        // A probe keeps its turn while it waits for the limit.
        probe ||= this.passCircuit(i, host, who);
      } catch (err) {
        if (counted) this.gauge('hostWaiting', -1);
        throw err;
      }
      cur = Atomics.load(open, i);
      const limit = this.hostLimit(i);
      if (cur < limit) {
        if (Atomics.compareExchange(open, i, cur, cur + 1) === cur) break;
        continue;
      }
      if (!counted) {
        counted = true;
        this.gauge('hostWaiting', 1);
      }
      // Woken by the slot's counter (a request done, the limit raised, the circuit opened); the timeout is a safety net.
      const w = Atomics.waitAsync(open, i, cur, 5000);
      if (w.async) await w.value;
    }
    if (counted) this.gauge('hostWaiting', -1);
    Atomics.add(this.v.ledger, this.mine + LEDGER_HEAD + i, 1);
    const sentAt = BigInt(Date.now());
    // A limit nobody pressed against says nothing about what the host can take.
    const tested = counted || cur + 1 >= this.hostLimit(i) * 0.75;
    let released = false;
    return {
      done: (answer, httpStatus = null) => {
        if (released) return;
        released = true;
        Atomics.sub(this.v.ledger, this.mine + LEDGER_HEAD + i, 1);
        Atomics.sub(open, i, 1);
        const grew = this.feedback(i, answer, httpStatus, sentAt, tested);
        this.circuit(i, who, answer, httpStatus, probe);
        Atomics.notify(open, i, grew ? 2 : 1);
      },
    };
  }

  /**
   * Throws when the host's circuit is open (see CIRCUIT): the request is not sent, and the row backs off
   * as after any failure (its retries end as they would have). Once the pause is over, one request passes as the probe and
   * re-arms the pause for the others, so a probe lost with its worker only delays the next.
   * Returns whether this request is the probe.
   */
  private passCircuit(i: number, host: string, who: number): boolean {
    const until = Atomics.load(this.v.pausedUntil, i);
    if (until === 0n || Atomics.load(this.v.host.who, i) !== who) return false;
    const now = BigInt(Date.now());
    const opens = Atomics.load(this.v.host.opens, i);
    if (now >= until && Atomics.compareExchange(this.v.pausedUntil, i, until, now + BigInt(circuitPause(opens))) === until) return true;
    Atomics.add(this.v.host.notSent, i, 1);
    const left = Math.max(0, Number(Atomics.load(this.v.pausedUntil, i) - now));
    throw new NotSent(
      `not sent: ${host} gave no answer to ${Atomics.load(this.v.host.silent, i)} requests in a row; it is probed again in ${Math.ceil(left / 1000)} s`,
    );
  }

  /**
   * Counts one host's silences in a row; opens the circuit at CIRCUIT.openAfter, reopens it for longer
   * when a probe fails, closes it on the host's answer. The slot follows one host at a time (`who`): a
   * silence of another host starts its own count, unless the circuit is open for the first.
   */
  private circuit(i: number, who: number, answer: Answer, httpStatus: number | null, probe: boolean): void {
    const h = this.v.host;
    if (Atomics.load(h.who, i) !== who) {
      if (!isSilence(answer, httpStatus) || Atomics.load(this.v.pausedUntil, i) !== 0n) return;
      Atomics.store(h.who, i, who);
      Atomics.store(h.silent, i, 0);
      Atomics.store(h.opens, i, 0);
    }
    if (answer === 'clean' || httpStatus !== null) {
      if (Atomics.exchange(h.silent, i, 0) === 0 && !probe) return;
      Atomics.store(h.opens, i, 0);
      Atomics.store(this.v.pausedUntil, i, 0n);
      return;
    }
    const silent = isSilence(answer, httpStatus) ? Atomics.add(h.silent, i, 1) + 1 : Atomics.load(h.silent, i);
    // A probe that got no answer (or ended without one) reopens; a run of silences opens once, when it reaches the threshold.
    if (!probe && silent !== CIRCUIT.openAfter) return;
    const opens = Atomics.add(h.opens, i, 1) + 1;
    Atomics.store(this.v.pausedUntil, i, BigInt(Date.now() + circuitPause(opens)));
    // Rows queued for the host's limit see the circuit at once, and are not sent.
    Atomics.notify(h.open, i);
  }

  /** Moves the host's limit after one answer; true when it rose by a whole request. */
  private feedback(i: number, answer: Answer, httpStatus: number | null, sentAt: bigint, tested: boolean): boolean {
    const h = this.v.host;
    if (answer === 'pushback') {
      const field = httpStatus === 429 ? 'http429' : httpStatus === 503 ? 'http503' : 'drops';
      Atomics.add(h[field], i, 1);
    }
    const ceiling = this.hostCeiling;
    let sinceCut = true;
    if (answer === 'pushback') {
      // One cut per round trip: only the first answer to a request sent after the last cut makes the next.
      const last = Atomics.load(this.v.lastCut, i);
      sinceCut = sentAt >= last && Atomics.compareExchange(this.v.lastCut, i, last, BigInt(Date.now())) === last;
    }
    for (;;) {
      const fx = Atomics.load(h.limit, i);
      const init = initialHostLimit(ceiling, this.init.processes ?? 1);
      const thr = Atomics.load(h.threshold, i);
      const state = { limit: fx === 0 ? init.limit : fx / FIXED, threshold: thr === 0 ? init.threshold : thr / FIXED };
      const next = nextHostLimit(state, answer, { ceiling, tested, sinceCut });
      if (next === state) return false;
      const nextFx = Math.max(1, Math.round(next.limit * FIXED));
      if (Atomics.compareExchange(h.limit, i, fx, nextFx) !== fx) continue;
      Atomics.store(h.threshold, i, Math.max(1, Math.round(Math.min(next.threshold, HOST_CEILING) * FIXED)));
      return Math.floor(next.limit) > Math.floor(state.limit);
    }
  }

  private get capKiB(): number {
    return Math.floor(this.init.memoryBudgetBytes / 1024);
  }

  /** Counts newly held KiB in this worker's ledger, and the pool's peak. */
  private add(kib: number): void {
    Atomics.add(this.v.ledger, this.mine + 1, kib);
    const now = Atomics.load(this.v.held, 0);
    for (let peak = Atomics.load(this.v.peak, 0); now > peak; peak = Atomics.load(this.v.peak, 0)) {
      if (Atomics.compareExchange(this.v.peak, 0, peak, now) === peak) break;
    }
  }

  /** Before a request: waits while the budget is spent (one download may always run). */
  async waitForRoom(): Promise<void> {
    await this.untilRoom(() => {
      const cur = Atomics.load(this.v.held, 0);
      return cur < this.capKiB || cur === 0;
    });
  }

  /** until(), with the row counted as waiting for the budget when it has to wait at all. */
  private async untilRoom(ready: () => boolean): Promise<void> {
    if (ready()) return;
    await this.waiting('budgetWaiting', () => until(ready));
  }

  /**
   * A body of known length (Content-Length): waits until it fits under the budget (or nothing else is
   * held), then reserves all of it at once, so that bodies arriving together never overshoot together.
   */
  async reserve(bytes: number): Promise<number> {
    const kib = Math.ceil(bytes / 1024);
    await this.untilRoom(() => {
      const cur = Atomics.load(this.v.held, 0);
      return (cur + kib <= this.capKiB || cur === 0) && Atomics.compareExchange(this.v.held, 0, cur, cur + kib) === cur;
    });
    this.add(kib);
    return kib;
  }

  private tickets = 0;

  /** A number naming one download attempt of this worker, for holdChunk's overdraft. */
  ticket(): number {
    this.tickets = (this.tickets + 1) % 0x10000;
    return (this.mine / LEDGER_WIDTH + 1) * 0x10000 + this.tickets;
  }

  /**
   * A chunk of a body of unknown length: taken while it fits under the budget; past it, one body in the
   * whole pool at a time (the overdraft ticket) may go on, so partial bodies never wait on each other
   * for ever, and the pool holds at most the budget plus one body.
   */
  async holdChunk(bytes: number, ticket: number): Promise<number> {
    const kib = Math.ceil(bytes / 1024);
    await this.untilRoom(() => {
      const cur = Atomics.load(this.v.held, 0);
      if (cur + kib <= this.capKiB && Atomics.compareExchange(this.v.held, 0, cur, cur + kib) === cur) return true;
      const owner = Atomics.compareExchange(this.v.overdraft, 0, 0, ticket);
      if (owner !== 0 && owner !== ticket) return false;
      Atomics.add(this.v.held, 0, kib);
      return true;
    });
    this.add(kib);
    return kib;
  }

  /** The attempt is over: its overdraft, if it had it, goes to the next body that needs one. */
  endAttempt(ticket: number): void {
    Atomics.compareExchange(this.v.overdraft, 0, ticket, 0);
  }

  /** The body is whole: its bytes now wait for processing, which frees them. */
  settle(kib: number): void {
    Atomics.add(this.v.settled, 0, kib);
    Atomics.add(this.v.ledger, this.mine + 2, kib);
  }

  /** Gives bytes back: `settled` when they were a whole body (see settle), with the overdraft of its ticket. */
  release(kib: number, settled: boolean, ticket = 0): void {
    if (ticket) this.endAttempt(ticket);
    if (!kib) return;
    Atomics.sub(this.v.held, 0, kib);
    Atomics.sub(this.v.ledger, this.mine + 1, kib);
    if (settled) {
      Atomics.sub(this.v.settled, 0, kib);
      Atomics.sub(this.v.ledger, this.mine + 2, kib);
    }
  }

  /** KiB held across the pool (for tests and the bench). */
  static heldKiB(buffer: SharedArrayBuffer): number {
    return Atomics.load(views(buffer).held, 0);
  }

  /** The most KiB held at once during the run. */
  static peakKiB(buffer: SharedArrayBuffer): number {
    return Atomics.load(views(buffer).peak, 0);
  }

  static hostConnections(buffer: SharedArrayBuffer, host: string): number {
    return Atomics.load(views(buffer).host.open, hostSlot(host));
  }

  /** The gauges summed over live workers, and the running totals. */
  static snapshot(buffer: SharedArrayBuffer): Snapshot {
    const v = views(buffer);
    const out = {} as Snapshot;
    GAUGES.forEach((g, k) => {
      let n = 0;
      for (let s = 0; s < v.slots; s++) if (Atomics.load(v.ledger, s * LEDGER_WIDTH) !== 0) n += Atomics.load(v.ledger, s * LEDGER_WIDTH + 3 + k);
      out[g] = n;
    });
    COUNTERS.forEach((c, k) => {
      out[c] = Number(Atomics.load(v.counters, k));
    });
    return out;
  }

  /** A host's limit and the pushback it gave (hosts that share a slot share these). */
  static hostReport(buffer: SharedArrayBuffer, host: string, maxHostConnections: number | null): HostReport {
    const v = views(buffer);
    const i = hostSlot(host);
    const ceiling = maxHostConnections ?? HOST_CEILING;
    const fx = Atomics.load(v.host.limit, i);
    return {
      limit: Math.min(ceiling, Math.floor(fx === 0 ? initialHostLimit(ceiling).limit : fx / FIXED)),
      open: Atomics.load(v.host.open, i),
      http429: Atomics.load(v.host.http429, i),
      http503: Atomics.load(v.host.http503, i),
      drops: Atomics.load(v.host.drops, i),
      notSent: Atomics.load(v.host.notSent, i),
    };
  }

  /**
   * Main thread, when a worker has died: gives back whatever its ledger says it held and frees the slot.
   * Returns the KiB and connections given back.
   */
  static settleWorker(buffer: SharedArrayBuffer, owner: number): { kib: number; connections: number } {
    const v = views(buffer);
    for (let s = 0; s < v.slots; s++) {
      const base = s * LEDGER_WIDTH;
      if (Atomics.load(v.ledger, base) !== owner) continue;
      const kib = Atomics.exchange(v.ledger, base + 1, 0);
      const settled = Atomics.exchange(v.ledger, base + 2, 0);
      Atomics.sub(v.held, 0, kib);
      Atomics.sub(v.settled, 0, settled);
      let connections = 0;
      for (let i = 0; i < HOST_SLOTS; i++) {
        const n = Atomics.exchange(v.ledger, base + LEDGER_HEAD + i, 0);
        if (n) {
          Atomics.sub(v.host.open, i, n);
          Atomics.notify(v.host.open, i);
          connections += n;
        }
      }
      for (let g = 0; g < GAUGES.length; g++) Atomics.store(v.ledger, base + 3 + g, 0);
      // Its overdraft ticket, if any, dies with it.
      const owned = Math.floor(Atomics.load(v.overdraft, 0) / 0x10000) === s + 1;
      if (owned) Atomics.store(v.overdraft, 0, 0);
      Atomics.store(v.ledger, base, 0);
      return { kib, connections };
    }
    return { kib: 0, connections: 0 };
  }
}
