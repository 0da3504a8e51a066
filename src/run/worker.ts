import { threadId, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { createAgent } from '../fetch/download.js';
import { processRow } from './process-row.js';
import type { RowContext, RowResult, RowTask, WorkerConfig } from './worker-config.js';
import { SharedLimits } from '../fetch/shared-limits.js';
import { Semaphore } from './semaphore.js';
import { createWriter } from '../output/writer.js';

// Parallelism comes from many images in flight, one libvips thread each; no cache of decoded images.
sharp.concurrency(1);
sharp.cache(false);

const config = workerData as WorkerConfig;
const limits = new SharedLimits(config.limits, threadId);
const ctx: RowContext = {
  ...config,
  agent: createAgent(config.policy, config.tasksPerWorker, () => limits.count('connections', 1)),
  limits,
  // The layout over the store, both chosen once from the options.
  writer: await createWriter(config.output, threadId),
  // One image in sharp at a time; the main thread reads the queue and the slot's use to size the pool.
  cpu: new Semaphore(1, { queued: (d) => limits.gauge('ready', d), running: (d) => limits.gauge('busy', d) }),
};

// How busy this thread's event loop is (HTTP, files, messages): with the CPU slot, what says the worker has no room.
let elu = performance.eventLoopUtilization();
setInterval(() => {
  const now = performance.eventLoopUtilization();
  limits.setGauge('loop', Math.round(performance.eventLoopUtilization(now, elu).utilization * 1000));
  elu = now;
}, 100).unref();

export default function fetchResize(task: RowTask): Promise<RowResult> {
  return processRow(task, ctx);
}
