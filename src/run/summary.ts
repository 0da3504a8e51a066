/** The run's summary: what was done, how the machine was used, and what bound it. */
import os from 'node:os';
import { POLICY_REFUSALS } from '../errors.js';
import type { DownloadOptions } from '../options.js';
import { SharedLimits } from '../fetch/shared-limits.js';
import type { Bound } from '../fetch/in-flight.js';
import type { RecordPaths } from '../output/paths.js';
import type { OutputStore } from '../output/store.js';
import { allocatorHint, detectAllocator, formatAllocator } from './allocator.js';
import { boundHint } from './bound-hint.js';
import type { RunMonitor } from './monitor.js';
import { noBounds } from './monitor.js';
import type { Planned } from './plan.js';
import type { HostSummary, Progress, Summary } from './progress.js';

/** What the dispatch stage leaves for the summary. */
export interface Dispatched {
  progress: Progress;
  stopping: boolean;
  firstDispatchS: number | null;
  limitsBuffer: SharedArrayBuffer;
  monitor: RunMonitor | null;
}

/** Requests the store sent again (the workers' and this thread's), or null where nothing is sent. */
export function storeRetries(store: OutputStore, workers: number): number | null {
  const own = store.takeRetries();
  return own === null ? null : workers + own;
}

/** The hosts with the most rows, with the limit each settled on and the pushback it gave. */
function hostSummaries(run: Dispatched, o: DownloadOptions): HostSummary[] {
  if (!run.monitor) return [];
  return run.monitor.busiestHosts(5).map(({ host, rows }) => {
    const r = SharedLimits.hostReport(run.limitsBuffer, host, o.maxHostConnections);
    return { host, rows, limit: r.limit, http_429: r.http429, http_503: r.http503, drops: r.drops, not_sent: r.notSent };
  });
}

export function summarize(
  o: DownloadOptions,
  planned: Pick<Planned, 'selected' | 'todo' | 'skippedFailed'>,
  run: Dispatched,
  records: { dest: RecordPaths; recordsS: number },
  store: OutputStore,
): Summary {
  const { progress } = run;
  const { selected, todo, skippedFailed } = planned;
  const wall = progress.elapsedS;
  const cpu = process.cpuUsage();
  const processed = progress.done;
  const limitedBy = run.monitor?.shares() ?? noBounds();
  const hosts = hostSummaries(run, o);
  const snap = SharedLimits.snapshot(run.limitsBuffer);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    ...machineSummary(o, { errors: progress.errors, skippedFailed, limitedBy, hosts, cpuS, wallS: wall, processes: 1 }),
    input: o.input,
    out: store.summaryPlace.out,
    state_dir: store.summaryPlace.stateDir,
    shard: o.shard ? `${o.shard.index}/${o.shard.count}` : null,
    shard_reason: o.shard?.reason ?? null,
    selected,
    processed,
    ok: progress.ok,
    failed: progress.failed,
    skipped: selected - todo,
    skipped_failed: skippedFailed,
    errors: progress.errors,
    http_statuses: progress.httpStatuses,
    bytes_downloaded: progress.bytes,
    wall_s: wall,
    images_per_s: processed / Math.max(wall, 1e-3),
    images_per_s_per_thread: processed / Math.max(wall, 1e-3) / o.threads,
    threads: o.threads,
    concurrency: o.concurrency,
    in_flight_peak: run.monitor?.peakInFlight ?? 0,
    parked_peak: run.monitor?.peakParked ?? 0,
    in_flight_limit: run.monitor?.limit ?? 0,
    limited_by: limitedBy,
    hosts,
    requests: progress.requests,
    connections_opened: snap.connections,
    interrupted: run.stopping,
    manifest: store.recordUrl(records.dest.manifest),
    metadata: store.recordUrl(records.dest.metadata),
    upload_retries: storeRetries(store, snap.uploadRetries),
    first_dispatch_s: run.firstDispatchS,
    cpu_s: cpuS,
    processes: 1,
    process_failures: [],
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    rendition_fallbacks: o.cdnResize === 'none' ? null : progress.renditionFallbacks,
    records_s: records.recordsS,
    memory_held_peak_bytes: SharedLimits.peakKiB(run.limitsBuffer) * 1024,
  };
}

/**
 * What the summary says of how the run used the machine, the same for one process and a coordinated
 * run: the cores it kept busy, the allocator, the hints, and what bound it in a sentence.
 */
export function machineSummary(
  o: DownloadOptions,
  run: {
    errors: Record<string, number>;
    skippedFailed: number;
    limitedBy: Record<Bound, number>;
    hosts: HostSummary[];
    cpuS: number;
    wallS: number;
    processes: number;
  },
): Pick<Summary, 'hints' | 'limited_by_hint' | 'cores_available' | 'cores_busy' | 'allocator'> {
  const cores = os.availableParallelism();
  const coresBusy = coresBusyShare(run.cpuS, run.wallS, cores);
  const allocator = detectAllocator();
  return {
    hints: [...hints(o, run.errors, run.skippedFailed), ...[allocatorHint(allocator, o.threads)].filter((h) => h !== null)],
    limited_by_hint: boundHint(run.limitedBy, {
      concurrency: o.concurrency,
      maxHostConnections: o.maxHostConnections,
      maxRps: o.maxRps,
      pushback: run.hosts.reduce((n, h) => n + h.http_429 + h.http_503, 0),
      threads: o.threads,
      processes: run.processes,
      cores,
      coresBusy,
    }),
    cores_available: cores,
    cores_busy: coresBusy,
    allocator: formatAllocator(allocator),
  };
}

/** CPU-seconds over wall-seconds over the cores: the share of the machine's cores the run kept busy. */
function coresBusyShare(cpuS: number, wallS: number, cores: number): number {
  return wallS > 0 ? Math.min(1, cpuS / wallS / cores) : 0;
}

/** What the user could change, when rows failed in a way a flag decides. */
function hints(o: DownloadOptions, errors: Record<string, number>, skippedFailed: number): string[] {
  const out = POLICY_REFUSALS.filter((r) => errors[r.code] && !r.lifted(o)).map(
    (r) => `${errors[r.code]} rows were refused as ${r.code} (${r.why}): add ${r.flag} if you mean to fetch them; the rerun retries them`,
  );
  if (skippedFailed && !o.retryFailed) out.push(`${skippedFailed} of the skipped rows failed for good before: --retry-failed retries them`);
  return out;
}
