import { closeSync, existsSync, fsyncSync, openSync, readdirSync, writeSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { RowResult } from './result.js';
import type { Shard } from './options.js';
import { ident, literal } from './sql.js';

/** pcb's own bookkeeping inside --out. */
export const STATE_DIR = '.pcb';

export function shardTag(shard: Shard | null): string {
  return shard ? `shard-${shard.index}-of-${shard.count}` : '';
}

export function logPath(out: string, shard: Shard | null): string {
  const tag = shardTag(shard);
  return path.join(out, STATE_DIR, tag ? `log.${tag}.jsonl` : 'log.jsonl');
}

export function allLogPaths(out: string): string[] {
  const dir = path.join(out, STATE_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^log(\..+)?\.jsonl$/.test(f)).sort().map((f) => path.join(dir, f));
}

export function recordPaths(out: string, shard: Shard | null, manifest: string | null): { manifest: string; metadata: string } {
  const tag = shardTag(shard);
  return {
    manifest: manifest ?? path.join(out, tag ? `manifest.${tag}.parquet` : 'manifest.parquet'),
    metadata: path.join(out, tag ? `metadata.${tag}.parquet` : 'metadata.parquet'),
  };
}

/**
 * Append-only log of settled rows, one JSON line each. Lines are buffered and written at least every
 * 500 ms (and at close), so a killed run loses only rows settled in the last moment and rows in flight.
 */
export class RowLog {
  private readonly fd: number;
  private pending: string[] = [];
  private readonly timer: NodeJS.Timeout;
  private seq = 0;
  private readonly run = Date.now();

  constructor(readonly file: string) {
    this.fd = openSync(file, 'a');
    this.timer = setInterval(() => this.flush(), 500);
    this.timer.unref();
  }

  append(r: RowResult): void {
    this.pending.push(JSON.stringify({ ...r, run: this.run, seq: this.seq++ }) + '\n');
    if (this.pending.length >= 256) this.flush();
  }

  flush(): void {
    if (!this.pending.length) return;
    const text = this.pending.join('');
    this.pending = [];
    writeSync(this.fd, text);
  }

  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.flush();
    try { fsyncSync(this.fd); } catch { /* fsync is best effort on odd filesystems */ }
    closeSync(this.fd);
  }
}

const LOG_COLUMNS = `{row: 'BIGINT', id: 'VARCHAR', url: 'VARCHAR', status: 'VARCHAR', error: 'VARCHAR', message: 'VARCHAR',
  http_status: 'INTEGER', attempts: 'INTEGER', bytes: 'BIGINT', src_width: 'INTEGER', src_height: 'INTEGER',
  width: 'INTEGER', height: 'INTEGER', path: 'VARCHAR', caption_source: 'VARCHAR', ms: 'BIGINT', run: 'BIGINT', seq: 'BIGINT'}`;

/** The latest outcome of each row over the given logs (a torn last line from a kill is ignored). */
export function latestSql(logs: string[]): string {
  if (!logs.length) {
    return `SELECT * FROM read_json_auto('[]') WHERE FALSE`;
  }
  return `SELECT * EXCLUDE (rn) FROM (
    SELECT *, row_number() OVER (PARTITION BY row ORDER BY run DESC, seq DESC) AS rn
    FROM read_json([${logs.map(literal).join(', ')}], format = 'newline_delimited', ignore_errors = true, columns = ${LOG_COLUMNS})
    WHERE row IS NOT NULL AND status IS NOT NULL) WHERE rn = 1`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove temporary files (`*.tmp-<pid>`, `.pcb-write-test-<pid>`) left in a folder by a killed pcb;
 * a live process's own (another shard's) are left alone.
 */
export function removeStaleTemps(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const m = /(?:\.tmp-|^\.pcb-write-test-)(\d+)$/.exec(name);
    if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) rmSync(path.join(dir, name), { force: true });
  }
}

/**
 * SQL predicate: a failed row that a later run retries by default. A write_error (disk full, a name
 * taken) says nothing about the image, so a rerun tries it again too.
 */
export const TRANSIENT_SQL = `(error IN ('timeout', 'network', 'write_error') OR (error = 'http_status' AND (http_status IN (408, 425, 429) OR http_status BETWEEN 500 AND 599)))`;

export const MANIFEST_COLUMNS = ['row', 'id', 'url', 'status', 'error', 'http_status', 'attempts', 'bytes', 'src_width', 'src_height', 'width', 'height', 'path', 'caption_source', 'ms'];

async function copyAtomic(conn: DuckDBConnection, select: string, dest: string): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}`;
  await conn.run(`COPY (${select}) TO ${literal(tmp)} (FORMAT parquet, COMPRESSION zstd)`);
  renameSync(tmp, dest);
}

/**
 * Rebuild manifest.parquet (one row per processed input row, latest outcome) and metadata.parquet
 * (input columns of every ok row, plus file_name, width, height of the written image).
 */
export async function writeRecords(conn: DuckDBConnection, logs: string[], input: string | null, dest: { manifest: string; metadata: string }): Promise<{ rows: number; ok: number }> {
  if (!logs.length) return { rows: 0, ok: 0 };
  await conn.run(`CREATE OR REPLACE TEMP TABLE __latest AS ${latestSql(logs)}`);
  await copyAtomic(conn, `SELECT ${MANIFEST_COLUMNS.map(ident).join(', ')} FROM __latest ORDER BY row`, dest.manifest);
  const counts = (await conn.runAndReadAll(`SELECT count(*)::DOUBLE AS rows, count(*) FILTER (WHERE status = 'ok')::DOUBLE AS ok FROM __latest`)).getRowObjectsJS()[0];
  if (input && existsSync(input)) {
    const cols = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${literal(input)})`)).getRowObjectsJS().map((r) => String(r.column_name));
    const renamed: Record<string, string> = { width: 'original_width', height: 'original_height', file_name: 'original_file_name' };
    const select = cols.map((c) => (renamed[c] ? `i.${ident(c)} AS ${ident(renamed[c])}` : `i.${ident(c)}`));
    await copyAtomic(conn, `SELECT ${[...select, 'm.path AS file_name', 'm.width AS width', 'm.height AS height'].join(', ')}
      FROM read_parquet(${literal(input)}, file_row_number = true) i JOIN __latest m ON m.row = i.file_row_number
      WHERE m.status = 'ok' ORDER BY m.row`, dest.metadata);
  } else {
    rmSync(dest.metadata, { force: true });
  }
  return { rows: Number(counts.rows), ok: Number(counts.ok) };
}

/**
 * The rows a resumed run leaves alone, as a temp table `__done`: ok rows whose image is still on
 * disk and (unless retryFailed) rows that failed for good. One directory listing, no stat per file.
 */
export async function buildDoneTable(conn: DuckDBConnection, out: string, logs: string[], retryFailed: boolean): Promise<string> {
  await conn.run(`CREATE OR REPLACE TEMP TABLE __files (name VARCHAR)`);
  const appender = await conn.createAppender('__files');
  for (const name of readdirSync(out)) {
    appender.appendVarchar(name);
    appender.endRow();
  }
  appender.closeSync();
  const failedClause = retryFailed ? 'FALSE' : `(status = 'failed' AND NOT ${TRANSIENT_SQL})`;
  await conn.run(`CREATE OR REPLACE TEMP TABLE __done AS SELECT row FROM (${latestSql(logs)})
    WHERE (status = 'ok' AND path IN (SELECT name FROM __files)) OR ${failedClause}`);
  return '__done';
}
