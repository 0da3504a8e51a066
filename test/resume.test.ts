import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { HOST } from '../src/output/folder.js';
import { loggedRows, readParquet, runPcb, tmpDir, until, useKit } from './helpers.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';

const kit = useKit(8);

const common = ['--allow-private-network', '--resolution', '256', '--backoff', '0.01', '--retries', '1', '--quiet', '--json'];
const requested = (tag: string) => kit.server.requests.filter((q) => q.path.includes(tag)).map((q) => Number(/[?&]r=(\d+)/.exec(q.path)?.[1]));

/** Every image present decodes whole; every caption has its image; no temporary file is left visible. */
async function checkFolder(out: string): Promise<{ images: string[]; captions: string[] }> {
  const files = readdirSync(out).filter((f) => f !== '.pcb');
  const images = files.filter((f) => f.endsWith('.png'));
  const captions = files.filter((f) => f.endsWith('.txt'));
  for (const c of captions) expect(images).toContain(c.replace(/\.txt$/, '.png'));
  for (const i of images) {
    const { info } = await sharp(path.join(out, i), { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
  }
  expect(files.filter((f) => !/\.(png|txt|parquet)$/.test(f))).toEqual([]);
  return { images, captions };
}

describe('resume', () => {
  it('skips ok and permanently failed rows, retries transient ones, requests nothing else', async () => {
    const dir = tmpDir();
    const input = path.join(dir, 'in.parquet');
    const tag = `res${Date.now()}`;
    const rows = [
      ...Array.from({ length: 6 }, (_, i) => datasetRow(i, kit.server.url(`/img/${kit.photos[i].name}?t=${tag}&r=${i}`), 640, 480)),
      datasetRow(6, kit.server.url(`/status/404?t=${tag}&r=6`), 640, 480),
      datasetRow(7, kit.server.url(`/flaky/${tag}/2/503/${kit.photos[0].name}?t=${tag}&r=7`), 640, 480),
      datasetRow(8, kit.server.url(`/html?t=${tag}&r=8`), 640, 480),
    ];
    await writeParquet(input, rows);
    const out = path.join(dir, 'out');
    const first = JSON.parse((await runPcb(['download', input, '--out', out, ...common])).stdout);
    expect([first.ok, first.failed, first.skipped]).toEqual([6, 3, 0]);
    expect((await readParquet(path.join(out, 'manifest.parquet'))).find((m) => m.row === 7)!.http_status).toBe(503);

    kit.server.requests.length = 0;
    rmSync(path.join(out, `${rows[2].id}.png`)); // an ok row whose image is gone is done again
    const second = JSON.parse((await runPcb(['download', input, '--out', out, ...common])).stdout);
    expect(requested(tag).sort()).toEqual([2, 7]);
    expect([second.ok, second.failed, second.skipped, second.processed]).toEqual([2, 0, 7, 2]);
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    expect(manifest.length).toBe(9);
    expect(manifest.find((m) => m.row === 7)!.status).toBe('ok');
    expect(manifest.find((m) => m.row === 6)!.error).toBe('http_status');

    kit.server.requests.length = 0;
    const retry = JSON.parse((await runPcb(['download', input, '--out', out, '--retry-failed', ...common])).stdout);
    expect(requested(tag).sort()).toEqual([6, 8]);
    expect(retry.skipped).toBe(7);

    kit.server.requests.length = 0;
    const over = JSON.parse((await runPcb(['download', input, '--out', out, '--overwrite', ...common])).stdout);
    expect(requested(tag).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(over.skipped).toBe(0);

    const status = await runPcb(['status', out, '--json']);
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout);
    expect(s).toMatchObject({ ok: 7, failed: 2, failed_permanent: { http_status: 1, not_an_image: 1 }, left: 0, selected: 9 });
    const human = await runPcb(['status', out]);
    expect(human.stdout).toMatch(/7 ok, 2 failed/);
  });

  it('kill -9 mid-run leaves only whole files, and the next run fetches only what was not done', async () => {
    const dir = tmpDir();
    const input = path.join(dir, 'in.parquet');
    const tag = `kill${Date.now()}`;
    const n = 80;
    await writeParquet(
      input,
      Array.from({ length: n }, (_, i) => datasetRow(i, kit.server.url(`/delay/150/${kit.photos[i % kit.photos.length].name}?t=${tag}&r=${i}`), 640, 480)),
    );
    const out = path.join(dir, 'out');
    let pid = 0;
    const run = runPcb(['download', input, '--out', out, '--threads', '2', '--concurrency', '2', ...common], {
      onSpawn: (p) => {
        pid = p;
      },
    });
    // Kill once some rows are settled and others are in flight.
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const log = path.join(out, '.pcb', 'log.jsonl');
      if (existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 12) break;
    }
    process.kill(pid, 'SIGKILL');
    const killed = await run;
    expect(killed.signal).toBe('SIGKILL');
    const before = await checkFolder(out);
    expect(before.images.length).toBeGreaterThan(0);
    expect(before.images.length).toBeLessThan(n);
    const doneBefore = readFileSync(path.join(out, '.pcb', 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"status":"ok"'))
      .map((l) => JSON.parse(l).row as number);

    // A records temp file of a killed pcb (a pid that no longer runs) is cleared by the next run.
    writeFileSync(path.join(out, `manifest.parquet.tmp-${HOST}-999999`), 'partial');
    // Another host's temporary file may belong to a live run there: it stays.
    writeFileSync(path.join(out, 'manifest.shard-0-of-2.parquet.tmp-otherhost-999999'), 'live elsewhere');
    kit.server.requests.length = 0;
    const resumed = await runPcb(['download', input, '--out', out, ...common]);
    expect(resumed.code).toBe(0);
    // Another host's temporary file stays; this host's dead one is gone.
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual(['manifest.shard-0-of-2.parquet.tmp-otherhost-999999']);
    rmSync(path.join(out, 'manifest.shard-0-of-2.parquet.tmp-otherhost-999999'));
    const again = requested(tag);
    expect(again.filter((r) => doneBefore.includes(r))).toEqual([]);
    expect(again.length).toBe(n - doneBefore.length);
    const after = await checkFolder(out);
    expect(after.images.length).toBe(n);
    expect(after.captions.length).toBe(n);
    expect(readdirSync(path.join(out, '.pcb')).filter((f) => f.startsWith('tmp'))).toEqual([]);
    expect((await readParquet(path.join(out, 'manifest.parquet'))).filter((m) => m.status === 'ok').length).toBe(n);
  });

  it('SIGINT stops reading, finishes rows in flight, writes the records and exits 130', async () => {
    const dir = tmpDir();
    const input = path.join(dir, 'in.parquet');
    const n = 200;
    await writeParquet(
      input,
      Array.from({ length: n }, (_, i) => datasetRow(i, kit.server.url(`/delay/100/${kit.photos[i % kit.photos.length].name}?sig=${i}`), 640, 480)),
    );
    const out = path.join(dir, 'out');
    let pid = 0;
    const run = runPcb(['download', input, '--out', out, '--threads', '2', '--concurrency', '2', ...common], {
      onSpawn: (p) => {
        pid = p;
      },
    });
    await until(() => loggedRows(out) >= 4, 'rows in the log');
    const sent = Date.now();
    process.kill(pid, 'SIGINT');
    const r = await run;
    expect(r.code).toBe(130);
    expect(Date.now() - sent).toBeLessThan(10_000);
    const summary = JSON.parse(r.stdout);
    expect(summary.interrupted).toBe(true);
    expect(summary.processed).toBeLessThan(n);
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    expect(manifest.length).toBe(summary.processed);
    const { images } = await checkFolder(out);
    expect(images.length).toBe(summary.ok);
  });

  it('SIGTERM exits 143 after the same clean stop; a second SIGINT leaves at once, still with only whole files', async () => {
    const dir = tmpDir();
    const input = path.join(dir, 'in.parquet');
    await writeParquet(
      input,
      Array.from({ length: 200 }, (_, i) => datasetRow(i, kit.server.url(`/delay/100/${kit.photos[i % kit.photos.length].name}?term=${i}`), 640, 480)),
    );
    let pid = 0;
    const term = runPcb(['download', input, '--out', path.join(dir, 'a'), '--threads', '2', '--concurrency', '2', ...common], {
      onSpawn: (p) => {
        pid = p;
      },
    });
    await until(() => loggedRows(path.join(dir, 'a')) >= 4, 'rows in the log');
    process.kill(pid, 'SIGTERM');
    const t = await term;
    expect(t.code).toBe(143);
    expect(JSON.parse(t.stdout).interrupted).toBe(true);

    let notice = false;
    const twice = runPcb(['download', input, '--out', path.join(dir, 'b'), '--threads', '2', '--concurrency', '4', ...common], {
      onSpawn: (p) => {
        pid = p;
      },
      onStderr: (text) => {
        notice = text.includes('SIGINT: finishing');
      },
    });
    await until(() => loggedRows(path.join(dir, 'b')) >= 4, 'rows in the log');
    const sent = Date.now();
    process.kill(pid, 'SIGINT');
    await until(() => notice, 'the first SIGINT to be handled');
    process.kill(pid, 'SIGINT');
    const r = await twice;
    expect(r.code).toBe(130);
    // "At once": a hang guard with a wide margin, not a timing measurement.
    expect(Date.now() - sent).toBeLessThan(5000);
    await checkFolder(path.join(dir, 'b'));
    const resumed = JSON.parse((await runPcb(['download', input, '--out', path.join(dir, 'b'), ...common])).stdout);
    expect(resumed.ok + resumed.skipped).toBe(200);
    expect((await checkFolder(path.join(dir, 'b'))).images.length).toBe(200);
  });
});
