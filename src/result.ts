import type { ErrorCode, RowError } from './errors.js';

export type CaptionSource = 'primary' | 'fallback' | 'none';

/** One input row as the main thread hands it to a worker. */
export interface RowTask {
  row: number;
  id: string | null;
  url: string | null;
  caption: string | null;
  fallback: string | null;
  srcWidth: number | null;
  srcHeight: number | null;
  /** The image this row wrote before under another name (--overwrite into another format): removed once the new one is in place. */
  previousPath?: string | null;
  /** With webdataset output: the input row's columns as JSON, for the sample's .json. */
  columns?: string | null;
  /** With --verify-hash: the hash the input gives for this row's image (lower case). */
  expectedHash?: string | null;
}

/** With --cdn-resize: whether the CDN's rendition or the original was used. */
export type ImageSource = 'rendition' | 'original';

/** One manifest row: the outcome of a task, success or failure. */
export interface RowResult {
  row: number;
  id: string | null;
  url: string | null;
  status: 'ok' | 'failed';
  error: ErrorCode | null;
  message: string | null;
  http_status: number | null;
  /** Requests actually sent for the row, retries included (0 when refused before any request). */
  attempts: number;
  bytes: number;
  src_width: number | null;
  src_height: number | null;
  width: number | null;
  height: number | null;
  path: string | null;
  caption_source: CaptionSource | null;
  ms: number;
  source: ImageSource | null;
  /** sha256 of the bytes downloaded for an ok row, as the server sent them (img2dataset's compute_hash default), in hex. */
  sha256: string | null;
  /** Not a record: a tar this row's sample closed, for the main thread to move into place once the row is logged. */
  closedTar?: string;
  /** In the log only (for the report): bytes of the image and caption written. */
  written?: number;
  /** In the log only (for the report): words in the caption written (split at whitespace). */
  words?: number;
}

/**
 * The one schema of a row's record: the log's JSON lines are read with these DuckDB types, and
 * manifest.parquet has these columns in this order (the log adds LOG_ONLY_COLUMNS).
 */
export const RESULT_COLUMNS: Record<Exclude<keyof RowResult, 'closedTar' | 'written' | 'words'>, string> = {
  row: 'BIGINT',
  id: 'VARCHAR',
  url: 'VARCHAR',
  status: 'VARCHAR',
  error: 'VARCHAR',
  http_status: 'INTEGER',
  attempts: 'INTEGER',
  bytes: 'BIGINT',
  src_width: 'INTEGER',
  src_height: 'INTEGER',
  width: 'INTEGER',
  height: 'INTEGER',
  path: 'VARCHAR',
  caption_source: 'VARCHAR',
  ms: 'BIGINT',
  message: 'VARCHAR',
  source: 'VARCHAR',
  sha256: 'VARCHAR',
};
/**
 * Columns of the log that are not records: `run` and `seq` order a row's outcomes, `at` is when it settled
 * (ms since the epoch), `written` the bytes of its image and caption and `words` its caption's words, for the report.
 */
export const LOG_ONLY_COLUMNS = { run: 'BIGINT', seq: 'BIGINT', at: 'BIGINT', written: 'BIGINT', words: 'INTEGER' } as const;
export const MANIFEST_COLUMNS = Object.keys(RESULT_COLUMNS) as (keyof typeof RESULT_COLUMNS)[];

export function failedResult(task: RowTask, error: RowError, started: number, extra: Partial<RowResult> = {}): RowResult {
  return {
    row: task.row,
    id: task.id,
    url: task.url,
    status: 'failed',
    error: error.code,
    message: error.message.slice(0, 500),
    http_status: error.httpStatus,
    attempts: 0,
    bytes: 0,
    src_width: null,
    src_height: null,
    width: null,
    height: null,
    path: null,
    caption_source: null,
    ms: Date.now() - started,
    source: null,
    sha256: null,
    ...extra,
  };
}
