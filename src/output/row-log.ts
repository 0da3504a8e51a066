/**
 * The append-only log of settled rows, one JSON line each: the source of the records. A killed run
 * loses at most the rows settled in its last moment; a torn last line never takes the next one with it.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import type { RowResult } from '../result.js';
import { LOG_ONLY_COLUMNS, RESULT_COLUMNS } from '../result.js';
import { ident, literal } from '../sql.js';

/** Write every byte: writeSync may write fewer than asked (a full disk, a signal). */
function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}

/** Lines are buffered and written at least every 500 ms (and at close). */
export class RowLog {
  private readonly fd: number;
  private pending: string[] = [];
  private readonly timer: NodeJS.Timeout;
  private seq = 0;
  private readonly run = Date.now();
  private closed = false;

  constructor(readonly file: string) {
    this.fd = openSync(file, 'a+');
    // A kill can leave a last line without its newline: end it, so our first line starts a line of its own.
    const size = fstatSync(this.fd).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      readSync(this.fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) writeAll(this.fd, '\n');
    }
    this.timer = setInterval(() => this.flush(), 500);
    this.timer.unref();
  }

  append(r: RowResult): void {
    this.pending.push(JSON.stringify({ ...r, run: this.run, seq: this.seq++, at: Date.now() }) + '\n');
    if (this.pending.length >= 256) this.flush();
  }

  flush(): void {
    if (!this.pending.length || this.closed) return;
    const text = this.pending.join('');
    this.pending = [];
    writeAll(this.fd, text);
  }

  close(): void {
    if (this.closed) return;
    clearInterval(this.timer);
    this.flush();
    this.closed = true;
    try {
      fsyncSync(this.fd);
    } catch {
      /* fsync is best effort on odd filesystems */
    }
    closeSync(this.fd);
  }
}

const LOG_COLUMNS = Object.entries({ ...RESULT_COLUMNS, ...LOG_ONLY_COLUMNS });

/**
 * Every readable line of the logs; unreadable ones (torn by a kill) are skipped one by one. The logs are
 * split into lines first (as CSV with one column and no quoting) and each line parsed on its own:
 * DuckDB's JSON reader would read a torn `{"row":` and the whole next line as one broken value. Each line
 * is parsed once into every column (json_transform; a value of the wrong type is NULL, as TRY_CAST made
 * it): extracting the columns one by one parsed it once a column, 4× the CPU of the records' rebuild.
 */
export function logLinesSql(logs: string[]): string {
  if (!logs.length) return `SELECT ${LOG_COLUMNS.map(([k, t]) => `NULL::${t} AS ${ident(k)}`).join(', ')} WHERE FALSE`;
  const structure = literal(JSON.stringify(Object.fromEntries(LOG_COLUMNS)));
  return `SELECT ${LOG_COLUMNS.map(([k]) => `j.${ident(k)}`).join(', ')} FROM (
      SELECT CASE WHEN json_valid(line) THEN json_transform(line, ${structure}) END AS j
      FROM read_csv([${logs.map(literal).join(', ')}], columns = {'line': 'VARCHAR'}, delim = chr(1),
        quote = '', escape = '', header = false, auto_detect = false, strict_mode = false, ignore_errors = true))
    WHERE j.row IS NOT NULL AND j.status IS NOT NULL`;
}

/**
 * The latest outcome of each row over the given logs. Two passes over the lines: first the greatest
 * (run, seq) of each row (a small hash table of numbers), then the lines that carry it (a streaming
 * join), so that memory holds one key per row, never the rows' text.
 */
export function latestSql(logs: string[]): string {
  const ordered = `SELECT *, run::HUGEINT * 4294967296 + seq AS __ord FROM (${logLinesSql(logs)})`;
  return `SELECT l.* EXCLUDE (__ord) FROM (${ordered}) l
    SEMI JOIN (SELECT row, max(__ord) AS __ord FROM (${ordered}) GROUP BY row) k ON k.row = l.row AND k.__ord = l.__ord`;
}
