/**
 * Limits shared by every worker thread of the pool through one SharedArrayBuffer:
 * a request-rate scheduler (--max-rps), a per-host connection cap and the in-flight byte budget.
 * Hand-written because no kept library shares state across worker_threads.
 */
const HOST_SLOTS = 1024;

export interface SharedLimitsInit {
  buffer: SharedArrayBuffer;
  maxRps: number | null;
  maxHostConnections: number;
  memoryBudgetBytes: number;
}

export function createSharedBuffer(): SharedArrayBuffer {
  // [0..8): next request time (µs, BigInt64) · [8..12): bytes in flight (KiB, Int32) · then host slot counters.
  return new SharedArrayBuffer(16 + HOST_SLOTS * 4);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function hostSlot(host: string): number {
  let h = 2166136261;
  for (let i = 0; i < host.length; i++) h = Math.imul(h ^ host.charCodeAt(i), 16777619);
  return (h >>> 0) % HOST_SLOTS;
}

export class SharedLimits {
  private readonly next: BigInt64Array;
  private readonly bytes: Int32Array;
  private readonly hosts: Int32Array;

  constructor(private readonly init: SharedLimitsInit) {
    this.next = new BigInt64Array(init.buffer, 0, 1);
    this.bytes = new Int32Array(init.buffer, 8, 1);
    this.hosts = new Int32Array(init.buffer, 16, HOST_SLOTS);
  }

  /** Waits for this request's turn under --max-rps (retries included); a burst of one second is allowed. */
  async takeRequestToken(): Promise<void> {
    if (!this.init.maxRps) return;
    const interval = BigInt(Math.max(1, Math.round(1e6 / this.init.maxRps)));
    for (;;) {
      const now = BigInt(Date.now()) * 1000n;
      const prev = Atomics.load(this.next, 0);
      const floor = now - 1_000_000n + interval;
      const slot = prev > floor ? prev : floor;
      if (Atomics.compareExchange(this.next, 0, prev, slot + interval) !== prev) continue;
      const waitUs = slot - now;
      if (waitUs > 0n) await sleep(Number(waitUs / 1000n));
      return;
    }
  }

  /** Holds one of the host's connection slots, shared by all workers, until release() is called. */
  async acquireHost(host: string): Promise<() => void> {
    const i = hostSlot(host);
    const cap = this.init.maxHostConnections;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      const cur = Atomics.load(this.hosts, i);
      if (cur < cap && Atomics.compareExchange(this.hosts, i, cur, cur + 1) === cur) break;
      await sleep(delay);
    }
    let released = false;
    return () => {
      if (!released) { released = true; Atomics.sub(this.hosts, i, 1); }
    };
  }

  /**
   * Waits until downloaded-but-unprocessed bytes are under the budget, then reserves 1 KiB so that
   * downloads starting together see each other. One download may always run, so a budget smaller
   * than one image slows the run to one image at a time instead of stopping it.
   */
  async reserveMemory(): Promise<number> {
    const capKiB = Math.floor(this.init.memoryBudgetBytes / 1024);
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      const cur = Atomics.load(this.bytes, 0);
      if ((cur < capKiB || cur === 0) && Atomics.compareExchange(this.bytes, 0, cur, cur + 1) === cur) return 1;
      await sleep(delay);
    }
  }

  /** Counts bytes held in memory; returns the amount to give back with releaseBytes. */
  holdBytes(n: number): number {
    const kib = Math.ceil(n / 1024);
    Atomics.add(this.bytes, 0, kib);
    return kib;
  }

  releaseBytes(kib: number): void {
    Atomics.sub(this.bytes, 0, kib);
  }
}
