/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * pcb report: one HTML file from a folder's logs and records, opened in a real browser (Debian's chromium
 * through puppeteer-core): no request leaves the page, no script error, the counts are the manifest's, every
 * thumbnail decodes, the charts are drawn. On files, WebDataset, a bucket, a run in progress and merged shards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'puppeteer-core';
import { DATASET_COLUMNS, datasetRow, writeParquet } from '../src/kit/dataset.js';
import { KitS3Server } from '../src/kit/s3-server.js';
import { loggedRows, readParquet, runPcb, tmpDir, until, useKit } from './helpers.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p)) ?? null;
if (!CHROMIUM) process.stderr.write('report.test: no chromium (apt-get install chromium): the browser checks are skipped\n');

const kit = useKit(6, [480, 320]);
let browser: Browser | null = null;
beforeAll(async () => {
  if (!CHROMIUM) return;
  const puppeteer = (await import('puppeteer-core')).default;
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root in a container, with no network beyond loopback: no sandbox, nothing fetched in the background.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
});
afterAll(async () => {
  await browser?.close();
});

const common = ['--allow-private-network', '--resolution', '128', '--quiet', '--json'];

/** n rows over the kit's photos; every 7th a 404, every 11th an HTML page; a few portrait. */
async function input(dir: string, n: number, route: (i: number) => string = (i) => `/img/${kit.photos[i % kit.photos.length].name}`): Promise<string> {
  const file = path.join(dir, 'in.parquet');
  await writeParquet(
    file,
    Array.from({ length: n }, (_, i) =>
      datasetRow(
        i,
        i % 7 === 3 ? kit.server.url(`/status/404?r=${i}`) : i % 11 === 5 ? kit.server.url(`/html?r=${i}`) : kit.server.url(`${route(i)}?rep=${i}`),
        480,
        320,
      ),
    ),
    { ...DATASET_COLUMNS, id: 'VARCHAR' },
  );
  return file;
}

interface Seen {
  requests: string[];
  errors: string[];
  counts: Record<string, number>;
  codes: Record<string, number>;
  thumbs: { total: number; decoded: number };
  charts: number;
  inProgress: boolean;
  text: string;
  /** Each thumbnail's hover text. */
  titles: string[];
}

/** Opens the report as a user would, and keeps a screenshot beside it. */
async function openReport(file: string): Promise<Seen | null> {
  if (!browser) return null;
  const page = await browser.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push((e as Error).message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.setViewport({ width: 1200, height: 900 });
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  const seen = await page.evaluate(() => {
    const counts: Record<string, number> = {};
    for (const el of document.querySelectorAll<HTMLElement>('[id^="count-"]')) counts[el.id.slice(6)] = Number(el.dataset.n);
    const codes: Record<string, number> = {};
    for (const el of document.querySelectorAll<HTMLElement>('#error-table tr[data-code]')) codes[el.dataset.code ?? ''] = Number(el.dataset.n);
    const imgs = [...document.querySelectorAll<HTMLImageElement>('.sheet img')];
    // A chart is drawn when its SVG holds marks: bars (paths in a mark group) with a size on the page.
    const charts = [...document.querySelectorAll('.chart svg')].filter((svg) => {
      const box = svg.getBoundingClientRect();
      return box.width > 100 && box.height > 50 && svg.querySelectorAll('.mark-rect path, .mark-rule line, .mark-rect rect').length > 0;
    }).length;
    return {
      counts,
      codes,
      thumbs: { total: imgs.length, decoded: imgs.filter((i) => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length },
      charts,
      inProgress: document.getElementById('in-progress') !== null,
      titles: [...document.querySelectorAll<HTMLElement>('.sheet figure')].map((f) => f.title),
      text: document.body.textContent ?? '',
    };
  });
  await page.screenshot({ path: file.replace(/\.html$/, '.png'), fullPage: true });
  await page.close();
  return { requests, errors, ...seen };
}

/** What every report must show: the page is alone, quiet, drawn, and its counts are the manifest's. */
async function checkPage(file: string, manifest: Record<string, unknown>[], o: { thumbs: number; charts: number }): Promise<Seen | null> {
  const seen = await openReport(file);
  if (!seen) return null;
  expect(seen.requests.filter((u) => u !== `file://${file}` && !u.startsWith('data:'))).toEqual([]);
  expect(seen.errors).toEqual([]);
  const ok = manifest.filter((m) => m.status === 'ok').length;
  expect(seen.counts).toMatchObject({ rows: manifest.length, ok, failed: manifest.length - ok });
  const codes: Record<string, number> = {};
  for (const m of manifest) if (m.status === 'failed') codes[String(m.error)] = (codes[String(m.error)] ?? 0) + 1;
  expect(seen.codes).toEqual(codes);
  expect(seen.thumbs).toEqual({ total: o.thumbs, decoded: o.thumbs });
  expect(seen.charts).toBeGreaterThanOrEqual(o.charts);
  expect(existsSync(file.replace(/\.html$/, '.png'))).toBe(true);
  return seen;
}

describe('pcb report', () => {
  it("files: one self-contained page in .pcb/, named by download and status, with the manifest's counts, failures by code and host, buckets, captions and thumbnails", async () => {
    const dir = tmpDir();
    const file = await input(dir, 30);
    const out = path.join(dir, 'out');
    const dl = await runPcb(['download', file, '--out', out, '--threads', '2', '--allow-private-network', '--resolution', '128', '--quiet']);
    expect(dl.code).toBe(0);
    expect(dl.stdout).toContain(`report: pcb report ${out}`);
    expect((await runPcb(['status', out])).stdout).toContain(`pcb report ${out}`);
    const runs = readFileSync(path.join(out, '.pcb', 'runs.jsonl'), 'utf8')
      .trim()
      .split('\n');
    expect(runs.length).toBe(1);
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    const okRows = manifest.filter((m) => m.status === 'ok').length;
    // Rows 3, 10, 17, 24 are 404s and 5, 16, 27 HTML pages.
    expect(okRows).toBe(23);
    expect(JSON.parse(runs[0])).toMatchObject({ selected: 30, ok: okRows, failed: 30 - okRows });

    const r = await runPcb(['report', out, '--samples', '10']);
    expect(r.code).toBe(0);
    const html = path.join(out, '.pcb', 'report.html');
    expect(r.stdout.trim()).toBe(html);
    // A few hundred kB at 10 thumbnails: the page is small.
    expect(statSync(html).size).toBeLessThan(1_000_000);
    const seen = await checkPage(html, manifest, { thumbs: 10, charts: 5 });
    if (seen) {
      expect(seen.text).toMatch(/http_status/);
      expect(seen.text).toMatch(new RegExp(`127\\.0\\.0\\.1:${new URL(kit.server.base).port}`));
      // The kit's photos are 480×320 → 192×128 at 128 px: one bucket, 1.50.
      expect(seen.text).toContain('1.50');
      expect(seen.text).toMatch(/cogvlm_caption \(primary\)\s*23/);
      expect(seen.inProgress).toBe(false);
      // Hover: the id, the size and the caption written beside the image.
      const captions = new Map((await readParquet(path.join(out, 'metadata.parquet'), '')).map((m) => [String(m.id), String(m.caption)]));
      expect(seen.titles.length).toBe(10);
      for (const t of seen.titles) expect(t).toBe(`${t.split(' · ')[0]} · 192×128\n${captions.get(t.split(' · ')[0])}`);
    }
    // A second run (a resume with nothing to do) is a second line.
    await runPcb(['download', file, '--out', out, '--allow-private-network', '--resolution', '128', '--quiet']);
    expect(
      readFileSync(path.join(out, '.pcb', 'runs.jsonl'), 'utf8')
        .trim()
        .split('\n').length,
    ).toBe(2);
  });

  it('webdataset: thumbnails come from inside the tars; -o writes where asked', async () => {
    const dir = tmpDir();
    const file = await input(dir, 20);
    const out = path.join(dir, 'out');
    expect((await runPcb(['download', file, '--out', out, '--output-format', 'webdataset', '--samples-per-tar', '4', ...common])).code).toBe(0);
    const html = path.join(dir, 'wds-report.html');
    const r = await runPcb(['report', out, '-o', html, '--samples', '8']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(html);
    await checkPage(html, await readParquet(path.join(out, 'manifest.parquet')), { thumbs: 8, charts: 4 });
  });

  it('a run in progress: the rows so far, and the page says so', async () => {
    const dir = tmpDir();
    const file = await input(dir, 40, (i) => `/delay/400/${kit.photos[i % kit.photos.length].name}`);
    const out = path.join(dir, 'out');
    const run = runPcb(['download', file, '--out', out, '--threads', '1', '--concurrency', '1', ...common]);
    await until(() => loggedRows(out) >= 5, 'rows in the log');
    const html = path.join(dir, 'live.html');
    const r = await runPcb(['report', out, '-o', html, '--samples', '3']);
    expect(r.code).toBe(0);
    const logged = readFileSync(path.join(out, '.pcb', 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'));
    const seen = await openReport(html);
    if (seen) {
      expect(seen.inProgress).toBe(true);
      expect(seen.errors).toEqual([]);
      // The log only grows: the page holds at least the rows logged before it, and no more than after.
      expect(seen.counts.rows).toBeGreaterThanOrEqual(5);
      expect(seen.counts.rows).toBeLessThanOrEqual(logged.length);
    }
    expect((await run).code).toBe(0);
  });

  it('merged shards: the counts of every shard; records that disagree with the logs are named', async () => {
    const dir = tmpDir();
    const file = await input(dir, 24);
    const out = path.join(dir, 'out');
    const shards = await Promise.all(['0/2', '1/2'].map((s) => runPcb(['download', file, '--out', out, '--threads', '1', '--shard', s, ...common])));
    expect(shards.map((s) => s.code)).toEqual([0, 0]);
    expect((await runPcb(['merge', out, '--json'])).code).toBe(0);
    const html = path.join(dir, 'merged.html');
    expect((await runPcb(['report', out, '-o', html, '--samples', '6'])).code).toBe(0);
    const seen = await checkPage(html, await readParquet(path.join(out, 'manifest.parquet')), { thumbs: 6, charts: 4 });
    if (seen) expect(seen.text).toContain('from the logs in .pcb/ (2 files)');
    // A log line the records do not have yet (a run that had not rebuilt them): the page says which it used.
    const log = path.join(out, '.pcb', 'log.shard-0-of-2.jsonl');
    const extra = { ...JSON.parse(readFileSync(log, 'utf8').split('\n')[0]), row: 999, id: 'x999', status: 'failed', error: 'timeout', path: null };
    writeFileSync(log, `${readFileSync(log, 'utf8')}${JSON.stringify(extra)}\n`);
    expect((await runPcb(['report', out, '-o', html, '--samples', '0'])).code).toBe(0);
    expect(readFileSync(html, 'utf8')).toMatch(/manifest\.parquet holds 24 rows where the logs hold 25/);
    // The logs gone (a folder merged from machines whose logs stayed behind): the records, and it says so.
    for (const l of ['log.shard-0-of-2.jsonl', 'log.shard-1-of-2.jsonl']) rmSync(path.join(out, '.pcb', l));
    expect((await runPcb(['report', out, '-o', html, '--samples', '4'])).code).toBe(0);
    const fromRecords = await checkPage(html, await readParquet(path.join(out, 'manifest.parquet')), { thumbs: 4, charts: 3 });
    if (fromRecords) expect(fromRecords.text).toContain('manifest.parquet (no log in this folder');
  });

  it('a bucket: thumbnails by ranged reads of the objects, the page in the state folder', async () => {
    const s3 = await new KitS3Server(['train']).start();
    try {
      const dir = tmpDir();
      const file = await input(dir, 14);
      const state = path.join(dir, 'state');
      const env = { ...s3.env, XDG_CACHE_HOME: path.join(dir, 'cache') };
      for (const layout of ['files', 'webdataset', 'parquet']) {
        const prefix = `s3://train/rep-${layout}`;
        const dl = await runPcb(
          ['download', file, '--out', prefix, '--state-dir', `${state}-${layout}`, '--output-format', layout, '--samples-per-tar', '4', ...common],
          { env },
        );
        expect(dl.code).toBe(0);
        const r = await runPcb(['report', prefix, '--state-dir', `${state}-${layout}`, '--samples', '5'], { env });
        expect(r.code).toBe(0);
        const html = path.join(`${state}-${layout}`, '.pcb', 'report.html');
        expect(r.stdout.trim()).toBe(html);
        await checkPage(html, await readParquet(path.join(`${state}-${layout}`, 'manifest.parquet')), { thumbs: 5, charts: 4 });
      }
    } finally {
      await s3.stop();
    }
  });

  it('a folder that does not exist, or one pcb never wrote: one line, exit 1, no file written', async () => {
    const dir = tmpDir();
    const missing = await runPcb(['report', path.join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^pcb: .*nope does not exist/)]);
    const plain = path.join(dir, 'plain');
    mkdirSync(plain);
    const never = await runPcb(['report', plain, '-o', path.join(dir, 'x.html')]);
    expect(never.code).toBe(1);
    expect(never.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^pcb: .*not a folder pcb wrote/)]);
    expect(existsSync(path.join(dir, 'x.html'))).toBe(false);
    expect(existsSync(path.join(plain, '.pcb'))).toBe(false);
    const bad = await runPcb(['report', plain, '--samples', 'many']);
    expect(bad.code).toBe(2);
  });
});
