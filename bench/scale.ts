/**
 * `npm run bench:scale [-- --rows 567597 --threads 2]`: pcb over the dataset's full shape (567,597 rows,
 * 20 columns, ~570-character captions) with tiny images from a loopback keep-alive server, so that what
 * is measured is what grows with the input: rows/s, CPU per row (main thread and all), peak RSS sampled
 * over time and split by stage (planning, dispatch, records), records time, three reruns (nothing to do; 5 %
 * lost after a completed run; 5 % lost after a killed one, from the logs alone), `pcb merge`, the flat folder's listing and
 * create/rename costs, and the pool's dispatch cost alone at capacities 32, 1,024 and 4,096.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KitServer } from '../src/kit/server.js';
import { photoSet } from '../src/kit/photos.js';
import { writeSyntheticDataset } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import { numberArg } from './args.js';
import { writeResults } from './results.js';
import { RowPool } from '../src/run/pool.js';
import { bareCapacity, bareWorkerConfig } from '../src/kit/pool-config.js';
import type { Summary } from '../src/run/progress.js';
import { bareValidate } from './bare.js';
import { cpuNow, run, sampled } from './spawn.js';
import type { Sampled } from './spawn.js';

const ROOT = projectRoot();
interface Staged {
  peak_rss_mb: number;
  planning_peak_rss_mb: number;
  dispatch_peak_rss_mb: number | null;
  records_peak_rss_mb: number;
}

/**
 * Peak RSS in each stage of a run, from its summary's times: planning until the first row is dispatched (or,
 * with nothing to do, until the records), the records for their last `records_s`, and dispatch between.
 */
function stages(run: Sampled): Staged {
  const r = JSON.parse(run.stdout) as Summary;
  const end = run.timeline.at(-1)?.[0] ?? 0;
  const recordsFrom = end - r.records_s - 0.2;
  const dispatchFrom = r.first_dispatch_s ?? recordsFrom;
  const peak = (from: number, to: number) => Math.max(0, ...run.timeline.filter(([t]) => t >= from && t < to).map(([, rss]) => rss));
  return {
    peak_rss_mb: run.peakRssMb,
    planning_peak_rss_mb: peak(0, dispatchFrom),
    dispatch_peak_rss_mb: r.first_dispatch_s === null ? null : peak(dispatchFrom, recordsFrom),
    records_peak_rss_mb: peak(recordsFrom, Number.POSITIVE_INFINITY),
  };
}

/** Main-thread rows/s of the pool alone: no-op tasks at a given capacity. */
async function poolRate(concurrency: number, rows: number): Promise<number> {
  const config = bareWorkerConfig(1, concurrency);
  const pool = new RowPool(
    config,
    1,
    bareCapacity(1, concurrency),
    () => undefined,
    () => undefined,
    fileURLToPath(new URL('./noop-worker.js', import.meta.url)),
  );
  const task = (row: number) => ({ row, id: String(row), url: 'x', caption: null, fallback: null, srcWidth: null, srcHeight: null });
  try {
    for (let i = 0; i < 2000; i++) await pool.submit(task(i));
    await pool.drain();
    const t0 = process.cpuUsage();
    for (let i = 0; i < rows; i++) await pool.submit(task(i));
    await pool.drain();
    const t = process.cpuUsage(t0);
    return rows / ((t.user + t.system) / 1e6);
  } finally {
    await pool.destroy();
  }
}

/**
 * The bare library's CPU per image for what `--resize none --format jpeg` asks of a JPEG: its header read,
 * then every byte decoded (a truncated file must not pass), from memory, one thread, no pool, no network,
 * no files. The same calls pcb makes; what pcb spends beyond this per row is its own.
 */
async function bareTiny(images: Buffer[], n: number): Promise<number> {
  for (let i = 0; i < 200; i++) await bareValidate(images[i % images.length]);
  const c0 = cpuNow();
  for (let i = 0; i < n; i++) await bareValidate(images[i % images.length]);
  return ((cpuNow() - c0) * 1000) / n;
}

/**
 * Moves a folder out of the way, to be deleted once everything is measured. On a filesystem without a
 * journal (this machine's ext4), each file created within a minute or so of a mass deletion scans past
 * the deleted inodes (the kernel's `recently_deleted`): 5,000 tiny rows written right after deleting the
 * previous output cost pcb's workers 2.5–3.8 CPU-s more in the kernel (~18 % of the run). A user writing
 * into a folder has not just deleted a million files; the bench's own cleanup must not be charged to the
 * next run it measures.
 */
let retired = 0;
function retire(dir: string, trash: string): void {
  if (!existsSync(dir)) return;
  mkdirSync(trash, { recursive: true });
  // Distinct names for the same folder retired twice (the create/rename probe's, from two folders).
  renameSync(dir, path.join(trash, `${path.basename(dir)}-${process.pid}-${++retired}`));
}

/**
 * CPU ms per row of the whole job done without pcb (bench/floor-work.ts: fetch on a keep-alive
 * connection, header, decode, two atomic writes), as `chains` processes at once over 10,000 rows each:
 * two at once is pcb's parallelism at --threads 2, contention for this machine's cores included.
 */
async function floorWork(server: KitServer, work: string, chains: number, trash: string): Promise<number> {
  const script = fileURLToPath(new URL('./floor-work.js', import.meta.url));
  const base = server.url('').replace(/\/$/, '');
  const dirs = Array.from({ length: chains }, (_, k) => path.join(work, `floor-${chains}-${k}`));
  for (const d of dirs) retire(d, trash);
  const runs = await Promise.all(dirs.map((d) => run(process.execPath, [script, base, '100', '10000', d])));
  for (const d of dirs) retire(d, trash);
  const ms = runs.map((r) => Number(r.stdout.trim()));
  return ms.reduce((a, b) => a + b, 0) / ms.length;
}

/**
 * Seconds to create and rename `n` small files in `dir` (as pcb's atomic writes do). The files are then
 * moved into the trash, not deleted: a deletion here would make the next measurement's creates scan past
 * them (see retire()).
 */
function createRename(dir: string, n: number, trash: string): number {
  const tmp = path.join(dir, '.bench-tmp');
  mkdirSync(tmp, { recursive: true });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const f = path.join(tmp, `${i}.tmp`);
    writeFileSync(f, 'x');
    renameSync(f, path.join(dir, `bench-${i}.txt`));
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  for (let i = 0; i < n; i++) renameSync(path.join(dir, `bench-${i}.txt`), path.join(tmp, `${i}.txt`));
  retire(tmp, trash);
  return s;
}

async function main(): Promise<void> {
  const rows = numberArg('--rows', 567_597);
  const threads = numberArg('--threads', 2);
  const work = path.join(ROOT, '.cache', 'bench-scale');
  mkdirSync(work, { recursive: true });
  const server = await new KitServer().start();
  server.recordRequests = false;
  const tiny = await photoSet(100, [96, 64], 80);
  for (const [i, p] of tiny.entries()) server.put(`photo-${i}.jpg`, p.data);
  const input = path.join(work, `scale-${rows}.parquet`);
  process.stderr.write(`bench:scale: ${rows} rows in the dataset's full shape → ${input}\n`);
  await writeSyntheticDataset(input, rows, server.url('').replace(/\/$/, ''), true);
  const out = path.join(work, 'out');
  const trash = path.join(work, 'trash');
  retire(out, trash);
  const common = [input, '--out', out, '--threads', String(threads), '--allow-private-network', '--resize', 'none', '--format', 'jpeg', '--json', '--quiet'];

  process.stderr.write('bench:scale: full run\n');
  const full = await sampled(['download', ...common]);
  if (full.code !== 0) throw new Error(`pcb exited ${full.code}`);
  const s = JSON.parse(full.stdout) as Summary;
  if (s.failed) process.stderr.write(`bench:scale: ${s.failed} rows failed: ${JSON.stringify(s.errors)}\n`);
  // The floors next, under the full run's conditions: before the deletions the listing and reruns make.
  process.stderr.write('bench:scale: the floor of the work without pcb, one chain and two at once\n');
  const floorOne = await floorWork(server, work, 1, trash);
  const floorTwo = await floorWork(server, work, 2, trash);

  process.stderr.write('bench:scale: listing and create/rename in the flat folder\n');
  const t0 = process.hrtime.bigint();
  const names = readdirSync(out);
  const listS = Number(process.hrtime.bigint() - t0) / 1e9;
  const renameFull = createRename(out, 10_000, trash);
  const empty = path.join(work, 'empty');
  retire(empty, trash);
  mkdirSync(empty);
  const renameEmpty = createRename(empty, 10_000, trash);

  // The reruns a user makes: one with nothing left to do, then 5 % of the images lost (every 20th row's image
  // and caption removed), after a completed run (its manifest current) and after a killed one (logs alone).
  const loseFivePercent = () => {
    for (let i = 0; i < rows; i += 20) for (const ext of ['jpg', 'txt']) rmSync(path.join(out, `${1_000_000 + i}.${ext}`), { force: true });
  };
  process.stderr.write('bench:scale: rerun with nothing to do\n');
  const noop = await sampled(['download', ...common]);
  process.stderr.write('bench:scale: resumed run with 5 % left to do, after a completed run\n');
  loseFivePercent();
  const resumed = await sampled(['download', ...common]);
  process.stderr.write('bench:scale: resumed run with 5 % left to do, from the logs alone (a killed run)\n');
  loseFivePercent();
  for (const f of ['manifest.parquet', 'metadata.parquet']) rmSync(path.join(out, f), { force: true });
  const fromLogs = await sampled(['download', ...common]);
  const reruns = { noop, resumed, fromLogs };

  process.stderr.write('bench:scale: pcb merge\n');
  const t1 = Date.now();
  const merge = await sampled(['merge', out, '--json']);
  const mergeS = (Date.now() - t1) / 1000;

  process.stderr.write('bench:scale: the pool alone\n');
  const pool: [number, number][] = [];
  for (const capacity of [32, 1024, 4096]) pool.push([capacity, await poolRate(capacity - 2, 100_000)]);
  await server.stop();
  process.stderr.write('bench:scale: bare sharp on the same images\n');
  const bareMs = await bareTiny(
    tiny.map((p) => p.data),
    20_000,
  );

  const f1 = (n: number) => n.toFixed(1);
  const rerun = (run: Sampled) => {
    const r = JSON.parse(run.stdout) as Summary;
    return { processed: r.processed, skipped: r.skipped, wall_s: r.wall_s, first_dispatch_s: r.first_dispatch_s, records_s: r.records_s, ...stages(run) };
  };
  const stageRow = (name: string, done: number, r: Staged & { wall_s: number; first_dispatch_s: number | null; records_s: number }, rates = ' | | ') =>
    `| ${name} | ${done} | ${f1(r.wall_s)} | ${rates} | ${r.first_dispatch_s === null ? '–' : r.first_dispatch_s.toFixed(2)} | ${f1(r.records_s)} | ${f1(r.peak_rss_mb)} | ${f1(r.planning_peak_rss_mb)} | ${r.dispatch_peak_rss_mb === null ? '–' : f1(r.dispatch_peak_rss_mb)} | ${f1(r.records_peak_rss_mb)} |`;
  const result = {
    date: new Date().toISOString(),
    host: os.hostname(),
    cpus: os.availableParallelism(),
    rows,
    threads,
    full: {
      wall_s: s.wall_s,
      rows_per_s: s.processed / s.wall_s,
      cpu_ms_per_row: (s.cpu_s * 1000) / s.processed,
      main_cpu_ms_per_row: (full.mainCpuS * 1000) / s.processed,
      ...stages(full),
      first_dispatch_s: s.first_dispatch_s,
      records_s: s.records_s,
      ok: s.ok,
      failed: s.failed,
    },
    noop: rerun(reruns.noop),
    resumed: rerun(reruns.resumed),
    fromLogs: rerun(reruns.fromLogs),
    merge: { wall_s: mergeS, peak_rss_mb: merge.peakRssMb },
    folder: { entries: names.length, readdir_s: listS, create_rename_10k_full_s: renameFull, create_rename_10k_empty_s: renameEmpty },
    bare_cpu_ms_per_image: bareMs,
    full_over_bare: (s.cpu_s * 1000) / s.processed / bareMs,
    floor_work_ms_per_row: { one_chain: floorOne, two_chains: floorTwo },
    full_over_floor_two_chains: (s.cpu_s * 1000) / s.processed / floorTwo,
    pool_rows_per_s: Object.fromEntries(pool.map(([c, v]) => [c, v])),
    timeline: full.timeline.filter((_, i) => i % 5 === 0),
  };
  const md = [
    `## pcb bench:scale — ${result.date.slice(0, 10)} on ${result.host} (${result.cpus} cores)`,
    '',
    `${rows} rows in the dataset's shape (20 columns, ~570-character captions), 96×64 JPEGs from a loopback keep-alive server, \`--threads ${threads} --resize none --format jpeg\`: ${s.ok} ok, ${s.failed} failed.`,
    '',
    `| run | rows done | wall s | rows/s | CPU ms/row (all) | CPU ms/row (main thread) | first dispatch s | records s | peak RSS MB: whole run | planning | dispatch | records |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    stageRow(
      'full',
      s.processed,
      result.full,
      `${f1(result.full.rows_per_s)} | ${result.full.cpu_ms_per_row.toFixed(2)} | ${result.full.main_cpu_ms_per_row.toFixed(2)}`,
    ),
    stageRow('rerun, nothing to do', result.noop.processed, result.noop),
    stageRow('resumed, 5 % left, after a completed run', result.resumed.processed, result.resumed),
    stageRow('resumed, 5 % left, from the logs alone', result.fromLogs.processed, result.fromLogs),
    `| pcb merge | | ${f1(mergeS)} | | | | | | ${f1(merge.peakRssMb)} | | | |`,
    '',
    `Bare sharp on the same 96×64 JPEGs, one thread, from memory (header, then a decode of every byte: what \`--resize none\` asks of pcb): ${bareMs.toFixed(2)} CPU ms/image. pcb's full run, everything included: **${result.full_over_bare.toFixed(2)}×** that.`,
    '',
    `The floor of the whole job without pcb (fetch on a keep-alive connection, header, decode, image and caption written atomically; bench/floor-work.ts): ${floorOne.toFixed(2)} CPU ms/row as one chain, ${floorTwo.toFixed(2)} as two chains at once (pcb's parallelism at \`--threads 2\`). pcb's full run: **${result.full_over_floor_two_chains.toFixed(2)}×** the two-chain floor.`,
    '',
    `Flat folder of ${names.length} entries: readdir ${listS.toFixed(2)} s; create + rename of 10,000 files ${renameFull.toFixed(2)} s there, ${renameEmpty.toFixed(2)} s in an empty folder.`,
    `The pool alone (no-op tasks, main-thread rows/s): ${pool.map(([c, v]) => `capacity ${c}: ${Math.round(v)}`).join(' · ')}.`,
  ].join('\n');
  writeResults('scale-latest', md, result);
  rmSync(trash, { recursive: true, force: true });
}

main().catch((err) => {
  process.stderr.write(`bench:scale: ${(err as Error).message}\n`);
  process.exit(1);
});
