import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { projectRoot } from '../version.js';

/** Pexels' common camera sizes: 24 MP both orientations, plus a few others seen in the dataset. */
/** JPEG quality that lands a 24 MP kit photo near 5 MB, like a Pexels original. */
export const PEXELS_QUALITY = 92;

export const PEXELS_SIZES: [number, number][] = [
  [6000, 4000],
  [4000, 6000],
  [5472, 3648],
  [3648, 5472],
  [4608, 3072],
  [6240, 4160],
];

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function noise(w: number, h: number, channels: number, rand: () => number, spread = 256, base = 0): Buffer {
  const buf = Buffer.alloc(w * h * channels);
  for (let i = 0; i < buf.length; i++) buf[i] = base + Math.floor(rand() * spread);
  return buf;
}

/**
 * A deterministic photo-like JPEG: smooth colour fields (sky, shapes) upsampled from a small random
 * grid, mid-frequency texture and fine grain, so it compresses like a photo (~5 MB at 24 MP, q92).
 */
export async function makePhoto(seed: number, width: number, height: number, quality = PEXELS_QUALITY, grain = 28): Promise<Buffer> {
  const rand = mulberry32(seed * 7919 + width * 31 + height);
  const sw = Math.ceil(width / 8);
  const sh = Math.ceil(height / 8);
  const raw = { width: sw, height: sh, channels: 3 as const };
  const fields = await sharp(noise(5, 4, 3, rand), { raw: { width: 5, height: 4, channels: 3 } })
    .resize(sw, sh, { kernel: 'cubic', fit: 'fill' })
    .raw()
    .toBuffer();
  // Texture at the 8 px scale (foliage, fabric) on the colour fields, then softened like a lens would.
  for (let i = 0; i < fields.length; i++) fields[i] = Math.max(0, Math.min(255, fields[i] + Math.floor((rand() - 0.5) * 70)));
  const small = await sharp(fields, { raw }).blur(0.8).raw().toBuffer();
  const t = Math.min(509, width, height);
  const grainTile = await sharp(noise(t, t, 3, rand, grain, 128 - grain / 2), { raw: { width: t, height: t, channels: 3 } })
    .png()
    .toBuffer();
  return sharp(small, { raw })
    .resize(width, height, { kernel: 'cubic', fit: 'fill' })
    .composite([{ input: grainTile, tile: true, blend: 'overlay' }])
    .jpeg({ quality, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

export function kitCacheDir(): string {
  return process.env.PCB_KIT_CACHE ?? path.join(projectRoot(), '.cache', 'kit');
}

export interface KitPhoto {
  name: string;
  data: Buffer;
  width: number;
  height: number;
}

/**
 * n photos at Pexels sizes (or the given size), generated once and cached on disk by seed and size;
 * generated a few at a time so every core helps on the first run.
 */
export async function photoSet(
  n: number,
  size: [number, number] | null = null,
  quality = PEXELS_QUALITY,
  onGenerate?: (done: number, total: number) => void,
): Promise<KitPhoto[]> {
  const dir = kitCacheDir();
  mkdirSync(dir, { recursive: true });
  const out: KitPhoto[] = new Array(n);
  let next = 0;
  let generated = 0;
  const one = async (i: number) => {
    const [w, h] = size ?? PEXELS_SIZES[i % PEXELS_SIZES.length];
    const name = `photo-${i}-${w}x${h}-q${quality}.jpg`;
    const file = path.join(dir, name);
    let data: Buffer;
    if (existsSync(file)) {
      data = readFileSync(file);
    } else {
      data = await makePhoto(i, w, h, quality);
      const tmp = `${file}.${process.pid}.${i}.tmp`;
      writeFileSync(tmp, data);
      renameSync(tmp, file);
      onGenerate?.(++generated, n);
    }
    out[i] = { name, data, width: w, height: h };
  };
  const lanes = Array.from({ length: Math.max(1, os.availableParallelism()) }, async () => {
    while (next < n) await one(next++);
  });
  await Promise.all(lanes);
  return out;
}
