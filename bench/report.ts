/**
 * `npm run bench:report [-- --rows 567597]`: pcb report on the folder bench:scale makes (the dataset's full shape,
 * tiny images from a loopback server, `--threads 2 --resize none --format jpeg`): its wall time and peak RSS, three
 * times. The folder is built once under .cache/bench-report/ and kept, so a rerun times the report alone.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KitServer } from '../src/kit/server.js';
import { photoSet } from '../src/kit/photos.js';
import { writeSyntheticDataset } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import { numberArg } from './args.js';
import { writeResults } from './results.js';
import { sampled } from './spawn.js';

async function main(): Promise<void> {
  const rows = numberArg('--rows', 567_597);
  const work = path.join(projectRoot(), '.cache', 'bench-report', String(rows));
  const out = path.join(work, 'out');
  mkdirSync(work, { recursive: true });
  if (!existsSync(path.join(out, 'manifest.parquet'))) {
    const server = await new KitServer().start();
    server.recordRequests = false;
    for (const [i, p] of (await photoSet(100, [96, 64], 80)).entries()) server.put(`photo-${i}.jpg`, p.data);
    const input = path.join(work, 'in.parquet');
    await writeSyntheticDataset(input, rows, server.url('').replace(/\/$/, ''), true);
    process.stderr.write(`bench:report: building the ${rows}-row folder (bench:scale's full run) in ${out}\n`);
    const built = await sampled([
      'download',
      input,
      '--out',
      out,
      '--threads',
      '2',
      '--allow-private-network',
      '--resize',
      'none',
      '--format',
      'jpeg',
      '--json',
      '--quiet',
    ]);
    await server.stop();
    if (built.code !== 0) throw new Error(`pcb download exited ${built.code}`);
  }
  const html = path.join(work, 'report.html');
  const runs: { wall_s: number; peak_rss_mb: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const t = Date.now();
    const r = await sampled(['report', out, '-o', html]);
    if (r.code !== 0) throw new Error(`pcb report exited ${r.code}`);
    runs.push({ wall_s: (Date.now() - t) / 1000, peak_rss_mb: r.peakRssMb });
    process.stderr.write(`bench:report: run ${i + 1}: ${runs[i].wall_s.toFixed(1)} s, ${runs[i].peak_rss_mb.toFixed(0)} MB\n`);
  }
  const size = statSync(html).size;
  const f1 = (n: number) => n.toFixed(1);
  const md = [
    `## pcb bench:report — ${new Date().toISOString().slice(0, 10)} on ${os.hostname()} (${os.availableParallelism()} cores)`,
    '',
    `\`pcb report\` on the folder of ${rows} rows in the dataset's shape that bench:scale makes (its full run, \`--threads 2 --resize none --format jpeg\`), default 48 thumbnails, three runs in a row:`,
    '',
    '| run | wall s | peak RSS MB |',
    '|---|---|---|',
    ...runs.map((r, i) => `| ${i + 1} | ${f1(r.wall_s)} | ${f1(r.peak_rss_mb)} |`),
    '',
    `The page: ${(size / 1e6).toFixed(2)} MB. Targets: ≤ 30 s and ≤ 500 MB on 2 cores.`,
  ].join('\n');
  writeResults('report-latest', md, { rows, runs, page_bytes: size });
}

main().catch((err) => {
  process.stderr.write(`bench:report: ${(err as Error).message}\n`);
  process.exit(1);
});
