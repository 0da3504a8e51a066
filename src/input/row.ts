import { RowError } from '../errors.js';

export const MAX_ID_BYTES = 200;

/** An id becomes a file name: refuse anything that could escape --out or is not a plain name. */
export function checkId(id: string | null | undefined): string {
  if (id === null || id === undefined || id === '') throw new RowError('bad_id', 'empty id');
  if (id === '.' || id === '..') throw new RowError('bad_id', `id ${JSON.stringify(id)} is a directory name`);
  if (/[/\\\0]/.test(id)) throw new RowError('bad_id', `id ${JSON.stringify(id.slice(0, 50))} has a path separator or NUL`);
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) throw new RowError('bad_id', `id is over ${MAX_ID_BYTES} bytes`);
  return id;
}

import type { CaptionSource } from '../result.js';
import { captionText } from './caption.js';
export type { CaptionSource };

/** The caption column, else the fallback (a list joined with ", "), else empty. */
export function chooseCaption(primary: unknown, fallback: unknown): { text: string; source: CaptionSource } {
  const p = captionText(primary);
  if (p) return { text: p, source: 'primary' };
  const f = captionText(fallback);
  if (f) return { text: f, source: 'fallback' };
  return { text: '', source: 'none' };
}

/** An image's caption file: the same stem, `.txt`. */
export function captionFileName(imageName: string): string {
  const dot = imageName.lastIndexOf('.');
  return `${dot > 0 ? imageName.slice(0, dot) : imageName}.txt`;
}
