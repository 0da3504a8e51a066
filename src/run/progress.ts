import cliProgress from 'cli-progress';
import pc from 'picocolors';
import prettyBytes from 'pretty-bytes';
import type { RowResult } from '../result.js';
import type { Bound } from '../fetch/in-flight.js';

/** One of the busiest hosts: the limit on open requests it settled on, and the pushback it gave. */
export interface HostSummary {
  host: string;
  rows: number;
  limit: number;
  http_429: number;
  http_503: number;
  /** Timeouts and dropped connections. */
  drops: number;
  /** Requests not sent while the host gave no answer at all (see CIRCUIT in host-limit.ts). */
  not_sent: number;
}

export interface Summary {
  input: string;
  out: string;
  shard: string | null;
  /** Where the shard came from: --shard, a Slurm array task, a Kubernetes Indexed Job. */
  shard_reason: string | null;
  selected: number;
  processed: number;
  ok: number;
  failed: number;
  skipped: number;
  /** Skipped rows whose earlier outcome was a permanent failure. */
  skipped_failed: number;
  /** Failed rows by HTTP status (http_status errors). */
  http_statuses: Record<string, number>;
  /** What a flag would change, in a line each. */
  hints: string[];
  errors: Record<string, number>;
  bytes_downloaded: number;
  wall_s: number;
  images_per_s: number;
  images_per_s_per_thread: number;
  threads: number;
  concurrency: number | 'auto';
  /** The most rows at work at once (fetching, ready or on the CPU). */
  in_flight_peak: number;
  /** The most rows parked at once on top of them: waiting for a retry, a host's limit or the rate cap. */
  parked_peak: number;
  /** The limit on rows at work at the end. */
  in_flight_limit: number;
  /** Share of the run (while the input lasted) that each stage held it back: cpu, network, host, budget. */
  limited_by: Record<Bound, number>;
  /** What bound the run and what to change, or that nothing needs changing. */
  limited_by_hint: string | null;
  hosts: HostSummary[];
  /** Requests sent (retries and redirects' first hops included). */
  requests: number;
  /** Connections opened across the pool: well under the requests when keep-alive holds. */
  connections_opened: number;
  interrupted: boolean;
  /** Where the store keeps its samples elsewhere (a bucket): the local folder that holds the run's state (log, lock, records before upload). */
  state_dir: string | null;
  /** Requests the store made pcb retry (throttling, dropped connections); null where it sends none (a folder). */
  upload_retries: number | null;
  /** Seconds from start to the first row handed to the pool (planning time, resume included). */
  first_dispatch_s: number | null;
  /** CPU seconds (user + system) of the whole run: every process, main thread, workers, libuv pool. */
  cpu_s: number;
  /** Cores this machine gives the run. */
  cores_available: number;
  /** cpu_s / wall_s / cores_available: 1 when every core was busy the whole run. */
  cores_busy: number;
  /** Processes the run was split over (--processes). */
  processes: number;
  /** The allocator: jemalloc, glibc (with its arena cap when set) or the system's. */
  allocator: string;
  /** Processes of the run that died before they finished (their rows in flight are redone by the next run). */
  process_failures: string[];
  peak_rss_bytes: number;
  manifest: string;
  metadata: string;
  /** With --cdn-resize: ok rows that fell back to the original because the rendition did not cover the target. */
  rendition_fallbacks: number | null;
  /** Seconds spent rebuilding manifest.parquet and metadata.parquet at the end. */
  records_s: number;
  /** The most downloaded-but-unprocessed bytes held at once across the pool (--memory-budget caps it). */
  memory_held_peak_bytes: number;
}

const WINDOW = 500;
const WARN_RATE = 0.2;

/**
 * The bar's format for a terminal `columns` wide: the text at its widest (every count at the total, an
 * ETA of hours) plus a bar that fills what is left; MB/s goes first when even a short bar would not fit.
 */
export function barFormat(columns: number, total: number): { format: string; barsize: number } {
  const n = String(total).length;
  const widest = (withMbps: boolean) =>
    ` ${'9'.repeat(n)}/${'9'.repeat(n)} | 9999.9 img/s${withMbps ? ' | 9999.9 MB/s' : ''} | 99999 in flight | ok ${'9'.repeat(n)} failed ${'9'.repeat(n)} | ETA 9999h59m`
      .length;
  const withMbps = columns - 1 - widest(true) >= 10;
  return {
    format: `{bar} {value}/{total} | {ips} img/s${withMbps ? ' | {mbps} MB/s' : ''} | {inflight} in flight | ok {ok} failed {failed} | ETA {eta_formatted}`,
    barsize: Math.max(3, Math.min(40, columns - 1 - widest(withMbps))),
  };
}

/** Counts of a run, the live bar (TTY) or a periodic line (not a TTY), and the failure-rate warning. */
export class Progress {
  ok = 0;
  failed = 0;
  bytes = 0;
  renditionFallbacks = 0;
  requests = 0;
  /** Rows in flight now, for the bar (set once the pool runs). */
  inFlight: () => number = () => 0;
  readonly errors: Record<string, number> = {};
  /** Failed rows by HTTP status (http_status errors). */
  readonly httpStatuses: Record<string, number> = {};
  private stopped = false;
  private readonly started = Date.now();
  private readonly recent: (string | null)[] = [];
  private lastWarnAt = -WINDOW;
  private readonly bar: cliProgress.SingleBar | null;
  private readonly timer: NodeJS.Timeout | null = null;

  constructor(
    readonly total: number,
    private readonly mode: { quiet: boolean; warn: boolean; tty: boolean },
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    if (!mode.quiet && mode.tty) {
      this.bar = new cliProgress.SingleBar(
        {
          ...barFormat(this.stream.columns || 80, total),
          stream: this.stream,
          hideCursor: true,
          etaBuffer: 200,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, this.payload());
    } else {
      this.bar = null;
      if (!mode.quiet) {
        this.timer = setInterval(() => this.line(), 5000);
        this.timer.unref();
      }
    }
  }

  get done(): number {
    return this.ok + this.failed;
  }
  get elapsedS(): number {
    return (Date.now() - this.started) / 1000;
  }

  private payload() {
    const s = Math.max(this.elapsedS, 1e-3);
    return { ips: (this.done / s).toFixed(1), mbps: (this.bytes / 1e6 / s).toFixed(1), inflight: this.inFlight(), ok: this.ok, failed: this.failed };
  }

  private line(): void {
    const p = this.payload();
    const left = this.total - this.done;
    const eta = this.done ? Math.round((left * this.elapsedS) / this.done) : NaN;
    this.stream.write(
      `pcb: ${this.done}/${this.total} rows | ${p.ips} img/s | ${p.mbps} MB/s | ${p.inflight} in flight | ok ${p.ok} failed ${p.failed}${Number.isFinite(eta) ? ` | ETA ${eta}s` : ''}\n`,
    );
  }

  add(r: RowResult): void {
    if (r.status === 'ok') {
      this.ok++;
      if (r.source === 'original') this.renditionFallbacks++;
    } else {
      this.failed++;
      if (r.error) this.errors[r.error] = (this.errors[r.error] ?? 0) + 1;
      if (r.error === 'http_status' && r.http_status !== null) this.httpStatuses[r.http_status] = (this.httpStatuses[r.http_status] ?? 0) + 1;
    }
    this.bytes += r.bytes;
    this.requests += r.attempts;
    this.recent.push(r.status === 'ok' ? null : r.error);
    if (this.recent.length > WINDOW) this.recent.shift();
    if (this.stopped) return;
    this.bar?.update(this.done, this.payload());
    this.maybeWarn();
  }

  /** A row counted ok turned out failed after all (its tar was refused by the store). */
  revise(error: string): void {
    this.ok--;
    this.failed++;
    this.errors[error] = (this.errors[error] ?? 0) + 1;
  }

  /** A warning when more than 20 % of the last 500 rows failed, naming the top error codes. */
  private maybeWarn(): void {
    if (!this.mode.warn || this.recent.length < WINDOW || this.done - this.lastWarnAt < WINDOW) return;
    const failures = this.recent.filter((e) => e !== null) as string[];
    if (failures.length / this.recent.length <= WARN_RATE) return;
    this.lastWarnAt = this.done;
    const counts = new Map<string, number>();
    for (const e of failures) counts.set(e, (counts.get(e) ?? 0) + 1);
    const top = [...counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([e, n]) => `${e} ${n}`)
      .join(', ');
    const msg = `pcb: warning: ${failures.length} of the last ${this.recent.length} rows failed (${top}); check the URLs, the network or --max-rps`;
    if (this.bar) this.bar.stop();
    this.stream.write(pc.yellow(msg) + '\n');
    if (this.bar) this.bar.start(this.total, this.done, this.payload());
  }

  /** Ends the bar for good (its last line stays, the cursor moves past it): nothing is drawn after this. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.bar) this.bar.stop();
  }
}

/** "404 ×9, 403 ×3": the most frequent statuses first, at most five. */
function topStatuses(m: Record<string, number>): string {
  const all = Object.entries(m).sort((a, b) => b[1] - a[1]);
  return (
    all
      .slice(0, 5)
      .map(([st, n]) => `${st} ×${n}`)
      .join(', ') + (all.length > 5 ? ', …' : '')
  );
}

/** "CPU 92 % · network 5 % · host 3 % · budget 0 %" */
function formatShares(shares: Record<Bound, number>): string {
  const names: Record<Bound, string> = { cpu: 'CPU', network: 'network', host: 'host', budget: 'memory budget', store: 'store' };
  // The store's share only when it held the run back: a local folder never does.
  return (Object.keys(names) as Bound[])
    .filter((k) => k !== 'store' || shares.store > 0)
    .map((k) => `${names[k]} ${Math.round(shares[k] * 100)} %`)
    .join(' · ');
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function formatSummary(s: Summary): string {
  const errors = Object.entries(s.errors)
    .sort((a, b) => b[1] - a[1])
    .map(([e, n]) => `  ${e.padEnd(20)} ${n}${e === 'http_status' && Object.keys(s.http_statuses).length ? ` (${topStatuses(s.http_statuses)})` : ''}`)
    .join('\n');
  const skipped = s.skipped_failed
    ? `${s.skipped} (done before: ${s.skipped - s.skipped_failed} ok, ${s.skipped_failed} failed for good)`
    : `${s.skipped} (done before)`;
  return [
    `${s.interrupted ? pc.yellow('interrupted') : pc.green('done')}: ${s.processed} rows processed of ${s.selected} selected${s.shard ? ` (shard ${s.shard})` : ''}`,
    `  ok ${s.ok} · failed ${s.failed} · skipped ${skipped}`,
    ...(errors ? ['failed by error code:', errors] : []),
    ...s.hints.map((h) => pc.yellow(`hint: ${h}`)),
    ...(s.errors.internal_error
      ? [pc.yellow(`  ${s.errors.internal_error} rows hit a bug in pcb (internal_error): please report it, with their message from the manifest`)]
      : []),
    `  ${s.wall_s.toFixed(1)} s wall · ${s.images_per_s.toFixed(2)} img/s · ${s.images_per_s_per_thread.toFixed(2)} img/s per thread (${plural(s.threads, 'thread')}${s.processes > 1 ? ` in ${s.processes} processes` : ''}) · ${prettyBytes(s.bytes_downloaded)} downloaded`,
    `  cores busy ${Math.round(s.cores_busy * 100)} % of ${s.cores_available} (${s.cpu_s.toFixed(1)} CPU-s) · allocator ${s.allocator}`,
    ...(s.requests
      ? [
          `  in flight: up to ${s.in_flight_peak} rows (${s.concurrency === 'auto' ? `auto, last limit ${s.in_flight_limit}` : `--concurrency ${s.concurrency}`})` +
            (s.parked_peak ? `, and up to ${s.parked_peak} waiting for a retry or a host` : '') +
            ` · ${plural(s.requests, 'request')} on ${plural(s.connections_opened, 'connection')}`,
        ]
      : []),
    ...(s.limited_by_hint ? [`  limited by: ${formatShares(s.limited_by)}`, `    ${s.limited_by_hint}`] : []),
    ...s.hosts.map(
      (h) =>
        `  host ${h.host}: ${plural(h.rows, 'row')}, limit ${h.limit} open requests, ${h.http_429} × 429, ${h.http_503} × 503, ${h.drops} timeouts/drops` +
        (h.not_sent ? `, ${plural(h.not_sent, 'request')} not sent while it gave no answer` : ''),
    ),
    ...(s.rendition_fallbacks !== null
      ? [`  --cdn-resize: ${s.ok - s.rendition_fallbacks} from renditions · originals used after a rendition fell short: ${s.rendition_fallbacks}`]
      : []),
    ...(s.upload_retries ? [`  uploads: ${plural(s.upload_retries, 'request')} retried after the store pushed back or dropped the connection`] : []),
    ...s.process_failures.map((f) => pc.red(`  ${f}`)),
    `  images and captions in ${s.out}`,
    `  manifest ${s.manifest}`,
    `  metadata ${s.metadata}`,
    `  report: pcb report ${s.out}${s.state_dir ? ` --state-dir ${s.state_dir}` : ''}`,
  ].join('\n');
}
