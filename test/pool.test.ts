/** The pool alone, without downloads: what a crashed worker gives back, and dispatch cost against capacity. */
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { RowPool } from '../src/run/pool.js';
import { SharedLimits } from '../src/fetch/shared-limits.js';
import { bareCapacity, bareWorkerConfig } from '../src/kit/pool-config.js';
import type { RowResult, RowTask } from '../src/result.js';

const fixture = (name: string) => path.join(import.meta.dirname, 'fixtures', name);
const task = (row: number, url = 'ok'): RowTask => ({ row, id: String(row), url, caption: null, fallback: null, srcWidth: null, srcHeight: null });

const config = bareWorkerConfig;

describe('RowPool', () => {
  it('a worker that dies mid-download gives back its host slots and bytes: the next rows to that host proceed', async () => {
    const c = config(1, 4, 4);
    const results: RowResult[] = [];
    const crashed: RowTask[] = [];
    const pool = new RowPool(
      c,
      1,
      bareCapacity(1, 4),
      (r) => results.push(r),
      (t) => crashed.push(t),
      fixture('crash-worker.mjs'),
    );
    try {
      for (let i = 0; i < 4; i++) await pool.submit(task(i, 'crash'));
      // Four rows hold all four connections to the host when their worker dies (twice: each row gets one more try).
      await pool.drain();
      expect(crashed.map((t) => t.row).sort()).toEqual([0, 1, 2, 3]);
      expect(SharedLimits.hostConnections(c.limits.buffer, 'cdn.example')).toBe(0);
      expect(SharedLimits.heldKiB(c.limits.buffer)).toBe(0);
      for (let i = 4; i < 12; i++) await pool.submit(task(i));
      await pool.drain();
      expect(results.map((r) => r.row).sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    } finally {
      await pool.destroy();
    }
  });

  it('dispatch costs the same per row at capacity 32 and 4,096 (a hang or a cost growing with capacity fails)', async () => {
    const perRow = async (concurrency: number): Promise<number> => {
      const pool = new RowPool(
        config(1, concurrency),
        1,
        bareCapacity(1, concurrency),
        () => undefined,
        () => undefined,
        fixture('noop-worker.mjs'),
      );
      try {
        for (let i = 0; i < 2000; i++) await pool.submit(task(i)); // warm up
        await pool.drain();
        const n = 20_000;
        const t0 = process.cpuUsage();
        for (let i = 0; i < n; i++) await pool.submit(task(i));
        await pool.drain();
        const t = process.cpuUsage(t0);
        return (t.user + t.system) / n;
      } finally {
        await pool.destroy();
      }
    };
    const small = await perRow(30);
    const large = await perRow(4094);
    // Promise.race over every row in flight cost ~100× more at 4,096; a constant cost stays within noise.
    expect(large / small).toBeLessThan(4);
  });
});
