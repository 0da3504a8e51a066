/**
 * Per-host limits on open requests shared by every worker, each following its host's answers (the
 * algorithm is host-limit.ts; --max-host-connections is its ceiling), and the circuit that stops sending
 * to a host that has stopped answering.
 */
import { NotSent } from '../../errors.js';
import { CIRCUIT, HOST_LIMIT, circuitPause, initialHostLimit, isSilence, nextHostLimit } from '../host-limit.js';
import type { Answer } from '../host-limit.js';
import type { Gauges } from './gauges.js';
import { FIXED, hostHash, hostSlot, slotOf, views } from './layout.js';
import type { Views } from './layout.js';
import type { Ledger } from './ledger.js';

/** Where no --max-host-connections is set: a bound on sockets, not a politeness rule. */
export const HOST_CEILING = 4096;

/** One host's state, for the summary. */
export interface HostReport {
  limit: number;
  open: number;
  http429: number;
  http503: number;
  drops: number;
  /** Requests not sent because the host had stopped answering (its circuit was open). */
  notSent: number;
}

/** A held request slot on one host: give it back with the answer, which moves the host's limit. */
export interface HostPermit {
  done(answer: Answer, httpStatus?: number | null): void;
}

export class HostLimits {
  private readonly v: Views;
  constructor(
    buffer: SharedArrayBuffer,
    private readonly maxHostConnections: number | null,
    /** Processes of the run this one is a share of: each host's limit starts at this process's share. */
    private readonly processes: number,
    private readonly ledger: Ledger,
    private readonly gauges: Gauges,
  ) {
    this.v = views(buffer);
  }

  private get hostCeiling(): number {
    return this.maxHostConnections ?? HOST_CEILING;
  }

  /** The host's limit now (whole requests). */
  private hostLimit(i: number): number {
    const fx = Atomics.load(this.v.host.limit, i);
    const limit = fx === 0 ? initialHostLimit(this.hostCeiling, this.processes ?? 1).limit : fx / FIXED;
    return Math.max(HOST_LIMIT.min, Math.min(this.hostCeiling, Math.floor(limit)));
  }

  /**
   * Holds one of the host's request slots, shared by all workers, under the host's limit; the permit's
   * done() gives it back with the answer. Waiters sleep on the slot's counter and wake when it moves.
   */
  async acquire(host: string): Promise<HostPermit> {
    const who = hostHash(host);
    const i = slotOf(who);
    let probe = false;
    const open = this.v.host.open;
    let counted = false;
    let cur = 0;
    for (;;) {
      // Checked again after each wait: rows that queued before the circuit opened are not sent either.
      try {
        // A probe keeps its turn while it waits for the limit.
        probe ||= this.passCircuit(i, host, who);
      } catch (err) {
        if (counted) this.gauges.gauge('hostWaiting', -1);
        throw err;
      }
      cur = Atomics.load(open, i);
      const limit = this.hostLimit(i);
      if (cur < limit) {
        if (Atomics.compareExchange(open, i, cur, cur + 1) === cur) break;
        continue;
      }
      if (!counted) {
        counted = true;
        this.gauges.gauge('hostWaiting', 1);
      }
      // Woken by the slot's counter (a request done, the limit raised, the circuit opened); the timeout is a safety net.
      const w = Atomics.waitAsync(open, i, cur, 5000);
      if (w.async) await w.value;
    }
    if (counted) this.gauges.gauge('hostWaiting', -1);
    this.ledger.hostOpen(i, 1);
    const sentAt = BigInt(Date.now());
    // A limit nobody pressed against says nothing about what the host can take.
    const tested = counted || cur + 1 >= this.hostLimit(i) * 0.75;
    let released = false;
    return {
      done: (answer, httpStatus = null) => {
        if (released) return;
        released = true;
        this.ledger.hostOpen(i, -1);
        Atomics.sub(open, i, 1);
        const grew = this.feedback(i, answer, httpStatus, sentAt, tested);
        this.circuit(i, who, answer, httpStatus, probe);
        Atomics.notify(open, i, grew ? 2 : 1);
      },
    };
  }

  /**
   * Throws when the host's circuit is open (see CIRCUIT): the request is not sent, and the row backs off
   * as after any failure (its retries end as they would have). Once the pause is over, one request passes as the probe and
   * re-arms the pause for the others, so a probe lost with its worker only delays the next.
   * Returns whether this request is the probe.
   */
  private passCircuit(i: number, host: string, who: number): boolean {
    const until = Atomics.load(this.v.pausedUntil, i);
    if (until === 0n || Atomics.load(this.v.host.who, i) !== who) return false;
    const now = BigInt(Date.now());
    const opens = Atomics.load(this.v.host.opens, i);
    if (now >= until && Atomics.compareExchange(this.v.pausedUntil, i, until, now + BigInt(circuitPause(opens))) === until) return true;
    Atomics.add(this.v.host.notSent, i, 1);
    const left = Math.max(0, Number(Atomics.load(this.v.pausedUntil, i) - now));
    throw new NotSent(
      `not sent: ${host} gave no answer to ${Atomics.load(this.v.host.silent, i)} requests in a row; it is probed again in ${Math.ceil(left / 1000)} s`,
    );
  }

  /**
   * Counts one host's silences in a row; opens the circuit at CIRCUIT.openAfter, reopens it for longer
   * when a probe fails, closes it on the host's answer. The slot follows one host at a time (`who`): a
   * silence of another host starts its own count, unless the circuit is open for the first.
   */
  private circuit(i: number, who: number, answer: Answer, httpStatus: number | null, probe: boolean): void {
    const h = this.v.host;
    if (Atomics.load(h.who, i) !== who) {
      if (!isSilence(answer, httpStatus) || Atomics.load(this.v.pausedUntil, i) !== 0n) return;
      Atomics.store(h.who, i, who);
      Atomics.store(h.silent, i, 0);
      Atomics.store(h.opens, i, 0);
    }
    if (answer === 'clean' || httpStatus !== null) {
      if (Atomics.exchange(h.silent, i, 0) === 0 && !probe) return;
      Atomics.store(h.opens, i, 0);
      Atomics.store(this.v.pausedUntil, i, 0n);
      return;
    }
    const silent = isSilence(answer, httpStatus) ? Atomics.add(h.silent, i, 1) + 1 : Atomics.load(h.silent, i);
    // A probe that got no answer (or ended without one) reopens; a run of silences opens once, when it reaches the threshold.
    if (!probe && silent !== CIRCUIT.openAfter) return;
    const opens = Atomics.add(h.opens, i, 1) + 1;
    Atomics.store(this.v.pausedUntil, i, BigInt(Date.now() + circuitPause(opens)));
    // Rows queued for the host's limit see the circuit at once, and are not sent.
    Atomics.notify(h.open, i);
  }

  /** Moves the host's limit after one answer; true when it rose by a whole request. */
  private feedback(i: number, answer: Answer, httpStatus: number | null, sentAt: bigint, tested: boolean): boolean {
    const h = this.v.host;
    if (answer === 'pushback') {
      const field = httpStatus === 429 ? 'http429' : httpStatus === 503 ? 'http503' : 'drops';
      Atomics.add(h[field], i, 1);
    }
    const ceiling = this.hostCeiling;
    let sinceCut = true;
    if (answer === 'pushback') {
      // One cut per round trip: only the first answer to a request sent after the last cut makes the next.
      const last = Atomics.load(this.v.lastCut, i);
      sinceCut = sentAt >= last && Atomics.compareExchange(this.v.lastCut, i, last, BigInt(Date.now())) === last;
    }
    for (;;) {
      const fx = Atomics.load(h.limit, i);
      const init = initialHostLimit(ceiling, this.processes ?? 1);
      const thr = Atomics.load(h.threshold, i);
      const state = { limit: fx === 0 ? init.limit : fx / FIXED, threshold: thr === 0 ? init.threshold : thr / FIXED };
      const next = nextHostLimit(state, answer, { ceiling, tested, sinceCut });
      if (next === state) return false;
      const nextFx = Math.max(1, Math.round(next.limit * FIXED));
      if (Atomics.compareExchange(h.limit, i, fx, nextFx) !== fx) continue;
      Atomics.store(h.threshold, i, Math.max(1, Math.round(Math.min(next.threshold, HOST_CEILING) * FIXED)));
      return Math.floor(next.limit) > Math.floor(state.limit);
    }
  }

  static hostConnections(buffer: SharedArrayBuffer, host: string): number {
    return Atomics.load(views(buffer).host.open, hostSlot(host));
  }

  /** A host's limit and the pushback it gave (hosts that share a slot share these). */
  static hostReport(buffer: SharedArrayBuffer, host: string, maxHostConnections: number | null): HostReport {
    const v = views(buffer);
    const i = hostSlot(host);
    const ceiling = maxHostConnections ?? HOST_CEILING;
    const fx = Atomics.load(v.host.limit, i);
    return {
      limit: Math.min(ceiling, Math.floor(fx === 0 ? initialHostLimit(ceiling).limit : fx / FIXED)),
      open: Atomics.load(v.host.open, i),
      http429: Atomics.load(v.host.http429, i),
      http503: Atomics.load(v.host.http503, i),
      drops: Atomics.load(v.host.drops, i),
      notSent: Atomics.load(v.host.notSent, i),
    };
  }
}
