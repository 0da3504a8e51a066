/** `pcb download` as the command line runs it: its options, signals, the summary on stdout, the exit status. */
import type { Command } from '@commander-js/extra-typings';
import { defaultMemoryBudget, defaultThreads, resolveProcesses, roundChunkSize, validateCombination } from '../../options.js';
import { shardFromEnvironment } from '../../shard.js';
import { DEFAULT_SAMPLES_PER_SHARD, OPT, resolutionFor } from '../cli-options.js';
import { outputPlace } from '../../output/place.js';
import { DEFAULT_IMGIX_HOSTS } from '../../fetch/cdn.js';
import { runDownload } from '../../run/run.js';
import { runCoordinated } from '../../run/coordinator.js';
import { formatSummary } from '../../run/progress.js';
import type { DownloadOptions } from '../../options.js';
import type { Summary } from '../../run/progress.js';
import { RunPaths } from '../../output/paths.js';
import { appendFileSync } from 'node:fs';

/** Each run's summary, one line in `.pcb/runs.jsonl` (the state folder's for s3://): the report shows a resumed dataset's runs in order. */
function recordRun(summary: Summary): void {
  try {
    appendFileSync(new RunPaths(summary.state_dir ?? summary.out).runsLog, JSON.stringify({ ...summary, finished_at: new Date().toISOString() }) + '\n');
  } catch {
    /* the summary still goes to stdout; the report then lacks this run's line */
  }
}

/** libuv's threadpool runs sharp's work for every thread; bin/pcb sizes it, a bare `node` keeps 4. */
function warnSmallThreadpool(o: DownloadOptions): void {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (pool < o.threads && !o.quiet) {
    process.stderr.write(
      `pcb: warning: libuv's threadpool has ${pool} threads for --threads ${o.threads}, so sharp runs at most ${pool} images at once: start pcb through bin/pcb (or npx pcb), which sizes it, or set UV_THREADPOOL_SIZE=${o.threads + 4}\n`,
    );
  }
}

export async function download(o: DownloadOptions): Promise<number> {
  warnSmallThreadpool(o);
  if (o.shard && !o.json && !o.quiet) process.stderr.write(`pcb: shard ${o.shard.index}/${o.shard.count} (${o.shard.reason})\n`);
  let signalCode = 0;
  const summary = await (o.processes > 1 ? runCoordinated : runDownload)(o, {
    warn: (msg) => {
      if (!o.quiet) process.stderr.write(`pcb: warning: ${msg}\n`);
    },
    onStart: (stop) => {
      const handler = (sig: NodeJS.Signals) => {
        const code = sig === 'SIGINT' ? 130 : 143;
        if (signalCode) {
          // Second signal: leave now. Images and captions are renamed into place whole, so nothing is half-written;
          // open multipart uploads are aborted first (for 3 s at most: a store that does not answer is not waited for).
          void Promise.race([stop(true), new Promise((r) => setTimeout(r, 3000).unref())]).finally(() => process.exit(code));
          return;
        }
        signalCode = code;
        // Stop the bar first: the notice then starts on a line of its own instead of over the bar.
        stop(false);
        process.stderr.write(`pcb: ${sig}: finishing rows in flight (a few seconds; again to quit now), then writing the records\n`);
      };
      process.on('SIGINT', handler);
      process.on('SIGTERM', handler);
    },
  });
  recordRun(summary);
  if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else process.stdout.write(formatSummary(summary) + '\n');
  if (signalCode) return signalCode;
  if (summary.process_failures.length) {
    process.stderr.write(`pcb: ${summary.process_failures[0]}; the rows it had in flight were not recorded: rerun to resume\n`);
    return 1;
  }
  if (o.maxFailureRate !== null && summary.processed > 0 && summary.failed / summary.processed > o.maxFailureRate) {
    process.stderr.write(
      `pcb: ${summary.failed} of ${summary.processed} rows failed (${((100 * summary.failed) / summary.processed).toFixed(1)} %), above --max-failure-rate ${o.maxFailureRate}; the manifest says why\n`,
    );
    return 3;
  }
  return 0;
}

const RESIZE_HELP = `
Resize modes (W×H is the oriented source, sides of the result are multiples of 64):
  shortest-side  k = resolution / min(W, H); W' = roundHalfEven(W·k / 64)·64, H' likewise
                 (the dataset's reference formula; Python's round, ties to even)
  area           k = sqrt(resolution·10⁶ / (W·H)); W' = roundHalfEven(W·k / 64)·64, H' likewise
  none           keep the source size (the source bytes as they are when nothing needs changing)
  No upscaling: where k > 1, each side is floored to a multiple of 64 instead.
  Images under 64 px on a side fail as too_small.

Exit status: 0 when the run finished (rows may have failed: see the summary and manifest),
1 on a fatal error, 2 on a usage error, 3 above --max-failure-rate, 130/143 when interrupted (rerun to resume).`;

export function register(program: Command): void {
  program
    .command('download')
    .description('fetch, resize and write <id>.<ext> + <id>.txt for every row of the parquet')
    .argument('<input.parquet>', 'parquet with image URLs and captions')
    .addOption(OPT.out())
    .addOption(OPT.stateDir())
    .addOption(OPT.urlColumn())
    .addOption(OPT.idColumn())
    .addOption(OPT.captionColumn())
    .addOption(OPT.fallbackCaptionColumn())
    .addOption(OPT.where())
    .addOption(OPT.limit())
    .addOption(OPT.resize())
    .addOption(OPT.resolution())
    .addOption(OPT.format())
    .addOption(OPT.quality())
    .addOption(OPT.pngCompression())
    .addOption(OPT.pngFilter())
    .addOption(OPT.noPngFilter())
    .addOption(OPT.threads())
    .addOption(OPT.processes())
    .addOption(OPT.concurrency())
    .addOption(OPT.chunkSize())
    .addOption(OPT.retries())
    .addOption(OPT.backoff())
    .addOption(OPT.timeout())
    .addOption(OPT.maxBytes())
    .addOption(OPT.maxRps())
    .addOption(OPT.maxHostConnections())
    .addOption(OPT.memoryBudget())
    .addOption(OPT.userAgent())
    .addOption(OPT.ignoreOptOut())
    .addOption(OPT.allowPrivateNetwork())
    .addOption(OPT.cdnResize())
    .addOption(OPT.cdnResizeHost())
    .addOption(OPT.verifyHash())
    .addOption(OPT.shard())
    .addOption(OPT.shardCount())
    .addOption(OPT.overwrite())
    .addOption(OPT.retryFailed())
    .addOption(OPT.manifest())
    .addOption(OPT.quiet())
    .addOption(OPT.json())
    .addOption(OPT.maxFailureRate())
    .addOption(OPT.outputFormat())
    .addOption(OPT.samplesPerShard())
    .addOption(OPT.samplesPerTar())
    .addHelpText('after', RESIZE_HELP)
    .action(async (input, opts, cmd) => {
      const given = opts.shard ?? shardFromEnvironment(process.env, opts.shardCount ?? null);
      const threads = opts.threads ?? defaultThreads();
      const o: DownloadOptions = {
        input,
        ...outputPlace(opts.out, opts.stateDir ?? null),
        urlColumn: opts.urlColumn,
        idColumn: opts.idColumn,
        captionColumn: opts.captionColumn,
        captionColumnExplicit: cmd.getOptionValueSource('captionColumn') === 'cli',
        fallbackCaptionColumn: opts.fallbackCaptionColumn,
        fallbackCaptionColumnExplicit: cmd.getOptionValueSource('fallbackCaptionColumn') === 'cli',
        where: opts.where ?? null,
        limit: opts.limit ?? null,
        resize: opts.resize,
        resolution: resolutionFor(opts.resize, opts.resolution),
        format: opts.format,
        quality: opts.quality,
        pngCompression: opts.pngCompression,
        pngFilter: opts.pngFilter !== false,
        threads,
        processes: resolveProcesses(opts.processes, threads),
        share: null,
        concurrency: opts.concurrency,
        chunkSize: roundChunkSize(opts.chunkSize),
        retries: opts.retries,
        backoffMs: opts.backoff * 1000,
        timeoutMs: Math.round(opts.timeout * 1000),
        maxBytes: opts.maxBytes,
        maxRps: opts.maxRps ?? null,
        maxHostConnections: opts.maxHostConnections ?? null,
        memoryBudgetBytes: opts.memoryBudget ?? defaultMemoryBudget(),
        userAgent: opts.userAgent,
        ignoreOptOut: Boolean(opts.ignoreOptOut),
        allowPrivateNetwork: Boolean(opts.allowPrivateNetwork),
        cdnResize: opts.cdnResize,
        cdnHosts: opts.cdnResizeHost ?? DEFAULT_IMGIX_HOSTS,
        verifyHash: opts.verifyHash ?? null,
        // 0/1 is the whole input: no shard files, no hash filter.
        shard: given && given.count > 1 ? given : null,
        overwrite: Boolean(opts.overwrite),
        retryFailed: Boolean(opts.retryFailed),
        manifest: opts.manifest ?? null,
        quiet: Boolean(opts.quiet),
        json: Boolean(opts.json),
        maxFailureRate: opts.maxFailureRate ?? null,
        outputFormat: opts.outputFormat,
        samplesPerShard: opts.samplesPerShard ?? opts.samplesPerTar ?? DEFAULT_SAMPLES_PER_SHARD,
      };
      validateCombination(o);
      process.exitCode = await download(o);
    });
}
