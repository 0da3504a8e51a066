import type { ResizeMode, Size } from '../image/target-size.js';
import { targetSize } from '../image/target-size.js';

import type { CdnResize } from '../options.js';
export type { CdnResize };
/** Pexels serves its photos through imgix from this host. */
export const DEFAULT_IMGIX_HOSTS = ['images.pexels.com'];

/**
 * The smallest width whose rendition (fit=max keeps the aspect) still covers the target on both sides,
 * or null when only the original will do (unknown size, or no smaller rendition would be smaller).
 */
export function coveringWidth(srcW: number | null, srcH: number | null, mode: ResizeMode, resolution: number): { width: number; need: Size } | null {
  if (!srcW || !srcH || mode === 'none') return null;
  const need = targetSize(mode, srcW, srcH, resolution);
  if (!need) return null;
  const width = Math.ceil(Math.max(need.width, (need.height * srcW) / srcH));
  return width < srcW ? { width, need } : null;
}

/** Rewrite an imgix URL to ask for that width with fit=max, dropping auto=compress (it drops quality to 45). */
export function imgixUrl(url: URL, width: number): URL {
  const u = new URL(url.href);
  for (const k of ['w', 'h', 'fit', 'dpr', 'q']) u.searchParams.delete(k);
  const auto = (u.searchParams.get('auto') ?? '').split(',').filter((a) => a && a !== 'compress');
  u.searchParams.delete('auto');
  if (auto.length) u.searchParams.set('auto', auto.join(','));
  u.searchParams.set('w', String(width));
  u.searchParams.set('fit', 'max');
  return u;
}
