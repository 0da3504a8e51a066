/**
 * `pcb verify <out>`: the records against the disk, both ways. Every ok row's image is there, complete,
 * of the recorded size, with its caption; every image on disk belongs to an ok row. Headers only (plus
 * the format's end marker) unless --deep decodes every pixel.
 */
import { existsSync } from 'node:fs';
import sharp from 'sharp';
import type { Metadata } from 'sharp';
import { STATE_DIR } from './folder.js';
import type { RunPaths } from './paths.js';
import { readSlice } from './store.js';
import type { Slice, Store } from './store.js';
import { FolderLock } from './lock.js';
import { RowLog, latestSql } from './row-log.js';
import { writeRecords } from './records.js';
import { failedResult } from '../result.js';
import { FatalError, RowError } from '../errors.js';
import { openDuckDB } from '../input/source.js';
import { captionFileName } from '../input/row.js';
import { isTarName, memberPath, splitMemberPath, tarIndexPath } from './tars.js';
import { scanTar } from './tar.js';
import { PARQUET_EXT } from './parquet-shards.js';
import { ParquetChecks } from './verify-parquet.js';

interface TarView {
  complete: boolean;
  members: Map<string, { offset: number; length: number }>;
  index: Map<string, { offset: number; length: number }> | null;
  indexFindings: { member: string; detail: string }[];
}

/** Each tar of the folder read once: its members from its own headers, and its index checked against them. */
class TarViews {
  private readonly views = new Map<string, Promise<TarView | null>>();
  constructor(private readonly place: Store) {}

  view(tar: string): Promise<TarView | null> {
    if (!this.views.has(tar)) this.views.set(tar, this.read(tar));
    return this.views.get(tar)!;
  }

  /** The local file the tar was read from (fetched once for an object). */
  readonly files = new Map<string, string>();

  private async read(tar: string): Promise<TarView | null> {
    const file = await this.place.tarFile(tar);
    let v: TarView | null = null;
    if (file) {
      this.files.set(tar, file);
      const scan = scanTar(file);
      const members = new Map(scan.members.map((m) => [m.name, { offset: m.offset, length: m.length }]));
      let index: TarView['index'] = null;
      const indexFindings: TarView['indexFindings'] = [];
      try {
        const parsed = JSON.parse((await this.place.text(tarIndexPath(tar))) ?? '') as {
          files: Record<string, { offset: number; length: number }>;
        };
        index = new Map(Object.entries(parsed.files));
        for (const [name, e] of index) {
          const m = members.get(name);
          if (!m || m.offset !== e.offset || m.length !== e.length)
            indexFindings.push({
              member: name,
              detail: `the index says ${e.offset}+${e.length}, the tar ${m ? `${m.offset}+${m.length}` : 'has no such member'}`,
            });
        }
      } catch (err) {
        indexFindings.push({ member: '', detail: `no readable index: ${(err as Error).message.split('\n')[0]}` });
      }
      v = { complete: scan.complete, members, index, indexFindings };
    }
    return v;
  }

  /** A recorded sample in its tar: where its image is, or what is wrong. */
  async check(
    tar: string,
    member: string,
  ): Promise<{ problem: Problem; detail: string; offset: number; length: number } | { problem: null; detail: ''; offset: number; length: number }> {
    const none = { offset: 0, length: 0 };
    const v = await this.view(tar);
    if (!v) return { problem: 'missing_image', detail: `${tar} is not there`, ...none };
    const m = v.members.get(member);
    if (!v.complete) return { problem: 'damaged_tar', detail: `${tar} is truncated or torn${m ? '' : ' before this sample'}`, ...none };
    if (!m) return { problem: 'missing_image', detail: `no ${member} in ${tar}`, ...none };
    if (!v.members.has(captionFileName(member))) return { problem: 'missing_caption', detail: `no ${captionFileName(member)} in ${tar}`, ...none };
    const e = v.index?.get(member);
    if (!e || e.offset !== m.offset || e.length !== m.length)
      return { problem: 'bad_index', detail: `the index of ${tar} does not point at ${member}`, ...none };
    return { problem: null, detail: '', ...m };
  }
}

/** A recorded ok row, as verify reads it from the logs. */
export type RecordedRow = Record<string, unknown>;
export type Note = (row: number | null, file: string, problem: Problem, detail: string, r?: RecordedRow) => void;

export type Problem = 'missing_image' | 'missing_caption' | 'unreadable' | 'wrong_size' | 'stray' | 'damaged_tar' | 'bad_index';
export interface Finding {
  row: number | null;
  path: string;
  problem: Problem;
  detail: string;
}
export interface VerifyReport {
  out: string;
  ok_rows: number;
  images_on_disk: number;
  problems: Record<Problem, number>;
  findings: Finding[];
  fixed: boolean;
  seconds: number;
}

const IMAGE_EXT = /\.(png|jpe?g|webp|gif|bmp|tiff?|avif|jxl)$/i;
const CHECK_CONCURRENCY = 16;

/** The format's end marker is where it belongs: a truncated image fails here without a decode. */
/** What a check reads of an image without --deep: its header's bytes, then its last few (the end marker). */
const HEAD_BYTES = 64 * 1024;
const TAIL_BYTES = 12;

/** An image as a check sees it: its first bytes, its last 12, its size; all of it when that was read. */
interface ImageView {
  head: Buffer;
  tail: Buffer;
  size: number;
  whole: Buffer | null;
}

/**
 * Reads what a check needs: the first 64 KiB and the last 12 bytes (two ranged reads of an object, not
 * the whole of it), or all of it with --deep or when it is that small.
 */
async function viewImage(read: (at: number, length: number | null) => Promise<Slice | null>, deep: boolean): Promise<ImageView | null> {
  const first = await read(0, deep ? null : HEAD_BYTES);
  if (!first) return null;
  if (first.data.length >= first.size)
    return { head: first.data, tail: first.data.subarray(Math.max(0, first.size - TAIL_BYTES)), size: first.size, whole: first.data };
  const last = await read(first.size - TAIL_BYTES, TAIL_BYTES);
  return last && { head: first.data, tail: last.data, size: first.size, whole: null };
}

function endsComplete(v: ImageView, format: string | undefined): boolean {
  if (format === 'png') return v.tail.length === TAIL_BYTES && v.tail.subarray(4, 8).toString('latin1') === 'IEND';
  if (format === 'jpeg') return v.tail.length >= 2 && v.tail[v.tail.length - 2] === 0xff && v.tail[v.tail.length - 1] === 0xd9;
  if (format === 'webp') return v.head.length >= 8 && v.head.readUInt32LE(4) + 8 === v.size;
  return true;
}

export async function checkImage(
  read: (at: number, length: number | null) => Promise<Slice | null>,
  width: number,
  height: number,
  deep: boolean,
): Promise<{ problem: Problem; detail: string } | null> {
  let v = await viewImage(read, deep);
  if (!v) return { problem: 'missing_image', detail: 'the image is not there' };
  let meta: Metadata;
  try {
    try {
      meta = await sharp(v.head).metadata();
    } catch (err) {
      // Some headers (WebP's) are read only from the whole image.
      if (v.whole) throw err;
      const all = await read(0, null);
      if (!all) return { problem: 'missing_image', detail: 'the image is not there' };
      v = { ...v, head: all.data, whole: all.data };
      meta = await sharp(v.head).metadata();
    }
    if (!endsComplete(v, meta.format)) return { problem: 'unreadable', detail: `${meta.format} image is truncated` };
    if (deep) await sharp(v.whole!, { failOn: 'error' }).raw().toBuffer();
  } catch (err) {
    return { problem: 'unreadable', detail: (err as Error).message.split('\n')[0] };
  }
  if (meta.width !== width || meta.height !== height)
    return { problem: 'wrong_size', detail: `${meta.width}x${meta.height} on disk, ${width}x${height} in the records` };
  return null;
}

export async function verifyFolder(paths: RunPaths, o: { fix: boolean; deep: boolean }, place: Store): Promise<VerifyReport> {
  const started = Date.now();
  const { out } = paths;
  if (!existsSync(paths.stateDir)) throw new FatalError(`${out} has no pcb records (${STATE_DIR}/ is missing); run pcb download --out ${out} first`);
  const logs = paths.allLogs();
  const conn = await openDuckDB();
  const rows = logs.length
    ? (await conn.runAndReadAll(`SELECT row, id, url, path, width, height FROM (${latestSql(logs)}) WHERE status = 'ok' ORDER BY row`)).getRowObjectsJS()
    : [];
  const names = await place.names();
  const recorded = new Set<string>();
  const findings: Finding[] = [];
  const bad = new Map<number, { id: string | null; url: string | null; path: string; problem: Problem; detail: string }>();
  const note: Note = (row, file, problem, detail, r) => {
    findings.push({ row, path: file, problem, detail });
    if (row !== null && r) bad.set(row, { id: r.id === null ? null : String(r.id), url: r.url === null ? null : String(r.url), path: file, problem, detail });
  };
  const tars = new TarViews(place);
  // Samples in parquet shards are checked shard by shard after the loop, each shard read once as a stream.
  const inShards = new ParquetChecks();
  for (let i = 0; i < rows.length; i += CHECK_CONCURRENCY) {
    await Promise.all(
      rows.slice(i, i + CHECK_CONCURRENCY).map(async (r) => {
        const file = String(r.path);
        const row = Number(r.row);
        recorded.add(file);
        const inTar = splitMemberPath(file);
        if (inTar?.tar.endsWith(PARQUET_EXT)) return inShards.expect(inTar.tar, inTar.member, r);
        if (inTar) {
          const found = await tars.check(inTar.tar, inTar.member);
          if (found.problem) return note(row, file, found.problem, found.detail, r);
          const tarFile = tars.files.get(inTar.tar)!;
          const p = await checkImage(
            async (at, length) => readSlice(tarFile, found.offset, found.length, at, length),
            Number(r.width),
            Number(r.height),
            o.deep,
          );
          if (p) note(row, file, p.problem, p.detail, r);
          return;
        }
        if (!names.has(file)) return note(row, file, 'missing_image', 'the image is not there', r);
        const caption = captionFileName(file);
        if (!names.has(caption)) return note(row, file, 'missing_caption', `${caption} is not there`, r);
        const p = await checkImage((at, length) => place.bytes(file, at, length), Number(r.width), Number(r.height), o.deep);
        if (p) note(row, file, p.problem, p.detail, r);
      }),
    );
  }
  const images = [...names].filter((n) => IMAGE_EXT.test(n));
  for (const n of images) if (!recorded.has(n)) note(null, n, 'stray', 'an image no ok row of the records wrote');
  // Tars, the other way: every index entry points at its member, every image in a tar belongs to an ok row.
  let samplesInTars = 0;
  for (const t of [...names].filter(isTarName)) {
    const v = await tars.view(t);
    if (!v) continue;
    for (const f of v.indexFindings) note(null, memberPath(t, f.member), 'bad_index', f.detail);
    for (const m of v.members.keys()) {
      if (/\.(txt|json)$/.test(m)) continue;
      samplesInTars++;
      if (!recorded.has(memberPath(t, m))) note(null, memberPath(t, m), 'stray', 'a sample no ok row of the records wrote');
    }
    if (!v.complete && ![...v.members.keys()].length) note(null, t, 'damaged_tar', 'not a readable tar');
  }

  samplesInTars += await inShards.run(conn, place, names, o.deep, note);

  const problems: Record<Problem, number> = { missing_image: 0, missing_caption: 0, unreadable: 0, wrong_size: 0, stray: 0, damaged_tar: 0, bad_index: 0 };
  for (const f of findings) problems[f.problem]++;
  if (o.fix && findings.length) {
    const lock = FolderLock.acquire(paths.lock, out, () => undefined);
    try {
      const log = new RowLog(paths.log);
      // A tar with anything wrong moves aside whole, and every row in it is redone by the next download.
      const damaged = new Set(findings.map((f) => splitMemberPath(f.path)?.tar ?? (isTarName(f.path) ? f.path : null)).filter((t): t is string => t !== null));
      for (const r of rows) {
        const t = splitMemberPath(String(r.path))?.tar;
        if (t && damaged.has(t) && !bad.has(Number(r.row)))
          bad.set(Number(r.row), {
            id: r.id === null ? null : String(r.id),
            url: r.url === null ? null : String(r.url),
            path: String(r.path),
            problem: 'damaged_tar',
            detail: `${t} moved aside`,
          });
      }
      for (const t of damaged) for (const f of isTarName(t) ? [t, tarIndexPath(t)] : [t]) await place.moveAside(f, 'damaged', f);
      for (const [row, b] of bad) {
        // The next download redoes the row: its files go (a tar's sample went with its tar), and its latest outcome is a write failure (retried by a rerun).
        if (!splitMemberPath(b.path)) {
          await place.remove(b.path);
          await place.remove(captionFileName(b.path));
        }
        log.append(
          failedResult(
            { row, id: b.id, url: b.url, caption: null, fallback: null, srcWidth: null, srcHeight: null },
            new RowError('write_error', `pcb verify: ${b.problem.replace('_', ' ')}: ${b.detail}`),
            Date.now(),
          ),
        );
      }
      log.close();
      // Renamed so that a trainer walking the folder never takes it for an image.
      for (const f of findings.filter((x) => x.problem === 'stray' && !splitMemberPath(x.path))) await place.moveAside(f.path, 'stray', `${f.path}.stray`);
      const run = paths.runRecordRead();
      const dest = paths.records;
      if (existsSync(dest.manifest)) {
        await writeRecords(
          conn,
          paths.allLogs(),
          {
            input: run?.input ?? null,
            captionColumn: run?.captionColumn ?? null,
            fallbackCaptionColumn: run?.fallbackCaptionColumn ?? null,
            outputFormat: run?.outputFormat ?? 'files',
          },
          dest,
        );
      }
    } finally {
      lock.release();
    }
  }
  conn.closeSync();
  return {
    out: place.label,
    ok_rows: rows.length,
    images_on_disk: images.length + samplesInTars,
    problems,
    findings,
    fixed: o.fix && findings.length > 0,
    seconds: (Date.now() - started) / 1000,
  };
}

export async function runVerify(paths: RunPaths, o: { fix: boolean; deep: boolean; json: boolean }, place: Store): Promise<number> {
  const r = await verifyFolder(paths, o, place);
  const disagree = r.findings.length > 0;
  if (o.json) {
    process.stdout.write(JSON.stringify({ ...r, findings: r.findings.slice(0, 1000) }) + '\n');
  } else {
    const counts = Object.entries(r.problems)
      .filter(([, n]) => n)
      .map(([p, n]) => `${p} ${n}`)
      .join(', ');
    process.stdout.write(
      [
        `${r.out}: ${r.ok_rows} ok rows, ${r.images_on_disk} images found, checked in ${r.seconds.toFixed(1)} s${o.deep ? ' (full decode)' : ' (headers)'}`,
        disagree ? `  disagreements: ${counts}` : '  records and disk agree',
        ...r.findings.slice(0, 20).map((f) => `    ${f.problem.padEnd(16)} ${f.row === null ? '' : `row ${f.row} `}${f.path}: ${f.detail}`),
        ...(r.findings.length > 20 ? [`    … ${r.findings.length - 20} more (--json lists them)`] : []),
        ...(disagree
          ? [
              r.fixed
                ? '  fixed: those rows are marked for the next pcb download to redo; stray images moved to .pcb/stray/, damaged shards to .pcb/damaged/'
                : '  pcb verify --fix marks them for the next pcb download to redo',
            ]
          : []),
      ].join('\n') + '\n',
    );
  }
  return disagree && !r.fixed ? 1 : 0;
}
