import { Agent, buildConnector } from 'undici';
import type { Dispatcher } from 'undici';
import { NotSent, RowError, isTransient } from '../errors.js';
import { checkLiteralHost, isBlockedAddress } from './address.js';
import type { SharedLimits } from './shared-limits.js';
import { classifyAnswer } from './host-limit.js';
import type { Answer } from './host-limit.js';

export const MAX_REDIRECTS = 5;
/** A Retry-After longer than this is not waited for in this run: the row stays transient for the next one. */
export const MAX_RETRY_AFTER_MS = 120_000;

export interface DownloadPolicy {
  timeoutMs: number;
  maxBytes: number;
  retries: number;
  backoffMs: number;
  userAgent: string;
  allowPrivateNetwork: boolean;
  ignoreOptOut: boolean;
}

export interface Downloaded {
  data: Buffer | null;
  error: RowError | null;
  httpStatus: number | null;
  /** Attempts that sent a request, retries included; one refused before any request counts 0. */
  attempts: number;
  bytes: number;
  /** KiB counted against the shared memory budget (settled: a whole body); give back with release(kib, true) once processed. */
  heldKiB: number;
  /** The attempt's ticket (see SharedLimits.holdChunk): give it back with the bytes. */
  ticket: number;
}

/**
 * A keep-alive pool per host for one worker; refuses sockets whose peer address is not public (for TLS,
 * the address of the socket the handshake ran on). `onConnect` counts the connections opened.
 */
export function createAgent(policy: DownloadPolicy, connectionsPerHost: number, onConnect: () => void = () => undefined): Agent {
  // Larger socket reads for multi-MB bodies: fewer parser passes per image (undici's default is 64 KiB).
  const base = buildConnector({ timeout: policy.timeoutMs, highWaterMark: 1 << 20 } as buildConnector.BuildOptions);
  const connect: buildConnector.connector = (opts, cb) => {
    base(opts, (err, socket) => {
      if (err || !socket) return cb(err ?? new Error('no socket'), null);
      const addr = socket.remoteAddress ?? '';
      if (!policy.allowPrivateNetwork && isBlockedAddress(addr)) {
        socket.destroy();
        return cb(new RowError('blocked_address', `${opts.hostname} resolved to ${addr}, not a public address`), null);
      }
      onConnect();
      cb(null, socket);
    });
  };
  return new Agent({
    connect,
    connections: connectionsPerHost,
    keepAliveTimeout: 30_000,
    headersTimeout: policy.timeoutMs,
    // The attempt's own deadline covers the body (and stops while it waits for memory): no idle timer of undici's.
    bodyTimeout: 0,
  });
}

/** Directives whose own value follows a colon: not user-agent names. */
const VALUED_DIRECTIVES = new Set(['max-snippet', 'max-image-preview', 'max-video-preview', 'unavailable_after']);
/** User agents whose X-Robots-Tag directives bind pcb: all (`*`), pcb itself, and img2dataset's token. */
const OUR_AGENTS = new Set(['*', 'pcb', 'img2dataset']);

/**
 * Does X-Robots-Tag forbid AI use to us? `noai`/`noimageai` count when global, or after a user-agent
 * prefix (`pcb: noai`) naming us or `*`; directives after another agent's name (`otherbot: noai, …`) apply
 * to that agent until the next name.
 */
export function isOptedOut(header: string | string[] | undefined): boolean {
  if (!header) return false;
  for (const value of Array.isArray(header) ? header : [header]) {
    let agent: string | null = null;
    for (const token of value.split(',')) {
      let directive = token.trim().toLowerCase();
      const m = /^([a-z0-9_*.-]+)\s*:\s*(.*)$/.exec(directive);
      if (m && !VALUED_DIRECTIVES.has(m[1])) {
        agent = m[1];
        directive = m[2].trim();
      }
      const applies = agent === null || OUR_AGENTS.has(agent);
      if (applies && directive.split(/\s+/).some((d) => d === 'noai' || d === 'noimageai')) return true;
    }
  }
  return false;
}

/** Retry-After in seconds or as an HTTP date, in ms from now; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

/** Exponential backoff with jitter, unless the server said how long to wait. */
export function backoffDelay(attempt: number, baseMs: number, retryAfterMs: number | null): number {
  const jittered = baseMs * 2 ** attempt * (0.5 + Math.random());
  const capped = Math.min(jittered, 60_000);
  return retryAfterMs !== null ? Math.max(retryAfterMs, Math.min(capped, 1000)) : capped;
}

function classifyNetworkError(err: unknown): RowError {
  if (err instanceof RowError) return err;
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown };
  if (e?.cause instanceof RowError) return e.cause;
  const msg = e?.message ?? String(err);
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || /^UND_ERR_(CONNECT|HEADERS|BODY)_TIMEOUT$/.test(e?.code ?? '')) {
    return new RowError('timeout', 'deadline passed');
  }
  return new RowError('network', e?.code ? `${e.code}: ${msg}` : msg);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * An attempt's total deadline, from the first connection slot to the last byte. It stops while the
 * attempt waits for room in the memory budget: that wait is pcb's, not the server's.
 */
class Deadline {
  private readonly ac = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  private since = 0;

  constructor(private left: number) {}

  get signal(): AbortSignal {
    return this.ac.signal;
  }

  /** Starts the clock, once: later calls (the next redirect hop) change nothing. */
  begin(): void {
    if (!this.since) this.start();
  }

  private start(): void {
    this.since = Date.now();
    this.timer = setTimeout(() => this.ac.abort(new DOMException('deadline passed', 'TimeoutError')), Math.max(0, this.left));
  }

  async pausedWhile<T>(wait: () => Promise<T>): Promise<T> {
    if (this.timer) clearTimeout(this.timer);
    this.left -= Date.now() - this.since;
    try {
      return await wait();
    } finally {
      this.start();
    }
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}

interface Attempt {
  data: Buffer;
  httpStatus: number;
  bytes: number;
  /** From the first request slot held to the last byte in. */
  ms: number;
}
/** What one attempt holds: budget KiB, bytes received, requests sent, its ticket for the budget's overdraft. */
interface Held {
  kib: number;
  bytes: number;
  sent: number;
  ticket: number;
}

/** One attempt: the whole redirect chain and the body under one deadline. */
async function attemptOnce(url: URL, policy: DownloadPolicy, agent: Dispatcher, limits: SharedLimits, held: Held): Promise<Attempt> {
  const deadline = new Deadline(policy.timeoutMs);
  try {
    return await attemptChain(url, policy, agent, limits, held, deadline);
  } finally {
    deadline.clear();
  }
}

async function attemptChain(url: URL, policy: DownloadPolicy, agent: Dispatcher, limits: SharedLimits, held: Held, deadline: Deadline): Promise<Attempt> {
  let current = url;
  let since = 0;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    checkLiteralHost(current, policy.allowPrivateNetwork);
    const permit = await limits.acquireHost(current.host);
    let answer: Answer = 'neutral';
    let answerStatus: number | null = null;
    // The deadline starts once the first connection slot is ours: waiting for politeness is not the server's fault.
    deadline.begin();
    since ||= performance.now();
    const signal = deadline.signal;
    held.sent++;
    try {
      const res = await agent.request({
        origin: current.origin,
        path: current.pathname + current.search,
        method: 'GET',
        headers: { 'user-agent': policy.userAgent, accept: 'image/avif,image/webp,image/*,*/*;q=0.8' },
        signal,
      });
      // A body we abandon (opt-out, too large) may still report the abort later: never let that crash the worker.
      res.body.on('error', () => undefined);
      const status = res.statusCode;
      if (status >= 300 && status < 400 && res.headers.location) {
        await res.body.dump();
        let next: URL;
        try {
          next = new URL(String(res.headers.location), current);
        } catch {
          throw new RowError('bad_url', `redirect to an unparsable location`, status);
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') throw new RowError('bad_url', `redirect to ${next.protocol}`, status);
        current = next;
        answer = 'clean';
        continue;
      }
      if (status !== 200) {
        await res.body.dump().catch(() => undefined);
        throw new RowError('http_status', `HTTP ${status}`, status, parseRetryAfter(res.headers['retry-after']));
      }
      if (!policy.ignoreOptOut && isOptedOut(res.headers['x-robots-tag'])) {
        res.body.destroy();
        throw new RowError('opted_out', `X-Robots-Tag: ${String(res.headers['x-robots-tag'])}`, status);
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > policy.maxBytes) {
        res.body.destroy();
        throw new RowError('too_large', `Content-Length ${declared} over --max-bytes ${policy.maxBytes}`, status);
      }
      // A declared length is reserved whole before the body is read; otherwise each chunk is counted as it comes.
      const known = Number.isFinite(declared) && declared >= 0;
      if (known) held.kib += await deadline.pausedWhile(() => limits.reserve(declared));
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += chunk.length;
        held.bytes += chunk.length;
        if (size > policy.maxBytes) {
          res.body.destroy();
          throw new RowError('too_large', `body passed --max-bytes ${policy.maxBytes}`, status);
        }
        if (!known) held.kib += await deadline.pausedWhile(() => limits.holdChunk(chunk.length, held.ticket));
        chunks.push(chunk);
      }
      answer = 'clean';
      return { data: Buffer.concat(chunks, size), httpStatus: status, bytes: size, ms: performance.now() - since };
    } catch (err) {
      const e = classifyNetworkError(err);
      // Refused at connect by the address policy: the request never left.
      if (e.code === 'blocked_address') held.sent--;
      answer = classifyAnswer(e.code, e.httpStatus);
      answerStatus = e.httpStatus;
      throw e;
    } finally {
      permit.done(answer, answerStatus);
    }
  }
  throw new RowError('too_many_redirects', `more than ${MAX_REDIRECTS} redirects`);
}

/** Fetch with retries of transient failures; never throws: the outcome is data. */
export async function download(url: URL, policy: DownloadPolicy, agent: Dispatcher, limits: SharedLimits): Promise<Downloaded> {
  let attempts = 0;
  let bytes = 0;
  /** The failure of the last request actually sent. */
  let lastSent: RowError | null = null;
  for (let attempt = 0; ; attempt++) {
    await limits.waitForRoom();
    const held: Held = { kib: 0, bytes: 0, sent: 0, ticket: limits.ticket() };
    await limits.takeRequestToken();
    try {
      const got = await attemptOnce(url, policy, agent, limits, held);
      // A whole body keeps its overdraft (if it took one) until processing gives its bytes back.
      limits.settle(held.kib);
      // The network's time for one row, without waits for limits: what the pool's size is set from.
      limits.count('fetchUs', got.ms * 1000);
      limits.count('fetches', 1);
      return {
        data: got.data,
        error: null,
        httpStatus: got.httpStatus,
        attempts: attempts + 1,
        bytes: bytes + got.bytes,
        heldKiB: held.kib,
        ticket: held.ticket,
      };
    } catch (err) {
      if (held.sent > 0) attempts++;
      limits.endAttempt(held.ticket);
      limits.release(held.kib, false);
      bytes += held.bytes;
      const e = classifyNetworkError(err);
      if (!(e instanceof NotSent)) lastSent = e;
      const transient = isTransient(e.code, e.httpStatus);
      const tooLong = e.retryAfterMs !== null && e.retryAfterMs > MAX_RETRY_AFTER_MS;
      if (!transient || attempt >= policy.retries || tooLong) {
        const error = lastSent ?? e;
        return { data: null, error, httpStatus: error.httpStatus, attempts, bytes, heldKiB: 0, ticket: 0 };
      }
      // A row sleeping before its retry holds no socket and no bytes: the pool parks it outside its limit,
      // unless the host answered "later" (408/425/429/5xx). A row put back by the host stays the host's load:
      // another row in its place would press on a host that asked for less.
      await limits.waiting(e.httpStatus === null ? 'backoff' : 'heldBack', () => sleep(backoffDelay(attempt, policy.backoffMs, e.retryAfterMs)));
    }
  }
}
