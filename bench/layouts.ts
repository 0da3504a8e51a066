/**
 * `npm run bench:layouts`: the three output layouts on the same rows of real photographs (Debian's
 * wallpapers, `bash bench/fetch-photos.sh`) resized to 1024 px PNG: images/s, pcb's CPU per image and its
 * peak RSS, in interleaved rounds (files, tars, parquet, files, …; the median of each counts, with each
 * round's ratio to files). Then peak RSS of parquet shards of 1,000 images against shards of 100 on the
 * same rows: memory must not grow with the shard size.
 *   npm run bench:layouts -- [--rows 240] [--rounds 3] [--big-rows 2000] [--threads N]
 * Writes bench/results/layouts-latest.{md,json}.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { KitServer } from '../src/kit/server.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import type { Summary } from '../src/run/progress.js';
import { run } from './spawn.js';
import { writeResults } from './results.js';
import { numberArg } from './args.js';

const ROOT = projectRoot();
const rows = numberArg('--rows', 240);
const rounds = numberArg('--rounds', 3);
const bigRows = numberArg('--big-rows', 2000);
const threads = numberArg('--threads', os.availableParallelism());

const LAYOUTS = [
  { name: 'files', args: [] as string[] },
  { name: 'webdataset', args: ['--output-format', 'webdataset', '--samples-per-shard', '100'] },
  { name: 'parquet', args: ['--output-format', 'parquet', '--samples-per-shard', '100'] },
];

interface Measured {
  images_per_s: number;
  cpu_ms_per_image: number;
  peak_rss_mb: number;
  ok: number;
}

async function download(input: string, out: string, args: string[]): Promise<Measured> {
  const r = await run(path.join(ROOT, 'bin', 'pcb'), [
    'download',
    input,
    '--out',
    out,
    '--allow-private-network',
    '--resolution',
    '1024',
    '--threads',
    String(threads),
    '--json',
    '--quiet',
    ...args,
  ]);
  if (r.code !== 0) throw new Error(`pcb exited ${r.code}`);
  const s = JSON.parse(r.stdout) as Summary;
  rmSync(out, { recursive: true, force: true });
  return { images_per_s: s.images_per_s, cpu_ms_per_image: (s.cpu_s * 1000) / Math.max(1, s.ok), peak_rss_mb: s.peak_rss_bytes / 2 ** 20, ok: s.ok };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const dir = path.join(ROOT, '.cache', 'photos');
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /\.jpe?g$/i.test(f))
        .sort()
    : [];
  if (!files.length) throw new Error('no photographs in .cache/photos: run bash bench/fetch-photos.sh first');
  const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-bench-layouts-'));
  const server = await new KitServer().start();
  try {
    const sizes = await Promise.all(files.map((f) => sharp(path.join(dir, f)).metadata()));
    for (const [i, f] of files.entries()) server.put(`photo-${i}.jpg`, readFileSync(path.join(dir, f)));
    const input = async (n: number, tag: string) => {
      const file = path.join(work, `${tag}.parquet`);
      await writeParquet(
        file,
        Array.from({ length: n }, (_, j) =>
          datasetRow(j, server.url(`/img/photo-${j % files.length}.jpg?${tag}=${j}`), sizes[j % files.length].width!, sizes[j % files.length].height!),
        ),
      );
      return file;
    };

    const small = await input(rows, 'r');
    const seen: Record<string, Measured[]> = Object.fromEntries(LAYOUTS.map((l) => [l.name, []]));
    for (let round = 0; round < rounds; round++) {
      for (const l of LAYOUTS) {
        const m = await download(small, path.join(work, `${l.name}-${round}`), l.args);
        seen[l.name].push(m);
        process.stderr.write(
          `bench:layouts: round ${round + 1} ${l.name}: ${m.images_per_s.toFixed(2)} img/s, ${m.cpu_ms_per_image.toFixed(0)} CPU-ms/img, ${m.peak_rss_mb.toFixed(0)} MB\n`,
        );
      }
    }
    const table = LAYOUTS.map((l) => {
      const ms = seen[l.name];
      const ratios = ms.map((m, i) => m.cpu_ms_per_image / seen.files[i].cpu_ms_per_image);
      return {
        layout: l.name,
        images_per_s: median(ms.map((m) => m.images_per_s)),
        cpu_ms_per_image: median(ms.map((m) => m.cpu_ms_per_image)),
        cpu_vs_files: median(ratios),
        cpu_vs_files_range: [Math.min(...ratios), Math.max(...ratios)],
        peak_rss_mb: Math.max(...ms.map((m) => m.peak_rss_mb)),
      };
    });

    // Flat memory: the same rows into parquet shards of 1,000 and of 100.
    const big = await input(bigRows, 'b');
    const shardRss: { samples_per_shard: number; peak_rss_mb: number; images_per_s: number }[] = [];
    for (const n of [1000, 100]) {
      const m = await download(big, path.join(work, `big-${n}`), ['--output-format', 'parquet', '--samples-per-shard', String(n)]);
      shardRss.push({ samples_per_shard: n, peak_rss_mb: m.peak_rss_mb, images_per_s: m.images_per_s });
      process.stderr.write(`bench:layouts: ${bigRows} rows into parquet shards of ${n}: ${m.peak_rss_mb.toFixed(0)} MB peak\n`);
    }

    const f = (n: number, d = 1) => n.toFixed(d);
    const md = [
      `## pcb bench:layouts — ${new Date().toISOString().slice(0, 10)}, ${os.availableParallelism()} cores, --threads ${threads}`,
      '',
      `${files.length} real photographs (Debian's wallpapers) served on loopback, ${rows} rows, resized to 1024 px PNG, into each layout in turn, ${rounds} rounds (files, tars, parquet, files, …). Medians; "CPU ÷ files" is each round's ratio to the files run beside it (median, min–max). Shards of 100 samples.`,
      '',
      '| layout | img/s | pcb CPU ms/img | CPU ÷ files | peak RSS |',
      '|---|---|---|---|---|',
      ...table.map(
        (t) =>
          `| ${t.layout} | ${f(t.images_per_s, 2)} | ${f(t.cpu_ms_per_image, 0)} | ${f(t.cpu_vs_files, 3)} (${f(t.cpu_vs_files_range[0], 3)}–${f(t.cpu_vs_files_range[1], 3)}) | ${f(t.peak_rss_mb, 0)} MB |`,
      ),
      '',
      `Flat memory: ${bigRows} rows of the same photographs into parquet shards of 1,000 and of 100 (each worker spools its open shard on disk; DuckDB writes a shard a 100-row group at a time).`,
      '',
      '| samples per shard | peak RSS | img/s |',
      '|---|---|---|',
      ...shardRss.map((s) => `| ${s.samples_per_shard} | ${f(s.peak_rss_mb, 0)} MB | ${f(s.images_per_s, 2)} |`),
    ].join('\n');
    writeResults('layouts-latest', md, { threads, rows, rounds, photos: files.length, layouts: table, shard_rss: shardRss, big_rows: bigRows });
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench:layouts: ${(err as Error).message}\n`);
  process.exit(1);
});
