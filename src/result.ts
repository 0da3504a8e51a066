import type { ErrorCode, RowError } from './errors.js';
import type { CaptionSource } from './row.js';

/** One input row as the main thread hands it to a worker. */
export interface RowTask {
  row: number;
  id: string | null;
  url: string | null;
  caption: string | null;
  fallback: string | null;
  srcWidth: number | null;
  srcHeight: number | null;
}

/** One manifest row: the outcome of a task, success or failure. */
export interface RowResult {
  row: number;
  id: string | null;
  url: string | null;
  status: 'ok' | 'failed';
  error: ErrorCode | null;
  message: string | null;
  http_status: number | null;
  attempts: number;
  bytes: number;
  src_width: number | null;
  src_height: number | null;
  width: number | null;
  height: number | null;
  path: string | null;
  caption_source: CaptionSource | null;
  ms: number;
}

export function failedResult(task: RowTask, error: RowError, started: number, extra: Partial<RowResult> = {}): RowResult {
  return {
    row: task.row, id: task.id, url: task.url, status: 'failed', error: error.code, message: error.message.slice(0, 500),
    http_status: error.httpStatus, attempts: 0, bytes: 0, src_width: null, src_height: null, width: null, height: null,
    path: null, caption_source: null, ms: Date.now() - started, ...extra,
  };
}

