/**
 * `npm run bench:s3`: images/s into a loopback S3 server against into a local folder, the same rows, the
 * same machine, in turn (local, S3, local, S3: the better of each pair counts).
 *   npm run bench:s3 -- [--rows 600] [--threads N]
 * The store is s3rver (the tests' server, objects on this disk) in this process: its CPU is measured
 * apart and named, since a real store's is not on the machine that runs pcb.
 * Writes bench/results/s3-latest.{md,json}.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { photoSet } from '../src/kit/photos.js';
import { KitServer } from '../src/kit/server.js';
import { KitS3Server } from '../src/kit/s3-server.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import type { DatasetRow } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import type { Summary } from '../src/progress.js';
import { cpuNow, run } from './spawn.js';
import { writeResults } from './results.js';
import { numberArg } from './args.js';

const ROOT = projectRoot();
const rowsWanted = numberArg('--rows', 600);
const threads = numberArg('--threads', os.availableParallelism());
/** The store's time to first byte, as over a WAN: every request to it waits this long. */
const latencyMs = numberArg('--latency', 0);

interface Side {
  images_per_s: number;
  cpu_s: number;
  /** CPU seconds of this process during the run: the image server, and for S3 the loopback store. */
  store_cpu_s: number;
  upload_retries: number | null;
}

async function runOnce(args: string[], env: NodeJS.ProcessEnv): Promise<Side> {
  const c0 = cpuNow();
  const r = await run(path.join(ROOT, 'bin', 'pcb'), ['download', ...args, '--json', '--quiet', '--threads', String(threads)], { env });
  if (r.code !== 0) throw new Error(`pcb exited ${r.code}`);
  const s = JSON.parse(r.stdout) as Summary;
  return { images_per_s: s.images_per_s, cpu_s: s.cpu_s, store_cpu_s: cpuNow() - c0, upload_retries: s.upload_retries };
}

async function workloads(server: KitServer): Promise<{ name: string; rows: DatasetRow[]; args: string[] }[]> {
  const out: { name: string; rows: DatasetRow[]; args: string[] }[] = [];
  const web = await photoSet(40, [1280, 853], 85);
  for (const [i, p] of web.entries()) server.put(`web-${i}.jpg`, p.data);
  out.push({
    name: '~1 MP web JPEGs → 256 px PNG',
    rows: Array.from({ length: rowsWanted }, (_, j) => datasetRow(j, server.url(`/img/web-${j % web.length}.jpg?pass=${j}`), 1280, 853)),
    args: ['--resolution', '256'],
  });
  const dir = path.join(ROOT, '.cache', 'photos');
  if (existsSync(dir)) {
    const files = readdirSync(dir)
      .filter((f) => /\.jpe?g$/i.test(f))
      .sort();
    const sizes = await Promise.all(files.map((f) => sharp(path.join(dir, f)).metadata()));
    for (const [i, f] of files.entries()) server.put(`photo-${i}.jpg`, readFileSync(path.join(dir, f)));
    out.push({
      name: `${files.length} real photographs → 1024 px PNG`,
      rows: Array.from({ length: files.length * 2 }, (_, j) =>
        datasetRow(j, server.url(`/img/photo-${j % files.length}.jpg?pass=${j}`), sizes[j % files.length].width!, sizes[j % files.length].height!),
      ),
      args: ['--resolution', '1024'],
    });
  }
  return out;
}

async function main(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-bench-s3-'));
  const server = await new KitServer().start();
  const s3 = await new KitS3Server(['bench']).start();
  s3.faults = { latencyMs };
  const results: { workload: string; rows: number; local: Side; s3: Side; ratio: number }[] = [];
  try {
    for (const w of await workloads(server)) {
      const input = path.join(work, 'in.parquet');
      await writeParquet(input, w.rows);
      process.stderr.write(`bench:s3: ${w.name}, ${w.rows.length} rows\n`);
      const sides: { local: Side[]; s3: Side[] } = { local: [], s3: [] };
      for (let round = 0; round < 2; round++) {
        const local = path.join(work, `local-${round}`);
        sides.local.push(await runOnce([input, '--out', local, '--allow-private-network', ...w.args], {}));
        const prefix = `s3://bench/${w.name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}-${round}`;
        sides.s3.push(await runOnce([input, '--out', prefix, '--allow-private-network', ...w.args], { ...s3.env, XDG_CACHE_HOME: path.join(work, 'cache') }));
        rmSync(local, { recursive: true, force: true });
      }
      const best = (l: Side[]) => l.reduce((a, b) => (b.images_per_s > a.images_per_s ? b : a));
      const local = best(sides.local);
      const remote = best(sides.s3);
      results.push({ workload: w.name, rows: w.rows.length, local, s3: remote, ratio: remote.images_per_s / local.images_per_s });
      process.stderr.write(`  local ${local.images_per_s.toFixed(1)} img/s, s3 ${remote.images_per_s.toFixed(1)} img/s\n`);
    }
  } finally {
    await server.stop();
    await s3.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const f = (n: number, d = 1) => n.toFixed(d);
  const md = [
    `## pcb bench:s3 — ${new Date().toISOString().slice(0, 10)}, ${os.availableParallelism()} cores, --threads ${threads}, the store ${latencyMs} ms from pcb`,
    '',
    "The same rows into a local folder and into a loopback S3 server (s3rver on this machine, through the real SDK), in turn, twice each; the better run of each counts. The store's CPU runs on the same cores as pcb here (a real store's does not): it is shown apart.",
    '',
    "| workload | rows | local img/s | S3 img/s | S3 ÷ local | pcb CPU-s local / S3 | this process's CPU-s local / S3 (image server; + store) | upload retries |",
    '|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.workload} | ${r.rows} | ${f(r.local.images_per_s)} | ${f(r.s3.images_per_s)} | **${f(r.ratio, 2)}×** | ${f(r.local.cpu_s)} / ${f(r.s3.cpu_s)} | ${f(r.local.store_cpu_s)} / ${f(r.s3.store_cpu_s)} | ${r.s3.upload_retries ?? 0} |`,
    ),
  ].join('\n');
  writeResults(latencyMs ? `s3-latency-${latencyMs}` : 's3-latest', md, { threads, latencyMs, results });
}

main().catch((err) => {
  process.stderr.write(`bench:s3: ${(err as Error).message}\n`);
  process.exit(1);
});
