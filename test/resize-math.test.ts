import { describe, expect, it } from 'vitest';
import { roundHalfEven, targetSize } from '../src/image/resize.js';
import type { ResizeMode } from '../src/image/resize.js';
import { targetPixelsSql } from '../src/cli/commands/inspect.js';
import { query } from './helpers.js';

describe('roundHalfEven (Python round)', () => {
  it('sends halves to the even neighbour', () => {
    expect([0.5, 1.5, 2.5, 3.5, 16.5, 17.5, -1.5].map(roundHalfEven)).toEqual([0, 2, 2, 4, 16, 18, -2]);
  });
  it('rounds other values to the nearest', () => {
    expect([2.49, 2.51, 23.999, 0.1].map(roundHalfEven)).toEqual([2, 3, 24, 0]);
  });
});

describe('targetSize shortest-side (the reference formula)', () => {
  it('matches Python for Pexels sizes', () => {
    // Python: k=1024/4000; round(6000*k/64)*64 = round(24.0)*64 = 1536
    expect(targetSize('shortest-side', 6000, 4000, 1024)).toEqual({ width: 1536, height: 1024 });
    expect(targetSize('shortest-side', 4000, 6000, 1024)).toEqual({ width: 1024, height: 1536 });
    // 5472x3648: 5472*1024/3648/64 = 24.0 → 1536
    expect(targetSize('shortest-side', 5472, 3648, 1024)).toEqual({ width: 1536, height: 1024 });
    // 4032x3024: 4032*(1024/3024)/64 = 21.333 → 21*64 = 1344
    expect(targetSize('shortest-side', 4032, 3024, 1024)).toEqual({ width: 1344, height: 1024 });
  });
  it('handles square and panorama sources', () => {
    expect(targetSize('shortest-side', 4000, 4000, 1024)).toEqual({ width: 1024, height: 1024 });
    // 12000x3000: k = 1024/3000, 12000k/64 = 64 → 4096
    expect(targetSize('shortest-side', 12000, 3000, 1024)).toEqual({ width: 4096, height: 1024 });
    // 3000x9000 portrait panorama: 9000 * 1024/3000 / 64 = 48 → 3072
    expect(targetSize('shortest-side', 3000, 9000, 1024)).toEqual({ width: 1024, height: 3072 });
  });
  it('rounds ties to even like Python', () => {
    // 2720x2048 at 1024: k = 0.5, 1360/64 = 21.25 → 21; 2784x2048: 1392/64 = 21.75 → 22
    expect(targetSize('shortest-side', 2720, 2048, 1024)!.width).toBe(1344);
    // width*k/64 = 20.5 exactly: 2624x2048, k=0.5 → 1312/64 = 20.5 → 20 (even), not 21
    expect(targetSize('shortest-side', 2624, 2048, 1024)!.width).toBe(1280);
    // 21.5 → 22: 2752x2048 → 1376/64 = 21.5
    expect(targetSize('shortest-side', 2752, 2048, 1024)!.width).toBe(1408);
  });
  it('never upscales: k > 1 floors each side to a multiple of 64', () => {
    expect(targetSize('shortest-side', 1000, 700, 1024)).toEqual({ width: 960, height: 640 });
    expect(targetSize('shortest-side', 640, 480, 1024)).toEqual({ width: 640, height: 448 });
  });
  it('fails under 64 px on a side', () => {
    expect(targetSize('shortest-side', 63, 500, 1024)).toBeNull();
    expect(targetSize('area', 500, 10, 1)).toBeNull();
    expect(targetSize('shortest-side', 64, 64, 1024)).toEqual({ width: 64, height: 64 });
  });
});

describe('targetSize area', () => {
  for (const [w, h] of [
    [6000, 4000],
    [4000, 6000],
    [6000, 6000],
    [8000, 2000],
    [3000, 4500],
    [7000, 3937],
  ]) {
    it(`hits about 1 MP for ${w}x${h}, sides multiples of 64, aspect kept`, () => {
      const t = targetSize('area', w, h, 1.0)!;
      expect(t.width % 64).toBe(0);
      expect(t.height % 64).toBe(0);
      expect(Math.abs(t.width * t.height - 1e6) / 1e6).toBeLessThan(0.1);
      expect(Math.abs(t.width / t.height - w / h) / (w / h)).toBeLessThan(0.05);
    });
  }
  it('uses the documented formula', () => {
    const k = Math.sqrt(1e6 / (6000 * 4000));
    expect(targetSize('area', 6000, 4000, 1.0)).toEqual({ width: roundHalfEven((6000 * k) / 64) * 64, height: roundHalfEven((4000 * k) / 64) * 64 });
  });
  it('never upscales small images', () => {
    expect(targetSize('area', 700, 500, 1.0)).toEqual({ width: 640, height: 448 });
  });
});

describe("one target-size rule: inspect's SQL agrees with targetSize()", () => {
  it('on a grid of sizes, for both modes and several resolutions', async () => {
    const sides = [64, 65, 100, 127, 128, 480, 512, 640, 767, 768, 800, 1000, 1023, 1024, 1080, 1200, 1536, 1600, 2400, 3648, 4000, 5472, 6000, 8000];
    const cases: [ResizeMode, number][] = [
      ['shortest-side', 512],
      ['shortest-side', 1000],
      ['shortest-side', 1024],
      ['area', 0.5],
      ['area', 1.0],
      ['area', 2.25],
    ];
    for (const [mode, res] of cases) {
      const rows = await query(
        `SELECT w, h, ${targetPixelsSql(mode, res, 'w::DOUBLE', 'h::DOUBLE')}::DOUBLE AS px FROM (VALUES ${sides.flatMap((w) => sides.map((h) => `(${w}, ${h})`)).join(', ')}) t(w, h)`,
      );
      expect(rows).toHaveLength(sides.length ** 2);
      for (const r of rows) {
        const t = targetSize(mode, r.w as number, r.h as number, res)!;
        expect(r.px, `${mode} ${res}: ${r.w}x${r.h}`).toBe(t.width * t.height);
      }
    }
  });
});
