import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { readdirSync } from 'node:fs';
import { readParquet, runPcb, tmpDir, useKit } from './helpers.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';

const kit = useKit(6);

const common = ['--allow-private-network', '--resolution', '128', '--threads', '1', '--concurrency', '4', '--quiet', '--json'];

describe('shards', () => {
  it('four shard processes into one folder: every row exactly once, merge correct, a rerun resumes only its rows', async () => {
    const dir = tmpDir();
    const input = path.join(dir, 'in.parquet');
    const n = 60;
    const tag = `sh${Date.now()}`;
    await writeParquet(
      input,
      Array.from({ length: n }, (_, i) => datasetRow(i, kit.server.url(`/img/${kit.photos[i % kit.photos.length].name}?t=${tag}&r=${i}`), 640, 480)),
    );
    const out = path.join(dir, 'out');
    const runs = await Promise.all([0, 1, 2, 3].map((i) => runPcb(['download', input, '--out', out, '--shard', `${i}/4`, ...common])));
    for (const r of runs) expect(r.code).toBe(0);
    const counts = runs.map((r) => JSON.parse(r.stdout).ok as number);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(n);
    expect(counts.every((c) => c > 0)).toBe(true);
    const hits = kit.server.requests.filter((q) => q.path.includes(tag)).map((q) => Number(/r=(\d+)/.exec(q.path)![1]));
    expect(hits.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    const files = readdirSync(out);
    for (let i = 0; i < 4; i++) expect(files).toContain(`manifest.shard-${i}-of-4.parquet`);
    const merged = await runPcb(['merge', out, '--json']);
    expect(merged.code).toBe(0);
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    expect(manifest.map((m) => m.row)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(manifest.every((m) => m.status === 'ok')).toBe(true);
    const metadata = await readParquet(path.join(out, 'metadata.parquet'), 'file_name');
    expect(metadata.length).toBe(n);

    // The same rows land in the same shard whatever the chunk size and order.
    const before = kit.server.requests.length;
    const again = await runPcb(['download', input, '--out', out, '--shard', '2/4', '--chunk-size', '4096', ...common]);
    expect(JSON.parse(again.stdout)).toMatchObject({ processed: 0, skipped: counts[2] });
    expect(kit.server.requests.length).toBe(before);
  });

  it('takes the shard from Slurm and Kubernetes environments and says so', async () => {
    const dir = tmpDir();
    const input = path.join(dir, 'in.parquet');
    await writeParquet(
      input,
      Array.from({ length: 20 }, (_, i) => datasetRow(i, kit.server.url(`/img/${kit.photos[i % kit.photos.length].name}?env=${i}`), 640, 480)),
    );
    const explicit = JSON.parse((await runPcb(['download', input, '--out', path.join(dir, 'a'), '--shard', '1/3', ...common])).stdout);
    const slurm = await runPcb(['download', input, '--out', path.join(dir, 'b'), '--allow-private-network', '--resolution', '128', '--threads', '1'], {
      env: { SLURM_ARRAY_TASK_ID: '11', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_COUNT: '3' },
    });
    expect(slurm.stderr).toMatch(/shard 1\/3 \(Slurm array task 11/);
    const k8s = await runPcb(['download', input, '--out', path.join(dir, 'c'), '--shard-count', '3', ...common], { env: { JOB_COMPLETION_INDEX: '1' } });
    const k8sSummary = JSON.parse(k8s.stdout);
    expect(k8sSummary.shard).toBe('1/3');
    expect(k8sSummary.ok).toBe(explicit.ok);
    const rows = async (d: string) => (await readParquet(path.join(dir, d, 'manifest.shard-1-of-3.parquet'))).map((m) => m.row);
    expect(await rows('b')).toEqual(await rows('a'));
    expect(await rows('c')).toEqual(await rows('a'));
    const bad = await runPcb(['download', input, '--out', path.join(dir, 'd')], { env: { JOB_COMPLETION_INDEX: '1' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--shard-count/);
  });
});
