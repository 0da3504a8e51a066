/**
 * `npm run bench:plan`: how long a resumed run over the full 567,000-row dataset takes to plan, from
 * start to the first dispatched row. Generates the parquet, a log marking 95 % of rows settled
 * (ok with their files present, or failed for good), then runs the real `pcb download`.
 */
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { writeSyntheticDataset } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import type { RowResult } from '../src/result.js';
import { runPcbDownload } from './spawn.js';

const ROWS = Number(process.argv[2] ?? 567_000);
const DONE_FRACTION = 0.95;

async function main(): Promise<void> {
  const work = path.join(projectRoot(), '.cache', 'bench-plan');
  mkdirSync(work, { recursive: true });
  const input = path.join(work, `pcb-${ROWS}.parquet`);
  if (!existsSync(input)) {
    process.stderr.write(`plan: writing ${ROWS} rows to ${input}\n`);
    await writeSyntheticDataset(input, ROWS, 'http://10.255.255.1'); // a private address: refused without a request
  }
  const out = path.join(work, 'out');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(path.join(out, '.pcb'), { recursive: true });
  process.stderr.write(`plan: a log with ${Math.round(ROWS * DONE_FRACTION)} settled rows and their files\n`);
  const fd = openSync(path.join(out, '.pcb', 'log.jsonl'), 'w');
  let buf = '';
  const run = Date.now();
  for (let i = 0; i < ROWS; i++) {
    if (i % 20 === 19) continue; // 5 % left to do
    const id = 1_000_000 + i;
    const ok = i % 10 !== 3;
    const line: RowResult & { run: number; seq: number } = {
      row: i,
      id: String(id),
      url: 'x',
      status: ok ? 'ok' : 'failed',
      error: ok ? null : 'http_status',
      message: null,
      http_status: ok ? 200 : 404,
      attempts: 1,
      bytes: 1,
      src_width: 6000,
      src_height: 4000,
      width: ok ? 1536 : null,
      height: ok ? 1024 : null,
      path: ok ? `${id}.png` : null,
      caption_source: ok ? 'primary' : null,
      ms: 1,
      source: null,
      sha256: ok ? 'a'.repeat(64) : null,
      run,
      seq: i,
    };
    buf += JSON.stringify(line) + '\n';
    if (ok) closeSync(openSync(path.join(out, `${id}.png`), 'w'));
    if (buf.length > 1 << 20) {
      writeSync(fd, buf);
      buf = '';
    }
  }
  writeSync(fd, buf);
  closeSync(fd);
  process.stderr.write('plan: running pcb download (resume)\n');
  const summary = await runPcbDownload([input, '--out', out, '--retries', '0']);
  const line = `plan: ${ROWS} rows, ${summary.skipped} skipped as done, ${summary.processed} to do: first row dispatched after ${Number(summary.first_dispatch_s).toFixed(2)} s (target < 10 s); whole run ${Number(summary.wall_s).toFixed(1)} s`;
  process.stdout.write(line + '\n');
}

main().catch((err) => {
  process.stderr.write(`plan: ${(err as Error).message}\n`);
  process.exit(1);
});
