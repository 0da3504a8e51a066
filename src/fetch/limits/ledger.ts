/**
 * Each worker keeps what it holds in a ledger slot of its own (KiB of bodies, requests open per host,
 * its gauges), so that when a worker dies the main thread gives all of it back: a dead thread's
 * `finally` blocks never run.
 */
import { GAUGES, HOST_SLOTS, LEDGER_HEAD, LEDGER_WIDTH, views } from './layout.js';
import type { Views } from './layout.js';

export class Ledger {
  /** This worker's slot: its first Int32 in the ledger. */
  readonly base: number;
  private readonly v: Views;

  /** Claims a free slot for the worker `owner` (a thread id, never 0). */
  constructor(buffer: SharedArrayBuffer, owner: number) {
    this.v = views(buffer);
    let slot = -1;
    for (let s = 0; s < this.v.slots && slot < 0; s++) {
      if (Atomics.compareExchange(this.v.ledger, s * LEDGER_WIDTH, 0, owner) === 0) slot = s;
    }
    if (slot < 0) throw new Error('no free ledger slot for a new worker');
    this.base = slot * LEDGER_WIDTH;
  }

  /** The slot's number, from 0. */
  get slot(): number {
    return this.base / LEDGER_WIDTH;
  }

  /** Requests this worker has open on host slot `i`. */
  hostOpen(i: number, delta: number): void {
    Atomics.add(this.v.ledger, this.base + LEDGER_HEAD + i, delta);
  }

  /** KiB of bodies this worker holds, and of them whole bodies waiting for processing. */
  kib(held: number, settled: number): void {
    if (held) Atomics.add(this.v.ledger, this.base + 1, held);
    if (settled) Atomics.add(this.v.ledger, this.base + 2, settled);
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
