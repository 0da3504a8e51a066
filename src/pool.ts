import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import type { RowResult, RowTask } from './result.js';
import type { WorkerConfig } from './worker-config.js';
import { SharedLimits } from './shared-limits.js';

export const FETCH_RESIZE_WORKER = fileURLToPath(new URL('./workers/fetch-resize.js', import.meta.url));

/**
 * A Piscina pool with backpressure: submit() waits while `threads × concurrency` rows plus a small
 * queue are in flight, so the main thread never holds more than that plus one chunk. The wait is a
 * counter and one promise: O(1) per row at any capacity.
 */
export class RowPool {
  private readonly piscina: Piscina;
  private readonly capacity: number;
  private inFlight = 0;
  /** The one submit() waiting for room (the main loop submits one row at a time). */
  private roomWaiter: (() => void) | null = null;
  private idleWaiters: (() => void)[] = [];
  private abandoned = false;

  constructor(
    config: WorkerConfig,
    threads: number,
    private readonly onResult: (r: RowResult) => void,
    private readonly onCrash: (task: RowTask, err: unknown) => void,
    filename = FETCH_RESIZE_WORKER,
  ) {
    this.piscina = new Piscina({
      filename,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: config.concurrency,
      idleTimeout: 60_000,
      workerData: config,
    });
    // A dead worker's finally blocks never run: give back the host slots and bytes its ledger holds.
    this.piscina.on('workerDestroy', (w: { id: number }) => {
      SharedLimits.settleWorker(config.limits.buffer, w.id);
    });
    this.piscina.on('error', () => undefined);
    this.capacity = threads * config.concurrency + threads * 2;
  }

  async submit(task: RowTask): Promise<void> {
    while (this.inFlight >= this.capacity)
      await new Promise<void>((r) => {
        this.roomWaiter = r;
      });
    this.inFlight++;
    void this.runTask(task).finally(() => {
      this.inFlight--;
      const room = this.roomWaiter;
      this.roomWaiter = null;
      room?.();
      if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  /**
   * A task fails only when its worker died (Piscina starts a new one). The other rows in flight on that
   * worker did nothing wrong: each gets one more try before it is reported. Rows cut off by abandon()
   * are not reported at all, so the next run does them.
   */
  private async runTask(task: RowTask, tries = 0): Promise<void> {
    let result: RowResult;
    try {
      result = await this.piscina.run(task);
    } catch (err) {
      if (this.abandoned) return;
      if (tries === 0) return this.runTask(task, 1);
      this.onCrash(task, err);
      return;
    }
    if (!this.abandoned) this.onResult(result);
  }

  /** Resolves when every submitted row has settled. */
  drain(): Promise<void> {
    return this.inFlight === 0
      ? Promise.resolve()
      : new Promise((r) => {
          this.idleWaiters.push(r);
        });
  }

  /** Stop reporting: rows still in flight are left for the next run. */
  abandon(): void {
    this.abandoned = true;
  }

  async destroy(): Promise<void> {
    await this.piscina.destroy();
  }
}
