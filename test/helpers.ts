import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, onTestFailed } from 'vitest';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { KitServer } from '../src/kit/server.js';
import { spawnCollect } from '../src/kit/spawn.js';
import type { Ran, SpawnOptions } from '../src/kit/spawn.js';
import { photoSet } from '../src/kit/photos.js';
import type { KitPhoto } from '../src/kit/photos.js';
import { projectRoot } from '../src/version.js';

export const ROOT = projectRoot();
export const PCB = path.join(ROOT, 'bin', 'pcb');

const made: string[] = [];
// Every temporary folder a test file made goes when the file is done.
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

export function tmpDir(prefix = 'pcb-test-'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

/**
 * When the test that made it fails, a run of pcb is told on stderr: its arguments, how it ended and the end of
 * its stderr, so that a failure in CI says what pcb did. Outside a test (a file's hooks) it is a no-op.
 */
export function reportOnFailure(what: string, ended: () => string, stderr: () => string): void {
  try {
    onTestFailed(() => {
      const tail = stderr().trim().split('\n').slice(-40).join('\n');
      process.stderr.write(`\n--- ${what}\n    ${ended()}\n${tail ? `    stderr (last lines):\n${tail.replace(/^/gm, '    | ')}\n` : '    stderr: (empty)\n'}`);
    });
  } catch {
    /* not inside a running test */
  }
}

/** Run a command (pcb, or pcb under another tool); a failing test prints how it ended and its stderr. */
export function runCommand(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<Ran> {
  let ran: Ran | null = null;
  reportOnFailure(
    `${cmd === PCB ? 'pcb' : cmd} ${args.join(' ')}`,
    () => (ran ? `exit ${ran.code}${ran.signal ? ` (signal ${ran.signal})` : ''}` : 'still running when the test failed'),
    () => ran?.stderr ?? '',
  );
  return spawnCollect(cmd, args, { timeoutMs: 110_000, ...opts, env: { NO_COLOR: '1', ...opts.env } }).then((r) => {
    ran = r;
    return r;
  });
}

/** Run the real CLI (bin/pcb → dist/) as a user would; a failing test prints how each of its runs ended. */
export function runPcb(args: string[], opts: SpawnOptions = {}): Promise<Ran> {
  return runCommand(PCB, args, opts);
}

/** Rows of a parquet file (or any DuckDB query over it) as plain JS objects. */
export async function query(sql: string): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const rows = (await conn.runAndReadAll(sql)).getRowObjectsJS();
    return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])));
  } finally {
    conn.closeSync();
  }
}

export async function readParquet(file: string, order = 'row'): Promise<Record<string, unknown>[]> {
  return query(`SELECT * FROM read_parquet('${file}') ${order ? `ORDER BY ${order}` : ''}`);
}

/**
 * A kit server with `n` small photos for the whole test file: started before its tests, stopped after.
 * Read `kit.server` and `kit.photos` inside tests (they are set once the file's tests start).
 */
export function useKit(n: number, size?: [number, number]): { server: KitServer; photos: KitPhoto[] } {
  const kit = {} as { server: KitServer; photos: KitPhoto[] };
  beforeAll(async () => {
    Object.assign(kit, await smallKit(n, size));
  });
  afterAll(async () => {
    await kit.server?.stop();
  });
  return kit;
}

/** A kit server with small photo-like JPEGs (fast to generate and resize). */
export async function smallKit(n: number, size: [number, number] = [640, 480]): Promise<{ server: KitServer; photos: KitPhoto[] }> {
  const photos = await photoSet(n, size, 85);
  const server = await new KitServer().start();
  for (const p of photos) server.put(p.name, p.data);
  return { server, photos };
}

/** Polls until `pred` holds; a hang fails after `ms` naming what it waited for. */
export async function until(pred: () => boolean, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Settled rows in a folder's log so far (the log is flushed every 500 ms). */
export function loggedRows(out: string): number {
  const log = path.join(out, '.pcb', 'log.jsonl');
  return existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{')).length
    : 0;
}

/** `pcb download` started, then `signal` sent once a dozen rows are in the folder's log: what it ended with (checked: 130, or killed). */
export async function signalMidRun(args: string[], out: string, signal: 'SIGKILL' | 'SIGINT'): Promise<Ran> {
  let pid = 0;
  const run = runPcb(args, {
    onSpawn: (p) => {
      pid = p;
    },
  });
  await until(() => loggedRows(out) >= 12, 'a dozen settled rows');
  process.kill(pid, signal);
  const stopped = await run;
  if (signal === 'SIGINT') expect(stopped.code).toBe(130);
  else expect(stopped.signal).toBe('SIGKILL');
  return stopped;
}

/** Quote for a POSIX shell. */
export const sh = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface PtyRun {
  done: Promise<{ code: number | null; raw: string }>;
  output: () => string;
  type: (keys: string) => void;
}

/**
 * Run a command in a pseudo-terminal of `cols` columns (util-linux `script`), as a user's terminal would:
 * stdout and stderr interleaved on one screen, keys typed go through the terminal (\x03 is Ctrl-C).
 */
export function runInPty(args: string[], cols = 80, env: NodeJS.ProcessEnv = {}): PtyRun {
  const cmd = `stty cols ${cols} rows 40; exec ${args.map(sh).join(' ')}`;
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...process.env, ...env, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let raw = '';
  child.stdout.on('data', (d) => {
    raw += d;
  });
  child.stderr.on('data', (d) => {
    raw += d;
  });
  let ended = 'still running when the test failed';
  const done = new Promise<{ code: number | null; raw: string }>((resolve) =>
    child.on('exit', (code, signal) => {
      ended = `exit ${code}${signal ? ` (signal ${signal})` : ''}`;
      resolve({ code, raw });
    }),
  );
  reportOnFailure(
    `(terminal) ${args.join(' ')}`,
    () => ended,
    () => raw,
  );
  return {
    done,
    output: () => raw,
    type: (keys) => {
      child.stdin.write(keys);
    },
  };
}

/**
 * What a terminal shows for `raw` output: carriage returns move to column 0 and overwrite, `ESC[nG` moves
 * to a column, `ESC[K`/`ESC[0K` clear to the end of the line, `ESC[2K` the whole line; other sequences
 * (colour, cursor visibility) draw nothing.
 */
export function screen(raw: string): string[] {
  const lines: string[][] = [[]];
  let col = 0;
  const line = () => lines[lines.length - 1];
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch === '\x1b') {
      const m = /^\x1b\[(\??[0-9;]*)([A-Za-z])/.exec(raw.slice(i));
      if (!m) continue;
      i += m[0].length - 1;
      const n = m[1] === '' ? 0 : Number(m[1]);
      if (m[2] === 'G') col = Math.max(0, (n || 1) - 1);
      else if (m[2] === 'K' && (n === 0 || m[1] === '')) line().length = Math.min(line().length, col);
      else if (m[2] === 'K' && n === 2) line().length = 0;
      continue;
    }
    if (ch === '\r') {
      col = 0;
      continue;
    }
    if (ch === '\n') {
      lines.push([]);
      col = 0;
      continue;
    }
    line()[col++] = ch;
  }
  return lines.map((l) =>
    Array.from(l, (c) => c ?? ' ')
      .join('')
      .trimEnd(),
  );
}
