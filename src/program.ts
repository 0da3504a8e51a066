/** The command line: every command and its options, wired to the function that runs it. */
import { Command, Option } from '@commander-js/extra-typings';
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
import { download } from './commands/download.js';
import { outputPlace } from './place.js';
import { openOutput } from './commands/remote.js';
import { endpointUrl, parseS3Url, regionName } from './s3-url.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_IMGIX_HOSTS } from './cdn.js';
import { VERSION } from './version.js';
import { runInspect } from './commands/inspect.js';
import { runConfig } from './commands/config.js';
import { runStatus } from './commands/status.js';
import { runMerge, runMergeRemote } from './commands/merge.js';

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

export function buildProgram() {
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
    .addOption(OPT.stateDir())
    .action(async (outArg, opts) => {
      const given = outArg ?? opts.out;
      if (!given) throw new UsageError('pcb config needs the output folder: pcb config <out>');
      const { out, remote } = await openOutput(given, opts.stateDir ?? null, { write: false });
      await runConfig({
        out,
        remote: remote && { ...remote.target, endpoint: endpointUrl() ?? `https://s3.${regionName()}.amazonaws.com`, region: regionName() },
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
    .addOption(OPT.stateDir())
    .action(async (given, opts) => {
      // sharp is loaded only here: the main thread of a download never needs it.
      const { runVerify } = await import('./commands/verify.js');
      const { out, remote } = await openOutput(given, opts.stateDir ?? null, { write: Boolean(opts.fix) });
      const o = { fix: Boolean(opts.fix), deep: Boolean(opts.deep), json: Boolean(opts.json) };
      if (!remote) {
        process.exitCode = await runVerify(out, o);
        return;
      }
      const { s3Place } = await import('./remote-output.js');
      const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-verify-'));
      try {
        process.exitCode = await runVerify(out, o, s3Place(remote, work));
        // --fix rewrote the records: the bucket gets them too.
        if (o.fix)
          await remote.upload(
            ['manifest.parquet', 'metadata.parquet'].filter((n) => existsSync(path.join(out, n))).map((name) => ({ name, file: path.join(out, name) })),
          );
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });

  program
    .command('status')
    .description("rows done, failed (permanent vs transient) and left, from the folder's log; fetches nothing")
    .argument('<out>', 'the folder pcb download wrote')
    .addOption(OPT.input())
    .addOption(OPT.json())
    .addOption(OPT.stateDir())
    .action(async (given, opts) => {
      const { out, remote } = await openOutput(given, opts.stateDir ?? null, { write: false });
      await runStatus(out, { input: opts.input ?? null, json: Boolean(opts.json) }, remote);
    });

  program
    .command('report')
    .description('one self-contained HTML page of the run and the dataset: counts, failures, aspect buckets, caption lengths, a contact sheet')
    .argument('<out>', 'the folder pcb download wrote, or its s3://bucket/prefix')
    .addOption(new Option('-o, --output <file.html>', 'where to write the page [<out>/.pcb/report.html, or the state folder for s3://]'))
    .addOption(new Option('--samples <n>', 'images on the contact sheet').default(48).argParser(numberOption('--samples', 0, true)))
    .addOption(OPT.stateDir())
    .action(async (given, opts) => {
      // sharp and Vega are loaded only here.
      const { runReport } = await import('./commands/report.js');
      if (!parseS3Url(given) && !existsSync(given)) throw new FatalError(`${given} does not exist; pass the folder pcb download wrote (--out)`);
      const { out, remote } = await openOutput(given, opts.stateDir ?? null, { write: false });
      await runReport(out, { output: opts.output ?? null, samples: Math.floor(opts.samples) }, remote, remote?.url ?? out);
    });

  program
    .command('merge')
    .description("combine every shard's records in <out> into manifest.parquet and metadata.parquet")
    .argument('<out>', 'the shared output folder')
    .addOption(OPT.input())
    .addOption(OPT.json())
    .action(async (out, opts) => {
      const target = parseS3Url(out);
      if (!target) return runMerge(out, { input: opts.input ?? null, json: Boolean(opts.json) });
      // In the bucket: each machine's shard records are there, whatever state folder it kept.
      const { RemoteOutput } = await import('./remote-output.js');
      const remote = new RemoteOutput(target, 3, os.tmpdir());
      await remote.check(true);
      await runMergeRemote(remote, { json: Boolean(opts.json) });
    });

  return program;
}
