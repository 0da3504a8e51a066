/** The demand controller and the per-host limit as pure objects, fed synthetic traces. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InFlightController, classifyTick } from '../src/fetch/in-flight.js';
import type { DemandSample } from '../src/fetch/in-flight.js';
import { CIRCUIT, HOST_LIMIT, circuitPause, classifyAnswer, initialHostLimit, isSilence, nextHostLimit } from '../src/fetch/host-limit.js';
import { SharedLimits, createSharedBuffer, hostSlot } from '../src/fetch/shared-limits.js';
import { NotSent } from '../src/errors.js';
import type { HostLimitState } from '../src/fetch/host-limit.js';
import { boundHint, dominantBound } from '../src/run/bound-hint.js';

const idle: Omit<DemandSample, 'inFlight'> = {
  ready: 0,
  busy: 0.3,
  hostWaiting: 0,
  budgetWaiting: 0,
  storeWaiting: 0,
  heldBack: 0,
  capacity: null,
  fetchMs: null,
  exhausted: false,
};

/**
 * A closed-loop model of a run, in ticks of 100 ms: `threads` workers each spending cpuMs per row, every
 * row taking fetchMs to arrive, so what arrives now was sent one fetch time ago at the limit of then.
 * Rows the CPU cannot take yet queue as ready ones. Returns the limit after `ticks` and the CPU's share
 * over the last ten ticks.
 */
function simulate(threads: number, cpuMs: number, fetchMs: number, ticks: number): { limit: number; busy: number; peak: number } {
  const c = new InFlightController({ threads, min: threads * 10, max: threads * 512 });
  const capacity = (threads / cpuMs) * 1000;
  const lag = Math.max(1, Math.round(fetchMs / 100));
  const sent: number[] = [];
  let ready = 0;
  let peak = 0;
  const recent: number[] = [];
  for (let t = 0; t < ticks; t++) {
    sent.push(c.limit);
    // Rows fetching are those of the limit one fetch time ago; they arrive at limit / fetch time.
    const fetching = Math.max(0, sent[Math.max(0, t - lag)] - ready);
    const arrived = t >= lag ? (fetching / fetchMs) * 100 : 0;
    const taken = Math.min(ready + arrived, capacity / 10);
    ready = ready + arrived - taken;
    const busy = taken / (capacity / 10);
    recent.push(busy);
    c.onSample(
      {
        inFlight: c.limit,
        ready,
        busy,
        hostWaiting: 0,
        heldBack: 0,
        budgetWaiting: 0,
        storeWaiting: 0,
        capacity: t >= lag ? capacity : null,
        fetchMs: t >= lag ? fetchMs : null,
        exhausted: false,
      },
      t * 100,
    );
    peak = Math.max(peak, c.limit);
  }
  const last = recent.slice(-10);
  return { limit: c.limit, busy: last.reduce((a, b) => a + b, 0) / last.length, peak };
}

let clock = 0;
/** A time past any hold. */
const later = () => (clock += 60_000);

describe('in-flight controller', () => {
  it('grows under latency until the CPU is fed, never past twice what it needs: 400 ms and 1.5 s to first byte at 12 ms of CPU per row', () => {
    const at400 = simulate(2, 12, 400, 100);
    expect(at400.busy).toBeGreaterThanOrEqual(0.9);
    const need400 = (2 / 12) * 400;
    expect(at400.peak).toBeLessThan(need400 * 2);
    const at1500 = simulate(2, 12, 1500, 200);
    expect(at1500.busy).toBeGreaterThanOrEqual(0.9);
    expect(at1500.peak).toBeLessThan((2 / 12) * 1500 * 2);
    expect(at400.limit).toBeGreaterThan(need400 * 0.9);
    expect(at1500.limit).toBeGreaterThan((2 / 12) * 1500 * 0.9);
  });

  it('never grows when downloads are instant and the CPU is the limit: a long ready queue takes it to its floor, the CPU still fed', () => {
    const r = simulate(2, 200, 5, 100);
    expect(r.busy).toBe(1);
    expect(r.limit).toBe(20);
    expect(r.peak).toBe(36);
  });

  it("waits for the first rows before growing, then jumps to what Little's law asks, and holds for a fetch time after each change", () => {
    const c = new InFlightController({ threads: 2, min: 20, max: 300 });
    const start = c.limit;
    for (let i = 0; i < 5; i++) c.onSample({ ...idle, inFlight: c.limit }, later());
    expect(c.limit).toBe(start);
    // 160 rows/s of CPU, 1 s to arrive: 160 fetching + 4 ready.
    const t = later();
    expect(c.onSample({ ...idle, inFlight: c.limit, capacity: 160, fetchMs: 1000 }, t)).toBe(164);
    // Still starving 0.9 s later: the rows sent at the change have not arrived yet, so nothing moves.
    expect(c.onSample({ ...idle, inFlight: c.limit, capacity: 160, fetchMs: 1000 }, t + 900)).toBe(164);
    // Starving after a whole fetch time: the estimate was short, so ×1.5.
    expect(c.onSample({ ...idle, inFlight: c.limit, capacity: 160, fetchMs: 1000 }, t + 1000)).toBe(246);
    for (let i = 0; i < 5; i++) c.onSample({ ...idle, inFlight: c.limit, capacity: 1000, fetchMs: 1000 }, later());
    expect(c.limit).toBe(300);
  });

  it('does not grow while rows wait for the memory budget or sleep because a host asked for less, nor when the input has run out, nor when the CPU is busy', () => {
    for (const blocked of [{ budgetWaiting: 3 }, { heldBack: 5 }, { exhausted: true }, { busy: 0.95 }]) {
      const c = new InFlightController({ threads: 2, min: 20, max: 1000 });
      const start = c.limit;
      for (let i = 0; i < 10; i++) c.onSample({ ...idle, ...blocked, inFlight: c.limit, capacity: 160, fetchMs: 1000 }, later());
      expect(c.limit).toBe(start);
    }
  });

  it("rows parked behind a host's limit are not at work: when a host is the wall the rows at work stop pressing, and the limit stops growing", () => {
    const c = new InFlightController({ threads: 2, min: 20, max: 1000 });
    const start = c.limit;
    // The host admits 20 of the 36 allowed; 400 more rows wait for it, parked outside inFlight.
    for (let i = 0; i < 10; i++) c.onSample({ ...idle, hostWaiting: 400, inFlight: 20, capacity: 160, fetchMs: 1000 }, later());
    expect(c.limit).toBe(start);
    // Rows waiting for one dead host do not stop growth for the others' rows when those press and starve.
    c.onSample({ ...idle, hostWaiting: 400, inFlight: c.limit, capacity: 160, fetchMs: 1000 }, later());
    expect(c.limit).toBeGreaterThan(start);
  });

  it('takes half the surplus of ready rows off per fetch time, down to its floor', () => {
    const c = new InFlightController({ threads: 2, min: 20, max: 1000 });
    c.onSample({ ...idle, inFlight: c.limit, capacity: 200, fetchMs: 1000 }, later());
    expect(c.limit).toBe(204);
    expect(c.onSample({ ...idle, inFlight: c.limit, ready: 104, busy: 1 }, later())).toBe(154);
    for (let i = 0; i < 50; i++) c.onSample({ ...idle, inFlight: c.limit, ready: 104, busy: 1 }, later());
    expect(c.limit).toBe(20);
  });

  it('names the bound of a tick: CPU first, then the store, the budget, the hosts, else the network', () => {
    const t = { inFlight: 20, storeWaiting: 0 };
    expect(classifyTick({ ...t, busy: 0.95, hostWaiting: 9, budgetWaiting: 9, storeWaiting: 20 })).toBe('cpu');
    expect(classifyTick({ ...t, busy: 0.2, hostWaiting: 9, budgetWaiting: 9, storeWaiting: 10 })).toBe('store');
    expect(classifyTick({ ...t, busy: 0.2, hostWaiting: 9, budgetWaiting: 9, storeWaiting: 9 })).toBe('budget');
    expect(classifyTick({ ...t, busy: 0.2, hostWaiting: 9, budgetWaiting: 0 })).toBe('host');
    expect(classifyTick({ ...t, busy: 0.2, hostWaiting: 0, budgetWaiting: 0 })).toBe('network');
  });
});

/**
 * A host that answers 429 beyond `cap` open requests, every request taking one round trip: the limit
 * each round trip is what pcb sends. Returns the limits per round trip and the share answered 429.
 */
function hostTrace(cap: number, rounds: number, ceiling = 4096): { limits: number[]; rejected: number } {
  let s: HostLimitState = initialHostLimit(ceiling);
  const limits: number[] = [];
  let sent = 0;
  let rejected = 0;
  for (let r = 0; r < rounds; r++) {
    const n = Math.floor(s.limit);
    limits.push(n);
    sent += n;
    let cutThisRound = false;
    for (let k = 0; k < n; k++) {
      const over = k >= cap;
      if (over) rejected++;
      s = nextHostLimit(s, over ? 'pushback' : 'clean', { ceiling, tested: true, sinceCut: !cutThisRound });
      if (over) cutThisRound = true;
    }
  }
  return { limits, rejected: rejected / sent };
}

describe('per-host limit', () => {
  it('a host that answers well is not held at 64: it doubles per round trip up to the ceiling', () => {
    const t = hostTrace(100_000, 8, 1000);
    expect(t.limits.slice(0, 5)).toEqual([64, 128, 256, 512, 1000]);
    expect(t.rejected).toBe(0);
  });

  it('a host that answers 429 beyond 48 open requests: the limit settles under 48, averaging over 0.7 of it, with few 429s', () => {
    const t = hostTrace(48, 200);
    const steady = t.limits.slice(20);
    const mean = steady.reduce((a, b) => a + b, 0) / steady.length;
    expect(mean).toBeGreaterThan(48 * 0.7);
    expect(Math.max(...steady)).toBeLessThanOrEqual(49);
    expect(t.rejected).toBeLessThan(0.1);
  });

  it('cuts once per round trip, by 0.7, never below one; neutral answers and untested limits change nothing', () => {
    const s = { limit: 40, threshold: 100 };
    const cut = nextHostLimit(s, 'pushback', { ceiling: 100, tested: true, sinceCut: true });
    expect(cut).toEqual({ limit: 28, threshold: 28 });
    expect(nextHostLimit(cut, 'pushback', { ceiling: 100, tested: true, sinceCut: false })).toBe(cut);
    expect(nextHostLimit({ limit: 1, threshold: 1 }, 'pushback', { ceiling: 100, tested: true, sinceCut: true }).limit).toBe(HOST_LIMIT.min);
    expect(nextHostLimit(s, 'neutral', { ceiling: 100, tested: true, sinceCut: true })).toBe(s);
    expect(nextHostLimit(s, 'clean', { ceiling: 100, tested: false, sinceCut: true })).toBe(s);
    // After a cut, clean answers add one per round trip (1/limit each).
    expect(nextHostLimit(cut, 'clean', { ceiling: 100, tested: true, sinceCut: true }).limit).toBeCloseTo(28 + 1 / 28);
  });

  it('--max-host-connections is a hard ceiling, from the start', () => {
    expect(initialHostLimit(8).limit).toBe(8);
    expect(nextHostLimit({ limit: 8, threshold: 8 }, 'clean', { ceiling: 8, tested: true, sinceCut: true }).limit).toBe(8);
  });

  it('429, 503, timeouts and dropped connections push back; other answers are clean; refusals of ours say nothing', () => {
    expect(classifyAnswer('http_status', 429)).toBe('pushback');
    expect(classifyAnswer('http_status', 503)).toBe('pushback');
    expect(classifyAnswer('timeout', null)).toBe('pushback');
    expect(classifyAnswer('network', null)).toBe('pushback');
    expect(classifyAnswer('http_status', 404)).toBe('clean');
    expect(classifyAnswer(null, 200)).toBe('clean');
    expect(classifyAnswer('opted_out', 200)).toBe('neutral');
    expect(classifyAnswer('too_large', 200)).toBe('neutral');
    expect(classifyAnswer('blocked_address', null)).toBe('neutral');
  });
});

describe('what bound the run', () => {
  it('names the largest share with a hint that says what to change, or that nothing needs to', () => {
    const ctx = { concurrency: 'auto' as const, maxHostConnections: null, maxRps: null, pushback: 0, threads: 16, processes: 4, cores: 16, coresBusy: 0.95 };
    expect(dominantBound({ cpu: 0, network: 0, host: 0, budget: 0, store: 0 })).toBeNull();
    expect(boundHint({ cpu: 0.9, network: 0.1, host: 0, budget: 0, store: 0 }, ctx)).toMatch(
      /^CPU-bound \(90 % of the run, 95 % of 16 cores busy\).*nothing to change/,
    );
    expect(boundHint({ cpu: 0.1, network: 0.9, host: 0, budget: 0, store: 0 }, { ...ctx, concurrency: 4 })).toMatch(/network-bound.*drop --concurrency 4/);
    expect(boundHint({ cpu: 0.1, network: 0.2, host: 0.7, budget: 0, store: 0 }, { ...ctx, maxRps: 5 })).toMatch(/host-bound.*--max-rps 5; raise it/);
    expect(boundHint({ cpu: 0.1, network: 0.2, host: 0.7, budget: 0, store: 0 }, { ...ctx, pushback: 12 })).toMatch(/pushed back \(12 answers/);
    expect(boundHint({ cpu: 0.1, network: 0.2, host: 0, budget: 0.7, store: 0 }, ctx)).toMatch(/--memory-budget/);
  });

  it('never blames the CPU while cores sit idle: too few threads, or threads that wait on each other', () => {
    const ctx = { concurrency: 'auto' as const, maxHostConnections: null, maxRps: null, pushback: 0, threads: 16, processes: 1, cores: 16, coresBusy: 0.56 };
    const busyWorkers = { cpu: 1, network: 0, host: 0, budget: 0, store: 0 };
    expect(boundHint(busyWorkers, ctx)).toMatch(/^workers busy \(100 % of the run\) but only 56 % of 16 cores busy: .*--processes 8/);
    expect(boundHint(busyWorkers, ctx)).not.toMatch(/CPU-bound|nothing to change/);
    expect(boundHint(busyWorkers, { ...ctx, processes: 8 })).toMatch(/shared with other work/);
    expect(boundHint(busyWorkers, { ...ctx, threads: 4, coresBusy: 0.25 })).toMatch(/4 threads cannot use 16 cores \(25 % of 16 cores busy\): --threads 16/);
  });
});

describe('a host that stops answering (the circuit)', () => {
  const buffer = createSharedBuffer(1);
  const shared = () => new SharedLimits({ buffer, maxRps: null, maxHostConnections: null, memoryBudgetBytes: 1 << 30 }, 1);
  const silence = async (l: SharedLimits, n: number) => {
    for (let k = 0; k < n; k++) (await l.acquireHost('dead.test')).done('pushback', null);
  };
  afterEach(() => {
    vi.useRealTimers();
  });

  it(`opens after ${CIRCUIT.openAfter} silences in a row: requests are refused unsent until the pause ends, then one probe passes`, async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(1_000_000);
    const l = shared();
    await silence(l, CIRCUIT.openAfter - 1);
    // An HTTP answer of any status between silences starts the count again.
    (await l.acquireHost('dead.test')).done('pushback', 503);
    await silence(l, CIRCUIT.openAfter - 1);
    // Still closed: the next request is sent, and its silence is the one that opens the circuit.
    await silence(l, 1);
    const refused = await l.acquireHost('dead.test').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NotSent);
    expect((refused as NotSent).code).toBe('network');
    expect((refused as NotSent).message).toMatch(/^not sent: dead\.test gave no answer to \d+ requests in a row/);
    // Other hosts are not concerned.
    (await l.acquireHost('live.test')).done('clean', null);
    expect(SharedLimits.hostReport(buffer, 'dead.test', null).notSent).toBe(1);

    vi.setSystemTime(1_000_000 + circuitPause(1));
    const probe = await l.acquireHost('dead.test');
    // While the probe is out, the rest are still refused.
    await expect(l.acquireHost('dead.test')).rejects.toBeInstanceOf(NotSent);
    // A silent probe reopens the circuit for twice as long.
    probe.done('pushback', null);
    vi.setSystemTime(1_000_000 + circuitPause(1) + circuitPause(2) - 1);
    await expect(l.acquireHost('dead.test')).rejects.toBeInstanceOf(NotSent);
    vi.setSystemTime(1_000_000 + circuitPause(1) + circuitPause(2));
    // A probe that gets an answer closes it: everything passes again.
    (await l.acquireHost('dead.test')).done('clean', null);
    for (let k = 0; k < 3; k++) (await l.acquireHost('dead.test')).done('clean', null);
  });

  it("a host that shares the dead one's slot is not refused, and its answers do not close the other's circuit", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(5_000_000);
    const l = shared();
    let k = 0;
    while (hostSlot(`h${k}.test`) !== hostSlot('gone.test')) k++;
    const twin = `h${k}.test`;
    for (let n = 0; n < CIRCUIT.openAfter; n++) (await l.acquireHost('gone.test')).done('pushback', null);
    await expect(l.acquireHost('gone.test')).rejects.toBeInstanceOf(NotSent);
    for (let n = 0; n < 3; n++) (await l.acquireHost(twin)).done('clean', null);
    for (let n = 0; n < CIRCUIT.openAfter; n++) (await l.acquireHost(twin)).done('pushback', null);
    await expect(l.acquireHost('gone.test')).rejects.toBeInstanceOf(NotSent);
    (await l.acquireHost(twin)).done('clean', null);
  });

  it('the pause doubles per failed probe, from 2 s up to a minute', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(circuitPause)).toEqual([2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    expect(isSilence('pushback', null)).toBe(true);
    expect(isSilence('pushback', 429)).toBe(false);
    expect(isSilence('clean', null)).toBe(false);
  });
});
