import { Option } from '@commander-js/extra-typings';
import type { Command } from '@commander-js/extra-typings';
import { choiceOption, numberOption } from '../../options.js';
import { OPT } from '../cli-options.js';
import { openOutput } from './remote.js';
import { outputPlace } from '../../output/place.js';
import { endpointUrl, regionName } from '../../output/s3-url.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { FatalError, UsageError } from '../../errors.js';
import { STATE_DIR } from '../../output/folder.js';
import { RunPaths } from '../../output/paths.js';
import type { RunRecord } from '../../output/folder.js';
import { latestSql } from '../../output/row-log.js';
import { openDuckDB } from '../../input/source.js';
import { isBelowTarget } from '../../image/target-size.js';
import type { ResizeMode } from '../../image/target-size.js';

export interface ConfigOptions {
  out: string;
  id: string | null;
  captionStrategy: 'parquet' | 'textfile';
  resolution: number | null;
  resolutionType: 'area' | 'pixel' | null;
  cacheDirVae: string | null;
  cacheDirText: string | null;
  /** A whole multidatabackend.json list (the image entry and a text-embeds entry) instead of one entry. */
  full: boolean;
  /** An S3 output (`out` is then its local state folder): SimpleTuner's `aws` backend. */
  remote?: { bucket: string; prefix: string; endpoint: string; region: string } | null;
}

/** The trainer's size rule for an entry (SimpleTuner `meets_resolution_requirements`). */
export interface SizeRule {
  resolutionType: 'area' | 'pixel';
  minimumImageSize: number;
  squareCrop: boolean;
}

/**
 * Does SimpleTuner keep a w×h image under this rule? pixel: both sides ≥ the minimum; area: w·h ≥ the
 * minimum in megapixels, and with a square crop also both sides ≥ floor(sqrt(minimum·10⁶)).
 */
export function trainerKeeps(rule: SizeRule, w: number, h: number): boolean {
  if (rule.resolutionType === 'pixel') return rule.minimumImageSize <= w && rule.minimumImageSize <= h;
  const px = rule.minimumImageSize * 1e6;
  if (rule.squareCrop) {
    const edge = Math.floor(Math.sqrt(px));
    if (edge > w || edge > h) return false;
  }
  return px <= w * h;
}

/** The rule's measure of an image: its shorter side (pixel) or its megapixels (area). */
function measure(type: 'area' | 'pixel', w: number, h: number): number {
  return type === 'pixel' ? Math.min(w, h) : (w * h) / 1e6;
}

interface WrittenImage {
  width: number;
  height: number;
  srcWidth: number;
  srcHeight: number;
  captionSource: string | null;
}

/** Every ok row of the folder's records: the written size, the source size and where the caption came from. */
async function writtenImages(paths: RunPaths): Promise<WrittenImage[]> {
  const logs = paths.allLogs();
  if (!logs.length) return [];
  const conn = await openDuckDB();
  const rows = (
    await conn.runAndReadAll(`SELECT width, height, src_width, src_height, caption_source FROM (${latestSql(logs)})
    WHERE status = 'ok' AND width IS NOT NULL`)
  ).getRowObjectsJS();
  conn.closeSync();
  return rows.map((r) => ({
    width: Number(r.width),
    height: Number(r.height),
    srcWidth: Number(r.src_width),
    srcHeight: Number(r.src_height),
    captionSource: r.caption_source === null ? null : String(r.caption_source),
  }));
}

export interface ConfigReport {
  entry: Record<string, unknown>;
  written: number;
  excludedSmall: number;
  excludedCaption: number;
}

/**
 * The trainer's (SimpleTuner) dataloader entry for a folder pcb wrote. Files are looked up by their file
 * name (`file_name` + `identifier_includes_extension`), sizes and captions come from metadata.parquet
 * (the written images' own), and `minimum_image_size` is the largest that every image pcb resized to the
 * target passes; images pcb did not upscale (smaller sources) may still fall under it, and are counted.
 */
export async function dataloaderConfig(o: ConfigOptions): Promise<ConfigReport> {
  const out = path.resolve(o.out);
  const paths = new RunPaths(out);
  if (!existsSync(paths.stateDir)) throw new FatalError(`${o.out} has no pcb records (${STATE_DIR}/ is missing); run pcb download --out ${o.out} first`);
  const run: RunRecord | null = paths.runRecordRead();
  if (!run) throw new FatalError(`${o.out} has no run record (${STATE_DIR}/run.json); rerun pcb download --out ${o.out} to write it`);
  const tars = run.outputFormat === 'webdataset';
  const shards = run.outputFormat === 'parquet';
  if ((tars || shards) && o.remote)
    throw new FatalError(
      `SimpleTuner's ${tars ? 'webshart' : 'huggingface'} backend reads ${tars ? 'tar' : 'parquet'} shards from a folder or the Hugging Face Hub, not from a bucket: copy the prefix to a folder (aws s3 sync) and run pcb config on that`,
    );
  if (!tars && !shards && o.captionStrategy === 'parquet' && !existsSync(path.join(out, 'metadata.parquet'))) {
    throw new FatalError(`${o.out} has no metadata.parquet (a sharded run: pcb merge ${o.out} first; or --caption-strategy textfile)`);
  }
  const id = o.id ?? (o.remote ? path.basename(o.remote.prefix || o.remote.bucket) : path.basename(out));
  const mode = run.resize as ResizeMode;
  const type = o.resolutionType ?? (mode === 'shortest-side' ? 'pixel' : 'area');
  const resolution = o.resolution ?? (type === 'pixel' ? (mode === 'shortest-side' ? run.resolution : 1024) : mode === 'area' ? run.resolution : 1.0);
  const scale = (f: number) => (type === 'pixel' ? Math.round(resolution * f) : Math.round(resolution * f * 1000) / 1000);

  const images = await writtenImages(paths);
  // Images at the target (every one for --resize none) set the minimum; the smallest of them still passes.
  const atTarget = images.filter((im) => mode === 'none' || !isBelowTarget(mode, im.srcWidth, im.srcHeight, run.resolution));
  const least = atTarget.reduce<number | null>((m, im) => {
    const v = measure(type, im.width, im.height);
    return m === null || v < m ? v : m;
  }, null);
  const minimum = least === null ? scale(1.0) : type === 'pixel' ? least : Math.max(Math.floor(least * 1000) / 1000, 0.001);
  // Aspect-preserving crops: a square crop would also demand both sides ≥ sqrt(minimum), which panoramas miss.
  const rule: SizeRule = { resolutionType: type, minimumImageSize: minimum, squareCrop: false };
  const excludedSmall = images.filter((im) => !trainerKeeps(rule, im.width, im.height)).length;
  // The parquet backend skips an image whose caption is empty; the textfile one would train it uncaptioned.
  const excludedCaption =
    o.captionStrategy === 'parquet' || tars || shards
      ? images.filter((im) => im.captionSource === 'none' && trainerKeeps(rule, im.width, im.height)).length
      : 0;

  const cacheRoot = path.join(path.dirname(out), 'cache');
  // Tars: SimpleTuner's webshart backend reads each tar through the index beside it (sizes and captions included).
  // An S3 output: SimpleTuner's aws backend, no secret written (see runConfig's note on credentials).
  const where: Record<string, unknown> = o.remote
    ? {
        type: 'aws',
        aws_bucket_name: o.remote.bucket,
        aws_data_prefix: o.remote.prefix,
        aws_endpoint_url: o.remote.endpoint,
        aws_region_name: o.remote.region,
      }
    : tars
      ? { type: 'webshart', dataset_type: 'image', source: out, metadata: out }
      : shards
        ? // Its huggingface backend calls load_dataset(dataset_name, split=…): on a folder, the dataset card pcb
          // writes there (README.md) names the shards as the train split, so pcb's records beside them stay out.
          { type: 'huggingface', dataset_type: 'image', dataset_name: out, split: 'train', image_column: 'image', caption_column: 'caption' }
        : { type: 'local', instance_data_dir: out };
  const entry: Record<string, unknown> = {
    id,
    ...where,
    crop: true,
    crop_aspect: 'preserve',
    crop_style: 'center',
    resolution,
    resolution_type: type,
    minimum_image_size: minimum,
    maximum_image_size: Math.max(scale(1.5), minimum),
    target_downsample_size: Math.max(scale(1.25), minimum),
    cache_dir_vae: path.resolve(o.cacheDirVae ?? path.join(cacheRoot, 'vae', id)),
    caption_strategy: tars ? 'webshart' : shards ? 'huggingface' : o.captionStrategy,
    metadata_backend: tars ? 'webshart' : shards ? 'huggingface' : o.captionStrategy === 'parquet' ? 'parquet' : 'discovery',
  };
  // Parquet shards are read where they are (dataset_name): nothing else to point at.
  if (tars) {
    entry.webshart = { cache_dir: path.resolve(path.join(cacheRoot, 'webshart', id)) };
  } else if (!shards && o.captionStrategy === 'parquet') {
    entry.parquet = {
      // The aws backend reads it through the bucket: its key there.
      path: o.remote ? [o.remote.prefix, 'metadata.parquet'].filter(Boolean).join('/') : path.join(out, 'metadata.parquet'),
      filename_column: 'file_name',
      identifier_includes_extension: true,
      caption_column: 'caption',
      width_column: 'width',
      height_column: 'height',
    };
  } else if (!shards) {
    // A caption is one caption even when it holds line breaks.
    entry.disable_multiline_split = true;
  }
  const list = [
    entry,
    {
      id: 'text-embeds',
      type: 'local',
      dataset_type: 'text_embeds',
      default: true,
      cache_dir: path.resolve(o.cacheDirText ?? path.join(cacheRoot, 'text', id)),
      write_batch_size: 128,
    },
  ];
  return { entry: o.full ? { list } : entry, written: images.length, excludedSmall, excludedCaption };
}

export async function runConfig(o: ConfigOptions): Promise<void> {
  const r = await dataloaderConfig(o);
  const body = o.full ? (r.entry.list as unknown[]) : r.entry;
  process.stdout.write(JSON.stringify(body, null, 2) + '\n');
  const entry = o.full ? (r.entry.list as Record<string, unknown>[])[0] : r.entry;
  const kept = r.written - r.excludedSmall - r.excludedCaption;
  const why = [
    ...(r.excludedSmall
      ? [`${r.excludedSmall} under minimum_image_size ${entry.minimum_image_size} (sources smaller than the target, which pcb does not upscale)`]
      : []),
    ...(r.excludedCaption ? [`${r.excludedCaption} with an empty caption (no caption or fallback in the input)`] : []),
  ];
  process.stderr.write(
    `pcb config: the trainer keeps ${kept} of the ${r.written} written images${why.length ? `; it would exclude ${why.join(' and ')}` : ''}\n`,
  );
  if (o.remote) {
    // Checked in SimpleTuner's builders/aws.py: its _validate_aws_config refuses an entry without both keys.
    process.stderr.write(
      `pcb config: pcb writes no secret, but SimpleTuner's aws backend refuses an entry without aws_access_key_id and aws_secret_access_key; add them where the trainer runs, e.g. pcb config … | jq --arg k "$AWS_ACCESS_KEY_ID" --arg s "$AWS_SECRET_ACCESS_KEY" '.aws_access_key_id = $k | .aws_secret_access_key = $s'\n`,
    );
  }
}

export function register(program: Command): void {
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
      const { remote } = outputPlace(given, opts.stateDir ?? null);
      const { paths } = await openOutput(given, opts.stateDir ?? null, { write: false });
      await runConfig({
        out: paths.out,
        remote: remote && { ...remote, endpoint: endpointUrl() ?? `https://s3.${regionName()}.amazonaws.com`, region: regionName() },
        id: opts.id ?? null,
        captionStrategy: opts.captionStrategy,
        resolution: opts.resolution ?? null,
        resolutionType: opts.resolutionType ?? null,
        cacheDirVae: opts.cacheDirVae ?? null,
        cacheDirText: opts.cacheDirText ?? null,
        full: Boolean(opts.full),
      });
    });
}
