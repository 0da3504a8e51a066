/** --max-rps for the whole process: one next-request time in the shared buffer, taken by compare-and-swap. */
import { sleep, views } from './layout.js';
import type { Views } from './layout.js';
import type { Gauges } from './gauges.js';

export class RateLimit {
  private readonly v: Views;
  constructor(
    buffer: SharedArrayBuffer,
    private readonly maxRps: number | null,
    private readonly gauges: Gauges,
  ) {
    this.v = views(buffer);
  }

  /** Waits for this request's turn under --max-rps (retries included); a burst of one second is allowed. */
  async take(): Promise<void> {
    if (!this.maxRps) return;
    const interval = BigInt(Math.max(1, Math.round(1e6 / this.maxRps)));
    for (;;) {
      const now = BigInt(Date.now()) * 1000n;
      const prev = Atomics.load(this.v.next, 0);
      const floor = now - 1_000_000n + interval;
      const slot = prev > floor ? prev : floor;
      if (Atomics.compareExchange(this.v.next, 0, prev, slot + interval) !== prev) continue;
      const waitUs = slot - now;
      if (waitUs > 0n) await this.gauges.waiting('hostWaiting', () => sleep(Number(waitUs / 1000n)));
      return;
    }
  }
}
