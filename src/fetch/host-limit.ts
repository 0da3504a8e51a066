/**
 * The per-host limit on open requests, as an algorithm on two numbers (after TCP's congestion window and
 * Netflix's AIMD limit): pushback (429, 503, a timeout, a dropped connection) cuts the limit to 0.7 of
 * itself, once per round trip; clean answers raise it, doubling per round trip until the host first
 * pushes back, then by one per round trip. Pure: SharedLimits stores the state and enforces it.
 */
import type { ErrorCode } from '../errors.js';

/** How one answer bears on the host's limit. */
export type Answer = 'clean' | 'pushback' | 'neutral';

export interface HostLimitState {
  /** Open requests allowed (fractional: congestion avoidance adds 1/limit per answer). */
  limit: number;
  /** Below it, each clean answer adds one (slow start); at or above it, 1/limit. */
  threshold: number;
}

export const HOST_LIMIT = {
  /** Where every host starts: today's fixed cap, so a fast host loses nothing at the start. */
  initial: 64,
  /** Multiplicative cut on pushback (CUBIC's β): gentler than halving, so the average stays near the host's cap. */
  backoff: 0.7,
  min: 1,
} as const;

/** 429, 503, timeouts and connection failures are the host saying "less"; 2xx-5xx others are clean; our own refusals say nothing. */
export function classifyAnswer(code: ErrorCode | null, httpStatus: number | null): Answer {
  if (code === null) return 'clean';
  if (code === 'timeout' || code === 'network') return 'pushback';
  if (code === 'http_status') return httpStatus === 429 || httpStatus === 503 ? 'pushback' : 'clean';
  if (code === 'too_many_redirects' || code === 'bad_url') return 'clean';
  return 'neutral';
}

/** Where a host's limit starts; a process that is one of `processes` of a run starts at its share. */
export function initialHostLimit(ceiling: number, processes = 1): HostLimitState {
  return { limit: Math.min(Math.ceil(HOST_LIMIT.initial / processes), ceiling), threshold: ceiling };
}

/**
 * The next state after one answer. `tested`: the limit was nearly reached when the request went out (a
 * limit that nobody pressed against is not evidence the host can take more). `sinceCut`: the request
 * was sent after the last cut (answers to requests from before it tell of the old limit: one cut per round trip).
 */
export function nextHostLimit(s: HostLimitState, answer: Answer, o: { ceiling: number; tested: boolean; sinceCut: boolean }): HostLimitState {
  if (answer === 'pushback') {
    if (!o.sinceCut) return s;
    const limit = Math.max(HOST_LIMIT.min, Math.floor(s.limit * HOST_LIMIT.backoff));
    return { limit, threshold: limit };
  }
  if (answer === 'neutral' || !o.tested) return s;
  const step = s.limit < s.threshold ? 1 : 1 / s.limit;
  return { limit: Math.min(o.ceiling, s.limit + step), threshold: s.threshold };
}

/**
 * A host that stops answering at all (refused, unreachable, blackholed: no HTTP status) is not asked
 * again for a while, in the manner of a circuit breaker: after `openAfter` such failures in a row, with no
 * answer between them, requests to it are refused without being sent until a pause ends; then one
 * request probes it. An answer closes the circuit; another silence doubles the pause. Without it, each
 * row of a blackholed host held a request slot for the whole timeout, and the host's limit (cut to 1)
 * made the rest queue: 3,000 rows with 1 in 10 on such a host ran for over 14 minutes, not 20 s.
 */
export const CIRCUIT = {
  openAfter: 5,
  /** The first pause; doubled after each failed probe, up to maxPauseMs. */
  pauseMs: 2_000,
  maxPauseMs: 60_000,
} as const;

/** A failed attempt that got no HTTP answer at all: the host may be down. */
export function isSilence(answer: Answer, httpStatus: number | null): boolean {
  return answer === 'pushback' && httpStatus === null;
}

/** The pause after the circuit's `opens`-th opening in a row (1 = the first). */
export function circuitPause(opens: number): number {
  return Math.min(CIRCUIT.maxPauseMs, CIRCUIT.pauseMs * 2 ** Math.max(0, opens - 1));
}
