import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { resizeImage } from '../src/image/resize.js';
import type { ResizeOptions } from '../src/image/resize.js';
import type { RowError } from '../src/errors.js';
import { pixelBombPng } from '../src/kit/hostile.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { KitServer } from '../src/kit/server.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import { PNG_DEFAULTS } from '../src/options.js';
import { runPcb, tmpDir } from './helpers.js';

const opts = (o: Partial<ResizeOptions> = {}): ResizeOptions => ({
  mode: 'shortest-side',
  resolution: 128,
  format: 'png',
  quality: 95,
  pngCompression: 2,
  pngFilter: false,
  ...o,
});

function gradient(w: number, h: number, channels: 3 | 4 = 3, alpha = 255): Buffer {
  const buf = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * channels;
      buf[i] = (x * 255) / w;
      buf[i + 1] = (y * 255) / h;
      buf[i + 2] = 128;
      if (channels === 4) buf[i + 3] = alpha;
    }
  return buf;
}

const jpeg = (w: number, h: number) =>
  sharp(gradient(w, h), { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();

async function outInfo(data: Buffer) {
  const m = await sharp(data).metadata();
  return {
    format: m.format,
    width: m.width,
    height: m.height,
    channels: m.channels,
    depth: m.depth,
    space: m.space,
    hasAlpha: m.hasAlpha,
    exif: Boolean(m.exif),
    icc: Boolean(m.icc),
  };
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as RowError).code ?? String(e);
  }
}

describe('resizeImage', () => {
  it('Lanczos-resizes to the target, RGB, 8-bit sRGB, no metadata', async () => {
    const r = await resizeImage(await jpeg(600, 400), opts());
    expect([r.srcWidth, r.srcHeight, r.width, r.height]).toEqual([600, 400, 192, 128]);
    expect(await outInfo(r.data)).toMatchObject({ format: 'png', width: 192, height: 128, channels: 3, depth: 'uchar', space: 'srgb', exif: false });
  });

  it('applies EXIF orientation', async () => {
    const src = await sharp(gradient(400, 200), { raw: { width: 400, height: 200, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const r = await resizeImage(src, opts({ mode: 'none', format: 'jpeg' }));
    expect(r.passthrough).toBe(false);
    expect([r.width, r.height]).toEqual([200, 400]);
    expect(await outInfo(r.data)).toMatchObject({ width: 200, height: 400, exif: false });
  });

  it('flattens alpha onto white', async () => {
    const src = await sharp(gradient(256, 256, 4, 0), { raw: { width: 256, height: 256, channels: 4 } })
      .png()
      .toBuffer();
    const r = await resizeImage(src, opts({ format: 'png' }));
    const { data, info } = await sharp(r.data).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    expect([data[0], data[1], data[2]]).toEqual([255, 255, 255]);
  });

  it('turns CMYK, grayscale, 16-bit and palette inputs into 8-bit sRGB RGB', async () => {
    const base = () => sharp(gradient(300, 200), { raw: { width: 300, height: 200, channels: 3 } });
    const inputs = {
      cmyk: await base().toColourspace('cmyk').jpeg().toBuffer(),
      grey: await base().grayscale().png().toBuffer(),
      rgb16: await base().toColourspace('rgb16').png().toBuffer(),
      palette: await base().png({ palette: true }).toBuffer(),
    };
    expect((await sharp(inputs.cmyk).metadata()).space).toBe('cmyk');
    expect((await sharp(inputs.rgb16).metadata()).depth).toBe('ushort');
    for (const [name, src] of Object.entries(inputs)) {
      for (const format of ['png', 'jpeg', 'webp'] as const) {
        const r = await resizeImage(src, opts({ format }));
        expect(await outInfo(r.data), `${name} → ${format}`).toMatchObject({ format, channels: 3, depth: 'uchar', space: 'srgb', hasAlpha: false });
      }
    }
  });

  it('takes the first frame of an animation', async () => {
    const frame = (v: number) =>
      sharp({ create: { width: 200, height: 150, channels: 3, background: { r: v, g: v, b: v } } })
        .png()
        .toBuffer();
    const anim = await sharp([await frame(10), await frame(240)], { join: { animated: true } })
      .webp()
      .toBuffer();
    expect((await sharp(anim).metadata()).pages).toBe(2);
    const r = await resizeImage(anim, opts({ mode: 'none', format: 'png' }));
    expect([r.width, r.height]).toEqual([200, 150]);
    const { data } = await sharp(r.data).raw().toBuffer({ resolveWithObject: true });
    expect(data[0]).toBeLessThan(30);
  });

  it('keeps the source bytes for --resize none when nothing needs changing', async () => {
    const src = await jpeg(300, 200);
    const r = await resizeImage(src, opts({ mode: 'none', format: 'jpeg' }));
    expect(r.passthrough).toBe(true);
    expect(Buffer.compare(r.data, src)).toBe(0);
    const palette = await sharp(gradient(300, 200), { raw: { width: 300, height: 200, channels: 3 } })
      .png({ palette: true })
      .toBuffer();
    const fromPalette = await resizeImage(palette, opts({ mode: 'none', format: 'png' }));
    expect(fromPalette.passthrough).toBe(false);
    expect((await sharp(fromPalette.data).metadata()).isPalette).toBeFalsy();
    const rgbPng = await sharp(gradient(300, 200), { raw: { width: 300, height: 200, channels: 3 } })
      .png()
      .toBuffer();
    expect(Buffer.compare((await resizeImage(rgbPng, opts({ mode: 'none', format: 'png' }))).data, rgbPng)).toBe(0);
    const png = await resizeImage(src, opts({ mode: 'none', format: 'png' }));
    expect(png.passthrough).toBe(false);
    expect(await outInfo(png.data)).toMatchObject({ format: 'png', width: 300, height: 200 });
  });

  it('judges content by its bytes', async () => {
    expect(await code(resizeImage(Buffer.from('<html><body>nope</body></html>'), opts()))).toBe('not_an_image');
    expect(await code(resizeImage(Buffer.alloc(0), opts()))).toBe('not_an_image');
    const full = await jpeg(600, 400);
    expect(await code(resizeImage(full.subarray(0, full.length / 2), opts()))).toBe('decode_error');
    expect(await code(resizeImage(full.subarray(0, full.length / 2), opts({ mode: 'none', format: 'jpeg' })))).toBe('decode_error');
    expect(await code(resizeImage(await jpeg(50, 400), opts()))).toBe('too_small');
  });

  it('refuses images over the pixel limit from the header, without decoding', async () => {
    const png = pixelBombPng(20000, 20000, 1024);
    const started = Date.now();
    expect(await code(resizeImage(png, opts()))).toBe('pixel_limit');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('PNG settings', () => {
  it('--png-filter makes smooth images smaller; the pixels are the same', async () => {
    const src = await sharp(gradient(800, 600), { raw: { width: 800, height: 600, channels: 3 } })
      .jpeg({ quality: 95 })
      .toBuffer();
    const plain = await resizeImage(src, opts({ mode: 'none', format: 'png' }));
    const filtered = await resizeImage(src, opts({ mode: 'none', format: 'png', pngFilter: true }));
    expect(filtered.data.length).toBeLessThan(plain.data.length);
    const a = await sharp(plain.data).raw().toBuffer();
    const b = await sharp(filtered.data).raw().toBuffer();
    expect(Buffer.compare(a, b)).toBe(0);
  });
});

describe('the default PNG', () => {
  it("bin/pcb writes it filtered at zlib 5: within 1.05x of Pillow's own level (6, filtered), far under an unfiltered one, same pixels", async () => {
    const src = await sharp(gradient(1200, 800), { raw: { width: 1200, height: 800, channels: 3 } })
      .jpeg({ quality: 95 })
      .toBuffer();
    const server = await new KitServer().start();
    try {
      server.put('smooth.jpg', src);
      const dir = tmpDir();
      const input = path.join(dir, 'in.parquet');
      await writeParquet(input, [datasetRow(0, server.url('/img/smooth.jpg'), 1200, 800)]);
      const out = path.join(dir, 'out');
      const r = await runPcb(['download', input, '--out', out, '--allow-private-network', '--resolution', '512', '--quiet']);
      expect(r.code).toBe(0);
      const written = readFileSync(path.join(out, '1000000.png'));
      const { data: pixels, info } = await sharp(written).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([768, 512, 3]);
      const raw = { raw: { width: info.width, height: info.height, channels: 3 as const } };
      const chosen = await sharp(pixels, raw).png({ compressionLevel: 6, adaptiveFiltering: true }).toBuffer();
      const unfiltered = await sharp(pixels, raw).png({ compressionLevel: 2, adaptiveFiltering: false }).toBuffer();
      expect(PNG_DEFAULTS).toEqual({ compression: 5, filter: true });
      expect(written.length).toBeLessThanOrEqual(chosen.length * 1.05);
      expect(written.length).toBeLessThan(unfiltered.length * 0.8);
      // Lossless: the resized pixels decode back the same from either encoding.
      expect(Buffer.compare(await sharp(chosen).raw().toBuffer(), pixels)).toBe(0);
    } finally {
      await server.stop();
    }
  });
});
