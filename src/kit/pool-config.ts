/** A WorkerConfig for the pool alone (its tests and bench): tasks that never download or write. */
import type { WorkerConfig } from '../run/worker-config.js';
import { createSharedBuffer } from '../fetch/shared-limits.js';

export function bareWorkerConfig(threads: number, concurrency: number, maxHostConnections: number | null = 64): WorkerConfig {
  return {
    cdnResize: 'none',
    cdnHosts: [],
    verifyHash: null,
    tasksPerWorker: concurrency + 2,
    output: {
      store: { out: '/nonexistent', tmpDir: '/nonexistent', remote: null, retries: 0, timeoutMs: 30000, shard: null },
      format: 'files',
      samplesPerShard: 1,
      tarPrefix: 'pcb',
      run: 'bare',
    },
    resize: { mode: 'shortest-side', resolution: 1024, format: 'png', quality: 95, pngCompression: 6, pngFilter: true },
    policy: { timeoutMs: 1000, maxBytes: 1, retries: 0, backoffMs: 0, userAgent: 'x', allowPrivateNetwork: false, ignoreOptOut: false },
    limits: { buffer: createSharedBuffer(threads), maxRps: null, maxHostConnections, memoryBudgetBytes: 2 ** 30 },
  };
}

/** What a fixed --concurrency gives the pool: `concurrency` per thread plus two ready. */
export function bareCapacity(threads: number, concurrency: number): number {
  return threads * (concurrency + 2);
}
