import { existsSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';
import { FatalError, UsageError } from '../errors.js';
import { captionTextSql } from './caption.js';
import { ident, literal, duckMessage } from '../sql.js';
import { composeShard } from '../shard.js';
import type { Shard } from '../shard.js';
import type { RowTask } from '../result.js';

export interface Column {
  name: string;
  type: string;
}

/**
 * One DuckDB thread: pcb's queries stream (the pool, not DuckDB, is the bottleneck), and each extra thread
 * keeps read and write buffers of its own: at 567,597 rows, records took 0.9 GB at 2 threads, 0.35 at 1.
 */
export async function openDuckDB(threads = 1): Promise<DuckDBConnection> {
  // Sorts larger than memory spill to the system's temp folder, not to `.tmp` in the user's working folder.
  const db = await DuckDBInstance.create(':memory:', {
    threads: String(Math.max(1, threads)),
    memory_limit: '2GB',
    // DuckDB's jemalloc keeps freed pages for reuse (up to 128 MB past a query's peak, and more in its
    // arenas): pcb's queries run once each, so what they free goes back to the system soon after, not to a
    // cache the dispatch never uses. At 567,597 rows a resumed run streamed its tasks at 0.26 GB, not 0.6.
    allocator_flush_threshold: '16MB',
    allocator_bulk_deallocation_flush_threshold: '16MB',
    allocator_background_threads: 'true',
    temp_directory: path.join(os.tmpdir(), `pcb-duckdb-${process.pid}`),
  });
  const conn = await db.connect();
  // Joins build their hash table on the side the query names second: pcb always names the small sets of
  // row numbers (done, duplicates, ok rows) there, never the input's scan with its captions, whatever
  // DuckDB estimates a filtered scan to hold.
  await conn.run(`SET disabled_optimizers = 'build_side_probe_side'`);
  instances.set(conn, db);
  return conn;
}

const instances = new WeakMap<DuckDBConnection, DuckDBInstance>();

/** Closes a connection from openDuckDB() and its database, giving back all its memory. */
export function closeDuckDB(conn: DuckDBConnection): void {
  conn.closeSync();
  instances.get(conn)?.closeSync();
  instances.delete(conn);
}

/** Fatal (exit 1) when the input is missing, unreadable or not parquet: checked before DuckDB says it less clearly. */
export function checkInputFile(input: string): void {
  if (!existsSync(input)) throw new FatalError(`input ${input} does not exist; pass the path of a .parquet file`);
  const st = statSync(input);
  if (!st.isFile()) throw new FatalError(`input ${input} is not a file; pass the path of a .parquet file`);
  let fd: number;
  try {
    fd = openSync(input, 'r');
  } catch (err) {
    throw new FatalError(`cannot read input ${input} (${(err as NodeJS.ErrnoException).code}); check its permissions`);
  }
  const head = Buffer.alloc(4);
  const tail = Buffer.alloc(4);
  try {
    readSync(fd, head, 0, 4, 0);
    if (st.size >= 8) readSync(fd, tail, 0, 4, st.size - 4);
  } finally {
    closeSync(fd);
  }
  if (st.size < 12 || head.toString('latin1') !== 'PAR1' || tail.toString('latin1') !== 'PAR1') {
    throw new FatalError(`input ${input} is not a parquet file (no PAR1 magic bytes); pcb reads parquet only`);
  }
}

/** The input parquet as DuckDB sees it, with its row position (`__row`) and columns. */
export class Source {
  private constructor(
    readonly conn: DuckDBConnection,
    readonly input: string,
    readonly columns: Column[],
  ) {}

  static async open(input: string, conn?: DuckDBConnection): Promise<Source> {
    checkInputFile(input);
    const c = conn ?? (await openDuckDB());
    try {
      const r = await c.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${literal(input)})`);
      const columns = r.getRowObjectsJS().map((o) => ({ name: String(o.column_name), type: String(o.column_type) }));
      return new Source(c, input, columns);
    } catch (err) {
      throw new FatalError(`cannot read input ${input} as parquet: ${duckMessage(err)}`);
    }
  }

  /** Done with DuckDB: its memory (temp tables, buffers) goes back. */
  close(): void {
    closeDuckDB(this.conn);
  }

  get scan(): string {
    return `read_parquet(${literal(this.input)}, file_row_number = true)`;
  }

  has(name: string): boolean {
    return this.columns.some((c) => c.name === name);
  }

  type(name: string): string | undefined {
    return this.columns.find((c) => c.name === name)?.type;
  }

  /** LIST (`VARCHAR[]`) and ARRAY (`VARCHAR[3]`) columns: captions from them are joined with ", ". */
  isList(name: string): boolean {
    return (this.type(name) ?? '').endsWith(']');
  }

  /** Fatal when a required column is absent: names it and the columns that exist. */
  requireColumn(name: string, option: string): void {
    if (!this.has(name)) {
      throw new FatalError(`column '${name}' (${option}) is not in ${this.input}; its columns are: ${this.columns.map((c) => c.name).join(', ')}`);
    }
  }

  /** A --where DuckDB rejects is a usage error, found before any output exists. */
  async checkWhere(where: string | null): Promise<void> {
    if (!where) return;
    try {
      await this.conn.run(`EXPLAIN SELECT * FROM ${this.scan} WHERE (${where})`);
    } catch (err) {
      throw new UsageError(`--where ${JSON.stringify(where)} is not a valid DuckDB filter on this input: ${duckMessage(err)}`);
    }
  }
}

export interface Plan {
  urlColumn: string;
  idColumn: string;
  captionColumn: string | null;
  fallbackColumn: string | null;
  where: string | null;
  shard: Shard | null;
  limit: number | null;
  /** One process's share of the rows selected (after the limit, so that the processes' shares add up to it). */
  share?: Shard | null;
  /** A table of `row` values to leave out (already done), or null to take every row. */
  doneTable: string | null;
  /** A table of (`row`, `path`): images written before under another name (--overwrite into another format). */
  previousTable?: string | null;
  /** A table of `row` values whose id an earlier row has (see buildDuplicateTable). */
  duplicateTable?: string | null;
  /** --verify-hash's column: each row's expected hash is sent along (lower case, trimmed). */
  hashColumn?: string | null;
  /** The input columns to send along with each row, as one JSON object (webdataset samples carry them); null: none. */
  sampleColumns?: string[] | null;
}

/** Floating-point types: JSON has no NaN or Infinity, so those values go as null. */
const FLOAT = /^(DOUBLE|FLOAT|REAL|FLOAT4|FLOAT8)$/;

/**
 * A row's columns as one JSON object, by DuckDB's to_json: each value keeps its type's JSON form (a whole
 * DOUBLE stays `1.0`, a BIGINT past 2^53 keeps every digit, a date is its ISO text, a list an array).
 */
function columnsJsonSql(source: Source, names: string[]): string {
  if (!names.length) return 'NULL::VARCHAR';
  const value = (name: string) => {
    const type = source.type(name) ?? '';
    const col = `sel.${ident(name)}`;
    if (FLOAT.test(type)) return `CASE WHEN isfinite(${col}) THEN ${col} END`;
    if (FLOAT.test(type.replace(/\[\d*\]$/, ''))) return `list_transform(${col}, __v -> CASE WHEN isfinite(__v) THEN __v END)`;
    return col;
  };
  return `CAST(to_json(struct_pack(${names.map((n) => `${ident(n)} := ${value(n)}`).join(', ')})) AS VARCHAR)`;
}

function textExpr(source: Source, col: string | null): string {
  return col ? captionTextSql(ident(col), source.type(col) ?? 'VARCHAR') : 'NULL::VARCHAR';
}

function numberExpr(source: Source, col: string): string {
  return source.has(col) ? `TRY_CAST(${ident(col)} AS DOUBLE)` : 'NULL::DOUBLE';
}

/**
 * The rows of the plan: where → shard → limit (the first n in file order: DuckDB keeps a scan's order
 * without ORDER BY, as preserve_insertion_order is on). No sort: nothing holds the whole selection.
 */
export function selectedRowsSql(source: Source, plan: Plan): string {
  const filters = [plan.where ? `(${plan.where})` : 'TRUE'];
  if (plan.shard) filters.push(shardPredicate(ident(plan.idColumn), plan.shard));
  const rows = `SELECT file_row_number AS __row, * FROM ${source.scan} WHERE ${filters.join(' AND ')} ${plan.limit !== null ? `LIMIT ${plan.limit}` : ''}`;
  if (!plan.share) return rows;
  // The same hash splits the shard's rows over the processes: together, this share and the shard are one finer shard.
  return `SELECT * FROM (${rows}) WHERE ${shardPredicate(ident(plan.idColumn), composeShard(plan.shard, plan.share))}`;
}

/**
 * The selected rows whose id an earlier selected row already has (the first wins), as a temp table
 * `__dups`: a hash aggregate over (row, id) only, never a window over whole rows.
 */
export async function buildDuplicateTable(source: Source, plan: Plan): Promise<string> {
  await source.conn.run(`CREATE OR REPLACE TEMP TABLE __dups AS
    WITH s AS (SELECT __row AS r, CAST(${ident(plan.idColumn)} AS VARCHAR) AS k FROM (${selectedRowsSql(source, plan)}))
    SELECT s.r AS row FROM s JOIN (SELECT k, min(r) AS first FROM s GROUP BY k HAVING count(*) > 1) f ON f.k = s.k WHERE s.r > f.first`);
  return '__dups';
}

/** Stable partition by id: the same id always lands in the same shard, whatever the row order. */
export function shardPredicate(idExpr: string, shard: Shard): string {
  return `(hash(CAST(${idExpr} AS VARCHAR)) % ${shard.count}) = ${shard.index}`;
}

export function taskSql(source: Source, plan: Plan): string {
  return `SELECT CAST(__row AS DOUBLE) AS row, CAST(${ident(plan.idColumn)} AS VARCHAR) AS id, CAST(${ident(plan.urlColumn)} AS VARCHAR) AS url,
      ${textExpr(source, plan.captionColumn)} AS caption, ${textExpr(source, plan.fallbackColumn)} AS fallback,
      ${numberExpr(source, 'width')} AS src_width, ${numberExpr(source, 'height')} AS src_height,
      ${plan.duplicateTable ? 'dup.row IS NOT NULL' : 'FALSE'} AS duplicate,
      ${plan.previousTable ? 'prev.path' : 'NULL::VARCHAR'} AS previous_path,
      ${plan.sampleColumns ? columnsJsonSql(source, plan.sampleColumns) : 'NULL::VARCHAR'} AS columns,
      ${plan.hashColumn ? `nullif(lower(trim(CAST(sel.${ident(plan.hashColumn)} AS VARCHAR))), '')` : 'NULL::VARCHAR'} AS expected_hash
    FROM (${selectedRowsSql(source, plan)}) sel
    ${plan.duplicateTable ? `LEFT JOIN ${plan.duplicateTable} dup ON dup.row = sel.__row` : ''}
    ${plan.previousTable ? `LEFT JOIN ${plan.previousTable} prev ON prev.row = sel.__row` : ''}
    ${plan.doneTable ? `WHERE NOT EXISTS (SELECT 1 FROM ${plan.doneTable} d WHERE d.row = sel.__row)` : ''}`;
}

export interface TaskRow extends RowTask {
  duplicate: boolean;
}

/** Streams the plan's rows, about `chunkSize` at a time; DuckDB holds the rest. */
export async function* streamTasks(source: Source, plan: Plan, chunkSize: number): AsyncGenerator<TaskRow[]> {
  const result = await source.conn.stream(taskSql(source, plan));
  let batch: TaskRow[] = [];
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    for (const r of chunk.getRowObjects(result.columnNames())) {
      batch.push({
        row: Number(r.row),
        id: r.id === null ? null : String(r.id),
        url: r.url === null ? null : String(r.url),
        caption: r.caption === null ? null : String(r.caption),
        fallback: r.fallback === null ? null : String(r.fallback),
        srcWidth: r.src_width === null ? null : Number(r.src_width),
        srcHeight: r.src_height === null ? null : Number(r.src_height),
        duplicate: r.duplicate === true,
        previousPath: r.previous_path === null ? null : String(r.previous_path),
        columns: r.columns === null ? null : String(r.columns),
        expectedHash: r.expected_hash === null ? null : String(r.expected_hash),
      });
    }
    if (batch.length >= chunkSize) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length) yield batch;
}

/**
 * Rows the plan selects (where → shard → limit) and how many of them are not done yet, in one pass over
 * the row numbers: the caption columns and the duplicate window are left to the stream.
 */
export async function countPlan(source: Source, plan: Plan): Promise<{ selected: number; todo: number; skippedFailed: number }> {
  const sql = plan.doneTable
    ? `SELECT count(*)::DOUBLE AS selected, count(*) FILTER (WHERE d.row IS NULL)::DOUBLE AS todo,
         count(*) FILTER (WHERE d.status = 'failed')::DOUBLE AS skipped_failed
       FROM (${selectedRowsSql(source, plan)}) s LEFT JOIN ${plan.doneTable} d ON d.row = s.__row`
    : `SELECT count(*)::DOUBLE AS selected, count(*)::DOUBLE AS todo, 0::DOUBLE AS skipped_failed FROM (${selectedRowsSql(source, plan)})`;
  const [r] = (await source.conn.runAndReadAll(sql)).getRowObjectsJS();
  return { selected: Number(r.selected), todo: Number(r.todo), skippedFailed: Number(r.skipped_failed) };
}
