import { literal } from './sql.js';

/** Per-row error codes written to the manifest (see SPEC "Error codes"). */
export const ERROR_CODES = [
  'missing_url',
  'bad_url',
  'blocked_address',
  'opted_out',
  'bad_id',
  'duplicate_id',
  'http_status',
  'timeout',
  'network',
  'too_many_redirects',
  'too_large',
  'not_an_image',
  'decode_error',
  'pixel_limit',
  'too_small',
  'hash_mismatch',
  'write_error',
  'internal_error',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Failures worth another try within a run (with backoff) and by the next run. */
export const TRANSIENT_CODES: readonly ErrorCode[] = ['timeout', 'network'];
/** HTTP statuses worth another try: request timeout, too early, too many requests; and every 5xx. */
export const TRANSIENT_HTTP_STATUSES: readonly number[] = [408, 425, 429];
/** Failures a rerun retries although the run itself did not: a failed write says nothing about the image. */
export const RERUN_RETRIED_CODES: readonly ErrorCode[] = [...TRANSIENT_CODES, 'write_error'];

export function isTransientHttpStatus(status: number): boolean {
  return TRANSIENT_HTTP_STATUSES.includes(status) || (status >= 500 && status <= 599);
}

/** Is this failure retried within the run? */
export function isTransient(code: ErrorCode, httpStatus: number | null): boolean {
  return TRANSIENT_CODES.includes(code) || (code === 'http_status' && isTransientHttpStatus(httpStatus ?? 0));
}

/** The same rule as SQL over a log's `error` and `http_status` columns, for a rerun's done set and `status`. */
export function rerunRetriedSql(): string {
  const codes = RERUN_RETRIED_CODES.map(literal).join(', ');
  return `(error IN (${codes}) OR (error = 'http_status' AND (http_status IN (${TRANSIENT_HTTP_STATUSES.join(', ')}) OR http_status BETWEEN 500 AND 599)))`;
}

/** The flags that lift a refusal by policy; a rerun with the flag retries the rows refused that way. */
export interface PolicyFlags {
  allowPrivateNetwork: boolean;
  ignoreOptOut: boolean;
}

/** Each refusal by policy, the flag that lifts it, and why rows were refused: the one table behind resume and hints. */
export const POLICY_REFUSALS: readonly { code: ErrorCode; flag: string; lifted: (p: PolicyFlags) => boolean; why: string }[] = [
  { code: 'blocked_address', flag: '--allow-private-network', lifted: (p) => p.allowPrivateNetwork, why: 'loopback, private or link-local addresses' },
  { code: 'opted_out', flag: '--ignore-opt-out', lifted: (p) => p.ignoreOptOut, why: 'the server opted out of AI use: X-Robots-Tag noai/noimageai' },
];

/** A failure of one row, carried as data from the stage that found it to the manifest. */
export class RowError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly httpStatus: number | null = null,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

/**
 * A request not sent because its host had stopped answering (see CIRCUIT in host-limit.ts). A row whose
 * last try ends so keeps the failure of its last request actually sent, if it sent one.
 */
export class NotSent extends RowError {
  constructor(message: string) {
    super('network', message);
  }
}

/** Bad command line (exit 2) or a fatal problem with input/output (exit 1): one line on stderr. */
export class UsageError extends Error {
  readonly exitCode = 2;
}
export class FatalError extends Error {
  readonly exitCode = 1;
}
