/**
 * `npm run bench`: throughput per core of the real pipeline against the floors beneath it, offline.
 *   npm run bench -- --threads 1,2,8,16 --images 200 --concurrency 4,16
 * Writes a table to stdout and bench/results/<date>-<host>.{json,md,svg} (plus latest.*).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { PEXELS_QUALITY, photoSet } from '../src/kit/photos.js';
import type { KitPhoto } from '../src/kit/photos.js';
import { KitServer } from '../src/kit/server.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import { targetSize } from '../src/image/resize.js';
import { renderChart } from './chart.js';
import { cpuNow, runPcbDownload } from './spawn.js';
import { photoBench, publishedScript } from './photos.js';
import { writeResults } from './results.js';
import { PNG_DEFAULTS } from '../src/options.js';

interface Args {
  images: number;
  threads: number[];
  concurrency: number[];
  resolution: number;
  quick: boolean;
  photos: string | null;
  photosOnly: boolean;
}

function parseArgs(argv: string[]): Args {
  const cores = os.availableParallelism();
  const sweep: number[] = [];
  for (let t = 1; t < cores; t *= 2) sweep.push(t);
  sweep.push(cores);
  const a: Args = { images: 60, threads: sweep, concurrency: [1, 2, 4, 16], resolution: 1024, quick: false, photos: null, photosOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === '--images') {
      a.images = Number(v);
      i++;
    } else if (argv[i] === '--threads') {
      a.threads = v.split(',').map(Number);
      i++;
    } else if (argv[i] === '--concurrency') {
      a.concurrency = v.split(',').map(Number);
      i++;
    } else if (argv[i] === '--resolution') {
      a.resolution = Number(v);
      i++;
    } else if (argv[i] === '--quick') a.quick = true;
    else if (argv[i] === '--photos') {
      a.photos = v;
      i++;
    } else if (argv[i] === '--photos-only') {
      a.photos = v;
      a.photosOnly = true;
      i++;
    } else {
      process.stderr.write(
        `bench: unknown argument ${argv[i]} (use --images N --threads 1,2,4 --concurrency 1,4,16 --resolution 1024 --quick --photos <dir> --photos-only <dir>)\n`,
      );
      process.exit(2);
    }
  }
  if (a.photos !== null && !existsSync(a.photos)) {
    process.stderr.write(`bench: --photos ${a.photos} does not exist (bench/fetch-photos.sh fetches Debian's wallpapers into .cache/photos)\n`);
    process.exit(2);
  }
  if (!(a.images > 0) || a.threads.some((t) => !(t > 0)) || a.concurrency.some((c) => !(c > 0))) {
    process.stderr.write('bench: --images, --threads and --concurrency take positive numbers\n');
    process.exit(2);
  }
  return a;
}

const ROOT = projectRoot();

/** (a) decode floor: each JPEG decoded to pixels at the pipeline's shrink-on-load scale, one thread, nothing else. */
async function decodeFloor(photos: KitPhoto[], res: number): Promise<number> {
  const c0 = cpuNow();
  for (const p of photos) {
    const t = targetSize('shortest-side', p.width, p.height, res)!;
    // A nearest-neighbour resize to the target makes libvips pick the same JPEG shrink-on-load as the
    // pipeline, and costs next to nothing on top of the decode.
    await sharp(p.data).resize(t.width, t.height, { kernel: 'nearest', fit: 'fill' }).raw().toBuffer();
  }
  return (cpuNow() - c0) / photos.length;
}

/** (b) bare library: sharp decode + Lanczos3 + encode from memory, one thread, no pool, no network, no files. */
async function bareFloor(photos: KitPhoto[], res: number, encode: (s: Sharp) => Sharp): Promise<{ cpu: number; bytes: number }> {
  const c0 = cpuNow();
  let bytes = 0;
  for (const p of photos) {
    const t = targetSize('shortest-side', p.width, p.height, res)!;
    bytes += (await encode(sharp(p.data).resize(t.width, t.height, { kernel: 'lanczos3', fit: 'fill' })).toBuffer()).length;
  }
  return { cpu: (cpuNow() - c0) / photos.length, bytes: bytes / photos.length };
}

interface Point {
  label: string;
  threads: number;
  concurrency: number | 'auto';
  format: string;
  images: number;
  wall_s: number;
  images_per_s: number;
  images_per_s_per_thread: number;
  cpu_s: number;
  cpu_per_image_s: number;
  images_per_cpu_s: number;
  cpu_per_wall: number;
  mb_per_s: number;
  peak_rss_mb: number;
  server_cpu_s: number;
  out_bytes_per_image: number;
  downloaded_per_image: number;
  efficiency?: number;
  /** CPU of a one-row run at the same settings: process start, DuckDB, workers loading sharp/undici, records. */
  startup_cpu_s?: number;
  /** (run CPU − startup CPU) / (images − 1): what each further image costs once the pool runs. */
  steady_cpu_per_image_s?: number;
}

async function point(
  server: KitServer,
  input: string,
  label: string,
  extra: string[],
  threads: number,
  concurrency: number | 'auto',
  format: string,
  work: string,
): Promise<Point> {
  const out = path.join(work, `out-${label}`);
  rmSync(out, { recursive: true, force: true });
  const s0 = server.cpuSeconds();
  const s = await runPcbDownload([
    input,
    '--out',
    out,
    '--allow-private-network',
    '--threads',
    String(threads),
    '--concurrency',
    String(concurrency),
    '--format',
    format,
    ...extra,
  ]);
  const serverCpu = server.cpuSeconds() - s0;
  const { execSync } = await import('node:child_process');
  const outBytes = Number(
    execSync(`du -sb --exclude=.pcb --exclude='*.parquet' --exclude='*.txt' ${JSON.stringify(out)}`)
      .toString()
      .split('\t')[0],
  );
  rmSync(out, { recursive: true, force: true });
  if (s.failed) throw new Error(`${label}: ${s.failed} rows failed: ${JSON.stringify(s.errors)}`);
  return {
    label,
    threads,
    concurrency,
    format,
    images: s.ok,
    wall_s: s.wall_s,
    images_per_s: s.images_per_s,
    images_per_s_per_thread: s.images_per_s_per_thread,
    cpu_s: s.cpu_s,
    cpu_per_image_s: s.cpu_s / s.ok,
    images_per_cpu_s: s.ok / s.cpu_s,
    cpu_per_wall: s.cpu_s / s.wall_s,
    mb_per_s: s.bytes_downloaded / 1e6 / s.wall_s,
    peak_rss_mb: s.peak_rss_bytes / 2 ** 20,
    server_cpu_s: serverCpu,
    out_bytes_per_image: outBytes / s.ok,
    downloaded_per_image: s.bytes_downloaded / s.ok,
  };
}

function table(rows: Point[], cols: [string, (p: Point) => string][]): string {
  const head = `| ${cols.map((c) => c[0]).join(' | ')} |`;
  const sep = `|${cols.map(() => '---').join('|')}|`;
  return [head, sep, ...rows.map((r) => `| ${cols.map((c) => c[1](r)).join(' | ')} |`)].join('\n');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  sharp.concurrency(1);
  sharp.cache(false);
  const started = Date.now();
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const work = path.join(ROOT, '.cache', 'bench');
  mkdirSync(work, { recursive: true });
  const full = Math.max(...a.threads);
  const real = a.photos ? await photoBench(a.photos, a.resolution, full, work) : null;
  if (real && a.photosOnly) {
    writeResults('photos-latest', real.md, real.result);
    return;
  }
  process.stderr.write(`bench: ${a.images} photo-like JPEGs at Pexels sizes (24 MP; generated once, cached in .cache/kit)\n`);
  const photos = await photoSet(a.images, null, PEXELS_QUALITY, (d, t) => {
    if (d % 10 === 0) process.stderr.write(`bench:   generated ${d}/${t}\n`);
  });
  const server = await new KitServer().start();
  for (const p of photos) server.put(p.name, p.data);
  const input = path.join(work, 'bench.parquet');
  const rows = photos.map((p, i) => datasetRow(i, server.url(`/img/${p.name}`), p.width, p.height));
  await writeParquet(input, rows);
  const res = ['--resolution', String(a.resolution)];
  const avgSrc = photos.reduce((s, p) => s + p.data.length, 0) / photos.length;

  process.stderr.write('bench: floors (one thread, from memory)\n');
  await bareFloor(photos.slice(0, 2), a.resolution, (s) => s.png()); // warm up code paths and allocator
  // Floors are measured before and after the pipeline runs; the lower (the best this machine did) counts.
  const floorRun = async () => ({
    decode: await decodeFloor(photos, a.resolution),
    bare: await bareFloor(photos, a.resolution, (s) => s.png({ compressionLevel: PNG_DEFAULTS.compression, adaptiveFiltering: PNG_DEFAULTS.filter })),
  });
  const floorsBefore = await floorRun();

  const sweep: Point[] = [];
  for (const t of a.threads) {
    process.stderr.write(`bench: --threads ${t}\n`);
    const p = await point(server, input, `t${t}`, res, t, 'auto', 'png', work);
    const startup = await point(server, input, `t${t}-1`, [...res, '--limit', '1'], t, 'auto', 'png', work);
    p.startup_cpu_s = startup.cpu_s;
    p.steady_cpu_per_image_s = (p.cpu_s - startup.cpu_s) / Math.max(1, p.images - 1);
    sweep.push(p);
  }
  // The baseline: the dataset's script as published, on the same photos from the same server, in this run.
  process.stderr.write('bench: the dataset script as published (thread pool, Pillow)\n');
  const published = await publishedScript(rows, work, a.resolution);
  const one = sweep.find((p) => p.threads === 1) ?? sweep[0];
  for (const p of sweep) p.efficiency = p.images_per_s / ((one.images_per_s / one.threads) * p.threads);

  const formats: Point[] = [];
  if (!a.quick) {
    for (const f of ['png', 'jpeg', 'webp']) {
      process.stderr.write(`bench: --format ${f}\n`);
      formats.push(await point(server, input, `f-${f}`, res, full, 'auto', f, work));
    }
  }
  // The three layouts, in turn, twice (files, webdataset, parquet, files, …): the ratio of their best runs.
  const layouts: Point[] = [];
  if (!a.quick) {
    for (let i = 0; i < 2; i++) {
      for (const layout of ['files', 'webdataset', 'parquet']) {
        process.stderr.write(`bench: --output-format ${layout}\n`);
        layouts.push(await point(server, input, `l-${layout}-${i}`, [...res, '--output-format', layout], full, 'auto', 'png', work));
      }
    }
  }
  const bestOf = (layout: string) => Math.max(...layouts.filter((p) => p.label.startsWith(`l-${layout}-`)).map((p) => p.images_per_s));
  const pngLevels: { level: number; filtering: boolean; cpu_ms: number; kb: number }[] = [];
  const sample = photos.slice(0, Math.min(8, photos.length));
  for (const [level, filtering] of [
    [0, false],
    [1, false],
    [2, false],
    [3, false],
    [6, false],
    [9, false],
    [2, true],
    [6, true],
  ] as [number, boolean][]) {
    if (a.quick && level !== 2 && level !== 6) continue;
    const r = await bareFloor(sample, a.resolution, (s) => s.png({ compressionLevel: level, adaptiveFiltering: filtering }));
    pngLevels.push({ level, filtering, cpu_ms: r.cpu * 1000, kb: r.bytes / 1024 });
  }
  const conc: Point[] = [];
  if (!a.quick) {
    for (const c of a.concurrency) {
      process.stderr.write(`bench: --concurrency ${c}\n`);
      conc.push(await point(server, input, `c${c}`, res, full, c, 'png', work));
    }
  }
  const cdn: Point[] = [];
  if (!a.quick) {
    process.stderr.write('bench: --cdn-resize imgix vs originals\n');
    const imgixInput = path.join(work, 'bench-imgix.parquet');
    await writeParquet(
      imgixInput,
      photos.map((p, i) => datasetRow(i, server.url(`/imgix/${p.name}`), p.width, p.height)),
    );
    cdn.push(await point(server, imgixInput, 'originals', res, full, 'auto', 'png', work));
    await point(server, imgixInput, 'imgix-warm', [...res, '--cdn-resize', 'imgix', '--cdn-resize-host', '127.0.0.1'], full, 'auto', 'png', work);
    cdn.push(await point(server, imgixInput, 'imgix', [...res, '--cdn-resize', 'imgix', '--cdn-resize-host', '127.0.0.1'], full, 'auto', 'png', work));
  }
  await server.stop();
  process.stderr.write('bench: floors again\n');
  const floorsAfter = await floorRun();
  const decode = Math.min(floorsBefore.decode, floorsAfter.decode);
  const bare = { cpu: Math.min(floorsBefore.bare.cpu, floorsAfter.bare.cpu), bytes: floorsBefore.bare.bytes };

  const best = sweep.find((p) => p.threads === full)!;
  const result = {
    date: new Date().toISOString(),
    host: os.hostname(),
    cpus: os.availableParallelism(),
    cpu_model: os.cpus()[0]?.model,
    node: process.version,
    sharp: sharp.versions,
    images: photos.length,
    avg_source_mb: avgSrc / 1e6,
    resolution: a.resolution,
    floors: {
      decode_cpu_per_image_s: decode,
      bare_cpu_per_image_s: bare.cpu,
      measured: [floorsBefore, floorsAfter].map((f) => ({ decode: f.decode, bare: f.bare.cpu })),
    },
    ratios: {
      pipeline_over_bare: best.steady_cpu_per_image_s! / bare.cpu,
      pipeline_over_decode: best.steady_cpu_per_image_s! / decode,
      one_thread_over_bare: one.steady_cpu_per_image_s! / bare.cpu,
      whole_run_over_bare: best.cpu_per_image_s / bare.cpu,
    },
    published_script: published,
    pcb_over_published: published ? { images_per_s: best.images_per_s / published.images_per_s, bytes: best.out_bytes_per_image / 1024 / published.kb } : null,
    sweep,
    formats,
    layouts,
    png_levels: pngLevels,
    concurrency: conc,
    cdn,
    real_photos: real?.result ?? null,
    bench_wall_s: (Date.now() - started) / 1000,
  };
  const f2 = (n: number) => n.toFixed(2);
  const md = [
    `## pcb bench — ${result.date.slice(0, 10)} on ${result.host} (${result.cpus} cores, ${result.cpu_model})`,
    '',
    `${photos.length} photo-like JPEGs, ${f2(avgSrc / 1e6)} MB and 24 MP on average, served from memory on loopback; shortest side → ${a.resolution} px, PNG.`,
    `Server CPU is measured apart and not counted in pcb's CPU.`,
    '',
    table(sweep, [
      ['threads', (p) => String(p.threads)],
      ['img/s', (p) => f2(p.images_per_s)],
      ['img/s per thread', (p) => f2(p.images_per_s_per_thread)],
      ['img per CPU-s', (p) => f2(p.images_per_cpu_s)],
      ['CPU ms/img steady', (p) => ((p.steady_cpu_per_image_s ?? 0) * 1000).toFixed(0)],
      ['startup CPU-s', (p) => f2(p.startup_cpu_s ?? 0)],
      ['CPU-s per wall-s', (p) => f2(p.cpu_per_wall)],
      ['MB/s in', (p) => f2(p.mb_per_s)],
      ['peak RSS MB', (p) => p.peak_rss_mb.toFixed(0)],
      ['scaling eff.', (p) => f2(p.efficiency ?? 1)],
      ['server CPU-s', (p) => f2(p.server_cpu_s)],
    ]),
    '',
    published
      ? `The dataset's script as published (\`ThreadPoolExecutor()\`, default workers; Pillow), same photos and server, this run: ${f2(published.images_per_s)} img/s, ${published.cpu_ms.toFixed(0)} CPU ms/img, ${published.kb.toFixed(0)} KB/img. pcb at --threads ${full}: **${f2(best.images_per_s / published.images_per_s)}× its img/s**, ${f2(best.out_bytes_per_image / 1024 / published.kb)}× its bytes.`
      : '(no python3 with PIL here: `apt-get install python3-pil` for the published script’s line)',
    '',
    `Floors (one thread, per image, the lower of a measurement before and after the runs): decode ${(decode * 1000).toFixed(0)} ms · bare sharp decode+Lanczos+PNG at pcb's default settings (zlib ${PNG_DEFAULTS.compression}, adaptive filter) ${(bare.cpu * 1000).toFixed(0)} ms` +
      ` (measured ${(floorsBefore.bare.cpu * 1000).toFixed(0)} and ${(floorsAfter.bare.cpu * 1000).toFixed(0)} ms).`,
    `Pipeline CPU per image at ${full} threads, steady state (a one-row run's startup CPU taken out): ${(best.steady_cpu_per_image_s! * 1000).toFixed(0)} ms = **${f2(result.ratios.pipeline_over_bare)}× the bare-library floor**, ${f2(result.ratios.pipeline_over_decode)}× the decode floor` +
      ` (at 1 thread: ${f2(result.ratios.one_thread_over_bare)}× bare; whole run with startup: ${f2(result.ratios.whole_run_over_bare)}× bare).`,
    ...(formats.length
      ? [
          '',
          table(formats, [
            ['format', (p) => p.format],
            ['img/s', (p) => f2(p.images_per_s)],
            ['CPU ms/img', (p) => (p.cpu_per_image_s * 1000).toFixed(0)],
            ['KB out/img', (p) => (p.out_bytes_per_image / 1024).toFixed(0)],
          ]),
        ]
      : []),
    ...(layouts.length
      ? [
          '',
          table(layouts, [
            ['--output-format', (p) => p.label.replace(/^l-|-\d$/g, '')],
            ['img/s', (p) => f2(p.images_per_s)],
            ['CPU ms/img', (p) => (p.cpu_per_image_s * 1000).toFixed(0)],
            ['peak RSS MB', (p) => p.peak_rss_mb.toFixed(0)],
          ]),
          `webdataset / files, best of two runs each: **${f2(bestOf('webdataset') / bestOf('files'))}×** the images/s; parquet / files: **${f2(bestOf('parquet') / bestOf('files'))}×**.`,
        ]
      : []),
    '',
    '| PNG zlib level | adaptive filtering | CPU ms/img (bare) | KB/img |',
    '|---|---|---|---|',
    ...pngLevels.map((l) => `| ${l.level} | ${l.filtering ? 'yes' : 'no'} | ${l.cpu_ms.toFixed(0)} | ${l.kb.toFixed(0)} |`),
    ...(conc.length
      ? [
          '',
          table(conc, [
            ['concurrency', (p) => String(p.concurrency)],
            ['img/s', (p) => f2(p.images_per_s)],
            ['CPU-s per wall-s', (p) => f2(p.cpu_per_wall)],
            ['peak RSS MB', (p) => p.peak_rss_mb.toFixed(0)],
          ]),
        ]
      : []),
    ...(cdn.length
      ? [
          '',
          table(cdn, [
            ['source', (p) => p.label],
            ['img/s', (p) => f2(p.images_per_s)],
            ['MB downloaded/img', (p) => f2(p.downloaded_per_image / 1e6)],
            ['pcb CPU ms/img', (p) => (p.cpu_per_image_s * 1000).toFixed(0)],
          ]),
          "(imgix renditions are made by the loopback server once and cached, as a CDN would; its CPU is not pcb's)",
        ]
      : []),
    ...(real ? ['', real.md] : []),
    '',
    `bench wall time ${result.bench_wall_s.toFixed(0)} s`,
  ].join('\n');
  const stem = `${result.date.slice(0, 10)}-${result.host}`;
  const svg = renderChart(
    sweep.map((p) => ({
      threads: p.threads,
      ips: p.images_per_s,
      ipsPerThread: p.images_per_s_per_thread,
      ipcs: 1 / (p.steady_cpu_per_image_s ?? p.cpu_per_image_s),
    })),
    { bare: 1 / bare.cpu, decode: 1 / decode },
  );
  writeFileSync(path.join(dir, `${stem}.json`), JSON.stringify(result, null, 2) + '\n');
  writeFileSync(path.join(dir, `${stem}.md`), md + '\n');
  writeFileSync(path.join(dir, `${stem}.svg`), svg);
  writeFileSync(path.join(dir, 'latest.md'), md + '\n');
  writeFileSync(path.join(dir, 'latest.svg'), svg);
  process.stdout.write(md + '\n\n' + `written: bench/results/${stem}.{json,md,svg} and bench/results/latest.{md,svg}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
