/**
 * `npm run bench:instructions [-- --rows 500 --threads 2]`: the work a tiny-image row costs, counted in
 * instructions rather than CPU seconds. CPU time per row on a small shared machine moves ±15 % between
 * runs and grows when threads contend for the cores; `valgrind --tool=callgrind` counts the user-space
 * instructions executed, the same for the same program and input whatever else the machine does (its
 * threads run one at a time, so there is no contention to count). Three programs over the kit's 96×64
 * JPEGs from a loopback keep-alive server, each run twice (`base` rows, then `base + rows`), so that
 * start-up cancels out of the difference:
 *   - bare sharp from memory (bench/bare-run.ts): the header, then every byte decoded;
 *   - the whole job without pcb (bench/floor-work.ts): fetch, the same sharp calls, two atomic files;
 *   - pcb itself, `download --threads N --resize none --format jpeg`.
 * Kernel work (system calls) is not counted; bench:scale measures the CPU seconds.
 */
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KitServer } from '../src/kit/server.js';
import { photoSet } from '../src/kit/photos.js';
import { writeSyntheticDataset } from '../src/kit/dataset.js';
import { spawnCollect } from '../src/kit/spawn.js';
import { projectRoot } from '../src/version.js';
import { numberArg } from './args.js';
import { writeResults } from './results.js';
import type { Summary } from '../src/run/progress.js';

const ROOT = projectRoot();
const WORK = path.join(ROOT, '.cache', 'bench-instructions');
/** Rows both runs of a program do: its start-up and warm-up, which the difference cancels. */
const BASE = 100;

/** User-space instructions of one run of `args` under callgrind; `check` reads what the run printed. */
async function instructions(args: string[], env: NodeJS.ProcessEnv, check: (stdout: string) => void): Promise<number> {
  const r = await spawnCollect('valgrind', ['--tool=callgrind', '--smc-check=all-non-file', '--callgrind-out-file=/dev/null', ...args], { env });
  const refs = /I\s+refs:\s+([\d,]+)/.exec(r.stderr)?.[1];
  if (r.code !== 0 || !refs) throw new Error(`${args.slice(0, 2).join(' ')} under callgrind exited ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
  check(r.stdout);
  return Number(refs.replace(/,/g, ''));
}

/** Instructions per row: the run with `rows` more rows, less the base run. */
async function perRow(
  name: string,
  rows: number,
  argsFor: (n: number) => string[],
  env: NodeJS.ProcessEnv = {},
  check: (stdout: string, n: number) => void = () => undefined,
): Promise<number> {
  process.stderr.write(`bench:instructions: ${name}, ${BASE} and ${BASE + rows} rows under callgrind\n`);
  const base = await instructions(argsFor(BASE), env, (out) => check(out, BASE));
  const more = await instructions(argsFor(BASE + rows), env, (out) => check(out, BASE + rows));
  return (more - base) / rows;
}

/** pcb's run counts only when every row it was given ended ok. */
function allOk(stdout: string, n: number): void {
  const s = JSON.parse(stdout) as Summary;
  if (s.ok !== n) throw new Error(`pcb under callgrind: ${s.ok} of ${n} rows ok (${JSON.stringify(s.errors)})`);
}

async function main(): Promise<void> {
  const rows = numberArg('--rows', 500);
  const threads = numberArg('--threads', 2);
  if (!(rows > 0) || !(threads > 0)) throw new Error('--rows and --threads take positive numbers');
  const probe = await spawnCollect('valgrind', ['--version']).catch(() => null);
  if (probe?.code !== 0) throw new Error('needs valgrind on the PATH (apt-get install valgrind)');

  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const server = await new KitServer().start();
  server.recordRequests = false;
  const tiny = await photoSet(100, [96, 64], 80);
  for (const [i, p] of tiny.entries()) server.put(`photo-${i}.jpg`, p.data);
  const base = server.url('').replace(/\/$/, '');
  const input = path.join(WORK, 'rows.parquet');
  await writeSyntheticDataset(input, BASE + rows, base, true);
  const script = (name: string) => fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  let k = 0;
  const fresh = (name: string) => path.join(WORK, `${name}-${++k}`);
  try {
    const bare = await perRow('bare sharp', rows, (n) => [process.execPath, script('bare-run'), String(n)]);
    const floor = await perRow('the job without pcb', rows, (n) => [process.execPath, script('floor-work'), base, '100', String(n), fresh('floor')]);
    // bin/pcb's environment (a bash launcher, so node is started here with what it would set).
    const pcbEnv = { UV_THREADPOOL_SIZE: String(threads + 4), MALLOC_ARENA_MAX: '2' };
    const pcb = await perRow(
      `pcb --threads ${threads}`,
      rows,
      (n) => [
        process.execPath,
        path.join(ROOT, 'dist', 'src', 'cli', 'main.js'),
        'download',
        input,
        '--limit',
        String(n),
        '--out',
        fresh('pcb'),
        '--threads',
        String(threads),
        // Everything runs ~50× slower under callgrind: no row may fail on the clock.
        '--timeout',
        '3600',
        '--allow-private-network',
        '--resize',
        'none',
        '--format',
        'jpeg',
        '--json',
        '--quiet',
      ],
      pcbEnv,
      allOk,
    );
    const m = (n: number) => (n / 1e6).toFixed(2);
    const result = {
      date: new Date().toISOString(),
      host: os.hostname(),
      rows,
      threads,
      instructions_per_row: { bare, floor, pcb },
      floor_over_bare: floor / bare,
      pcb_over_bare: pcb / bare,
      pcb_over_floor: pcb / floor,
    };
    const md = [
      `## pcb bench:instructions — ${result.date.slice(0, 10)} on ${result.host}`,
      '',
      `User-space instructions per 96×64 JPEG row, counted by \`valgrind --tool=callgrind\` (runs of ${BASE} and ${BASE + rows} rows, the difference over ${rows}; system calls not counted):`,
      '',
      '| program | M instructions / row | × bare sharp |',
      '|---|---|---|',
      `| bare sharp from memory (header, then every byte decoded) | ${m(bare)} | 1.00 |`,
      `| the job without pcb (fetch, the same sharp calls, image and caption written atomically) | ${m(floor)} | ${(floor / bare).toFixed(2)} |`,
      `| pcb \`download --threads ${threads} --resize none --format jpeg\` | ${m(pcb)} | **${(pcb / bare).toFixed(2)}** (${(pcb / floor).toFixed(2)}× the job) |`,
    ].join('\n');
    writeResults('instructions-latest', md, result);
  } finally {
    await server.stop();
    rmSync(WORK, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench:instructions: ${(err as Error).message}\n`);
  process.exit(1);
});
