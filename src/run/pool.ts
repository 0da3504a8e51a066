import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import type { RowResult, RowTask } from '../result.js';
import type { WorkerConfig } from './worker-config.js';
import { SharedLimits } from '../fetch/shared-limits.js';

export const FETCH_RESIZE_WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

/**
 * A Piscina pool with backpressure: submit() waits while `capacity` rows are in flight, so the main
 * thread never holds more than that plus one chunk. The capacity is fixed (--concurrency n) or moved
 * by the in-flight controller each tick (auto). The wait is a counter and one promise: O(1) per row at
 * any capacity.
 */
export class RowPool {
  private readonly piscina: Piscina;
  private capacity: number;
  private _inFlight = 0;
  /** The one submit() waiting for room (the main loop submits one row at a time). */
  private roomWaiter: (() => void) | null = null;
  private idleWaiters: (() => void)[] = [];
  private abandoned = false;

  constructor(
    config: WorkerConfig,
    threads: number,
    capacity: number,
    private readonly onResult: (r: RowResult) => void,
    private readonly onCrash: (task: RowTask, err: unknown) => void,
    filename = FETCH_RESIZE_WORKER,
    /** A worker died mid-run (not the pool's own shutdown): what it owned alone is to be given up. */
    onWorkerGone?: (threadId: number) => void,
  ) {
    this.piscina = new Piscina({
      filename,
      minThreads: threads,
      maxThreads: threads,
      // Room for as many parked rows as rows at work (see poolBounds).
      concurrentTasksPerWorker: config.tasksPerWorker * 2,
      idleTimeout: 60_000,
      workerData: config,
    });
    // A dead worker's finally blocks never run: give back the host slots and bytes its ledger holds.
    this.piscina.on('workerDestroy', (w: { id: number }) => {
      SharedLimits.settleWorker(config.limits.buffer, w.id);
      if (!this.destroying) onWorkerGone?.(w.id);
    });
    this.piscina.on('error', () => undefined);
    this.capacity = capacity;
  }

  get inFlight(): number {
    return this._inFlight;
  }

  /** Rows allowed in flight from now on; a raise lets a waiting submit() through at once. */
  setCapacity(n: number): void {
    this.capacity = Math.max(1, n);
    if (this._inFlight < this.capacity) this.wake();
  }

  private wake(): void {
    const room = this.roomWaiter;
    this.roomWaiter = null;
    room?.();
  }

  async submit(task: RowTask): Promise<void> {
    while (this._inFlight >= this.capacity)
      await new Promise<void>((r) => {
        this.roomWaiter = r;
      });
    this._inFlight++;
    void this.runTask(task).finally(() => {
      this._inFlight--;
      this.wake();
      if (this._inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
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
    return this._inFlight === 0
      ? Promise.resolve()
      : new Promise((r) => {
          this.idleWaiters.push(r);
        });
  }

  /** Stop reporting: rows still in flight are left for the next run. */
  abandon(): void {
    this.abandoned = true;
  }

  private destroying = false;

  async destroy(): Promise<void> {
    this.destroying = true;
    await this.piscina.destroy();
  }
}
