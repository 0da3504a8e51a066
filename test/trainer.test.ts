import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { readParquet, runPcb, smallKit, tmpDir } from './helpers.js';
import { datasetRow, writeParquet, writeSyntheticDataset } from '../src/kit/dataset.js';
import { photoSet } from '../src/kit/photos.js';
import type { KitServer } from '../src/kit/server.js';
import type { KitPhoto } from '../src/kit/photos.js';
import { formatSummary } from '../src/run/progress.js';

let server: KitServer;
let photos: KitPhoto[];
const SIZES: [number, number][] = [
  [1600, 1200],
  [1200, 1600],
  [1500, 1500],
  [2400, 800],
  [900, 1350],
];
beforeAll(async () => {
  ({ server, photos } = await smallKit(0));
  for (const s of SIZES) {
    const [p] = await photoSet(1, s, 85);
    photos.push(p);
    server.put(p.name, p.data);
  }
});
afterAll(async () => {
  await server?.stop();
});

async function input(dir: string, pathFor: (p: KitPhoto) => string): Promise<string> {
  const file = path.join(dir, 'in.parquet');
  await writeParquet(
    file,
    photos.map((p, i) => datasetRow(i, server.url(pathFor(p)), p.width, p.height)),
  );
  return file;
}

describe('fit the trainer', () => {
  it('--resize area: sides multiples of 64, area near the target, aspect kept; metadata carries true sizes; config matches', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'train');
    const r = await runPcb([
      'download',
      await input(dir, (p) => `/img/${p.name}`),
      '--out',
      out,
      '--resize',
      'area',
      '--resolution',
      '1.0',
      '--allow-private-network',
      '--quiet',
      '--json',
    ]);
    expect(JSON.parse(r.stdout).ok).toBe(SIZES.length);
    const metadata = await readParquet(path.join(out, 'metadata.parquet'), 'file_name');
    expect(metadata.length).toBe(SIZES.length);
    for (const m of metadata) {
      // Hugging Face datasets' ImageFolder reads metadata.parquet: every file_name relative, inside the folder.
      expect(path.isAbsolute(String(m.file_name))).toBe(false);
      expect(String(m.file_name).split(/[\\/]/)).not.toContain('..');
      const meta = await sharp(path.join(out, m.file_name as string)).metadata();
      expect([meta.width, meta.height]).toEqual([m.width, m.height]);
      const w = m.width as number;
      const h = m.height as number;
      expect(w % 64).toBe(0);
      expect(h % 64).toBe(0);
      expect(Math.abs(w * h - 1e6) / 1e6).toBeLessThan(0.1);
      const aspect = (m.original_width as number) / (m.original_height as number);
      expect(Math.abs(w / h - aspect) / aspect).toBeLessThan(0.05);
      for (const col of ['id', 'url', 'title', 'tags', 'cogvlm_caption', 'aspect_ratio', 'class_label', 'type', 'slug', 'description', 'alt'])
        expect(m).toHaveProperty(col);
    }
    const cfg = await runPcb(['config', '--out', out]);
    expect(cfg.code).toBe(0);
    const entry = JSON.parse(cfg.stdout);
    expect(entry).toMatchObject({
      id: 'train',
      type: 'local',
      instance_data_dir: out,
      crop: true,
      crop_aspect: 'preserve',
      crop_style: 'center',
      resolution: 1,
      resolution_type: 'area',
      caption_strategy: 'parquet',
      metadata_backend: 'parquet',
      parquet: {
        path: path.join(out, 'metadata.parquet'),
        caption_column: 'caption',
        filename_column: 'file_name',
        identifier_includes_extension: true,
        width_column: 'width',
        height_column: 'height',
      },
    });
    for (const k of ['minimum_image_size', 'maximum_image_size', 'target_downsample_size', 'cache_dir_vae']) expect(entry).toHaveProperty(k);
    expect(path.isAbsolute(entry.cache_dir_vae)).toBe(true);
    const text = JSON.parse((await runPcb(['config', '--out', out, '--caption-strategy', 'textfile', '--id', 'pcb'])).stdout);
    expect(text).toMatchObject({ id: 'pcb', caption_strategy: 'textfile', disable_multiline_split: true });
    expect(text.parquet).toBeUndefined();
    const missing = await runPcb(['config', '--out', path.join(dir, 'nothing-here')]);
    expect(missing.code).toBe(1);
  });

  it('--resize none with the source format keeps the bytes exactly', async () => {
    const dir = tmpDir();
    const out = path.join(dir, 'out');
    await runPcb([
      'download',
      await input(dir, (p) => `/img/${p.name}`),
      '--out',
      out,
      '--resize',
      'none',
      '--format',
      'jpeg',
      '--allow-private-network',
      '--quiet',
    ]);
    const metadata = await readParquet(path.join(out, 'metadata.parquet'), 'file_name');
    expect(metadata.length).toBe(SIZES.length);
    for (const m of metadata) {
      const src = photos.find((p) => m.url === server.url(`/img/${p.name}`))!;
      expect(Buffer.compare(readFileSync(path.join(out, m.file_name as string)), src.data)).toBe(0);
      expect([m.width, m.height]).toEqual([src.width, src.height]);
    }
  });

  it('--cdn-resize imgix asks for a covering rendition with fit=max, downloads less, and falls back when it is too small', async () => {
    const dir = tmpDir();
    const plain = path.join(dir, 'plain');
    const small = path.join(dir, 'small');
    const common = ['--resolution', '256', '--allow-private-network', '--quiet', '--json'];
    const base = JSON.parse(
      (await runPcb(['download', await input(dir, (p) => `/imgix/${p.name}?auto=compress&cs=tinysrgb`), '--out', plain, ...common])).stdout,
    );
    const before = server.requests.length;
    const viaCdn = JSON.parse(
      (await runPcb(['download', path.join(dir, 'in.parquet'), '--out', small, '--cdn-resize', 'imgix', '--cdn-resize-host', '127.0.0.1', ...common])).stdout,
    );
    expect(viaCdn.ok).toBe(SIZES.length);
    expect(viaCdn.bytes_downloaded).toBeLessThan(base.bytes_downloaded / 4);
    const asked = server.requests.slice(before).map((q) => new URL(q.path, 'http://x'));
    for (const u of asked) {
      expect(u.searchParams.get('fit')).toBe('max');
      expect(u.searchParams.get('auto')).toBeNull();
      expect(Number(u.searchParams.get('w'))).toBeGreaterThan(0);
    }
    const a = await readParquet(path.join(plain, 'manifest.parquet'));
    const b = await readParquet(path.join(small, 'manifest.parquet'));
    expect(b.map((m) => [m.width, m.height])).toEqual(a.map((m) => [m.width, m.height]));
    expect(b.map((m) => m.source)).toEqual(b.map(() => 'rendition'));
    expect(a.map((m) => m.source)).toEqual(a.map(() => null));
    expect(viaCdn.rendition_fallbacks).toBe(0);

    const fb = path.join(dir, 'fallback');
    const before2 = server.requests.length;
    const fellBack = JSON.parse(
      (
        await runPcb([
          'download',
          await input(dir, (p) => `/imgix-small/${p.name}`),
          '--out',
          fb,
          '--cdn-resize',
          'imgix',
          '--cdn-resize-host',
          '127.0.0.1',
          ...common,
        ])
      ).stdout,
    );
    expect(fellBack.rendition_fallbacks).toBe(SIZES.length);
    // The text summary names them too, not only --json.
    expect(formatSummary(fellBack)).toContain(`originals used after a rendition fell short: ${SIZES.length}`);
    expect(formatSummary(viaCdn)).toContain(`--cdn-resize: ${SIZES.length} from renditions · originals used after a rendition fell short: 0`);
    const m = await readParquet(path.join(fb, 'manifest.parquet'));
    expect(m.map((x) => x.source)).toEqual(m.map(() => 'original'));
    expect(m.map((x) => [x.width, x.height])).toEqual(a.map((x) => [x.width, x.height]));
    expect(m.every((x) => x.attempts === 2)).toBe(true);
    const paths = server.requests.slice(before2).map((q) => q.path);
    expect(paths.filter((p) => p.includes('w=')).length).toBe(SIZES.length);
    expect(paths.filter((p) => !p.includes('w=')).length).toBe(SIZES.length);
  });

  it('pcb inspect on 567,000 rows: counts, coverage, histograms, estimate', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'pcb.parquet');
    await writeSyntheticDataset(file, 567_000);
    const r = await runPcb(['inspect', file, '--json', '--where', 'width > height']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.rows).toBe(567_000);
    expect(rep.coverage.caption).toBeCloseTo(0.9, 3);
    expect(rep.coverage.fallback).toBeCloseTo(0.75, 3);
    expect(rep.coverage.any).toBeCloseTo(0.95, 3); // both missing when i % 20 == 0
    expect(rep.rows_kept).toBe(378_000);
    expect(rep.width_histogram.length).toBeGreaterThan(0);
    expect(rep.estimate.output_bytes).toBeGreaterThan(0);
    expect(rep.estimate.download_bytes).toBeGreaterThan(rep.estimate.output_bytes);
    const human = await runPcb(['inspect', file]);
    expect(human.stdout).toMatch(/567000 rows/);
    expect(human.stdout).toMatch(/estimate/);
    expect(human.stdout).toMatch(/█/);
  });

  it('joins a list-typed fallback column with ", " when the caption is missing', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'lists.parquet');
    await writeParquet(
      file,
      [
        { id: 1, url: server.url(`/img/${photos[0].name}`), cogvlm_caption: null, tags: ['red', 'car', 'street'] },
        { id: 2, url: server.url(`/img/${photos[1].name}`), cogvlm_caption: '', tags: [] },
        { id: 3, url: server.url(`/img/${photos[2].name}`), cogvlm_caption: 'a caption', tags: ['x'] },
      ],
      { id: 'BIGINT', url: 'VARCHAR', cogvlm_caption: 'VARCHAR', tags: 'VARCHAR[]' },
    );
    const out = path.join(dir, 'out');
    const r = await runPcb(['download', file, '--out', out, '--allow-private-network', '--resolution', '128', '--quiet', '--json']);
    expect(JSON.parse(r.stdout).ok).toBe(3);
    expect(readFileSync(path.join(out, '1.txt'), 'utf8')).toBe('red, car, street');
    expect(readFileSync(path.join(out, '2.txt'), 'utf8')).toBe('');
    expect(readFileSync(path.join(out, '3.txt'), 'utf8')).toBe('a caption');
    const m = await readParquet(path.join(out, 'manifest.parquet'));
    expect(m.map((x) => x.caption_source)).toEqual(['fallback', 'none', 'primary']);
  });
});
