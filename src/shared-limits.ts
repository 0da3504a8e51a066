/**
 * Limits shared by every worker thread of the pool through one SharedArrayBuffer: a request-rate
 * scheduler (--max-rps), a per-host connection cap and the downloaded-bytes budget (--memory-budget).
 * Each worker also keeps what it holds in a ledger slot of its own, so that when a worker dies the main
 * thread gives back its host slots and bytes (a dead thread's `finally` blocks never run).
 * Hand-written because no kept library shares state across worker_threads.
 */
const HOST_SLOTS = 1024;
/** Per ledger slot: owner thread id, KiB held, KiB of them settled (whole bodies), then a count per host slot. */
const LEDGER_WIDTH = 3 + HOST_SLOTS;
/** Header: next request time (µs, BigInt64) · KiB held · KiB settled · the most KiB ever held · the overdraft ticket. */
const HEADER_BYTES = 24;

export interface SharedLimitsInit {
  buffer: SharedArrayBuffer;
  maxRps: number | null;
  maxHostConnections: number;
  memoryBudgetBytes: number;
}

/** Room for `workers` live workers at once (crashed ones are replaced, and their slots freed). */
export function createSharedBuffer(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + HOST_SLOTS * 4 + ledgerSlots(workers) * LEDGER_WIDTH * 4);
}

function ledgerSlots(workers: number): number {
  return workers * 2 + 8;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function hostSlot(host: string): number {
  let h = 2166136261;
  for (let i = 0; i < host.length; i++) h = Math.imul(h ^ host.charCodeAt(i), 16777619);
  return (h >>> 0) % HOST_SLOTS;
}

function views(buffer: SharedArrayBuffer) {
  const ledgerInts = (buffer.byteLength - HEADER_BYTES - HOST_SLOTS * 4) / 4;
  return {
    next: new BigInt64Array(buffer, 0, 1),
    held: new Int32Array(buffer, 8, 1),
    settled: new Int32Array(buffer, 12, 1),
    peak: new Int32Array(buffer, 16, 1),
    overdraft: new Int32Array(buffer, 20, 1),
    hosts: new Int32Array(buffer, HEADER_BYTES, HOST_SLOTS),
    ledger: new Int32Array(buffer, HEADER_BYTES + HOST_SLOTS * 4, ledgerInts),
    slots: ledgerInts / LEDGER_WIDTH,
  };
}

/** Waits with a growing pause (2 → 50 ms) until `ready()` says go. */
async function until(ready: () => boolean): Promise<void> {
  for (let delay = 2; !ready(); delay = Math.min(delay * 2, 50)) await sleep(delay);
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
      if (waitUs > 0n) await sleep(Number(waitUs / 1000n));
      return;
    }
  }

  /** Holds one of the host's connection slots, shared by all workers, until release() is called. */
  async acquireHost(host: string): Promise<() => void> {
    const i = hostSlot(host);
    const cap = this.init.maxHostConnections;
    await until(() => {
      const cur = Atomics.load(this.v.hosts, i);
      return cur < cap && Atomics.compareExchange(this.v.hosts, i, cur, cur + 1) === cur;
    });
    Atomics.add(this.v.ledger, this.mine + 3 + i, 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      Atomics.sub(this.v.ledger, this.mine + 3 + i, 1);
      Atomics.sub(this.v.hosts, i, 1);
    };
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
    await until(() => {
      const cur = Atomics.load(this.v.held, 0);
      return cur < this.capKiB || cur === 0;
    });
  }

  /**
   * A body of known length (Content-Length): waits until it fits under the budget (or nothing else is
   * held), then reserves all of it at once, so that bodies arriving together never overshoot together.
   */
  async reserve(bytes: number): Promise<number> {
    const kib = Math.ceil(bytes / 1024);
    await until(() => {
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
    await until(() => {
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
    return Atomics.load(views(buffer).hosts, hostSlot(host));
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
        const n = Atomics.exchange(v.ledger, base + 3 + i, 0);
        if (n) {
          Atomics.sub(v.hosts, i, n);
          connections += n;
        }
      }
      // Its overdraft ticket, if any, dies with it.
      const owned = Math.floor(Atomics.load(v.overdraft, 0) / 0x10000) === s + 1;
      if (owned) Atomics.store(v.overdraft, 0, 0);
      Atomics.store(v.ledger, base, 0);
      return { kib, connections };
    }
    return { kib: 0, connections: 0 };
  }
}
