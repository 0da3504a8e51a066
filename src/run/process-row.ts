import { createHash } from 'node:crypto';
import { RowError } from '../errors.js';
import { failedResult } from '../result.js';
import type { ImageSource, RowResult, RowTask } from '../result.js';
import type { RowContext } from './worker-config.js';
import { parseRowUrl } from '../fetch/address.js';
import { checkId, chooseCaption } from '../input/row.js';
import { captionWords } from '../input/caption.js';
import type { Written } from '../output/writer.js';
import { download } from '../fetch/download.js';
import type { Downloaded } from '../fetch/download.js';
import { orientedSize, probe, resizeImage } from '../image/resize.js';
import { coveringWidth, imgixUrl } from '../fetch/cdn.js';

/**
 * Fetch the CDN's smaller rendition when it still covers the target; otherwise (or on any doubt) the
 * original. `source` says which was used (null without --cdn-resize).
 */
async function fetchSource(url: URL, task: RowTask, ctx: RowContext): Promise<Downloaded & { source: ImageSource | null }> {
  const useCdn = ctx.cdnResize === 'imgix';
  const plan = useCdn && ctx.cdnHosts.includes(url.hostname) ? coveringWidth(task.srcWidth, task.srcHeight, ctx.resize.mode, ctx.resize.resolution) : null;
  if (!plan) return { ...(await download(url, ctx.policy, ctx.agent, ctx.limits)), source: useCdn ? 'original' : null };
  const small = await download(imgixUrl(url, plan.width), ctx.policy, ctx.agent, ctx.limits);
  if (small.data) {
    const meta = await ctx.cpu.use(() => probe(small.data!)).catch(() => null);
    const got = meta ? orientedSize(meta) : null;
    if (got && got.width >= plan.need.width && got.height >= plan.need.height) return { ...small, source: 'rendition' };
  }
  ctx.limits.release(small.heldKiB, true, small.ticket);
  const full = await download(url, ctx.policy, ctx.agent, ctx.limits);
  return { ...full, attempts: full.attempts + small.attempts, bytes: full.bytes + small.bytes, source: 'original' };
}

/** What pcb knows of the row and the written image, as JSON: the keys of output's SAMPLE_KEYS. */
function ownMeta(
  task: RowTask,
  id: string,
  caption: { text: string; source: string },
  img: { width: number; height: number; srcWidth: number; srcHeight: number },
): string {
  return JSON.stringify({
    id,
    row: task.row,
    url: task.url,
    caption: caption.text,
    caption_source: caption.source,
    width: img.width,
    height: img.height,
    original_width: img.srcWidth,
    original_height: img.srcHeight,
  });
}

/** Anything that is not a RowError is a bug: kept as a row, never disguised as a network or image failure. */
function asRowError(err: unknown): RowError {
  return err instanceof RowError ? err : new RowError('internal_error', `unexpected: ${err instanceof Error ? err.message : String(err)}`);
}

/** Download → resize → write image, then caption. Never throws: every outcome is a manifest row. */
export async function processRow(task: RowTask, ctx: RowContext): Promise<RowResult> {
  const started = Date.now();
  let id: string;
  let url: URL;
  try {
    id = checkId(task.id);
    url = parseRowUrl(task.url);
  } catch (err) {
    return failedResult(task, err as RowError, started);
  }
  let got: Downloaded & { source: ImageSource | null };
  try {
    got = await fetchSource(url, task, ctx);
  } catch (err) {
    // download() reports failures as data; anything here is a bug we still keep as a row.
    return failedResult(task, asRowError(err), started);
  }
  const fetched = { attempts: got.attempts, bytes: got.bytes, http_status: got.httpStatus, source: got.source };
  if (!got.data) return failedResult(task, got.error!, started, fetched);
  try {
    const data = got.data;
    // The downloaded bytes' hash, before they are let go: ~0.7 ms per MB with SHA-NI.
    const sha256 = createHash('sha256').update(data).digest('hex');
    if (ctx.verifyHash && task.expectedHash) {
      const got = ctx.verifyHash === 'sha256' ? sha256 : createHash(ctx.verifyHash).update(data).digest('hex');
      if (got !== task.expectedHash)
        return failedResult(
          task,
          new RowError('hash_mismatch', `${ctx.verifyHash} of the downloaded bytes is ${got}; the input says ${task.expectedHash}`),
          started,
          {
            ...fetched,
            sha256,
          },
        );
    }
    const img = await ctx.cpu.use(() => resizeImage(data, ctx.resize));
    ctx.limits.release(got.heldKiB, true, got.ticket);
    got.heldKiB = 0;
    const caption = chooseCaption(task.caption, task.fallback);
    const ext = ctx.resize.format === 'jpeg' ? 'jpg' : ctx.resize.format;
    let written: Written;
    // An upload holds the encoded image until the store has it: those bytes count against the budget too.
    const uploadKiB = ctx.writer.holdsBytes ? await ctx.limits.reserve(img.data.length) : 0;
    const sample = {
      id,
      ext,
      image: img.data,
      caption: caption.text,
      own: ownMeta(task, id, caption, img),
      columns: task.columns ?? null,
      previousPath: task.previousPath ?? null,
    };
    try {
      // A row waiting for the store to take its upload: what says a run was bound by the store.
      written = await (ctx.writer.holdsBytes ? ctx.limits.waiting('storing', () => ctx.writer.write(sample)) : ctx.writer.write(sample));
    } catch (err) {
      // A row is done only with its whole sample: the writer leaves nothing half-written behind.
      throw new RowError('write_error', (err as Error).message);
    } finally {
      ctx.limits.release(uploadKiB, false);
      if (ctx.writer.takeRetries) ctx.limits.count('uploadRetries', ctx.writer.takeRetries());
    }
    return {
      row: task.row,
      id,
      url: task.url,
      status: 'ok',
      error: null,
      message: null,
      ...fetched,
      src_width: img.srcWidth,
      src_height: img.srcHeight,
      width: img.width,
      height: img.height,
      path: written.path,
      caption_source: caption.source,
      ms: Date.now() - started,
      sha256,
      written: img.data.length + Buffer.byteLength(caption.text),
      words: captionWords(caption.text),
      ...(written.closedTar ? { closedTar: written.closedTar } : {}),
    };
  } catch (err) {
    return failedResult(task, asRowError(err), started, fetched);
  } finally {
    ctx.limits.release(got.heldKiB, true, got.ticket);
  }
}
