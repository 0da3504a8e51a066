/**
 * The downloaded-bytes budget (--memory-budget) across every worker: KiB held in the shared header, each
 * worker's share in its ledger slot. Downloads wait for room rather than the process growing.
 */
import { until, views } from './layout.js';
import type { Views } from './layout.js';
import type { Gauges } from './gauges.js';
import type { Ledger } from './ledger.js';

export class MemoryBudget {
  private readonly v: Views;
  private readonly capKiB: number;
  private tickets = 0;

  constructor(
    buffer: SharedArrayBuffer,
    budgetBytes: number,
    private readonly ledger: Ledger,
    private readonly gauges: Gauges,
  ) {
    this.v = views(buffer);
    this.capKiB = Math.floor(budgetBytes / 1024);
  }

  /** Counts newly held KiB in this worker's ledger, and the pool's peak. */
  private add(kib: number): void {
    this.ledger.kib(kib, 0);
    const now = Atomics.load(this.v.held, 0);
    for (let peak = Atomics.load(this.v.peak, 0); now > peak; peak = Atomics.load(this.v.peak, 0)) {
      if (Atomics.compareExchange(this.v.peak, 0, peak, now) === peak) break;
    }
  }

  /** until(), with the row counted as waiting for the budget when it has to wait at all. */
  private async untilRoom(ready: () => boolean): Promise<void> {
    if (ready()) return;
    await this.gauges.waiting('budgetWaiting', () => until(ready));
  }

  /** Before a request: waits while the budget is spent (one download may always run). */
  async waitForRoom(): Promise<void> {
    await this.untilRoom(() => {
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
    await this.untilRoom(() => {
      const cur = Atomics.load(this.v.held, 0);
      return (cur + kib <= this.capKiB || cur === 0) && Atomics.compareExchange(this.v.held, 0, cur, cur + kib) === cur;
    });
    this.add(kib);
    return kib;
  }

  /** A number naming one download attempt of this worker, for holdChunk's overdraft. */
  ticket(): number {
    this.tickets = (this.tickets + 1) % 0x10000;
    return (this.ledger.slot + 1) * 0x10000 + this.tickets;
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
    this.ledger.kib(0, kib);
  }

  /** Gives bytes back: `settled` when they were a whole body (see settle), with the overdraft of its ticket. */
  release(kib: number, settled: boolean, ticket = 0): void {
    if (ticket) this.endAttempt(ticket);
    if (!kib) return;
    Atomics.sub(this.v.held, 0, kib);
    this.ledger.kib(-kib, 0);
    if (settled) {
      Atomics.sub(this.v.settled, 0, kib);
      this.ledger.kib(0, -kib);
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
}
