/** The gauges each worker keeps in its ledger slot, and the running totals: what the main thread samples each tick. */
import { COUNTERS, GAUGES, LEDGER_WIDTH, views } from './layout.js';
import type { Counter, Gauge, Views } from './layout.js';
import type { Ledger } from './ledger.js';

/** What the main thread reads each tick: the gauges summed over live workers, and the running totals. */
export type Snapshot = Record<Gauge, number> & Record<Counter, number>;

export class Gauges {
  private readonly v: Views;
  constructor(
    buffer: SharedArrayBuffer,
    private readonly ledger: Ledger,
  ) {
    this.v = views(buffer);
  }

  gauge(gauge: Gauge, delta: number): void {
    Atomics.add(this.v.ledger, this.ledger.base + 3 + GAUGES.indexOf(gauge), delta);
  }

  setGauge(gauge: Gauge, value: number): void {
    Atomics.store(this.v.ledger, this.ledger.base + 3 + GAUGES.indexOf(gauge), value);
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

  count(counter: Counter, n: number): void {
    Atomics.add(this.v.counters, COUNTERS.indexOf(counter), BigInt(Math.round(n)));
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
}
