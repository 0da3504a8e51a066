/** download() and processRow() in this process, against the kit server: no pool, no CLI. */
import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { createAgent, download } from '../src/fetch/download.js';
import type { DownloadPolicy } from '../src/fetch/download.js';
import { processRow } from '../src/run/process-row.js';
import { SharedLimits, createSharedBuffer } from '../src/fetch/shared-limits.js';
import { Semaphore } from '../src/run/semaphore.js';
import { FilesWriter } from '../src/output/writer.js';
import { openStore } from '../src/output/store.js';
import type { RowContext } from '../src/run/worker-config.js';
import type { RowTask } from '../src/result.js';
import { tmpDir, useKit } from './helpers.js';

const kit = useKit(2);

const policy = (over: Partial<DownloadPolicy> = {}): DownloadPolicy => ({
  timeoutMs: 2000,
  maxBytes: 1 << 24,
  retries: 1,
  backoffMs: 1,
  userAgent: 'pcb-test',
  allowPrivateNetwork: true,
  ignoreOptOut: false,
  ...over,
});
const limitsFor = () => new SharedLimits({ buffer: createSharedBuffer(1), maxRps: null, maxHostConnections: 4, memoryBudgetBytes: 1 << 30 }, 1);

describe('download()', () => {
  it('returns the body, counts its bytes against the budget, and gives them back', async () => {
    const p = policy();
    const limits = limitsFor();
    const got = await download(new URL(kit.server.url(`/img/${kit.photos[0].name}`)), p, createAgent(p, 4), limits);
    expect(got.error).toBeNull();
    expect(Buffer.compare(got.data!, kit.photos[0].data)).toBe(0);
    expect([got.attempts, got.httpStatus, got.bytes]).toEqual([1, 200, kit.photos[0].data.length]);
    expect(got.heldKiB).toBe(Math.ceil(kit.photos[0].data.length / 1024));
    limits.release(got.heldKiB, true, got.ticket);
  });

  it('retries a 503 once (two requests), refuses a private address without a request, cuts stalled headers at the deadline', async () => {
    const p = policy({ timeoutMs: 400 });
    const agent = createAgent(p, 4);
    const limits = limitsFor();
    const before = kit.server.requests.length;
    const busy = await download(new URL(kit.server.url('/status/503?inproc=1')), p, agent, limits);
    expect([busy.error?.code, busy.httpStatus, busy.attempts]).toEqual(['http_status', 503, 2]);
    expect(kit.server.requests.length - before).toBe(2);
    const strict = policy({ allowPrivateNetwork: false });
    const blocked = await download(new URL(kit.server.url(`/img/${kit.photos[0].name}`)), strict, createAgent(strict, 4), limits);
    expect([blocked.error?.code, blocked.attempts]).toEqual(['blocked_address', 0]);
    const slow = await download(new URL(kit.server.url('/slow-headers')), policy({ timeoutMs: 400, retries: 0 }), agent, limits);
    expect(slow.error?.code).toBe('timeout');
  });
});

describe('processRow()', () => {
  it('writes the resized image and its caption, or a failed row with its code', async () => {
    const out = tmpDir();
    const tmp = path.join(out, '.pcb', 'tmp');
    mkdirSync(tmp, { recursive: true });
    const p = policy({ retries: 0 });
    const store = { out, tmpDir: tmp, remote: null, retries: 0, timeoutMs: 30000, shard: null };
    const ctx: RowContext = {
      cdnResize: 'none',
      cdnHosts: [],
      verifyHash: null,
      policy: p,
      agent: createAgent(p, 4),
      limits: limitsFor(),
      cpu: new Semaphore(1),
      resize: { mode: 'shortest-side', resolution: 256, format: 'png', quality: 95, pngCompression: 6, pngFilter: true },
      output: { store, format: 'files', samplesPerShard: 1, tarPrefix: 'pcb', run: 'test' },
      writer: new FilesWriter(await openStore(store)),
    };
    const task = (row: number, url: string, caption: string | null): RowTask => ({
      row,
      id: `r${row}`,
      url,
      caption,
      fallback: 'a, b',
      srcWidth: 640,
      srcHeight: 480,
    });
    const ok = await processRow(task(0, kit.server.url(`/img/${kit.photos[0].name}`), null), ctx);
    expect(ok).toMatchObject({ status: 'ok', error: null, width: 320, height: 256, path: 'r0.png', caption_source: 'fallback', attempts: 1 });
    expect((await sharp(path.join(out, 'r0.png')).metadata()).width).toBe(320);
    expect(readFileSync(path.join(out, 'r0.txt'), 'utf8')).toBe('a, b');
    // A bug (anything not a RowError) is internal_error: never disguised as a network or image failure.
    const buggy = await processRow(task(2, kit.server.url(`/img/${kit.photos[1].name}`), 'x'), {
      ...ctx,
      cpu: {
        use: () => {
          throw new TypeError('a bug in the resize step');
        },
      } as unknown as Semaphore,
    });
    expect(buggy).toMatchObject({ status: 'failed', error: 'internal_error', attempts: 1 });
    expect(buggy.message).toMatch(/unexpected: a bug in the resize step/);
    const missing = await processRow(task(1, kit.server.url('/status/404'), 'x'), ctx);
    expect(missing).toMatchObject({ status: 'failed', error: 'http_status', http_status: 404, attempts: 1, path: null });
  });
});
