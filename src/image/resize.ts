import sharp from 'sharp';
import type { Metadata, Sharp } from 'sharp';
import { RowError } from '../errors.js';

import { MIN_SIDE, PIXEL_LIMIT, targetSize } from './target-size.js';
import type { OutputFormat, ResizeMode, Size } from './target-size.js';
export { MIN_SIDE, PIXEL_LIMIT, roundHalfEven, targetSize } from './target-size.js';
export type { OutputFormat, ResizeMode, Size } from './target-size.js';

export interface EncodeOptions {
  format: OutputFormat;
  quality: number;
  pngCompression: number;
  pngFilter: boolean;
}
export interface ResizeOptions extends EncodeOptions {
  mode: ResizeMode;
  resolution: number;
}

export interface ResizedImage {
  data: Buffer;
  srcWidth: number;
  srcHeight: number;
  width: number;
  height: number;
  /** True when the source bytes were kept as they are (--resize none, nothing to change). */
  passthrough: boolean;
}

/** Formats sharp can name in metadata(), mapped to our output names where they coincide. */
const SAME_FORMAT: Record<string, OutputFormat> = { jpeg: 'jpeg', png: 'png', webp: 'webp' };

/** Longest decode + resize + encode of one image; a 24 MP photo takes about 0.2 s. */
export const PROCESSING_TIMEOUT_S = 120;

function classifySharpError(err: unknown): RowError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/unsupported image format|Input buffer is empty|Input Buffer is empty/i.test(msg)) return new RowError('not_an_image', msg);
  if (/pixel limit/i.test(msg)) return new RowError('pixel_limit', msg);
  return new RowError('decode_error', msg);
}

/** Header facts from sharp's metadata(): the format, oriented size and whether bytes can be kept. */
export async function probe(data: Buffer): Promise<Metadata> {
  if (data.length === 0) throw new RowError('not_an_image', 'empty body');
  try {
    return await sharp(data, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw classifySharpError(err);
  }
}

/** Width and height as displayed: EXIF orientations 5-8 swap them. */
export function orientedSize(meta: Metadata): Size {
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  return (meta.orientation ?? 1) >= 5 ? { width: h, height: w } : { width: w, height: h };
}

/** The ICC profile, if any, is sRGB when its description says so (the common case for camera JPEGs). */
function isSrgbOrNoProfile(meta: Metadata): boolean {
  if (!meta.icc) return true;
  return meta.icc.includes(Buffer.from('sRGB'));
}

/** --resize none may keep the source bytes only when writing them would change nothing. */
export function canPassThrough(meta: Metadata, format: OutputFormat): boolean {
  return (
    SAME_FORMAT[meta.format ?? ''] === format &&
    (meta.orientation ?? 1) === 1 &&
    meta.depth === 'uchar' &&
    meta.space === 'srgb' &&
    (meta.channels ?? 0) === 3 &&
    !meta.hasAlpha &&
    !meta.isPalette &&
    (meta.pages ?? 1) === 1 &&
    isSrgbOrNoProfile(meta)
  );
}

function encoder(img: Sharp, opts: EncodeOptions): Sharp {
  switch (opts.format) {
    case 'jpeg':
      return img.jpeg({ quality: opts.quality, mozjpeg: false, chromaSubsampling: '4:2:0' });
    case 'webp':
      return img.webp({ quality: opts.quality, effort: 2 });
    case 'png':
      return img.png({ compressionLevel: opts.pngCompression, adaptiveFiltering: opts.pngFilter });
  }
}

/**
 * Decode, orient, flatten, convert to 8-bit sRGB RGB, Lanczos3 to the target size and encode.
 * Every failure is a RowError with its code.
 */
export async function resizeImage(data: Buffer, opts: ResizeOptions): Promise<ResizedImage> {
  const meta = await probe(data);
  const src = orientedSize(meta);
  if ((meta.width ?? 0) * (meta.height ?? 0) > PIXEL_LIMIT) {
    throw new RowError('pixel_limit', `${meta.width}x${meta.height} exceeds ${PIXEL_LIMIT} pixels`);
  }
  const target = targetSize(opts.mode, src.width, src.height, opts.resolution);
  if (!target) throw new RowError('too_small', `${src.width}x${src.height} is under ${MIN_SIDE} px on a side`);
  if (opts.mode === 'none' && canPassThrough(meta, opts.format)) {
    // Validate the whole file without keeping pixels: a truncated JPEG must not pass as ok.
    try {
      // Shrink-on-load keeps this cheap for JPEG while still reading every byte of the stream.
      await sharp(data, { failOn: 'error', pages: 1 }).resize({ width: 64, kernel: 'nearest' }).raw().toBuffer();
    } catch (err) {
      throw classifySharpError(err);
    }
    return { data, srcWidth: src.width, srcHeight: src.height, width: src.width, height: src.height, passthrough: true };
  }
  try {
    let img = sharp(data, { failOn: 'error', pages: 1, sequentialRead: true }).autoOrient();
    if (meta.hasAlpha) img = img.flatten({ background: '#ffffff' });
    if (target.width !== src.width || target.height !== src.height) {
      img = img.resize(target.width, target.height, { kernel: 'lanczos3', fit: 'fill' });
    }
    img = img.toColourspace('srgb').removeAlpha();
    // Never a hang: a pathological file that keeps libvips busy is cut off like a stalled server.
    const out = await encoder(img, opts).timeout({ seconds: PROCESSING_TIMEOUT_S }).toBuffer({ resolveWithObject: true });
    return { data: out.data, srcWidth: src.width, srcHeight: src.height, width: out.info.width, height: out.info.height, passthrough: false };
  } catch (err) {
    throw classifySharpError(err);
  }
}
