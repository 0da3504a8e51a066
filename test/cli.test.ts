import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readParquet, runPcb, tmpDir } from './helpers.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';

async function input(dir: string): Promise<string> {
  const file = path.join(dir, 'in.parquet');
  await writeParquet(file, [datasetRow(0, 'http://127.0.0.1:9/a.jpg', 640, 480)]);
  return file;
}

/** One clear line on stderr, no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  expect(lines.length).toBe(1);
  expect(stderr).not.toMatch(/\n\s+at /);
  expect(stderr).not.toMatch(/Error:/);
  return lines[0];
}

describe('usage errors exit 2 and create nothing', () => {
  const cases: [string, string[], RegExp][] = [
    ['--threads 0', ['--threads', '0'], /--threads/],
    ['--threads zero', ['--threads', 'zero'], /--threads.*zero/],
    ['--resolution -5', ['--resolution', '-5'], /--resolution/],
    ['--format gif', ['--format', 'gif'], /--format.*png, jpeg, webp/],
    ['--resize crop', ['--resize', 'crop'], /--resize/],
    ['--concurrency 1.5', ['--concurrency', '1.5'], /--concurrency/],
    ['--shard 4/4', ['--shard', '4/4'], /--shard/],
    ['--max-bytes lots', ['--max-bytes', 'lots'], /--max-bytes/],
    ['--backoff -0.5', ['--backoff', '-0.5'], /--backoff takes a number of 0 or more, got '-0.5'/],
    ['--max-failure-rate 1.5', ['--max-failure-rate', '1.5'], /--max-failure-rate takes a fraction from 0 to 1/],
    ['unknown option', ['--frobnicate'], /unknown option/],
    ['--where rejected by DuckDB', ['--where', 'no_such_column > 3'], /--where/],
    ['--where syntax error', ['--where', 'width >>>> ('], /--where/],
  ];
  for (const [name, args, pattern] of cases) {
    it(name, async () => {
      const dir = tmpDir();
      const out = path.join(dir, 'out');
      const r = await runPcb(['download', await input(dir), '--out', out, ...args]);
      expect(r.code).toBe(2);
      expect(oneLine(r.stderr)).toMatch(pattern);
      expect(existsSync(out)).toBe(false);
    });
  }
  it('no input at all', async () => {
    const r = await runPcb(['download']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toMatch(/input/);
  });
});

describe('fatal errors exit 1 with one line', () => {
  it('missing input', async () => {
    const dir = tmpDir();
    const r = await runPcb(['download', path.join(dir, 'nope.parquet'), '--out', path.join(dir, 'out')]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/nope\.parquet does not exist/);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });
  it('not a parquet file', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'x.parquet');
    writeFileSync(file, 'id,url\n1,http://a/b.jpg\n');
    const r = await runPcb(['download', file, '--out', path.join(dir, 'out')]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/not a parquet file/);
  });
  it('an input that is a folder', async () => {
    const dir = tmpDir();
    const r = await runPcb(['download', dir, '--out', path.join(dir, 'out')]);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/is not a file/);
  });
  it('missing column names it and the columns that exist', async () => {
    const dir = tmpDir();
    const r = await runPcb(['download', await input(dir), '--out', path.join(dir, 'out'), '--url-column', 'image_url']);
    expect(r.code).toBe(1);
    const line = oneLine(r.stderr);
    expect(line).toMatch(/image_url/);
    expect(line).toMatch(/cogvlm_caption/);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });
  it('an explicitly named caption column must exist; the default fallback may be absent', async () => {
    const dir = tmpDir();
    const r = await runPcb(['download', await input(dir), '--out', path.join(dir, 'out'), '--caption-column', 'blip']);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/blip/);
    const file = path.join(dir, 'slim.parquet');
    await writeParquet(file, [{ id: 1, url: 'http://10.0.0.1/a.jpg' }], { id: 'BIGINT', url: 'VARCHAR' });
    const manifest = path.join(dir, 'records', 'm.parquet');
    mkdirSync(path.dirname(manifest));
    const ok = await runPcb(['download', file, '--out', path.join(dir, 'out2'), '--manifest', manifest, '--quiet', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).errors).toEqual({ blocked_address: 1 });
    expect((await readParquet(manifest)).map((m) => m.error)).toEqual(['blocked_address']);
    expect(existsSync(path.join(dir, 'out2', 'manifest.parquet'))).toBe(false);
  });
  it('unwritable --out: under /proc, under a file', async () => {
    const dir = tmpDir();
    const file = await input(dir);
    const r = await runPcb(['download', file, '--out', '/proc/pcb-cannot/train'], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toMatch(/--out/);
    writeFileSync(path.join(dir, 'afile'), 'x');
    const r2 = await runPcb(['download', file, '--out', path.join(dir, 'afile', 'sub')]);
    expect(r2.code).toBe(1);
    expect(oneLine(r2.stderr)).toMatch(/--out/);
  });
  it('help reads well and exits 0', async () => {
    const r = await runPcb(['download', '--help']);
    expect(r.code).toBe(0);
    for (const o of ['--out', '--resize', '--threads', '--concurrency', '--max-rps', '--shard', '--cdn-resize', 'roundHalfEven']) expect(r.stdout).toContain(o);
    const top = await runPcb(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['download', 'inspect', 'config', 'status', 'merge']) expect(top.stdout).toContain(c);
  });
});
