/**
 * The shared buffer's layout: one SharedArrayBuffer holds every limit the worker threads share, each
 * concern (rate, hosts, budget, gauges, ledger) reading and writing its own slice through these views.
 */
const HOST_SLOTS = 1024;
export { HOST_SLOTS };
/**
 * Gauges a worker keeps in its ledger slot: rows in each state right now, and its event loop's use (‰).
 * Rows sleeping before a retry: `backoff` after a failure with no HTTP answer (the pool parks them: see
 * poolBounds), `heldBack` after the host answered "later" (408/425/429/5xx: they still count as the host's load).
 */
export const GAUGES = ['ready', 'busy', 'hostWaiting', 'budgetWaiting', 'loop', 'backoff', 'heldBack', 'storing'] as const;
export type Gauge = (typeof GAUGES)[number];
/** Running totals (BigInt64): µs of successful downloads, their count, connections opened, store retries. */
export const COUNTERS = ['fetchUs', 'fetches', 'connections', 'uploadRetries'] as const;
export type Counter = (typeof COUNTERS)[number];
/** Per ledger slot: owner thread id, KiB held, KiB of them settled (whole bodies), the gauges, then a count per host slot. */
export const LEDGER_HEAD = 3 + GAUGES.length;
export const LEDGER_WIDTH = LEDGER_HEAD + HOST_SLOTS;
/** Header: next request time (µs, BigInt64) · KiB held · KiB settled · the most KiB ever held · the overdraft ticket. */
const HEADER_BYTES = 24;
/**
 * Per host slot, Int32: open requests · limit ×1024 (0: not yet set) · threshold ×1024 · 429s · 503s ·
 * timeouts and dropped connections · silent failures in a row · circuit openings in a row · requests
 * not sent while the circuit was open · which host (hostHash) the silences and the circuit belong to:
 * hosts that share a slot share its limit, but one host's silence never closes the circuit to another.
 */
const HOST_FIELDS = ['open', 'limit', 'threshold', 'http429', 'http503', 'drops', 'silent', 'opens', 'notSent', 'who'] as const;
type HostField = (typeof HOST_FIELDS)[number];
/** Host limits are kept ×1024 in Int32s. */
export const FIXED = 1024;

/** Room for `workers` live workers at once (crashed ones are replaced, and their slots freed). */
export function createSharedBuffer(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(
    HEADER_BYTES + COUNTERS.length * 8 + HOST_SLOTS * 16 + HOST_SLOTS * HOST_FIELDS.length * 4 + (workers * 2 + 8) * LEDGER_WIDTH * 4,
  );
}

/** A host's 32-bit FNV-1a hash, never 0 (0 marks a slot's circuit as nobody's). */
export function hostHash(host: string): number {
  let h = 2166136261;
  for (let i = 0; i < host.length; i++) h = Math.imul(h ^ host.charCodeAt(i), 16777619);
  return h | 0 || 1;
}

/** The slot a host's hash falls in (hosts that share one share its limit). */
export function slotOf(hash: number): number {
  return (hash >>> 0) % HOST_SLOTS;
}

export function hostSlot(host: string): number {
  return slotOf(hostHash(host));
}

export type Views = ReturnType<typeof views>;

export function views(buffer: SharedArrayBuffer) {
  let at = HEADER_BYTES;
  const counters = new BigInt64Array(buffer, at, COUNTERS.length);
  at += COUNTERS.length * 8;
  const lastCut = new BigInt64Array(buffer, at, HOST_SLOTS);
  at += HOST_SLOTS * 8;
  /** When an open circuit lets its next probe through (ms since the epoch; 0: closed). */
  const pausedUntil = new BigInt64Array(buffer, at, HOST_SLOTS);
  at += HOST_SLOTS * 8;
  const host = Object.fromEntries(HOST_FIELDS.map((f, k) => [f, new Int32Array(buffer, at + k * HOST_SLOTS * 4, HOST_SLOTS)])) as Record<HostField, Int32Array>;
  at += HOST_FIELDS.length * HOST_SLOTS * 4;
  const ledgerInts = (buffer.byteLength - at) / 4;
  return {
    next: new BigInt64Array(buffer, 0, 1),
    held: new Int32Array(buffer, 8, 1),
    settled: new Int32Array(buffer, 12, 1),
    peak: new Int32Array(buffer, 16, 1),
    overdraft: new Int32Array(buffer, 20, 1),
    counters,
    lastCut,
    pausedUntil,
    host,
    ledger: new Int32Array(buffer, at, ledgerInts),
    slots: ledgerInts / LEDGER_WIDTH,
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits with a growing pause (2 → 50 ms) until `ready()` says go. */
export async function until(ready: () => boolean): Promise<void> {
  for (let delay = 2; !ready(); delay = Math.min(delay * 2, 50)) await sleep(delay);
}
