import { threadId, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { createAgent } from '../download.js';
import { processRow } from '../process-row.js';
import type { RowContext, RowResult, RowTask, WorkerConfig } from '../worker-config.js';
import { SharedLimits } from '../shared-limits.js';
import { Semaphore } from '../semaphore.js';

// Parallelism comes from many images in flight, one libvips thread each; no cache of decoded images.
sharp.concurrency(1);
sharp.cache(false);

const config = workerData as WorkerConfig;
const ctx: RowContext = {
  ...config,
  agent: createAgent(config.policy, config.concurrency),
  limits: new SharedLimits(config.limits, threadId),
  cpu: new Semaphore(1),
};

export default function fetchResize(task: RowTask): Promise<RowResult> {
  return processRow(task, ctx);
}
