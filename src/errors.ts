/** Per-row error codes written to the manifest (see SPEC "Error codes"). */
export const ERROR_CODES = [
  'missing_url', 'bad_url', 'blocked_address', 'opted_out', 'bad_id', 'duplicate_id',
  'http_status', 'timeout', 'network', 'too_many_redirects', 'too_large', 'not_an_image',
  'decode_error', 'pixel_limit', 'too_small', 'write_error',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** HTTP statuses worth another try: request timeout, too early, too many requests, server errors. */
export function isTransientHttpStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || (status >= 500 && status <= 599);
}

/** A failure of one row, carried as data from the stage that found it to the manifest. */
export class RowError extends Error {
  constructor(readonly code: ErrorCode, message: string, readonly httpStatus: number | null = null,
    readonly retryAfterMs: number | null = null) {
    super(message);
  }
}

/** Bad command line (exit 2) or a fatal problem with input/output (exit 1): one line on stderr. */
export class UsageError extends Error { readonly exitCode = 2; }
export class FatalError extends Error { readonly exitCode = 1; }
