import { Command, CommanderError, Option } from '@commander-js/extra-typings';
import { FatalError, UsageError } from './errors.js';
import {
  choiceOption,
  defaultMemoryBudget,
  defaultThreads,
  resolveProcesses,
  numberOption,
  roundChunkSize,
  shardFromEnvironment,
  validateCombination,
} from './options.js';
import { OPT, resolutionFor } from './cli-options.js';
import type { DownloadOptions } from './options.js';
import { DEFAULT_IMGIX_HOSTS } from './cdn.js';
import { VERSION } from './version.js';
import { runDownload } from './run.js';
import { runCoordinated } from './coordinator.js';
import { formatSummary } from './progress.js';
import { runInspect } from './commands/inspect.js';
import { runConfig } from './commands/config.js';
import { runStatus } from './commands/status.js';
import { runMerge } from './commands/merge.js';

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

function buildProgram() {
  const program = new Command('pcb')
    .description('Turn a parquet list of image URLs and captions into a training-ready folder of resized images and caption files.')
    .version(VERSION)
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`pcb: ${str.replace(/^error: /, '')}`) });

  program
    .command('download')
    .description('fetch, resize and write <id>.<ext> + <id>.txt for every row of the parquet')
    .argument('<input.parquet>', 'parquet with image URLs and captions')
    .addOption(OPT.out())
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
    .addOption(OPT.shard())
    .addOption(OPT.shardCount())
    .addOption(OPT.overwrite())
    .addOption(OPT.retryFailed())
    .addOption(OPT.manifest())
    .addOption(OPT.quiet())
    .addOption(OPT.json())
    .addOption(OPT.maxFailureRate())
    .addOption(OPT.outputFormat())
    .addOption(OPT.samplesPerTar())
    .addHelpText('after', RESIZE_HELP)
    .action(async (input, opts, cmd) => {
      const given = opts.shard ?? shardFromEnvironment(process.env, opts.shardCount ?? null);
      const threads = opts.threads ?? defaultThreads();
      const o: DownloadOptions = {
        input,
        out: opts.out,
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
        // 0/1 is the whole input: no shard files, no hash filter.
        shard: given && given.count > 1 ? given : null,
        overwrite: Boolean(opts.overwrite),
        retryFailed: Boolean(opts.retryFailed),
        manifest: opts.manifest ?? null,
        quiet: Boolean(opts.quiet),
        json: Boolean(opts.json),
        maxFailureRate: opts.maxFailureRate ?? null,
        outputFormat: opts.outputFormat,
        samplesPerTar: opts.samplesPerTar,
      };
      validateCombination(o);
      process.exitCode = await download(o);
    });

  program
    .command('inspect')
    .description('schema, row count, caption coverage, size histograms and estimated download/output size')
    .argument('<input.parquet>')
    .addOption(OPT.urlColumn())
    .addOption(OPT.captionColumn())
    .addOption(OPT.fallbackCaptionColumn())
    .addOption(OPT.where())
    .addOption(OPT.resize())
    .addOption(OPT.resolution())
    .addOption(OPT.format())
    .addOption(OPT.cdnResize())
    .addOption(OPT.json())
    .action(async (input, opts) => {
      await runInspect(input, {
        urlColumn: opts.urlColumn,
        captionColumn: opts.captionColumn,
        fallbackCaptionColumn: opts.fallbackCaptionColumn,
        where: opts.where ?? null,
        resize: opts.resize,
        resolution: resolutionFor(opts.resize, opts.resolution),
        format: opts.format,
        cdnResize: opts.cdnResize,
        json: Boolean(opts.json),
      });
    });

  program
    .command('config')
    .description("print the trainer's dataloader JSON entry (SimpleTuner) for an output folder; on stderr, how many images it would exclude")
    .argument('[out]', 'the folder pcb download wrote')
    .addOption(new Option('-o, --out <dir>', 'the folder pcb download wrote (or as the argument)'))
    .addOption(new Option('--id <name>', 'dataset id [the folder name]'))
    .addOption(
      new Option('--caption-strategy <s>', 'parquet | textfile')
        .default('parquet' as const)
        .argParser(choiceOption('--caption-strategy', ['parquet', 'textfile'] as const)),
    )
    .addOption(new Option('--resolution <n>', 'trainer resolution [1.0 for area, the pixels for shortest-side]').argParser(numberOption('--resolution', 0)))
    .addOption(new Option('--resolution-type <t>', 'area | pixel').argParser(choiceOption('--resolution-type', ['area', 'pixel'] as const)))
    .addOption(new Option('--cache-dir-vae <dir>', 'VAE cache folder [<out>/../cache/vae/<id>]'))
    .addOption(new Option('--cache-dir-text <dir>', 'text embeds cache folder, with --full [<out>/../cache/text/<id>]'))
    .addOption(new Option('--full', 'print a whole multidatabackend.json list: the image entry and a default text_embeds entry'))
    .action(async (outArg, opts) => {
      const out = outArg ?? opts.out;
      if (!out) throw new UsageError('pcb config needs the output folder: pcb config <out>');
      await runConfig({
        out,
        id: opts.id ?? null,
        captionStrategy: opts.captionStrategy,
        resolution: opts.resolution ?? null,
        resolutionType: opts.resolutionType ?? null,
        cacheDirVae: opts.cacheDirVae ?? null,
        cacheDirText: opts.cacheDirText ?? null,
        full: Boolean(opts.full),
      });
    });

  program
    .command('verify')
    .description("check the records against the disk, both ways: every ok row's image and caption, every image on disk")
    .argument('<out>', 'the folder pcb download wrote')
    .addOption(new Option('--fix', 'mark disagreeing rows so the next pcb download redoes them; move stray images into .pcb/stray/'))
    .addOption(new Option('--deep', 'decode every image fully (default: headers only)'))
    .addOption(OPT.json())
    .action(async (out, opts) => {
      // sharp is loaded only here: the main thread of a download never needs it.
      const { runVerify } = await import('./commands/verify.js');
      process.exitCode = await runVerify(out, { fix: Boolean(opts.fix), deep: Boolean(opts.deep), json: Boolean(opts.json) });
    });

  program
    .command('status')
    .description("rows done, failed (permanent vs transient) and left, from the folder's log; fetches nothing")
    .argument('<out>', 'the folder pcb download wrote')
    .addOption(OPT.input())
    .addOption(OPT.json())
    .action(async (out, opts) => {
      await runStatus(out, { input: opts.input ?? null, json: Boolean(opts.json) });
    });

  program
    .command('merge')
    .description("combine every shard's records in <out> into manifest.parquet and metadata.parquet")
    .argument('<out>', 'the shared output folder')
    .addOption(OPT.input())
    .addOption(OPT.json())
    .action(async (out, opts) => {
      await runMerge(out, { input: opts.input ?? null, json: Boolean(opts.json) });
    });

  return program;
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

async function download(o: DownloadOptions): Promise<number> {
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
          // Second signal: leave now. Images and captions are renamed into place whole, so nothing is half-written.
          stop(true);
          process.exit(code);
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

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      return 2;
    }
    if (err instanceof UsageError || err instanceof FatalError) {
      process.stderr.write(`pcb: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`pcb: unexpected error: ${(err as Error)?.message ?? err}${process.env.PCB_DEBUG ? '\n' + (err as Error)?.stack : ''}\n`);
    return 1;
  }
}

// Output piped into a reader that closed (`pcb download --help | head -1`): nobody is listening, leave quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
}

main(process.argv).then((code) => {
  process.exitCode = code;
  // Pools and sockets are closed by now; leave promptly even if a stray handle lingers.
  setTimeout(() => process.exit(code), 200).unref();
});
