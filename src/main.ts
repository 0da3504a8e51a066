import { Command, CommanderError, Option } from 'commander';
import { FatalError, UsageError } from './errors.js';
import {
  DEFAULT_USER_AGENT,
  PNG_DEFAULTS,
  bytesOption,
  choiceOption,
  defaultMemoryBudget,
  defaultThreads,
  intOption,
  numberOption,
  parseShard,
  roundChunkSize,
  shardFromEnvironment,
  validateCombination,
} from './options.js';
import type { DownloadOptions } from './options.js';
import { DEFAULT_IMGIX_HOSTS } from './cdn.js';
import { VERSION } from './version.js';
import { runDownload } from './run.js';
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
1 on a fatal error, 2 on a usage error, 130/143 when interrupted (rerun to resume).`;

function buildProgram(): Command {
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
    .option('-o, --out <dir>', 'output folder', './train')
    .option('--url-column <name>', 'column with the image URL', 'url')
    .option('--id-column <name>', 'column with the file name stem', 'id')
    .option('--caption-column <name>', 'caption column', 'cogvlm_caption')
    .option('--fallback-caption-column <name>', 'caption when the caption column is null or empty (lists joined with ", ")', 'tags')
    .option('--where <sql>', 'DuckDB boolean expression to filter rows, e.g. "width >= 1024"')
    .option('--limit <n>', 'process at most n rows (after --where)', intOption('--limit', 0))
    .addOption(
      new Option('--resize <mode>', 'shortest-side | area | none')
        .default('shortest-side')
        .argParser(choiceOption('--resize', ['shortest-side', 'area', 'none'] as const)),
    )
    .option('--resolution <n>', 'shortest-side: pixels of the shorter side [1024]; area: megapixels [1.0]', numberOption('--resolution', 0))
    .addOption(new Option('--format <fmt>', 'png | jpeg | webp').default('png').argParser(choiceOption('--format', ['png', 'jpeg', 'webp'] as const)))
    .option('--quality <n>', 'jpeg/webp quality, 1-100', intOption('--quality', 1, 100), 95)
    .option(
      '--png-compression <n>',
      "PNG zlib level, 0-9 (with filtering, 6 is within 3 % of the reference script's PNG on real photos)",
      intOption('--png-compression', 0, 9),
      PNG_DEFAULTS.compression,
    )
    .option('--png-filter', 'PNG adaptive row filtering (the default)')
    .option('--no-png-filter', 'no PNG adaptive row filtering: ~1.9x the bytes on real photos for ~40 % less encode CPU')
    .option('-t, --threads <n>', 'worker threads [all available cores]', intOption('--threads', 1, 1024))
    .option('-c, --concurrency <n>', 'downloads in flight per thread', intOption('--concurrency', 1, 1024), 16)
    .option('--chunk-size <n>', 'rows read from DuckDB per step, rounded up to whole 2048-row vectors', intOption('--chunk-size', 1), 2048)
    .option('--retries <n>', 'retries of a transient failure (timeout, network, 408/425/429/5xx)', intOption('--retries', 0, 100), 3)
    .option('--backoff <s>', 'first retry delay in seconds, doubled each retry, with jitter; Retry-After wins', numberOption('--backoff', -1), 1)
    .option('--timeout <s>', 'deadline of one attempt from connect to last byte, redirects included', numberOption('--timeout', 0), 30)
    .option('--max-bytes <n>', 'largest body accepted', bytesOption('--max-bytes'), 104857600)
    .option('--max-rps <n>', 'request-rate cap for the whole process, retries included', numberOption('--max-rps', 0))
    .option('--max-host-connections <n>', 'concurrent connections to one host across all threads', intOption('--max-host-connections', 1, 100000), 64)
    .option('--memory-budget <size>', 'cap on downloaded-but-unprocessed bytes across the pool [1/4 of RAM]', bytesOption('--memory-budget'))
    .option('--user-agent <s>', 'User-Agent header', DEFAULT_USER_AGENT)
    .option('--ignore-opt-out', 'fetch even when the response carries X-Robots-Tag: noai / noimageai', false)
    .option('--allow-private-network', 'permit loopback, private and link-local addresses (checked on the address connected)', false)
    .addOption(
      new Option('--cdn-resize <kind>', 'none | imgix: ask the image CDN for a smaller rendition that still covers the target')
        .default('none')
        .argParser(choiceOption('--cdn-resize', ['none', 'imgix'] as const)),
    )
    .option('--cdn-resize-host <host>', 'a host served by imgix (repeatable) [images.pexels.com]', (v: string, prev: string[] | undefined) => [
      ...(prev ?? []),
      v,
    ])
    .option('--shard <i>/<n>', 'process a deterministic 1/n of the rows (stable hash of the id)', parseShard)
    .option(
      '--shard-count <n>',
      'shard count when the index comes from the scheduler (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX)',
      intOption('--shard-count', 1),
    )
    .option('--overwrite', 'redo rows already done (default: resume)', false)
    .option('--retry-failed', 'also retry rows that failed permanently before', false)
    .option('--manifest <path>', 'manifest path [<out>/manifest.parquet]')
    .option('--quiet', 'no progress bar, only the summary', false)
    .option('--json', 'print the final summary as one JSON object on stdout', false)
    .addHelpText('after', RESIZE_HELP)
    .action(async (input: string, opts: Record<string, unknown>, cmd: Command) => {
      const o = downloadOptions(input, opts, cmd);
      process.exitCode = await download(o);
    });

  program
    .command('inspect')
    .description('schema, row count, caption coverage, size histograms and estimated download/output size')
    .argument('<input.parquet>')
    .option('--url-column <name>', 'column with the image URL', 'url')
    .option('--caption-column <name>', 'caption column', 'cogvlm_caption')
    .option('--fallback-caption-column <name>', 'fallback caption column', 'tags')
    .option('--where <sql>', 'DuckDB filter: how many rows it keeps, and the estimate for them')
    .addOption(
      new Option('--resize <mode>', 'shortest-side | area | none')
        .default('shortest-side')
        .argParser(choiceOption('--resize', ['shortest-side', 'area', 'none'] as const)),
    )
    .option('--resolution <n>', 'as for download', numberOption('--resolution', 0))
    .addOption(new Option('--format <fmt>', 'png | jpeg | webp').default('png').argParser(choiceOption('--format', ['png', 'jpeg', 'webp'] as const)))
    .addOption(new Option('--cdn-resize <kind>', 'none | imgix').default('none').argParser(choiceOption('--cdn-resize', ['none', 'imgix'] as const)))
    .option('--json', 'print the report as JSON', false)
    .action(async (input: string, opts: Record<string, unknown>) => {
      await runInspect(input, {
        urlColumn: String(opts.urlColumn),
        captionColumn: String(opts.captionColumn),
        fallbackCaptionColumn: String(opts.fallbackCaptionColumn),
        where: (opts.where as string | undefined) ?? null,
        resize: opts.resize as DownloadOptions['resize'],
        resolution: resolutionFor(opts.resize as string, opts.resolution as number | undefined),
        format: opts.format as DownloadOptions['format'],
        cdnResize: opts.cdnResize as DownloadOptions['cdnResize'],
        json: Boolean(opts.json),
      });
    });

  program
    .command('config')
    .description("print the trainer's dataloader JSON entry (SimpleTuner) for an output folder; on stderr, how many images it would exclude")
    .argument('[out]', 'the folder pcb download wrote')
    .option('-o, --out <dir>', 'the folder pcb download wrote (or as the argument)')
    .option('--id <name>', 'dataset id [the folder name]')
    .addOption(
      new Option('--caption-strategy <s>', 'parquet | textfile')
        .default('parquet')
        .argParser(choiceOption('--caption-strategy', ['parquet', 'textfile'] as const)),
    )
    .option('--resolution <n>', 'trainer resolution [1.0 for area, the pixels for shortest-side]', numberOption('--resolution', 0))
    .addOption(new Option('--resolution-type <t>', 'area | pixel').argParser(choiceOption('--resolution-type', ['area', 'pixel'] as const)))
    .option('--cache-dir-vae <dir>', 'VAE cache folder [<out>/../cache/vae/<id>]')
    .option('--cache-dir-text <dir>', 'text embeds cache folder, with --full [<out>/../cache/text/<id>]')
    .option('--full', 'print a whole multidatabackend.json list: the image entry and a default text_embeds entry', false)
    .action(async (outArg: string | undefined, opts: Record<string, unknown>) => {
      const out = outArg ?? (opts.out as string | undefined);
      if (!out) throw new UsageError('pcb config needs the output folder: pcb config <out>');
      await runConfig({
        out,
        id: (opts.id as string | undefined) ?? null,
        captionStrategy: opts.captionStrategy as 'parquet' | 'textfile',
        resolution: (opts.resolution as number | undefined) ?? null,
        resolutionType: (opts.resolutionType as 'area' | 'pixel' | undefined) ?? null,
        cacheDirVae: (opts.cacheDirVae as string | undefined) ?? null,
        cacheDirText: (opts.cacheDirText as string | undefined) ?? null,
        full: Boolean(opts.full),
      });
    });

  program
    .command('verify')
    .description("check the records against the disk, both ways: every ok row's image and caption, every image on disk")
    .argument('<out>', 'the folder pcb download wrote')
    .option('--fix', 'mark disagreeing rows so the next pcb download redoes them; move stray images into .pcb/stray/', false)
    .option('--deep', 'decode every image fully (default: headers only)', false)
    .option('--json', 'print as JSON', false)
    .action(async (out: string, opts: Record<string, unknown>) => {
      // sharp is loaded only here: the main thread of a download never needs it.
      const { runVerify } = await import('./commands/verify.js');
      process.exitCode = await runVerify(out, { fix: Boolean(opts.fix), deep: Boolean(opts.deep), json: Boolean(opts.json) });
    });

  program
    .command('status')
    .description("rows done, failed (permanent vs transient) and left, from the folder's log; fetches nothing")
    .argument('<out>', 'the folder pcb download wrote')
    .option('--input <parquet>', 'input to count rows left against [the one recorded in the folder]')
    .option('--json', 'print as JSON', false)
    .action(async (out: string, opts: Record<string, unknown>) => {
      await runStatus(out, { input: (opts.input as string | undefined) ?? null, json: Boolean(opts.json) });
    });

  program
    .command('merge')
    .description("combine every shard's records in <out> into manifest.parquet and metadata.parquet")
    .argument('<out>', 'the shared output folder')
    .option('--input <parquet>', 'input parquet [the one recorded in the folder]')
    .option('--json', 'print as JSON', false)
    .action(async (out: string, opts: Record<string, unknown>) => {
      await runMerge(out, { input: (opts.input as string | undefined) ?? null, json: Boolean(opts.json) });
    });

  return program;
}

function resolutionFor(mode: string, given: number | undefined): number {
  return given ?? (mode === 'area' ? 1.0 : 1024);
}

function downloadOptions(input: string, opts: Record<string, unknown>, cmd: Command): DownloadOptions {
  const shardCount = (opts.shardCount as number | undefined) ?? null;
  const given = (opts.shard as DownloadOptions['shard'] | undefined) ?? shardFromEnvironment(process.env, shardCount);
  // 0/1 is the whole input: no shard files, no hash filter.
  const shard = given && given.count > 1 ? given : null;
  const o: DownloadOptions = {
    input,
    out: String(opts.out),
    urlColumn: String(opts.urlColumn),
    idColumn: String(opts.idColumn),
    captionColumn: String(opts.captionColumn),
    captionColumnExplicit: cmd.getOptionValueSource('captionColumn') === 'cli',
    fallbackCaptionColumn: String(opts.fallbackCaptionColumn),
    fallbackCaptionColumnExplicit: cmd.getOptionValueSource('fallbackCaptionColumn') === 'cli',
    where: (opts.where as string | undefined) ?? null,
    limit: (opts.limit as number | undefined) ?? null,
    resize: opts.resize as DownloadOptions['resize'],
    resolution: resolutionFor(opts.resize as string, opts.resolution as number | undefined),
    format: opts.format as DownloadOptions['format'],
    quality: opts.quality as number,
    pngCompression: opts.pngCompression as number,
    pngFilter: opts.pngFilter !== false,
    threads: (opts.threads as number | undefined) ?? defaultThreads(),
    concurrency: opts.concurrency as number,
    chunkSize: roundChunkSize(opts.chunkSize as number),
    retries: opts.retries as number,
    backoffMs: (opts.backoff as number) * 1000,
    timeoutMs: Math.round((opts.timeout as number) * 1000),
    maxBytes: opts.maxBytes as number,
    maxRps: (opts.maxRps as number | undefined) ?? null,
    maxHostConnections: opts.maxHostConnections as number,
    memoryBudgetBytes: (opts.memoryBudget as number | undefined) ?? defaultMemoryBudget(),
    userAgent: String(opts.userAgent),
    ignoreOptOut: Boolean(opts.ignoreOptOut),
    allowPrivateNetwork: Boolean(opts.allowPrivateNetwork),
    cdnResize: opts.cdnResize as DownloadOptions['cdnResize'],
    cdnHosts: (opts.cdnResizeHost as string[] | undefined) ?? DEFAULT_IMGIX_HOSTS,
    shard,
    overwrite: Boolean(opts.overwrite),
    retryFailed: Boolean(opts.retryFailed),
    manifest: (opts.manifest as string | undefined) ?? null,
    quiet: Boolean(opts.quiet),
    json: Boolean(opts.json),
  };
  validateCombination(o);
  return o;
}

async function download(o: DownloadOptions): Promise<number> {
  if (o.shard && !o.json && !o.quiet) process.stderr.write(`pcb: shard ${o.shard.index}/${o.shard.count} (${o.shard.reason})\n`);
  let signalCode = 0;
  const summary = await runDownload(o, {
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
        process.stderr.write(`\npcb: ${sig}: finishing rows in flight (a few seconds; again to quit now), then writing the records\n`);
        stop(false);
      };
      process.on('SIGINT', handler);
      process.on('SIGTERM', handler);
    },
  });
  if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else process.stdout.write(formatSummary(summary) + '\n');
  return signalCode || 0;
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

main(process.argv).then((code) => {
  process.exitCode = code;
  // Pools and sockets are closed by now; leave promptly even if a stray handle lingers.
  setTimeout(() => process.exit(code), 200).unref();
});
