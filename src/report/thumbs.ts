/**
 * The contact sheet's thumbnails, made from the written images: a file of the folder, a member of a tar (its
 * bytes found through the tar's index, read by range) or an object of the bucket, read through verify's
 * store. Each becomes a small JPEG data URI; its caption is read beside it (the .txt, or the tar index's).
 */
import sharp from 'sharp';
import type { Store } from '../output/store.js';
import { splitMemberPath, tarIndexPath } from '../output/tars.js';
import { captionFileName } from '../input/row.js';

export const THUMB_PX = 160;

export interface Thumb {
  id: string;
  caption: string | null;
  width: number;
  height: number;
  /** `data:image/jpeg;base64,…`, or null when the image could not be read (the reason instead). */
  uri: string | null;
  problem: string | null;
}

type Index = Record<string, { offset: number; length: number; caption?: string }>;

export async function makeThumbs(
  place: Store,
  samples: { id: string; path: string; width: number; height: number; caption: string | null }[],
): Promise<Thumb[]> {
  const indexes = new Map<string, Promise<Index | null>>();
  const index = (tar: string) => {
    let got = indexes.get(tar);
    if (!got) {
      got = place.text(tarIndexPath(tar)).then((t) => (t ? ((JSON.parse(t) as { files: Index }).files ?? null) : null));
      indexes.set(tar, got);
    }
    return got;
  };
  const bytes = async (p: string): Promise<Buffer | null> => {
    const member = splitMemberPath(p);
    if (!member) return (await place.bytes(p, 0, null))?.data ?? null;
    const entry = (await index(member.tar))?.[member.member];
    return entry ? ((await place.bytes(member.tar, entry.offset, entry.length))?.data ?? null) : null;
  };
  // The caption the trainer gets: the .txt beside the image, or the tar index's caption of the member.
  const caption = async (p: string): Promise<string | null> => {
    const member = splitMemberPath(p);
    if (!member) return place.text(captionFileName(p));
    return (await index(member.tar))?.[member.member]?.caption ?? null;
  };
  const out: Thumb[] = [];
  // A few at a time: a bucket answers in parallel, a disk does not mind.
  for (let i = 0; i < samples.length; i += 8) {
    out.push(
      ...(await Promise.all(
        samples.slice(i, i + 8).map(async (s) => {
          const base = { id: s.id, caption: s.caption ?? (await caption(s.path).catch(() => null)), width: s.width, height: s.height };
          try {
            const data = await bytes(s.path);
            if (!data) return { ...base, uri: null, problem: `${s.path} is not there` };
            const jpeg = await sharp(data).resize(THUMB_PX, THUMB_PX, { fit: 'inside' }).jpeg({ quality: 70 }).toBuffer();
            return { ...base, uri: `data:image/jpeg;base64,${jpeg.toString('base64')}`, problem: null };
          } catch (err) {
            return { ...base, uri: null, problem: `${s.path}: ${(err as Error).message}` };
          }
        }),
      )),
    );
  }
  return out;
}
