import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { KitServer } from '../src/kit/server.js';
import { photoSet } from '../src/kit/photos.js';
import type { KitPhoto } from '../src/kit/photos.js';
import { projectRoot } from '../src/version.js';

export const ROOT = projectRoot();
export const PCB = path.join(ROOT, 'bin', 'pcb');

export function tmpDir(prefix = 'pcb-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the real CLI (bin/pcb → dist/) as a user would. */
export function runPcb(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; onSpawn?: (pid: number) => void } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(PCB, args, { env: { ...process.env, NO_COLOR: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 110_000);
    child.on('error', reject);
    if (child.pid) opts.onSpawn?.(child.pid);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
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

/** A kit server with small photo-like JPEGs (fast to generate and resize). */
export async function smallKit(n: number, size: [number, number] = [640, 480]): Promise<{ server: KitServer; photos: KitPhoto[] }> {
  const photos = await photoSet(n, size, 85);
  const server = await new KitServer().start();
  for (const p of photos) server.put(p.name, p.data);
  return { server, photos };
}
