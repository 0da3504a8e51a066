import { aspectBucket } from '../src/report/charts.js';
import { binSeconds } from '../src/report/data.js';
import { captionWords as wordCount } from '../src/input/caption.js';
import { describe, expect, it } from 'vitest';
import { captionFileName, checkId, chooseCaption } from '../src/input/row.js';
import { isBlockedAddress, parseRowUrl } from '../src/fetch/address.js';
import { backoffDelay, isOptedOut, parseRetryAfter } from '../src/fetch/download.js';
import { coveringWidth, imgixUrl } from '../src/fetch/cdn.js';
import { roundChunkSize } from '../src/options.js';
import { parseShard, shardFromEnvironment } from '../src/shard.js';
import type { RowError } from '../src/errors.js';

const codeOf = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return (e as RowError).code;
  }
};

describe('ids', () => {
  it('refuses names that could escape --out or are not plain', () => {
    for (const bad of ['', '.', '..', 'a/b', '../x', 'a\\b', 'a\0b', 'x'.repeat(201), 'é'.repeat(101)]) expect(codeOf(() => checkId(bad))).toBe('bad_id');
    expect(codeOf(() => checkId(null))).toBe('bad_id');
  });
  it('accepts ordinary ids', () => {
    for (const good of ['123', 'photo-1', 'a.b', 'x'.repeat(200), '...']) expect(checkId(good)).toBe(good);
  });
});

describe('captions', () => {
  it('prefers the caption, then the fallback (lists joined), then empty', () => {
    expect(chooseCaption('a cat', 'x')).toEqual({ text: 'a cat', source: 'primary' });
    expect(chooseCaption('  ', 'x, y')).toEqual({ text: 'x, y', source: 'fallback' });
    expect(chooseCaption(null, ['red', 'car', null])).toEqual({ text: 'red, car', source: 'fallback' });
    expect(chooseCaption(null, [])).toEqual({ text: '', source: 'none' });
    expect(chooseCaption(undefined, null)).toEqual({ text: '', source: 'none' });
  });
});

describe('urls and addresses', () => {
  it('classifies urls', () => {
    expect(codeOf(() => parseRowUrl(null))).toBe('missing_url');
    expect(codeOf(() => parseRowUrl(' '))).toBe('missing_url');
    for (const bad of ['file:///etc/passwd', 'ftp://x/y.jpg', 'data:image/png;base64,AAAA', 'not a url', 'javascript:alert(1)'])
      expect(codeOf(() => parseRowUrl(bad))).toBe('bad_url');
    expect(parseRowUrl('https://images.pexels.com/photos/1/a.jpeg').hostname).toBe('images.pexels.com');
  });
  it('blocks loopback, private, link-local, CGNAT, unspecified', () => {
    for (const a of [
      '127.0.0.1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      'fe80::1',
      'fc00::1',
      '::ffff:127.0.0.1',
      '::',
    ])
      expect(isBlockedAddress(a)).toBe(true);
    for (const a of ['8.8.8.8', '104.18.2.3', '2606:4700::1']) expect(isBlockedAddress(a)).toBe(false);
  });
});

describe('opt-out and retry-after', () => {
  it('reads X-Robots-Tag', () => {
    expect(isOptedOut('noai')).toBe(true);
    expect(isOptedOut('noindex, noimageai')).toBe(true);
    expect(isOptedOut('pcb: noai')).toBe(true);
    expect(isOptedOut('*: noimageai')).toBe(true);
    expect(isOptedOut(['noindex', 'noai'])).toBe(true);
    expect(isOptedOut('noindex, nofollow')).toBe(false);
    expect(isOptedOut('otherbot: noai')).toBe(false);
    expect(isOptedOut('otherbot: noindex, noai')).toBe(false);
    expect(isOptedOut('pcb: noindex, otherbot: noai')).toBe(false);
    expect(isOptedOut('otherbot: noindex, pcb: noai')).toBe(true);
    expect(isOptedOut('max-image-preview: large, noimageai')).toBe(true);
    expect(isOptedOut(['otherbot: noai', 'noimageai'])).toBe(true);
    expect(isOptedOut(undefined)).toBe(false);
  });
  it('parses Retry-After in seconds and as a date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('soon')).toBeNull();
    expect(backoffDelay(0, 1000, 2000)).toBeGreaterThanOrEqual(2000);
    const d = backoffDelay(2, 1000, null);
    expect(d).toBeGreaterThanOrEqual(2000);
    expect(d).toBeLessThanOrEqual(6000);
  });
});

describe('imgix renditions', () => {
  it('asks for the width whose rendition covers the target, fit=max, no auto=compress', () => {
    const plan = coveringWidth(6000, 4000, 'shortest-side', 1024)!;
    expect(plan.width).toBe(1536);
    const u = imgixUrl(new URL('https://images.pexels.com/photos/1/p.jpeg?auto=compress&cs=tinysrgb&w=940'), plan.width);
    expect(u.searchParams.get('w')).toBe('1536');
    expect(u.searchParams.get('fit')).toBe('max');
    expect(u.searchParams.get('auto')).toBeNull();
    expect(u.searchParams.get('cs')).toBe('tinysrgb');
    // portrait: height target 1536 → width 1024 covers
    expect(coveringWidth(4000, 6000, 'shortest-side', 1024)!.width).toBe(1024);
    // the rounding can ask for a side slightly longer than the exact aspect: the rendition must still cover it
    const odd = coveringWidth(4032, 3024, 'shortest-side', 1024)!;
    expect(odd.width).toBeGreaterThanOrEqual(odd.need.width);
    expect((odd.width * 3024) / 4032).toBeGreaterThanOrEqual(odd.need.height);
    expect(coveringWidth(640, 448, 'shortest-side', 1024)).toBeNull();
    expect(coveringWidth(null, 600, 'shortest-side', 1024)).toBeNull();
  });
});

describe('shards and chunk sizes', () => {
  it('parses --shard and rejects bad ones', () => {
    expect(parseShard('1/4')).toMatchObject({ index: 1, count: 4 });
    expect(() => parseShard('4/4')).toThrow();
    expect(() => parseShard('x')).toThrow();
  });
  it('takes the shard from Slurm and Kubernetes', () => {
    expect(shardFromEnvironment({ SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '4', SLURM_ARRAY_TASK_COUNT: '3' }, null)).toMatchObject({
      index: 1,
      count: 3,
    });
    expect(shardFromEnvironment({ SLURM_ARRAY_TASK_ID: '2' }, 8)).toMatchObject({ index: 2, count: 8 });
    expect(shardFromEnvironment({ JOB_COMPLETION_INDEX: '3' }, 4)).toMatchObject({ index: 3, count: 4 });
    expect(() => shardFromEnvironment({ JOB_COMPLETION_INDEX: '3' }, null)).toThrow(/--shard-count/);
    expect(() => shardFromEnvironment({ SLURM_ARRAY_TASK_ID: '9', SLURM_ARRAY_TASK_COUNT: '4' }, null)).toThrow();
    expect(shardFromEnvironment({}, null)).toBeNull();
  });
  it('rounds chunk sizes up to whole vectors', () => {
    expect([1, 2048, 2049, 5000].map(roundChunkSize)).toEqual([2048, 2048, 4096, 6144]);
  });
});

describe('captionFileName', () => {
  it('keeps the whole stem, dots included', () => {
    expect(['1000000.png', 'photo-1.v2.jpg', '.hidden-ok.webp', 'a..png'].map(captionFileName)).toEqual([
      '1000000.txt',
      'photo-1.v2.txt',
      '.hidden-ok.txt',
      'a..txt',
    ]);
  });
});

describe("the report's aspect buckets: SimpleTuner's round(width / height, 2), Python's rounding", () => {
  it('matches Python on exact ties (half to even) and on floats just off a tie', () => {
    // Python: round(1152/1024, 2) == 1.12, round(896/1024, 2) == 0.88, round(1408/1024, 2) == 1.38, round(640/1024, 2) == 0.62
    expect(aspectBucket(1152, 1024)).toBe(1.12);
    expect(aspectBucket(896, 1024)).toBe(0.88);
    expect(aspectBucket(1408, 1024)).toBe(1.38);
    expect(aspectBucket(640, 1024)).toBe(0.62);
    // Not ties: round(1216/832, 2) == 1.46, round(201/200, 2) == 1.0 (the float is below 1.005), round(1536/1024, 2) == 1.5
    expect(aspectBucket(1216, 832)).toBe(1.46);
    expect(aspectBucket(201, 200)).toBe(1);
    expect(aspectBucket(1536, 1024)).toBe(1.5);
    expect(aspectBucket(1024, 1024)).toBe(1);
  });
  it("counts a caption's words at whitespace", () => {
    expect(wordCount('')).toBe(0);
    expect(wordCount('  \n ')).toBe(0);
    expect(wordCount(' a  photo\tof\na cat ')).toBe(5);
  });
  it('cuts a span of time into at most ~60 bars', () => {
    expect(binSeconds(30_000)).toBe(1);
    expect(binSeconds(10 * 60_000)).toBe(10);
    expect(binSeconds(3 * 3600_000)).toBe(300);
    expect(binSeconds(40 * 86400_000)).toBe(86400);
  });
});
