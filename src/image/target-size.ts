/** The written size of an image: pure arithmetic, shared by the worker, inspect and the CDN planner. */
import type { OutputFormat, ResizeMode } from '../options.js';
export type { OutputFormat, ResizeMode };

export const MIN_SIDE = 64;
/** sharp's default limitInputPixels (0x3FFF * 0x3FFF). */
export const PIXEL_LIMIT = 268_402_689;

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export interface Size {
  width: number;
  height: number;
}

/**
 * The written size for a source of w×h: the reference formula (sides multiples of 64, ties to even),
 * except that a scale above 1 never upscales: each side is floored to a multiple of 64 instead.
 * Returns null when the source is under 64 px on a side (too_small).
 */
/** The formula's scale k for a source of w×h. */
export function scaleFactor(mode: ResizeMode, w: number, h: number, resolution: number): number {
  if (mode === 'none') return 1;
  return mode === 'shortest-side' ? resolution / Math.min(w, h) : Math.sqrt((resolution * 1e6) / (w * h));
}

/** True when the source is smaller than the target: pcb floors it to multiples of 64 instead of upscaling. */
export function isBelowTarget(mode: ResizeMode, w: number, h: number, resolution: number): boolean {
  return scaleFactor(mode, w, h, resolution) > 1;
}

export function targetSize(mode: ResizeMode, w: number, h: number, resolution: number): Size | null {
  if (w < MIN_SIDE || h < MIN_SIDE) return null;
  if (mode === 'none') return { width: w, height: h };
  const k = scaleFactor(mode, w, h, resolution);
  if (k > 1) return { width: Math.floor(w / 64) * 64, height: Math.floor(h / 64) * 64 };
  // Same float operations as the reference: round(W * k / 64) * 64; never below one 64 px step.
  return {
    width: Math.max(1, roundHalfEven((w * k) / 64)) * 64,
    height: Math.max(1, roundHalfEven((h * k) / 64)) * 64,
  };
}
