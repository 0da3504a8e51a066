/** What the main thread sends each worker once, and what a worker works with: shared by both sides. */
import type { Dispatcher } from 'undici';
import type { ResizeOptions } from '../image/resize.js';
import type { DownloadPolicy } from '../fetch/download.js';
import type { CdnResize } from '../fetch/cdn.js';
import type { SharedLimits, SharedLimitsInit } from '../fetch/shared-limits.js';
import type { Semaphore } from './semaphore.js';
import type { HashAlgorithm } from '../options.js';
import type { OutputSettings, SampleWriter } from '../output/writer.js';
export type { RowResult, RowTask } from '../result.js';

/** How every row of a run is processed: the same for all workers, sent once as plain data. */
export interface RowSettings {
  resize: ResizeOptions;
  policy: DownloadPolicy;
  cdnResize: CdnResize;
  cdnHosts: string[];
  output: OutputSettings;
  /** --verify-hash's algorithm; null: no check. */
  verifyHash: HashAlgorithm | null;
}

/** Everything a worker needs, sent once when the pool starts. */
export interface WorkerConfig extends RowSettings {
  /** Rows at work one worker may hold at once, and its connections per host (Piscina may give it twice this: see poolBounds). */
  tasksPerWorker: number;
  limits: SharedLimitsInit;
}

/** A worker's settings plus what it owns: its HTTP agent, the shared limits, its CPU slots. */
export interface RowContext extends RowSettings {
  agent: Dispatcher;
  /** Where ok samples go: the flat folder or this worker's tar. */
  writer: SampleWriter;
  limits: SharedLimits;
  /**
   * Images decoding/encoding at once in this worker (one): downloads overlap freely, but more images in
   * sharp than threads add no throughput and hold more decoded pixels in memory.
   */
  cpu: Semaphore;
}
