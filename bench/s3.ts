/**
 * `npm run bench:s3`: images/s into a loopback S3 server against into a local folder, the same rows, the
 * same machine, in turn (local, S3, local, S3: the better of each pair counts).
 *   npm run bench:s3 -- [--rows 1500] [--threads N] [--latency ms]
 * The store is s3rver (the tests' server, objects on this disk) in a process of its own
 * (bench/s3-store.ts): its CPU is measured apart and named, since a real store's is not on the machine
 * that runs pcb. Writes bench/results/s3-latest.{md,json} (s3-latency-<ms> with --latency).
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { photoSet } from '../src/kit/photos.js';
import { KitServer } from '../src/kit/server.js';
import { KIT_S3_CREDENTIALS } from '../src/kit/s3-server.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import type { DatasetRow } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import type { Summary } from '../src/run/progress.js';
import { cpuNow, run } from './spawn.js';
import { writeResults } from './results.js';
import { numberArg } from './args.js';

const ROOT = projectRoot();
// Enough rows that the SDK's start-up in each worker (~0.1 CPU-s) is not what the ratio measures: a real run has 567,597.
const rowsWanted = numberArg('--rows', 1500);
const threads = numberArg('--threads', os.availableParallelism());
/** The store's time to first byte, as over a WAN: every request to it waits this long. */
const latencyMs = numberArg('--latency', 0);

interface Side {
  images_per_s: number;
  /** pcb's CPU seconds (its summary's), and per ok image. */
  cpu_s: number;
  cpu_ms_per_image: number;
  /** CPU seconds of the image server (this process) and of the store's process during the run. */
  server_cpu_s: number;
  store_cpu_s: number;
  upload_retries: number | null;
}

/** The loopback store in its own process (bench/s3-store.ts). */
class Store {
  private constructor(
    private readonly child: ChildProcess,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async start(bucket: string): Promise<Store> {
    const child = fork(path.join(ROOT, 'dist', 'bench', 's3-store.js'), [bucket, String(latencyMs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { port: number }).port));
      child.once('exit', (code) => reject(new Error(`the store exited ${code}`)));
    });
    return new Store(child, { ...KIT_S3_CREDENTIALS, AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` });
  }

  cpu(): Promise<number> {
    return new Promise((resolve) => {
      this.child.once('message', (m) => resolve(m as number));
      this.child.send('cpu');
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.disconnect();
    await exited;
  }
}

async function runOnce(args: string[], env: NodeJS.ProcessEnv, store: Store | null): Promise<Side> {
  const c0 = cpuNow();
  const s0 = (await store?.cpu()) ?? 0;
  const r = await run(path.join(ROOT, 'bin', 'pcb'), ['download', ...args, '--json', '--quiet', '--threads', String(threads)], { env });
  if (r.code !== 0) throw new Error(`pcb exited ${r.code}`);
  const s = JSON.parse(r.stdout) as Summary;
  return {
    images_per_s: s.images_per_s,
    cpu_s: s.cpu_s,
    cpu_ms_per_image: (s.cpu_s * 1000) / Math.max(1, s.ok),
    server_cpu_s: cpuNow() - c0,
    store_cpu_s: ((await store?.cpu()) ?? 0) - s0,
    upload_retries: s.upload_retries,
  };
}

async function workloads(server: KitServer): Promise<{ name: string; rows: DatasetRow[]; args: string[] }[]> {
  const out: { name: string; rows: DatasetRow[]; args: string[] }[] = [];
  const web = await photoSet(40, [1280, 853], 85);
  for (const [i, p] of web.entries()) server.put(`web-${i}.jpg`, p.data);
  const webRows = Array.from({ length: rowsWanted }, (_, j) => datasetRow(j, server.url(`/img/web-${j % web.length}.jpg?pass=${j}`), 1280, 853));
  out.push({ name: '~1 MP web JPEGs → 256 px PNG', rows: webRows, args: ['--resolution', '256'] });
  out.push({
    name: 'the same, as WebDataset tars of 100',
    rows: webRows,
    args: ['--resolution', '256', '--output-format', 'webdataset', '--samples-per-tar', '100'],
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
  const store = await Store.start('bench');
  const results: { workload: string; rows: number; local: Side; s3: Side; ratio: number }[] = [];
  try {
    for (const w of await workloads(server)) {
      const input = path.join(work, 'in.parquet');
      await writeParquet(input, w.rows);
      process.stderr.write(`bench:s3: ${w.name}, ${w.rows.length} rows\n`);
      const sides: { local: Side[]; s3: Side[] } = { local: [], s3: [] };
      for (let round = 0; round < 2; round++) {
        const local = path.join(work, `local-${round}`);
        sides.local.push(await runOnce([input, '--out', local, '--allow-private-network', ...w.args], {}, null));
        const prefix = `s3://bench/${w.name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}-${round}`;
        sides.s3.push(
          await runOnce([input, '--out', prefix, '--allow-private-network', ...w.args], { ...store.env, XDG_CACHE_HOME: path.join(work, 'cache') }, store),
        );
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
    await store.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const f = (n: number, d = 1) => n.toFixed(d);
  const md = [
    `## pcb bench:s3 — ${new Date().toISOString().slice(0, 10)}, ${os.availableParallelism()} cores, --threads ${threads}, the store ${latencyMs} ms from pcb`,
    '',
    "The same rows into a local folder and into a loopback S3 server (s3rver in a process of its own, objects on this disk, through the real SDK), in turn, twice each; the better run of each counts. The store's CPU runs on the same cores as pcb here (a real store's does not): it is shown apart, with pcb's CPU per image, which is what the upload costs the machine that runs pcb.",
    '',
    "| workload | rows | local img/s | S3 img/s | S3 ÷ local | pcb CPU ms/img local / S3 | the store's CPU-s | upload retries |",
    '|---|---|---|---|---|---|---|---|',
    ...results.map(
      (r) =>
        `| ${r.workload} | ${r.rows} | ${f(r.local.images_per_s)} | ${f(r.s3.images_per_s)} | **${f(r.ratio, 2)}×** | ${f(r.local.cpu_ms_per_image)} / ${f(r.s3.cpu_ms_per_image)} (${f(r.s3.cpu_ms_per_image / r.local.cpu_ms_per_image, 2)}×) | ${f(r.s3.store_cpu_s)} | ${r.s3.upload_retries ?? 0} |`,
    ),
  ].join('\n');
  writeResults(latencyMs ? `s3-latency-${latencyMs}` : 's3-latest', md, { threads, latencyMs, results });
}

main().catch((err) => {
  process.stderr.write(`bench:s3: ${(err as Error).message}\n`);
  process.exit(1);
});
