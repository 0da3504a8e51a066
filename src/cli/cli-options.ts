/**
 * Every command-line option, declared once: flags, help, default and parser. `download` and `inspect`
 * take the same objects, so an option reads and validates the same everywhere. Typed by
 * @commander-js/extra-typings, so the parsed values arrive typed and main.ts needs no casts.
 */
import { Option } from '@commander-js/extra-typings';
import { DEFAULT_IMGIX_HOSTS } from '../fetch/cdn.js';
import {
  DEFAULT_USER_AGENT,
  PNG_DEFAULTS,
  autoOrInt,
  bytesOption,
  choiceOption,
  fractionOption,
  intOption,
  numberOption,
  verifyHashOption,
} from '../options.js';
import { parseShard } from '../shard.js';

const RESIZE_MODES = ['shortest-side', 'area', 'none'] as const;
const FORMATS = ['png', 'jpeg', 'webp'] as const;
const CDN_KINDS = ['none', 'imgix'] as const;
const OUTPUT_FORMATS = ['files', 'webdataset', 'parquet'] as const;
/** Samples per tar or parquet shard unless told: img2dataset's number_sample_per_shard. */
export const DEFAULT_SAMPLES_PER_SHARD = 10000;

export const OPT = {
  out: () => new Option('-o, --out <dir>', 'output folder').default('./train'),
  urlColumn: () => new Option('--url-column <name>', 'column with the image URL').default('url'),
  idColumn: () => new Option('--id-column <name>', 'column with the file name stem').default('id'),
  captionColumn: () => new Option('--caption-column <name>', 'caption column').default('cogvlm_caption'),
  fallbackCaptionColumn: () =>
    new Option('--fallback-caption-column <name>', 'caption when the caption column is null or empty (lists joined with ", ")').default('tags'),
  where: () => new Option('--where <sql>', 'DuckDB boolean expression to filter rows, e.g. "width >= 1024"'),
  limit: () => new Option('--limit <n>', 'process at most n rows (after --where)').argParser(intOption('--limit', 0)),
  resize: () => new Option('--resize <mode>', RESIZE_MODES.join(' | ')).default('shortest-side' as const).argParser(choiceOption('--resize', RESIZE_MODES)),
  resolution: () =>
    new Option('--resolution <n>', 'shortest-side: pixels of the shorter side [1024]; area: megapixels [1.0]').argParser(numberOption('--resolution', 0)),
  format: () => new Option('--format <fmt>', FORMATS.join(' | ')).default('png' as const).argParser(choiceOption('--format', FORMATS)),
  quality: () => new Option('--quality <n>', 'jpeg/webp quality, 1-100').default(95).argParser(intOption('--quality', 1, 100)),
  pngCompression: () =>
    new Option(
      '--png-compression <n>',
      "PNG zlib level, 0-9 (with filtering, 5 is within 1.05x of the reference script's PNG on real photos, at 0.7x the encode CPU of 6)",
    )
      .default(PNG_DEFAULTS.compression as number)
      .argParser(intOption('--png-compression', 0, 9)),
  pngFilter: () => new Option('--png-filter', 'PNG adaptive row filtering (the default)'),
  noPngFilter: () => new Option('--no-png-filter', 'no PNG adaptive row filtering: ~1.6x the bytes on real photos for ~60 % less encode CPU'),
  threads: () => new Option('-t, --threads <n>', 'worker threads [all available cores]').argParser(intOption('--threads', 1, 1024)),
  concurrency: () =>
    new Option('-c, --concurrency <n|auto>', 'downloads in flight: auto follows demand (latency, CPU, hosts, memory); a number fixes it per thread')
      .default('auto' as const)
      .argParser(autoOrInt('--concurrency', 1, 1024)),
  chunkSize: () =>
    new Option('--chunk-size <n>', 'rows read from DuckDB per step, rounded up to whole 2048-row vectors')
      .default(2048)
      .argParser(intOption('--chunk-size', 1)),
  retries: () =>
    new Option('--retries <n>', 'retries of a transient failure (timeout, network, 408/425/429/5xx)').default(3).argParser(intOption('--retries', 0, 100)),
  backoff: () =>
    new Option('--backoff <s>', 'first retry delay in seconds (0 or more), doubled each retry, with jitter; Retry-After wins')
      .default(1)
      .argParser(numberOption('--backoff', 0, true)),
  timeout: () =>
    new Option('--timeout <s>', 'deadline of one attempt from connect to last byte, redirects included').default(30).argParser(numberOption('--timeout', 0)),
  maxBytes: () => new Option('--max-bytes <n>', 'largest body accepted').default(104857600).argParser(bytesOption('--max-bytes')),
  maxRps: () => new Option('--max-rps <n>', 'request-rate cap for the whole process, retries included').argParser(numberOption('--max-rps', 0)),
  maxHostConnections: () =>
    new Option(
      '--max-host-connections <n>',
      "hard ceiling on open requests to one host across all threads; below it each host's limit follows its answers [none]",
    ).argParser(intOption('--max-host-connections', 1, 100000)),
  memoryBudget: () =>
    new Option('--memory-budget <size>', 'cap on downloaded-but-unprocessed bytes across the pool [1/4 of RAM]').argParser(bytesOption('--memory-budget')),
  userAgent: () => new Option('--user-agent <s>', 'User-Agent header').default(DEFAULT_USER_AGENT),
  ignoreOptOut: () => new Option('--ignore-opt-out', 'fetch even when the response carries X-Robots-Tag: noai / noimageai'),
  allowPrivateNetwork: () => new Option('--allow-private-network', 'permit loopback, private and link-local addresses (checked on the address connected)'),
  cdnResize: () =>
    new Option('--cdn-resize <kind>', `${CDN_KINDS.join(' | ')}: ask the image CDN for a smaller rendition that still covers the target`)
      .default('none' as const)
      .argParser(choiceOption('--cdn-resize', CDN_KINDS)),
  cdnResizeHost: () =>
    new Option('--cdn-resize-host <host>', `a host served by imgix (repeatable) [${DEFAULT_IMGIX_HOSTS.join(', ')}]`).argParser(
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    ),
  shard: () => new Option('--shard <i>/<n>', 'process a deterministic 1/n of the rows (stable hash of the id)').argParser(parseShard),
  shardCount: () =>
    new Option('--shard-count <n>', 'shard count when the index comes from the scheduler (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX)').argParser(
      intOption('--shard-count', 1),
    ),
  stateDir: () =>
    new Option('--state-dir <dir>', "with an s3:// --out: where the run's log, lock and temporary files live [a folder per output under ~/.cache/pcb/s3/]"),
  processes: () =>
    new Option('--processes <n|auto>', 'processes the threads are split over, each taking a share of the rows [auto: one per 4 threads]')
      .default('auto' as const)
      .argParser(autoOrInt('--processes', 1, 1024)),
  overwrite: () => new Option('--overwrite', 'redo rows already done (default: resume)'),
  retryFailed: () => new Option('--retry-failed', 'also retry rows that failed permanently before'),
  manifest: () => new Option('--manifest <path>', 'manifest path [<out>/manifest.parquet]'),
  quiet: () => new Option('--quiet', 'no progress bar, only the summary'),
  json: () => new Option('--json', 'print the result as one JSON object on stdout'),
  maxFailureRate: () =>
    new Option('--max-failure-rate <fraction>', 'exit 3 when more than this share of the rows processed failed (e.g. 0.2) [none]').argParser(
      fractionOption('--max-failure-rate'),
    ),
  outputFormat: () =>
    new Option(
      '--output-format <fmt>',
      'files (a flat folder) | webdataset (tar shards, each with a webshart index beside it) | parquet (parquet shards with the images inside, as the Hugging Face Hub stores them)',
    )
      .default('files' as const)
      .argParser(choiceOption('--output-format', OUTPUT_FORMATS)),
  samplesPerShard: () =>
    new Option(
      '--samples-per-shard <n>',
      `samples per tar or parquet shard with --output-format webdataset or parquet [${DEFAULT_SAMPLES_PER_SHARD}]`,
    ).argParser(intOption('--samples-per-shard', 1, 1_000_000)),
  /** The old name of --samples-per-shard, still taken. */
  samplesPerTar: () =>
    new Option('--samples-per-tar <n>', 'the old name of --samples-per-shard').argParser(intOption('--samples-per-tar', 1, 1_000_000)).hideHelp(),
  verifyHash: () =>
    new Option(
      '--verify-hash <column>',
      "check each downloaded image against a hash column of the input: <column>[:sha256|md5] (sha256 when none is named); a mismatch is the row's error hash_mismatch [none]",
    ).argParser(verifyHashOption),
  input: () => new Option('--input <parquet>', 'input parquet [the one recorded in the folder]'),
};

/** --resolution's default depends on the mode: pixels for shortest-side, megapixels for area. */
export function resolutionFor(mode: string, given: number | undefined): number {
  return given ?? (mode === 'area' ? 1.0 : 1024);
}
