import { Piscina } from 'piscina';
import { fileURLToPath } from 'node:url';
import type { RowSettings } from './process-row.js';
import type { SharedLimitsInit } from './shared-limits.js';
import type { RowResult, RowTask } from './result.js';

/** Everything a worker needs, sent once when the pool starts. */
export interface WorkerConfig extends RowSettings {
  concurrency: number;
  limits: SharedLimitsInit;
}

/**
 * A Piscina pool with backpressure: submit() waits while `threads × concurrency` rows plus a small
 * queue are in flight, so the main thread never holds more than that plus one chunk.
 */
export class RowPool {
  private readonly piscina: Piscina;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly capacity: number;

  constructor(config: WorkerConfig, threads: number, private readonly onResult: (r: RowResult) => void,
    private readonly onCrash: (task: RowTask, err: unknown) => void) {
    this.piscina = new Piscina({
      filename: fileURLToPath(new URL('./workers/fetch-resize.js', import.meta.url)),
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: config.concurrency,
      idleTimeout: 60_000,
      workerData: config,
    });
    this.capacity = threads * config.concurrency + threads * 2;
  }

  private abandoned = false;

  async submit(task: RowTask): Promise<void> {
    while (this.inFlight.size >= this.capacity) await Promise.race(this.inFlight);
    const p: Promise<void> = this.runTask(task).finally(() => { this.inFlight.delete(p); });
    this.inFlight.add(p);
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
  async drain(): Promise<void> {
    while (this.inFlight.size) await Promise.race(this.inFlight);
  }

  /** Stop reporting: rows still in flight are left for the next run. */
  abandon(): void {
    this.abandoned = true;
  }

  async destroy(): Promise<void> {
    await this.piscina.destroy();
  }
}
