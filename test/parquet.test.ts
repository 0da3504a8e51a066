/**
 * `--output-format parquet` through the real bin/pcb: shards of samples that DuckDB reads with 100-row row
 * groups and the Hugging Face features entry, kills that tear nothing, verify and its fix, status, merge,
 * config's huggingface entry, shards side by side, and the option's bad values. (Hugging Face `datasets`
 * itself reads them in readers.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { DATASET_COLUMNS, datasetRow, writeParquet } from '../src/kit/dataset.js';
import { query, readParquet, runPcb, signalMidRun, tmpDir, useKit } from './helpers.js';

const kit = useKit(6);
const common = ['--allow-private-network', '--resolution', '128', '--output-format', 'parquet', '--quiet', '--json'];

async function input(dir: string, n: number, delayMs = 0): Promise<string> {
  const file = path.join(dir, 'in.parquet');
  const rows = Array.from({ length: n }, (_, i) =>
    datasetRow(i, kit.server.url(`${delayMs ? `/delay/${delayMs}` : '/img'}/${kit.photos[i % kit.photos.length].name}?pq=${i}`), 640, 480),
  );
  await writeParquet(file, rows, { ...DATASET_COLUMNS, id: 'VARCHAR' });
  return file;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

const shards = (out: string) =>
  readdirSync(out)
    .filter((f) => /^(pcb|shard-\d+-of-\d+)-[a-z0-9]+-w\d+-\d{5}\.parquet$/.test(f))
    .sort();

/** Every sample's key in every shard of a folder, as DuckDB reads them. */
async function keys(out: string): Promise<string[]> {
  const files = shards(out).map((f) => `'${path.join(out, f)}'`);
  if (!files.length) return [];
  return (await query(`SELECT key FROM read_parquet([${files.join(', ')}])`)).map((r) => String(r.key));
}

describe('parquet output', () => {
  it('writes shards DuckDB reads: one row per ok row, 100-row row groups, the HF features entry, records that name shard and key', async () => {
    const dir = tmpDir();
    const n = 130;
    const file = await input(dir, n);
    const out = path.join(dir, 'out');
    const r = await runPcb(['download', file, '--out', out, '--threads', '1', '--samples-per-shard', '120', ...common]);
    expect(r.code, r.stderr).toBe(0);
    const names = shards(out);
    expect(names).toHaveLength(2);
    for (const s of names) expect(s).toMatch(/^pcb-[a-z0-9]+-w\d+-\d{5}\.parquet$/);
    const groups = await query(
      `SELECT file_name, row_group_id, row_group_num_rows AS rows FROM parquet_metadata([${names.map((s) => `'${path.join(out, s)}'`).join(', ')}]) WHERE path_in_schema = 'key' ORDER BY file_name, row_group_id`,
    );
    expect(groups.map((g) => Number(g.rows))).toEqual([100, 20, 10]);
    const kv = await query(`SELECT decode(value) AS v FROM parquet_kv_metadata('${path.join(out, names[0])}') WHERE decode(key) = 'huggingface'`);
    expect(JSON.parse(String(kv[0].v))).toEqual({ info: { features: { image: { _type: 'Image' } } } });
    const got = await keys(out);
    expect(got).toHaveLength(n);
    expect(new Set(got).size).toBe(n);
    // Each sample's image is the PNG pcb wrote, at the recorded size; metadata.parquet names its shard and key.
    const meta = await readParquet(path.join(out, 'metadata.parquet'), 'id');
    expect(meta).toHaveLength(n);
    const rows = await query(
      `SELECT key, image.path AS member, width, height, caption, octet_length(image.bytes) AS size, hex(image.bytes)[1:8] AS magic FROM read_parquet('${path.join(out, names[0])}')`,
    );
    for (const row of rows) {
      const m = meta.find((x) => String(x.key) === row.key)!;
      expect(m.shard).toBe(names[0]);
      expect(m.file_name).toBe(`${names[0]}/${row.key}.png`);
      expect(row.member).toBe(`${row.key}.png`);
      expect(row.magic).toBe('89504E47');
      expect([row.width, row.height, row.caption]).toEqual([m.width, m.height, m.caption]);
    }
    expect(readdirSync(path.join(out, '.pcb')).filter((f) => f.startsWith('tmp'))).toEqual([]);
    // The records carry the sha256 of the bytes the server sent, in the manifest and metadata.parquet alike.
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    for (const m of manifest) expect(m.sha256, `row ${m.row}`).toBe(sha256(kit.photos[Number(m.row) % kit.photos.length].data));
    for (const m of meta) expect(m.sha256).toBe(manifest.find((x) => x.id === m.id)?.sha256);
    // status counts them; config prints SimpleTuner's huggingface entry over the folder.
    expect(JSON.parse((await runPcb(['status', out, '--json'])).stdout)).toMatchObject({ ok: n, failed: 0 });
    const config = await runPcb(['config', out]);
    expect(config.code).toBe(0);
    expect(JSON.parse(config.stdout)).toMatchObject({
      type: 'huggingface',
      dataset_name: out,
      split: 'train',
      image_column: 'image',
      caption_column: 'caption',
      caption_strategy: 'huggingface',
      metadata_backend: 'huggingface',
    });
    expect(existsSync(path.join(out, 'README.md'))).toBe(true);
  });

  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    it(`${signal} mid-shard, then a rerun: every row exactly once, no spool left, verify agrees`, async () => {
      const dir = tmpDir();
      const n = 60;
      const file = await input(dir, n, 80);
      const out = path.join(dir, 'out');
      await signalMidRun(['download', file, '--out', out, '--threads', '2', '--concurrency', '2', '--samples-per-shard', '8', ...common], out, signal);
      // Whatever shard is in the folder is whole: DuckDB reads every one.
      const before = await keys(out);
      expect(before.length).toBeLessThan(n);
      const resumed = await runPcb(['download', file, '--out', out, '--threads', '2', '--samples-per-shard', '8', ...common]);
      expect(resumed.code, resumed.stderr).toBe(0);
      const after = await keys(out);
      expect(after).toHaveLength(n);
      expect(new Set(after).size).toBe(n);
      expect(readdirSync(path.join(out, '.pcb')).filter((f) => f.startsWith('tmp'))).toEqual([]);
      const verify = await runPcb(['verify', out, '--json']);
      expect(JSON.parse(verify.stdout)).toMatchObject({ ok_rows: n, images_on_disk: n, findings: [] });
    });
  }

  it('verify --deep finds a torn shard; --fix moves it aside and a rerun redoes exactly its rows', async () => {
    const dir = tmpDir();
    const file = await input(dir, 12);
    const out = path.join(dir, 'out');
    expect((await runPcb(['download', file, '--out', out, '--threads', '1', '--samples-per-shard', '5', ...common])).code).toBe(0);
    const names = shards(out);
    expect(names).toHaveLength(3);
    expect(JSON.parse((await runPcb(['verify', out, '--deep', '--json'])).stdout)).toMatchObject({ ok_rows: 12, images_on_disk: 12, findings: [] });
    const victim = names[0];
    truncateSync(path.join(out, victim), 20_000);
    const found = await runPcb(['verify', out, '--json']);
    expect(found.code).toBe(1);
    const report = JSON.parse(found.stdout);
    expect(report.findings.filter((f: { row: number | null; problem: string }) => f.row !== null && f.problem === 'damaged_tar').length).toBe(5);
    expect((await runPcb(['verify', out, '--fix'])).code).toBe(0);
    expect(existsSync(path.join(out, victim))).toBe(false);
    expect(readdirSync(path.join(out, '.pcb', 'damaged'))).toEqual([victim]);
    const rerun = JSON.parse((await runPcb(['download', file, '--out', out, '--threads', '1', '--samples-per-shard', '5', ...common])).stdout);
    expect([rerun.processed, rerun.ok, rerun.skipped]).toEqual([5, 5, 7]);
    expect(new Set(await keys(out)).size).toBe(12);
    expect((await runPcb(['verify', out])).code).toBe(0);
  });

  it('--shard runs side by side write shards that never collide; merge joins their records; --overwrite into files removes them', async () => {
    const dir = tmpDir();
    const file = await input(dir, 24);
    const out = path.join(dir, 'out');
    const runs = await Promise.all(
      ['0/2', '1/2'].map((s) => runPcb(['download', file, '--out', out, '--threads', '1', '--shard', s, '--samples-per-shard', '5', ...common])),
    );
    expect(runs.map((r) => r.code)).toEqual([0, 0]);
    const names = shards(out);
    expect(names.some((t) => t.startsWith('shard-0-of-2-'))).toBe(true);
    expect(names.some((t) => t.startsWith('shard-1-of-2-'))).toBe(true);
    expect(new Set(await keys(out)).size).toBe(24);
    expect((await runPcb(['merge', out, '--json'])).code).toBe(0);
    const metadata = await readParquet(path.join(out, 'metadata.parquet'), '');
    expect(metadata).toHaveLength(24);
    expect(new Set(metadata.map((m) => m.shard)).size).toBe(names.length);
    expect((await runPcb(['verify', out])).code).toBe(0);
    const files = await runPcb([
      'download',
      file,
      '--out',
      out,
      '--threads',
      '1',
      '--overwrite',
      ...common.filter((a) => a !== 'parquet' && a !== '--output-format'),
    ]);
    expect(files.code, files.stderr).toBe(0);
    expect(JSON.parse(files.stdout), files.stdout).toMatchObject({ ok: 24 });
    expect(shards(out)).toEqual([]);
    expect(readdirSync(out).filter((f) => f.endsWith('.png'))).toHaveLength(24);
  });

  it('a bad --output-format or shard size is one line and exit 2', async () => {
    const dir = tmpDir();
    const file = await input(dir, 1);
    for (const bad of [
      ['--output-format', 'arrow'],
      ['--samples-per-shard', '0'],
      ['--samples-per-shard', '2000000'],
      ['--samples-per-tar', 'many'],
    ]) {
      const r = await runPcb(['download', file, '--out', path.join(dir, 'out'), ...bad]);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), bad.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(bad[0]);
    }
  });
});
