import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PEXELS_QUALITY, photoSet } from './photos.js';
import { KitServer } from './server.js';
import { datasetRow, writeParquet } from './dataset.js';
import { projectRoot } from '../version.js';

/**
 * `npm run demo`: ~100 generated Pexels-size photos on a loopback server, a parquet in the dataset's
 * shape pointing at it, and the real `bin/pcb download` over it into ./demo-output/.
 */
async function demo(): Promise<number> {
  const root = projectRoot();
  const n = Number(process.env.PCB_DEMO_PHOTOS ?? 100);
  process.stderr.write(
    `demo: preparing ${n} photo-like JPEGs at Pexels sizes (generated once, then cached in ${path.relative(root, path.join(root, '.cache/kit')) || '.cache/kit'})\n`,
  );
  const photos = await photoSet(n, null, PEXELS_QUALITY, (done, total) => {
    if (done % 10 === 0 || done === total) process.stderr.write(`demo:   generated ${done} new photos\n`);
  });
  const server = await new KitServer().start();
  for (const p of photos) server.put(p.name, p.data);
  const rows = photos.map((p, i) => datasetRow(i, server.url(`/img/${p.name}`), p.width, p.height));
  // Two rows that fail, as they do on the real web: a dead link and a page that is not an image.
  rows.push(datasetRow(n, server.url('/status/404'), 6000, 4000), datasetRow(n + 1, server.url('/html'), 6000, 4000));
  rows[3].cogvlm_caption = null; // a row captioned from the fallback column
  const dir = path.join(root, '.cache', 'demo');
  mkdirSync(dir, { recursive: true });
  const parquet = path.join(dir, 'demo.parquet');
  await writeParquet(parquet, rows);
  const out = path.join(root, 'demo-output');
  // The folder as the user names it from here: the summary and the report's title show it.
  const rel = path.relative(process.cwd(), out) || '.';
  const args = ['download', parquet, '--out', rel, '--allow-private-network', '--overwrite', ...process.argv.slice(2)];
  process.stderr.write(`demo: serving them on ${server.base}; running: pcb ${args.map((a) => (a.includes(' ') ? JSON.stringify(a) : a)).join(' ')}\n`);
  // Ctrl-C reaches pcb too (same process group): keep serving while it finishes the rows in flight.
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  const code = await new Promise<number>((resolve) => {
    const child = spawn(path.join(root, 'bin', 'pcb'), args, { stdio: 'inherit' });
    child.on('exit', (c, sig) => resolve(c ?? (sig === 'SIGINT' ? 130 : 1)));
  });
  await server.stop();
  // The run at a glance: the report page, made from the records (no image is fetched again).
  const reported =
    code === 0 &&
    (await new Promise<number>((resolve) =>
      spawn(path.join(root, 'bin', 'pcb'), ['report', rel], { stdio: ['ignore', 'ignore', 'inherit'] }).on('exit', (c) => resolve(c ?? 1)),
    )) === 0;
  if (code === 0) {
    process.stderr.write(
      [
        '',
        'demo: look at',
        `  ${rel}/<id>.png and <id>.txt   the resized images and their captions`,
        `  ${rel}/manifest.parquet        one row per input row: status, error, sizes, timings`,
        `  ${rel}/metadata.parquet        input columns + file_name/width/height for the trainer`,
        ...(reported ? [`  ${rel}/.pcb/report.html        the run and the dataset at a glance: open it in a browser`] : []),
        `  npx pcb status ${rel}   ·   npx pcb verify ${rel}   ·   npx pcb config ${rel}`,
        '',
      ].join('\n'),
    );
  }
  return code;
}

demo().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
