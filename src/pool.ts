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

  get size(): number { return this.inFlight.size; }

  async submit(task: RowTask): Promise<void> {
    while (this.inFlight.size >= this.capacity) await Promise.race(this.inFlight);
    const p: Promise<void> = this.piscina.run(task).then(
      (r: RowResult) => this.onResult(r),
      (err: unknown) => this.onCrash(task, err),
    ).finally(() => { this.inFlight.delete(p); });
    this.inFlight.add(p);
  }

  /** Resolves when every submitted row has settled. */
  async drain(): Promise<void> {
    while (this.inFlight.size) await Promise.race(this.inFlight);
  }

  async destroy(): Promise<void> {
    await this.piscina.destroy();
  }
}
