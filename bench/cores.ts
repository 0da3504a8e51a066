/**
 * `npm run bench:cores`: how pcb's images/s grow with the cores of this machine, and where the time goes.
 *   npm run bench:cores -- [--quick] [--max-threads N]
 * Three workloads (real photographs → 1024 px PNG, ~1 MP web JPEGs → 256 px PNG, 96×64 rows kept as
 * they are), each run as 1 process of 1, 2, 4 … threads up to the cores, as T processes of 1 thread, as
 * pcb's default split (--processes auto), and oversubscribed past the cores on small machines, where
 * contention shows as context switches. The published script runs in the same run on the same rows.
 * Writes bench/results/cores-latest.{md,json}.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { photoSet } from '../src/kit/photos.js';
import { KitServer } from '../src/kit/server.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import type { DatasetRow } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import { resolveProcesses } from '../src/options.js';
import type { Summary } from '../src/run/progress.js';
import { run } from './spawn.js';
import { publishedScript } from './photos.js';
import { writeResults } from './results.js';
import { numberArg } from './args.js';

const ROOT = projectRoot();
const quick = process.argv.includes('--quick');
const cores = os.availableParallelism();
const maxThreads = numberArg('--max-threads', cores);

interface Workload {
  name: string;
  rows: DatasetRow[];
  args: string[];
  /** The published script's resolution, or null where it has no equivalent (it always resizes). */
  reference: number | null;
}

interface Layout {
  processes: number;
  threads: number;
  label: string;
}

interface Measured extends Layout {
  workload: string;
  images_per_s: number;
  /** img/s over the cores the layout can use (its threads, at most the machine's cores). */
  per_core: number;
  cpu_ms_per_image: number;
  switches_per_image: number;
  involuntary_per_image: number;
  cores_busy: number;
  allocator: string;
}

function layouts(): Layout[] {
  const out: Layout[] = [];
  const add = (processes: number, threads: number, label: string) => {
    if (!out.some((l) => l.processes === processes && l.threads === threads)) out.push({ processes, threads, label });
  };
  const counts: number[] = [];
  for (let t = 1; t < maxThreads; t *= 2) counts.push(t);
  counts.push(maxThreads);
  for (const t of counts) {
    const auto = resolveProcesses('auto', t);
    add(1, t, `1 × ${t}${auto === 1 ? ' (auto)' : ''}`);
    if (t > 1) add(t, t, `${t} × 1`);
    add(auto, t, `${auto} × ${t / auto} (auto)`);
  }
  // On a small machine, contention is made visible by more threads than cores.
  if (cores <= 4) {
    add(1, 4 * cores, `1 × ${4 * cores} (oversubscribed)`);
    add(4 * cores, 4 * cores, `${4 * cores} × 1 (oversubscribed)`);
  }
  return out;
}

async function measure(w: Workload, l: Layout, input: string, work: string, env: NodeJS.ProcessEnv = {}): Promise<Measured> {
  const out = mkdtempSync(path.join(work, 'out-'));
  const pcbArgs = [
    'download',
    input,
    '--out',
    out,
    '--allow-private-network',
    '--json',
    '--quiet',
    '--threads',
    String(l.threads),
    '--processes',
    String(l.processes),
    ...w.args,
  ];
  const r = await run('python3', [path.join(ROOT, 'bench', 'rusage.py'), path.join(ROOT, 'bin', 'pcb'), ...pcbArgs], { stderr: 'pipe', env });
  const usage = JSON.parse(r.stderr.trim().split('\n').pop()!) as { code: number; cpu_s: number; voluntary_switches: number; involuntary_switches: number };
  if (usage.code !== 0) throw new Error(`pcb exited ${usage.code} on ${w.name} ${l.label}: ${r.stderr.slice(0, 500)}`);
  const s = JSON.parse(r.stdout) as Summary;
  rmSync(out, { recursive: true, force: true });
  const n = Math.max(1, s.processed);
  return {
    ...l,
    workload: w.name,
    images_per_s: s.images_per_s,
    per_core: s.images_per_s / Math.min(l.threads, cores),
    cpu_ms_per_image: (usage.cpu_s * 1000) / n,
    switches_per_image: (usage.voluntary_switches + usage.involuntary_switches) / n,
    involuntary_per_image: usage.involuntary_switches / n,
    cores_busy: s.cores_busy,
    allocator: s.allocator,
  };
}

async function workloads(server: KitServer): Promise<Workload[]> {
  const list: Workload[] = [];
  const photosDir = path.join(ROOT, '.cache', 'photos');
  if (existsSync(photosDir)) {
    const files = readdirSync(photosDir)
      .filter((f) => /\.(jpe?g|png)$/i.test(f))
      .sort();
    const sizes = await Promise.all(files.map((f) => sharp(path.join(photosDir, f)).metadata()));
    for (const [i, f] of files.entries()) server.put(`photo-${i}${path.extname(f).toLowerCase()}`, readFileSync(path.join(photosDir, f)));
    // Three passes: a run of one pass is mostly its ramp and its tail (the last big photos on one worker).
    const passes = quick ? 2 : 3;
    const rows = Array.from({ length: files.length * passes }, (_, j) => {
      const i = j % files.length;
      return datasetRow(j, server.url(`/img/photo-${i}${path.extname(files[i]).toLowerCase()}?pass=${j}`), sizes[i].width!, sizes[i].height!);
    });
    list.push({ name: `${files.length} real photographs → 1024 px PNG`, rows, args: ['--resolution', '1024'], reference: 1024 });
  } else {
    process.stderr.write("bench:cores: no .cache/photos (bash bench/fetch-photos.sh fetches Debian's wallpapers): the photographs are left out\n");
  }
  const web = await photoSet(40, [1280, 853], 85);
  for (const [i, p] of web.entries()) server.put(`web-${i}.jpg`, p.data);
  const webRows = Array.from({ length: quick ? 200 : 600 }, (_, j) => datasetRow(j, server.url(`/img/web-${j % web.length}.jpg?pass=${j}`), 1280, 853));
  list.push({ name: '~1 MP web JPEGs → 256 px PNG', rows: webRows, args: ['--resolution', '256'], reference: 256 });
  const tiny = await photoSet(100, [96, 64], 80);
  for (const [i, p] of tiny.entries()) server.put(`tiny-${i}.jpg`, p.data);
  const tinyRows = Array.from({ length: quick ? 1500 : 5000 }, (_, j) => datasetRow(j, server.url(`/img/tiny-${j % tiny.length}.jpg?pass=${j}`), 96, 64));
  list.push({
    name: '96×64 JPEGs, kept as they are (the shape of the 567,597-row bench)',
    rows: tinyRows,
    args: ['--resize', 'none', '--format', 'jpeg'],
    reference: null,
  });
  return list;
}

const f = (n: number, d = 1) => n.toFixed(d);

/** The allocators bin/pcb can run on, as it chooses them (PCB_ALLOCATOR, MALLOC_ARENA_MAX). */
const ALLOCATORS: { label: string; env: NodeJS.ProcessEnv }[] = [
  { label: "bin/pcb's choice (jemalloc where installed)", env: {} },
  { label: 'glibc, an arena per thread (the fallback)', env: { PCB_ALLOCATOR: 'glibc' } },
  { label: 'glibc capped at 2 arenas (before this version)', env: { PCB_ALLOCATOR: 'glibc', MALLOC_ARENA_MAX: '2' } },
];

/** `-- --allocators`: the tiny rows at every core, on each allocator in turn, five rounds; medians. */
async function allocators(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-alloc-'));
  const server = await new KitServer().start();
  try {
    const tiny = (await workloads(server)).at(-1)!;
    const input = path.join(work, 'in.parquet');
    await writeParquet(input, tiny.rows);
    const layout = { processes: resolveProcesses('auto', cores), threads: cores, label: 'auto' };
    const runs = ALLOCATORS.map(() => [] as Measured[]);
    for (let round = 0; round < 5; round++) for (const [k, a] of ALLOCATORS.entries()) runs[k].push(await measure(tiny, layout, input, work, a.env));
    const median = (xs: number[]) => xs.sort((p, q) => p - q)[Math.floor(xs.length / 2)];
    const rows = runs.map((r, k) => ({
      label: `${ALLOCATORS[k].label}: ${r[0].allocator}`,
      images_per_s: median(r.map((m) => m.images_per_s)),
      cpu_ms: median(r.map((m) => m.cpu_ms_per_image)),
    }));
    const last = rows.at(-1)!;
    const md = [
      `# bench:cores -- --allocators, ${cores} cores, --threads ${cores}, ${tiny.rows.length} rows of 96×64 JPEGs kept as they are`,
      '',
      'Each allocator in turn, five rounds; medians. Ratios against glibc capped at 2 arenas.',
      '',
      '| allocator | img/s | CPU ms / img | img/s ÷ 2 arenas | CPU ÷ 2 arenas |',
      '|---|---|---|---|---|',
      ...rows.map(
        (r) => `| ${r.label} | ${f(r.images_per_s)} | ${f(r.cpu_ms, 2)} | ${f(r.images_per_s / last.images_per_s, 2)}× | ${f(r.cpu_ms / last.cpu_ms, 2)}× |`,
      ),
    ].join('\n');
    writeResults('allocator-latest', md, { cores, rows });
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--allocators')) return allocators();
  const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-cores-'));
  const server = await new KitServer().start();
  const results: Measured[] = [];
  const references: Record<string, { images_per_s: number; cpu_ms: number } | null> = {};
  const md: string[] = [
    `# bench:cores on ${os.cpus()[0]?.model ?? 'this machine'}, ${cores} cores, Node ${process.version}`,
    '',
    'Layouts are processes × threads per process. img/s per core: over the cores the layout can use (its threads, at most the machine\'s). CPU and context switches: the whole process tree (`getrusage` of the children), per image. "vs 1 thread": CPU per image against one thread\'s; contention shows as a ratio above 1.',
  ];
  try {
    for (const w of await workloads(server)) {
      const input = path.join(work, 'in.parquet');
      await writeParquet(input, w.rows);
      process.stderr.write(`bench:cores: ${w.name} (${w.rows.length} rows)\n`);
      references[w.name] = w.reference === null ? null : await publishedScript(w.rows, work, w.reference);
      const rows: Measured[] = [];
      for (const l of layouts()) {
        const m = await measure(w, l, input, work);
        process.stderr.write(`  ${l.label}: ${f(m.images_per_s)} img/s, ${f(m.cpu_ms_per_image, 2)} CPU ms/img, ${f(m.switches_per_image)} switches/img\n`);
        rows.push(m);
      }
      results.push(...rows);
      const one = rows[0].cpu_ms_per_image;
      const ref = references[w.name];
      md.push(
        '',
        `## ${w.name}, ${w.rows.length} rows`,
        '',
        '| layout | img/s | img/s per core | CPU ms / img | vs 1 thread | switches / img (involuntary) | cores busy |' + (ref ? ' vs published script |' : ''),
        '|---|---|---|---|---|---|---|' + (ref ? '---|' : ''),
        ...rows.map(
          (m) =>
            `| ${m.label} | ${f(m.images_per_s)} | ${f(m.per_core)} | ${f(m.cpu_ms_per_image, 2)} | ${f(m.cpu_ms_per_image / one, 2)}× | ${f(m.switches_per_image)} (${f(m.involuntary_per_image)}) | ${Math.round(m.cores_busy * 100)} % |` +
            (ref ? ` ${f(m.images_per_s / ref.images_per_s, 2)}× |` : ''),
        ),
        ...(ref
          ? [
              '',
              `The published script (ThreadPoolExecutor(), default workers; Pillow), same rows, same server: ${f(ref.images_per_s)} img/s, ${f(ref.cpu_ms, 1)} CPU ms/img.`,
            ]
          : []),
      );
    }
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
  md.push('', `Allocator: ${results[0]?.allocator ?? 'unknown'}. ${new Date().toISOString().slice(0, 10)}.`);
  writeResults('cores-latest', md.join('\n'), { cores, node: process.version, results, references });
}

main().catch((err) => {
  process.stderr.write(`bench:cores: ${(err as Error).message}\n`);
  process.exit(1);
});
