/**
 * The contact sheet's thumbnails, made from the written images: a file of the folder, a member of a tar (its
 * bytes found through the tar's index, read by range), a sample of a parquet shard, or an object of the
 * bucket, read through the store. Each becomes a small JPEG data URI; its caption is read beside it (the .txt, or the tar index's).
 */
import sharp from 'sharp';
import type { Store } from '../output/store.js';
import { splitMemberPath, tarIndexPath } from '../output/tars.js';
import { PARQUET_EXT, eachShardSample } from '../output/parquet-shards.js';
import { captionFileName } from '../input/row.js';
import { closeDuckDB, openDuckDB } from '../input/source.js';

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

/** Parquet shards a sheet reads from a bucket at most: each is fetched whole (a shard has no index of offsets). */
const BUCKET_SHARDS = 4;

type Sample = { id: string; path: string; width: number; height: number; caption: string | null };

/**
 * The sampled images held in parquet shards, read shard by shard (each streamed once, keeping only the
 * sampled members), with their captions. From a bucket, only the samples of the first BUCKET_SHARDS shards.
 */
async function fromParquetShards(
  place: Store,
  samples: Sample[],
): Promise<{ kept: Set<Sample>; found: Map<string, { image: Buffer | null; caption: string | null }> }> {
  const byShard = new Map<string, Sample[]>();
  for (const s of samples) {
    const m = splitMemberPath(s.path);
    if (!m?.tar.endsWith(PARQUET_EXT)) continue;
    let list = byShard.get(m.tar);
    if (!list) byShard.set(m.tar, (list = []));
    list.push(s);
  }
  const kept = new Set(samples);
  const found = new Map<string, { image: Buffer | null; caption: string | null }>();
  if (!byShard.size) return { kept, found };
  const shards = [...byShard].sort((a, b) => b[1].length - a[1].length);
  for (const [, dropped] of place.holdsBytes ? shards.slice(BUCKET_SHARDS) : []) for (const s of dropped) kept.delete(s);
  const conn = await openDuckDB(1);
  try {
    for (const [shard, list] of place.holdsBytes ? shards.slice(0, BUCKET_SHARDS) : shards) {
      const file = await place.tarFile(shard).catch(() => null);
      if (!file) continue;
      const members = new Set(list.map((s) => splitMemberPath(s.path)!.member));
      await eachShardSample(conn, file, (got) => void found.set(`${shard}/${got.member}`, { image: got.image, caption: got.caption }), members).catch(
        () => undefined,
      );
    }
  } finally {
    closeDuckDB(conn);
  }
  return { kept, found };
}

export async function makeThumbs(place: Store, all: Sample[]): Promise<Thumb[]> {
  const shards = await fromParquetShards(place, all);
  const samples = all.filter((s) => shards.kept.has(s));
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
    if (member.tar.endsWith(PARQUET_EXT)) return shards.found.get(p)?.image ?? null;
    const entry = (await index(member.tar))?.[member.member];
    return entry ? ((await place.bytes(member.tar, entry.offset, entry.length))?.data ?? null) : null;
  };
  // The caption the trainer gets: the .txt beside the image, or the tar index's caption of the member.
  const caption = async (p: string): Promise<string | null> => {
    const member = splitMemberPath(p);
    if (!member) return place.text(captionFileName(p));
    if (member.tar.endsWith(PARQUET_EXT)) return shards.found.get(p)?.caption ?? null;
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
