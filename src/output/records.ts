/**
 * The records a folder hands on, rebuilt from its logs inside DuckDB: manifest.parquet (one row per
 * processed input row, its latest outcome), metadata.parquet (the trainer's view of every ok row) and
 * the done set a resumed run leaves alone.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import type { DuckDBConnection } from '@duckdb/node-api';
import { POLICY_REFUSALS, rerunRetriedSql } from '../errors.js';
import type { PolicyFlags } from '../errors.js';
import { MANIFEST_COLUMNS } from '../result.js';
import { latestSql } from './row-log.js';
import { tempName } from './folder.js';
import { captionTextSql } from '../input/caption.js';
import { ident, literal } from '../sql.js';

export async function copyAtomic(conn: DuckDBConnection, select: string, dest: string): Promise<void> {
  const tmp = tempName(dest);
  // Small row groups: the writer holds one per thread in memory, and a metadata row carries a caption.
  await conn.run(`COPY (${select}) TO ${literal(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)`);
  renameSync(tmp, dest);
}

/** Input columns whose names the written image's own take over, kept under img2dataset's names. */
export const RENAMED: Record<string, string> = {
  width: 'original_width',
  height: 'original_height',
  file_name: 'original_file_name',
  caption: 'original_caption',
};

export interface RecordSources {
  /** The input parquet, for metadata.parquet (left out when unknown). */
  input: string | null;
  captionColumn: string | null;
  fallbackCaptionColumn: string | null;
  /** webdataset and parquet: metadata.parquet also names each sample's shard (`tar`, `shard`) and key. */
  outputFormat: string;
}

/**
 * Rebuild manifest.parquet and metadata.parquet. metadata.parquet carries the input columns of every ok
 * row, plus `file_name`, `width`, `height` of the written image and `caption`: the text pcb wrote to its .txt.
 */
export async function writeRecords(
  conn: DuckDBConnection,
  logs: string[],
  src: RecordSources,
  dest: { manifest: string; metadata: string },
): Promise<{ rows: number; ok: number }> {
  if (!logs.length) return { rows: 0, ok: 0 };
  // Streamed from the logs into the file, unsorted: a sort by row held every row (~100 MB at 567,597 rows).
  await copyAtomic(conn, `SELECT ${MANIFEST_COLUMNS.map(ident).join(', ')} FROM (${latestSql(logs)})`, dest.manifest);
  const counts = (
    await conn.runAndReadAll(
      `SELECT count(*)::DOUBLE AS rows, count(*) FILTER (WHERE status = 'ok')::DOUBLE AS ok FROM read_parquet(${literal(dest.manifest)})`,
    )
  ).getRowObjectsJS()[0];
  if (src.input && existsSync(src.input)) {
    // The ok rows' few columns are the join's small side; the input, captions and all, streams past it.
    await conn.run(
      `CREATE OR REPLACE TEMP TABLE __ok AS SELECT row, path, width, height, sha256 FROM read_parquet(${literal(dest.manifest)}) WHERE status = 'ok'`,
    );
    const described = (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${literal(src.input)})`))
      .getRowObjectsJS()
      .map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
    const col = (name: string | null) => (name ? (described.find((c) => c.name === name) ?? null) : null);
    const text = (name: string | null) => {
      const c = col(name);
      return c ? captionTextSql(`i.${ident(c.name)}`, c.type) : 'NULL::VARCHAR';
    };
    const caption = `coalesce(nullif(${text(src.captionColumn)}, ''), nullif(${text(src.fallbackCaptionColumn)}, ''), '')`;
    // A sample in a shard: file_name is `<shard>/<member>`, and the shard (`tar` for a tar) and the key get columns of their own.
    const shardColumn = src.outputFormat === 'webdataset' ? 'tar' : src.outputFormat === 'parquet' ? 'shard' : null;
    const own: Record<string, string> = { ...RENAMED, sha256: 'original_sha256' };
    const renamed: Record<string, string> = shardColumn ? { ...own, [shardColumn]: `original_${shardColumn}`, key: 'original_key' } : own;
    const select = described.map((c) => (renamed[c.name] ? `i.${ident(c.name)} AS ${ident(renamed[c.name])}` : `i.${ident(c.name)}`));
    const inTar = shardColumn ? [`split_part(m.path, '/', 1) AS ${shardColumn}`, "regexp_replace(split_part(m.path, '/', 2), '\\.[^.]*$', '') AS key"] : [];
    await copyAtomic(
      conn,
      `SELECT ${[...select, 'm.path AS file_name', 'm.width AS width', 'm.height AS height', `${caption} AS caption`, ...inTar, 'm.sha256 AS sha256'].join(', ')}
      FROM read_parquet(${literal(src.input)}, file_row_number = true) i JOIN __ok m ON m.row = i.file_row_number`,
      dest.metadata,
    );
    await conn.run('DROP TABLE __ok');
  } else {
    rmSync(dest.metadata, { force: true });
  }
  return { rows: Number(counts.rows), ok: Number(counts.ok) };
}

/** What a rerun retries besides transient failures: rows refused by a policy the user has since lifted. */
export interface RetryPolicy extends PolicyFlags {
  retryFailed: boolean;
}

/** Failed rows a rerun leaves alone: permanent failures, unless their cause is lifted or --retry-failed. */
export function permanentFailureSql(p: RetryPolicy): string {
  if (p.retryFailed) return 'FALSE';
  const lifted = POLICY_REFUSALS.filter((r) => r.lifted(p)).map((r) => r.code);
  return `(status = 'failed' AND NOT ${rerunRetriedSql()}${lifted.length ? ` AND error NOT IN (${lifted.map(literal).join(', ')})` : ''})`;
}

/**
 * The rows a resumed run leaves alone, as a temp table `__done` (row, status): ok rows whose image (or, for
 * a sample, whose tar: the part of its path before `/`) is still on disk, and rows that failed for good.
 * One directory listing, no stat per file.
 */
export async function buildDoneTable(
  conn: DuckDBConnection,
  names: (visit: (name: string) => void) => void | Promise<void>,
  logs: string[],
  policy: RetryPolicy,
  currentManifest: string | null = null,
): Promise<string> {
  await conn.run(`CREATE OR REPLACE TEMP TABLE __files (name VARCHAR)`);
  const appender = await conn.createAppender('__files');
  // Streamed, and captions left out: an array of a flat folder's 1.1 M names held 140 MB.
  await names((name) => {
    if (name.endsWith('.txt')) return;
    appender.appendVarchar(name);
    appender.endRow();
  });
  appender.closeSync();
  // A manifest newer than every log holds each row's latest outcome already: read it instead of parsing the
  // logs' JSON (at 567,597 rows, 25 MB instead of ~190 MB of the planning's memory).
  const latest = currentManifest ? `SELECT * FROM read_parquet(${literal(currentManifest)})` : latestSql(logs);
  await conn.run(`CREATE OR REPLACE TEMP TABLE __done AS SELECT row, status FROM (${latest})
    WHERE (status = 'ok' AND split_part(path, '/', 1) IN (SELECT name FROM __files)) OR ${permanentFailureSql(policy)}`);
  await conn.run('DROP TABLE __files');
  return '__done';
}

/** With --overwrite into another format: each row's image under the old name, to remove once the new one is written. */
export async function buildPreviousTable(conn: DuckDBConnection, logs: string[]): Promise<string> {
  await conn.run(`CREATE OR REPLACE TEMP TABLE __previous AS SELECT row, path FROM (${latestSql(logs)}) WHERE status = 'ok' AND path IS NOT NULL`);
  return '__previous';
}
