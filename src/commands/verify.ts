/**
 * `pcb verify <out>`: the records against the disk, both ways. Every ok row's image is there, complete,
 * of the recorded size, with its caption; every image on disk belongs to an ok row. Headers only (plus
 * the format's end marker) unless --deep decodes every pixel.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Metadata } from 'sharp';
import { STATE_DIR, allLogPaths, lockPath, logPath, readRunRecord, recordPaths } from '../folder.js';
import { FolderLock } from '../lock.js';
import { RowLog, latestSql } from '../row-log.js';
import { writeRecords } from '../records.js';
import { failedResult } from '../result.js';
import { FatalError, RowError } from '../errors.js';
import { openDuckDB } from '../source.js';
import { captionFileName } from '../row.js';

export type Problem = 'missing_image' | 'missing_caption' | 'unreadable' | 'wrong_size' | 'stray';
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

/** The format's end marker is where it belongs: a truncated file fails here without a decode. */
function endsComplete(file: string, format: string | undefined): boolean {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const tail = Buffer.alloc(Math.min(12, size));
    readSync(fd, tail, 0, tail.length, size - tail.length);
    if (format === 'png') return tail.length === 12 && tail.subarray(4, 8).toString('latin1') === 'IEND';
    if (format === 'jpeg') return tail.length >= 2 && tail[tail.length - 2] === 0xff && tail[tail.length - 1] === 0xd9;
    if (format === 'webp') {
      const head = Buffer.alloc(8);
      readSync(fd, head, 0, 8, 0);
      return head.readUInt32LE(4) + 8 === size;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

async function checkImage(file: string, width: number, height: number, deep: boolean): Promise<{ problem: Problem; detail: string } | null> {
  let meta: Metadata;
  try {
    meta = await sharp(file).metadata();
    if (!endsComplete(file, meta.format)) return { problem: 'unreadable', detail: `${meta.format} file is truncated` };
    if (deep) await sharp(file, { failOn: 'error' }).raw().toBuffer();
  } catch (err) {
    return { problem: 'unreadable', detail: (err as Error).message.split('\n')[0] };
  }
  if (meta.width !== width || meta.height !== height)
    return { problem: 'wrong_size', detail: `${meta.width}x${meta.height} on disk, ${width}x${height} in the records` };
  return null;
}

export async function verifyFolder(out: string, o: { fix: boolean; deep: boolean }): Promise<VerifyReport> {
  const started = Date.now();
  if (!existsSync(path.join(out, STATE_DIR))) throw new FatalError(`${out} has no pcb records (${STATE_DIR}/ is missing); run pcb download --out ${out} first`);
  const logs = allLogPaths(out);
  const conn = await openDuckDB();
  const rows = logs.length
    ? (await conn.runAndReadAll(`SELECT row, id, url, path, width, height FROM (${latestSql(logs)}) WHERE status = 'ok' ORDER BY row`)).getRowObjectsJS()
    : [];
  const names = new Set(readdirSync(out));
  const recorded = new Set<string>();
  const findings: Finding[] = [];
  const bad = new Map<number, { id: string | null; url: string | null; path: string; problem: Problem; detail: string }>();
  const note = (row: number | null, file: string, problem: Problem, detail: string, r?: Record<string, unknown>) => {
    findings.push({ row, path: file, problem, detail });
    if (row !== null && r) bad.set(row, { id: r.id === null ? null : String(r.id), url: r.url === null ? null : String(r.url), path: file, problem, detail });
  };
  for (let i = 0; i < rows.length; i += CHECK_CONCURRENCY) {
    await Promise.all(
      rows.slice(i, i + CHECK_CONCURRENCY).map(async (r) => {
        const file = String(r.path);
        const row = Number(r.row);
        recorded.add(file);
        if (!names.has(file)) return note(row, file, 'missing_image', 'the image is not on disk', r);
        const caption = captionFileName(file);
        if (!names.has(caption)) return note(row, file, 'missing_caption', `${caption} is not on disk`, r);
        const p = await checkImage(path.join(out, file), Number(r.width), Number(r.height), o.deep);
        if (p) note(row, file, p.problem, p.detail, r);
      }),
    );
  }
  const images = [...names].filter((n) => IMAGE_EXT.test(n));
  for (const n of images) if (!recorded.has(n)) note(null, n, 'stray', 'an image no ok row of the records wrote');

  const problems: Record<Problem, number> = { missing_image: 0, missing_caption: 0, unreadable: 0, wrong_size: 0, stray: 0 };
  for (const f of findings) problems[f.problem]++;
  if (o.fix && findings.length) {
    const lock = FolderLock.acquire(lockPath(out, null), out, () => undefined);
    try {
      const log = new RowLog(logPath(out, null));
      for (const [row, b] of bad) {
        // The next download redoes the row: its files go, and its latest outcome is a write failure (retried by a rerun).
        rmSync(path.join(out, b.path), { force: true });
        rmSync(path.join(out, captionFileName(b.path)), { force: true });
        log.append(
          failedResult(
            { row, id: b.id, url: b.url, caption: null, fallback: null, srcWidth: null, srcHeight: null },
            new RowError('write_error', `pcb verify: ${b.problem.replace('_', ' ')}: ${b.detail}`),
            Date.now(),
          ),
        );
      }
      log.close();
      const strayDir = path.join(out, STATE_DIR, 'stray');
      for (const f of findings.filter((x) => x.problem === 'stray')) {
        mkdirSync(strayDir, { recursive: true });
        // Renamed so that a trainer walking the folder never takes it for an image.
        renameSync(path.join(out, f.path), path.join(strayDir, `${f.path}.stray`));
      }
      const run = readRunRecord(out);
      const dest = recordPaths(out, null, null);
      if (existsSync(dest.manifest)) {
        await writeRecords(
          conn,
          allLogPaths(out),
          { input: run?.input ?? null, captionColumn: run?.captionColumn ?? null, fallbackCaptionColumn: run?.fallbackCaptionColumn ?? null },
          dest,
        );
      }
    } finally {
      lock.release();
    }
  }
  conn.closeSync();
  return {
    out,
    ok_rows: rows.length,
    images_on_disk: images.length,
    problems,
    findings,
    fixed: o.fix && findings.length > 0,
    seconds: (Date.now() - started) / 1000,
  };
}

export async function runVerify(out: string, o: { fix: boolean; deep: boolean; json: boolean }): Promise<number> {
  const r = await verifyFolder(out, o);
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
        `${out}: ${r.ok_rows} ok rows, ${r.images_on_disk} images on disk, checked in ${r.seconds.toFixed(1)} s${o.deep ? ' (full decode)' : ' (headers)'}`,
        disagree ? `  disagreements: ${counts}` : '  records and disk agree',
        ...r.findings.slice(0, 20).map((f) => `    ${f.problem.padEnd(16)} ${f.row === null ? '' : `row ${f.row} `}${f.path}: ${f.detail}`),
        ...(r.findings.length > 20 ? [`    … ${r.findings.length - 20} more (--json lists them)`] : []),
        ...(disagree
          ? [
              r.fixed
                ? '  fixed: those rows are marked for the next pcb download to redo; stray images moved to .pcb/stray/'
                : '  pcb verify --fix marks them for the next pcb download to redo',
            ]
          : []),
      ].join('\n') + '\n',
    );
  }
  return disagree && !r.fixed ? 1 : 0;
}
