/** Each shared limit on its own slice of the buffer: two ledgers in one thread stand for two workers. */
import { describe, expect, it } from 'vitest';
import { NotSent } from '../src/errors.js';
import { CIRCUIT } from '../src/fetch/host-limit.js';
import { MemoryBudget } from '../src/fetch/limits/budget.js';
import { Gauges } from '../src/fetch/limits/gauges.js';
import { HostLimits } from '../src/fetch/limits/hosts.js';
import { createSharedBuffer } from '../src/fetch/limits/layout.js';
import { Ledger } from '../src/fetch/limits/ledger.js';
import { RateLimit } from '../src/fetch/limits/rate.js';

/** Resolves to whether `p` settled within a few turns of the event loop (no timer involved). */
async function settledSoon(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 20; i++) await Promise.resolve();
  return done;
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

function worker(buffer: SharedArrayBuffer, owner: number) {
  const ledger = new Ledger(buffer, owner);
  return { ledger, gauges: new Gauges(buffer, ledger) };
}

describe('Ledger', () => {
  it('gives each worker its own slot, and none past the buffer’s room', () => {
    const buffer = createSharedBuffer(1);
    const slots = new Set<number>();
    for (let owner = 1; owner <= 10; owner++) slots.add(new Ledger(buffer, owner).slot);
    expect(slots.size).toBe(10);
    expect(() => new Ledger(buffer, 11)).toThrow(/no free ledger slot/);
  });

  it('gives back what a dead worker held (bytes, host requests, gauges) and frees its slot', async () => {
    const buffer = createSharedBuffer(2);
    const dead = worker(buffer, 7);
    const budget = new MemoryBudget(buffer, 1 << 20, dead.ledger, dead.gauges);
    const hosts = new HostLimits(buffer, 4, 1, dead.ledger, dead.gauges);
    await budget.reserve(10 * 1024);
    await hosts.acquire('a.example');
    await hosts.acquire('a.example');
    dead.gauges.gauge('busy', 1);
    expect(HostLimits.hostConnections(buffer, 'a.example')).toBe(2);
    expect(Ledger.settleWorker(buffer, 7)).toEqual({ kib: 10, connections: 2 });
    expect(MemoryBudget.heldKiB(buffer)).toBe(0);
    expect(HostLimits.hostConnections(buffer, 'a.example')).toBe(0);
    expect(Gauges.snapshot(buffer).busy).toBe(0);
    // Nothing of another owner is touched, and the slot is free again.
    expect(Ledger.settleWorker(buffer, 7)).toEqual({ kib: 0, connections: 0 });
    expect(new Ledger(buffer, 8).slot).toBe(dead.ledger.slot);
  });
});

describe('Gauges', () => {
  it('sums every live worker’s gauges and the running totals', async () => {
    const buffer = createSharedBuffer(2);
    const a = worker(buffer, 1);
    const b = worker(buffer, 2);
    a.gauges.gauge('ready', 2);
    b.gauges.gauge('ready', 3);
    a.gauges.setGauge('loop', 400);
    b.gauges.setGauge('loop', 100);
    a.gauges.count('fetches', 2);
    b.gauges.count('fetches', 1);
    let release: () => void = () => undefined;
    const held = b.gauges.waiting('storing', () => new Promise<void>((r) => (release = r)));
    expect(Gauges.snapshot(buffer)).toMatchObject({ ready: 5, loop: 500, fetches: 3, storing: 1 });
    release();
    await held;
    expect(Gauges.snapshot(buffer).storing).toBe(0);
    // A dead worker's gauges stop counting.
    Ledger.settleWorker(buffer, 2);
    expect(Gauges.snapshot(buffer)).toMatchObject({ ready: 2, loop: 400, fetches: 3 });
  });
});

describe('RateLimit', () => {
  it('lets a second’s burst through at once, then makes every worker wait its turn, counted as waiting', async () => {
    const buffer = createSharedBuffer(2);
    const a = worker(buffer, 1);
    const b = worker(buffer, 2);
    const rateA = new RateLimit(buffer, 1, a.gauges);
    const rateB = new RateLimit(buffer, 1, b.gauges);
    expect(await settledSoon(rateA.take())).toBe(true);
    // The other worker shares the same rate: its request waits for the next second.
    const second = rateB.take();
    await until(() => Gauges.snapshot(buffer).hostWaiting === 1);
    expect(await settledSoon(second)).toBe(false);
    await second;
    expect(Gauges.snapshot(buffer).hostWaiting).toBe(0);
    // No limit: never waits.
    const free = new RateLimit(buffer, null, a.gauges);
    for (let i = 0; i < 100; i++) expect(await settledSoon(free.take())).toBe(true);
  });
});

describe('HostLimits', () => {
  it('holds one host to its ceiling across workers; a request done lets the next through', async () => {
    const buffer = createSharedBuffer(2);
    const a = worker(buffer, 1);
    const b = worker(buffer, 2);
    const hostsA = new HostLimits(buffer, 2, 1, a.ledger, a.gauges);
    const hostsB = new HostLimits(buffer, 2, 1, b.ledger, b.gauges);
    const p1 = await hostsA.acquire('h.example');
    await hostsB.acquire('h.example');
    const third = hostsB.acquire('h.example');
    await until(() => Gauges.snapshot(buffer).hostWaiting === 1);
    expect(await settledSoon(third)).toBe(false);
    // Another host is not held back.
    expect(await settledSoon(hostsA.acquire('other.example'))).toBe(true);
    p1.done('clean', 200);
    await third;
    expect(HostLimits.hostConnections(buffer, 'h.example')).toBe(2);
    expect(Gauges.snapshot(buffer).hostWaiting).toBe(0);
  });

  it('counts pushback, and opens the circuit after a run of silences: the next request is not sent', async () => {
    const buffer = createSharedBuffer(1);
    const w = worker(buffer, 1);
    const hosts = new HostLimits(buffer, 64, 1, w.ledger, w.gauges);
    (await hosts.acquire('slow.example')).done('pushback', 429);
    (await hosts.acquire('slow.example')).done('pushback', 503);
    for (let i = 0; i < CIRCUIT.openAfter; i++) (await hosts.acquire('dead.example')).done('pushback', null);
    await expect(hosts.acquire('dead.example')).rejects.toBeInstanceOf(NotSent);
    expect(HostLimits.hostReport(buffer, 'slow.example', 64)).toMatchObject({ http429: 1, http503: 1, open: 0 });
    expect(HostLimits.hostReport(buffer, 'dead.example', 64)).toMatchObject({ notSent: 1, open: 0 });
    // Another host's circuit is its own.
    expect(await settledSoon(hosts.acquire('alive.example'))).toBe(true);
  });
});

describe('MemoryBudget', () => {
  it('makes a body wait for room once the budget is spent, across workers, and keeps the peak', async () => {
    const buffer = createSharedBuffer(2);
    const a = worker(buffer, 1);
    const b = worker(buffer, 2);
    const budgetA = new MemoryBudget(buffer, 16 * 1024, a.ledger, a.gauges);
    const budgetB = new MemoryBudget(buffer, 16 * 1024, b.ledger, b.gauges);
    const kib = await budgetA.reserve(12 * 1024);
    const waiting = budgetB.reserve(8 * 1024);
    await until(() => Gauges.snapshot(buffer).budgetWaiting === 1);
    expect(await settledSoon(waiting)).toBe(false);
    budgetA.settle(kib);
    budgetA.release(kib, true);
    expect(await waiting).toBe(8);
    expect(MemoryBudget.heldKiB(buffer)).toBe(8);
    expect(MemoryBudget.peakKiB(buffer)).toBe(12);
  });

  it('lets one body of unknown length run over the budget at a time (the overdraft), never two', async () => {
    const buffer = createSharedBuffer(2);
    const a = worker(buffer, 1);
    const b = worker(buffer, 2);
    const budgetA = new MemoryBudget(buffer, 4 * 1024, a.ledger, a.gauges);
    const budgetB = new MemoryBudget(buffer, 4 * 1024, b.ledger, b.gauges);
    const ta = budgetA.ticket();
    const tb = budgetB.ticket();
    expect(ta).not.toBe(tb);
    await budgetA.holdChunk(4 * 1024, ta);
    await budgetA.holdChunk(4 * 1024, ta); // over the budget: this body holds the overdraft
    const other = budgetB.holdChunk(1024, tb);
    expect(await settledSoon(other)).toBe(false);
    budgetA.release(8, false, ta);
    expect(await other).toBe(1);
    expect(MemoryBudget.heldKiB(buffer)).toBe(1);
  });
});
