import { existsSync } from 'node:fs';
import path from 'node:path';
import { FatalError } from '../errors.js';
import { STATE_DIR } from '../manifest.js';
import { readRunRecord } from '../run.js';

export interface ConfigOptions {
  out: string;
  id: string | null;
  captionStrategy: 'parquet' | 'textfile';
  resolution: number | null;
  resolutionType: 'area' | 'pixel' | null;
  cacheDirVae: string | null;
}

/**
 * The trainer's (SimpleTuner) dataloader entry for a folder pcb wrote, following the dataset's
 * documented example; sizes and columns come from the folder's own run record.
 */
export function dataloaderEntry(o: ConfigOptions): Record<string, unknown> {
  const out = path.resolve(o.out);
  if (!existsSync(path.join(out, STATE_DIR))) throw new FatalError(`${o.out} has no pcb records (${STATE_DIR}/ is missing); run pcb download --out ${o.out} first`);
  const run = readRunRecord(out);
  if (!run) throw new FatalError(`${o.out} has no run record (${STATE_DIR}/run.json); rerun pcb download --out ${o.out} to write it`);
  const id = o.id ?? path.basename(out);
  const type = o.resolutionType ?? (run.resize === 'shortest-side' ? 'pixel' : 'area');
  const resolution = o.resolution ?? (type === 'pixel' ? (run.resize === 'shortest-side' ? run.resolution : 1024) : (run.resize === 'area' ? run.resolution : 1.0));
  const scale = (f: number) => (type === 'pixel' ? Math.round(resolution * f) : Math.round(resolution * f * 1000) / 1000);
  const entry: Record<string, unknown> = {
    id,
    type: 'local',
    instance_data_dir: out,
    crop: true,
    crop_aspect: 'square',
    crop_style: 'center',
    resolution,
    resolution_type: type,
    minimum_image_size: scale(1.0),
    maximum_image_size: scale(1.5),
    target_downsample_size: scale(1.25),
    cache_dir_vae: path.resolve(o.cacheDirVae ?? path.join(path.dirname(out), 'cache', 'vae', id)),
    caption_strategy: o.captionStrategy,
    metadata_backend: o.captionStrategy === 'parquet' ? 'parquet' : 'discovery',
  };
  if (o.captionStrategy === 'parquet') {
    const metadata = path.join(out, 'metadata.parquet');
    entry.parquet = {
      path: metadata,
      caption_column: run.captionColumn ?? run.fallbackCaptionColumn,
      fallback_caption_column: run.fallbackCaptionColumn,
      filename_column: run.idColumn,
      width_column: 'width',
      height_column: 'height',
      identifier_includes_extension: false,
    };
  }
  return entry;
}

export async function runConfig(o: ConfigOptions): Promise<void> {
  process.stdout.write(JSON.stringify(dataloaderEntry(o), null, 2) + '\n');
}
