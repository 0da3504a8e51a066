/**
 * The main thread's view of the pool while rows flow: samples the workers' gauges (shared-limits.ts)
 * every few milliseconds, feeds the in-flight controller each tick and applies its number to the pool
 * (`--concurrency auto`), and counts what bound each tick, for the summary and its hints.
 */
import os from 'node:os';
import { CPU_BOUND, InFlightController, START_PER_THREAD, classifyTick } from '../fetch/in-flight.js';
import type { Bound, DemandSample } from '../fetch/in-flight.js';
import { SharedLimits } from '../fetch/shared-limits.js';
import type { Snapshot } from '../fetch/shared-limits.js';

const SAMPLE_MS = 20;
const SAMPLES_PER_TICK = 5;
/** Hosts remembered for the summary: enough for any real list of CDNs, bounded for a list of a million hosts. */
const MAX_HOSTS = 10_000;

export interface PoolLike {
  readonly inFlight: number;
  setCapacity(n: number): void;
}

export interface MonitorOptions {
  threads: number;
  /** null: auto; a number: that many per thread, fixed. */
  perThread: number | null;
  /** Rows a worker may hold (Piscina's concurrentTasksPerWorker): the pool never asks for more. */
  tasksPerWorker: number;
}

/**
 * Rows at work the pool starts with and never goes below or above; and `parked`, the most rows it holds
 * on top of them while they wait for something that is not work: a retry's backoff, a host's limit, the
 * rate cap. A parked row holds no socket and no bytes. Counted against the limit, the rows of one dead
 * host filled the pool while the other hosts' rows waited (measured: 3,000 rows with 1 in 10 on a
 * refusing host took 112 s, not 15).
 */
export function poolBounds(o: MonitorOptions): { start: number; min: number; max: number; parked: number } {
  const parked = o.threads * o.tasksPerWorker;
  if (o.perThread !== null) {
    const fixed = o.threads * o.perThread + o.threads * 2;
    return { start: fixed, min: fixed, max: fixed, parked };
  }
  return { start: o.threads * START_PER_THREAD, min: o.threads * 10, max: o.threads * o.tasksPerWorker, parked };
}

export class RunMonitor {
  private readonly controller: InFlightController | null;
  private readonly bounds: ReturnType<typeof poolBounds>;
  private timer: NodeJS.Timeout | null = null;
  private samples = 0;
  private sums = { ready: 0, busy: 0, hostWaiting: 0, budgetWaiting: 0, loop: 0, heldBack: 0, storeWaiting: 0 };
  private last: Snapshot;
  private fetchMs: number | null = null;
  /** Process CPU ms per settled row, smoothed. */
  private cpuPerRowMs: number | null = null;
  private lastCpu = process.cpuUsage();
  private lastTickAt = performance.now();
  private settledRows = 0;
  private lastSettled = 0;
  /** Cores the run can keep busy: its threads, or the machine's cores if fewer. */
  private readonly cores: number;
  private exhausted = false;
  readonly ticks: Record<Bound, number> = noBounds();
  /** The most rows at work at once, and the most parked (see poolBounds). */
  peakInFlight = 0;
  peakParked = 0;
  private readonly hostRows = new Map<string, number>();

  constructor(
    private readonly buffer: SharedArrayBuffer,
    private readonly pool: PoolLike,
    private readonly o: MonitorOptions,
  ) {
    const b = (this.bounds = poolBounds(o));
    this.controller = o.perThread === null ? new InFlightController({ threads: o.threads, min: b.min, max: b.max }) : null;
    this.last = SharedLimits.snapshot(buffer);
    this.cores = Math.max(1, Math.min(o.threads, os.availableParallelism()));
  }

  /** The run waits for the store to take closed tars. */
  storeHeld: () => boolean = () => false;

  get limit(): number {
    return this.controller?.limit ?? this.bounds.start;
  }

  start(): void {
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  /** The input has run out: from now on the pool empties by design, which says nothing about bounds. */
  inputDone(): void {
    this.exhausted = true;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** A row settled: counted for the CPU per row, and its host for the summary's busiest hosts. */
  settled(url: string | null): void {
    this.settledRows++;
    let host: string;
    try {
      host = new URL(url ?? '').host;
    } catch {
      return;
    }
    const n = this.hostRows.get(host);
    if (n !== undefined) this.hostRows.set(host, n + 1);
    else if (this.hostRows.size < MAX_HOSTS) this.hostRows.set(host, 1);
  }

  /** The hosts with the most rows, busiest first. */
  busiestHosts(n: number): { host: string; rows: number }[] {
    return [...this.hostRows]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([host, rows]) => ({ host, rows }));
  }

  /** Share of the run's ticks bound by each stage (before the input ran out). */
  shares(): Record<Bound, number> {
    const total = Object.values(this.ticks).reduce((a, b) => a + b, 0);
    const out = noBounds();
    if (total) for (const k of Object.keys(out) as Bound[]) out[k] = this.ticks[k] / total;
    return out;
  }

  private sample(): void {
    const s = SharedLimits.snapshot(this.buffer);
    this.sums.ready += s.ready;
    this.sums.busy += s.busy;
    this.sums.hostWaiting += s.hostWaiting;
    this.sums.heldBack += s.heldBack;
    this.sums.budgetWaiting += s.budgetWaiting;
    this.sums.loop += s.loop;
    // Rows uploading, or every row while the run waits for the store to take its tars.
    this.sums.storeWaiting += this.storeHeld() ? Math.max(1, this.pool.inFlight) : s.storing;
    const parked = this.parked(s);
    this.peakInFlight = Math.max(this.peakInFlight, this.pool.inFlight - parked);
    this.peakParked = Math.max(this.peakParked, parked);
    if (++this.samples < SAMPLES_PER_TICK) return;
    this.tick(s, parked);
  }

  /** Rows the pool holds on top of its limit now: waiting for a retry, a host's limit or the rate cap. */
  private parked(s: Snapshot): number {
    return Math.min(s.backoff + s.hostWaiting, this.bounds.parked);
  }

  private tick(s: Snapshot, parked: number): void {
    const n = this.samples;
    const now = performance.now();
    const cpu = process.cpuUsage(this.lastCpu);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    this.cpuPerRowMs = smoothed(this.cpuPerRowMs, cpuMs * 1000, this.settledRows - this.lastSettled);
    this.lastCpu = process.cpuUsage();
    this.lastSettled = this.settledRows;
    // pcb's own CPU over the cores it may use, not the machine's busy share: beside other processes' work, a run
    // waiting for bytes read as CPU-bound. A run starved of CPU by others still shows it: its workers' slots stay full.
    const ownCpu = cpuMs / Math.max(1, (now - this.lastTickAt) * this.cores);
    this.lastTickAt = now;
    const sample: DemandSample = {
      inFlight: this.pool.inFlight - parked,
      ready: this.sums.ready / n,
      // Room on the CPU: none when pcb used every core it may use, or when every worker's CPU slot or event loop is busy.
      busy: Math.min(1, Math.max(this.sums.busy / n / this.o.threads, this.sums.loop / 1000 / n / this.o.threads, ownCpu)),
      // Rows the host put back count as host-bound time, as rows waiting for its limit do.
      hostWaiting: (this.sums.hostWaiting + this.sums.heldBack) / n,
      heldBack: this.sums.heldBack / n,
      budgetWaiting: this.sums.budgetWaiting / n,
      storeWaiting: this.sums.storeWaiting / n,
      capacity: this.cpuPerRowMs ? (this.cores * 1000) / this.cpuPerRowMs : null,
      fetchMs: (this.fetchMs = smoothed(this.fetchMs, s.fetchUs - this.last.fetchUs, s.fetches - this.last.fetches)),
      exhausted: this.exhausted,
    };
    this.last = s;
    this.samples = 0;
    this.sums = { ready: 0, busy: 0, hostWaiting: 0, budgetWaiting: 0, loop: 0, heldBack: 0, storeWaiting: 0 };
    // Ticks with work to spare say what bound the run; once the input has run out, an idle pool bounds nothing.
    // A run held back for the store may have no row at work at all: that tick is the store's (an idle Piscina
    // worker blocks in Atomics.wait, which its event loop counts as busy, so `busy` says nothing then).
    if (sample.inFlight === 0 && sample.storeWaiting > 0) this.ticks.store++;
    else if (sample.inFlight > 0 && (!this.exhausted || sample.busy >= CPU_BOUND)) this.ticks[classifyTick(sample)]++;
    const limit = this.controller ? this.controller.onSample(sample, now) : this.bounds.start;
    this.pool.setCapacity(limit + parked);
  }
}

/** A running mean in ms of `us` over `n` events, smoothed across ticks; unchanged without events. */
function smoothed(prev: number | null, us: number, n: number): number | null {
  if (n <= 0) return prev;
  const ms = us / n / 1000;
  return prev === null ? ms : prev * 0.7 + ms * 0.3;
}

/** Each bound's share of a run that measured nothing. */
export function noBounds(): Record<Bound, number> {
  return { cpu: 0, network: 0, host: 0, budget: 0, store: 0 };
}
