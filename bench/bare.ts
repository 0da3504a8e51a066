import sharp from 'sharp';

/**
 * Bare sharp doing what `pcb --resize none` asks of a tiny image, as pcb's own calls do it: the header,
 * then every byte decoded (shrunk on load, pixels dropped). One libvips thread, no cache.
 */
export async function bareValidate(data: Buffer): Promise<void> {
  await sharp(data, { limitInputPixels: false }).metadata();
  await sharp(data, { failOn: 'error', pages: 1 }).resize({ width: 64, kernel: 'nearest' }).raw().toBuffer();
}

sharp.concurrency(1);
sharp.cache(false);
