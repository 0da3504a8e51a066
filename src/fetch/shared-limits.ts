/**
 * Limits shared by every worker thread of the pool through one SharedArrayBuffer, one class per concern
 * over its slice (limits/): the request rate (--max-rps), per-host limits and circuits, the downloaded-
 * bytes budget (--memory-budget), the gauges the main thread samples, and each worker's ledger of what it
 * holds. This is what a worker holds of them, in one object. Hand-written because no kept library shares
 * state across worker_threads.
 */
import { MemoryBudget } from './limits/budget.js';
import { Gauges } from './limits/gauges.js';
import { HostLimits } from './limits/hosts.js';
import { Ledger } from './limits/ledger.js';
import { RateLimit } from './limits/rate.js';

export { createSharedBuffer, hostHash, hostSlot, GAUGES } from './limits/layout.js';
export type { Gauge } from './limits/layout.js';
export { HOST_CEILING } from './limits/hosts.js';
export type { HostPermit, HostReport } from './limits/hosts.js';
export type { Snapshot } from './limits/gauges.js';

export interface SharedLimitsInit {
  buffer: SharedArrayBuffer;
  maxRps: number | null;
  /** The hard ceiling on one host's limit; null: HOST_CEILING. */
  maxHostConnections: number | null;
  /** Processes of the run this one is a share of: each host's limit starts at this process's share. */
  processes?: number;
  memoryBudgetBytes: number;
}

export class SharedLimits {
  readonly ledger: Ledger;
  readonly gauges: Gauges;
  readonly rate: RateLimit;
  readonly hosts: HostLimits;
  readonly budget: MemoryBudget;

  constructor(init: SharedLimitsInit, owner: number) {
    this.ledger = new Ledger(init.buffer, owner);
    this.gauges = new Gauges(init.buffer, this.ledger);
    this.rate = new RateLimit(init.buffer, init.maxRps, this.gauges);
    this.hosts = new HostLimits(init.buffer, init.maxHostConnections, init.processes ?? 1, this.ledger, this.gauges);
    this.budget = new MemoryBudget(init.buffer, init.memoryBudgetBytes, this.ledger, this.gauges);
  }

  // What the download and the row use, by the names they have always called.
  readonly takeRequestToken = () => this.rate.take();
  readonly acquireHost = (host: string) => this.hosts.acquire(host);
  readonly waiting = <T>(gauge: Parameters<Gauges['waiting']>[0], wait: () => Promise<T>) => this.gauges.waiting(gauge, wait);
  readonly gauge = (gauge: Parameters<Gauges['gauge']>[0], delta: number) => this.gauges.gauge(gauge, delta);
  readonly setGauge = (gauge: Parameters<Gauges['setGauge']>[0], value: number) => this.gauges.setGauge(gauge, value);
  readonly count = (counter: Parameters<Gauges['count']>[0], n: number) => this.gauges.count(counter, n);
  readonly waitForRoom = () => this.budget.waitForRoom();
  readonly reserve = (bytes: number) => this.budget.reserve(bytes);
  readonly ticket = () => this.budget.ticket();
  readonly holdChunk = (bytes: number, ticket: number) => this.budget.holdChunk(bytes, ticket);
  readonly endAttempt = (ticket: number) => this.budget.endAttempt(ticket);
  readonly settle = (kib: number) => this.budget.settle(kib);
  readonly release = (kib: number, settled: boolean, ticket = 0) => this.budget.release(kib, settled, ticket);

  // The main thread's reads of the buffer.
  static heldKiB = MemoryBudget.heldKiB;
  static peakKiB = MemoryBudget.peakKiB;
  static snapshot = Gauges.snapshot;
  static hostReport = HostLimits.hostReport;
  static hostConnections = HostLimits.hostConnections;
  static settleWorker = Ledger.settleWorker;
}
