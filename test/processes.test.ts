import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readParquet, runPcb, tmpDir, until, useKit } from './helpers.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import { resolveProcesses } from '../src/options.js';
import { composeShard, evenShare } from '../src/shard.js';
import { tagInShard } from '../src/shard.js';
import { HOST_LIMIT, initialHostLimit } from '../src/fetch/host-limit.js';

const kit = useKit(8, [320, 240]);
const common = ['--allow-private-network', '--resolution', '128', '--quiet', '--json'];

async function input(dir: string, n: number, tag: string, delayMs = 0): Promise<string> {
  const file = path.join(dir, 'in.parquet');
  const route = (i: number) => `${delayMs ? `/delay/${delayMs}` : '/img'}/${kit.photos[i % kit.photos.length].name}?t=${tag}&r=${i}`;
  await writeParquet(
    file,
    Array.from({ length: n }, (_, i) => datasetRow(i, kit.server.url(route(i)), 320, 240)),
  );
  return file;
}

/** The rows of the input requested from the server, by row number, as many times as each was asked for. */
const requested = (tag: string) =>
  kit.server.requests
    .filter((q) => q.path.includes(`t=${tag}&`))
    .map((q) => Number(/[?&]r=(\d+)/.exec(q.path)?.[1]))
    .sort((a, b) => a - b);

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Settled rows in every log of the folder (each process of a run keeps its own). */
function loggedAll(out: string): number {
  const dir = path.join(out, '.pcb');
  if (!existsSync(dir)) return 0;
  return readdirSync(dir)
    .filter((f) => f.startsWith('log') && f.endsWith('.jsonl'))
    .reduce(
      (n, f) =>
        n +
        readFileSync(path.join(dir, f), 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{')).length,
      0,
    );
}

function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Running: not gone and not a zombie (a process that exited but that its new parent has not reaped yet). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

describe('the rules that split a run over processes', () => {
  it('a process share of a shard is a finer shard of the same hash, and its files belong to the shard', () => {
    expect(composeShard(null, { index: 1, count: 4, reason: '' })).toMatchObject({ index: 1, count: 4 });
    expect(composeShard({ index: 3, count: 8, reason: '' }, { index: 2, count: 4, reason: '' })).toMatchObject({ index: 19, count: 32 });
    // hash % 32 = 19 implies hash % 8 = 3: the share's rows are all rows of the shard.
    expect(19 % 8).toBe(3);
    expect(tagInShard('shard-19-of-32', { index: 3, count: 8, reason: '' })).toBe(true);
    expect(tagInShard('shard-18-of-32', { index: 3, count: 8, reason: '' })).toBe(false);
    expect(tagInShard('shard-3-of-12', { index: 3, count: 8, reason: '' })).toBe(false);
    expect(tagInShard('pcb', { index: 0, count: 2, reason: '' })).toBe(false);
    expect(tagInShard('anything', null)).toBe(true);
    expect(range(3).map((i) => evenShare(10, i, 3))).toEqual([4, 3, 3]);
    expect(resolveProcesses('auto', 2)).toBe(1);
    expect(resolveProcesses('auto', 16)).toBe(4);
    expect(resolveProcesses('auto', 64)).toBe(16);
    expect(resolveProcesses(8, 2)).toBe(2);
    // A host sees one client: each of 4 processes starts its limit at a quarter of one process's.
    expect(initialHostLimit(4096).limit).toBe(HOST_LIMIT.initial);
    expect(initialHostLimit(4096, 4).limit).toBe(Math.ceil(HOST_LIMIT.initial / 4));
    expect(initialHostLimit(8, 4).limit).toBe(Math.min(8, Math.ceil(HOST_LIMIT.initial / 4)));
  });
});

describe('--processes: one run over several processes', () => {
  it('fetches every row once, honours --limit across them, writes one set of records and resumes', async () => {
    const dir = tmpDir();
    const tag = `p${Date.now()}`;
    const file = await input(dir, 40, tag);
    const out = path.join(dir, 'out');
    const first = await runPcb(['download', file, '--out', out, '--threads', '2', '--processes', '2', '--limit', '30', ...common]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const s = JSON.parse(first.stdout);
    expect(s).toMatchObject({ processes: 2, threads: 2, processed: 30, ok: 30, failed: 0, selected: 30 });
    expect(s.cores_busy).toBeGreaterThan(0);
    expect(s.allocator).toMatch(/^(jemalloc|glibc|system)/);
    // --limit takes the first 30 rows of the file, as one process does; each fetched once.
    expect(requested(tag)).toEqual(range(30));
    expect(
      readdirSync(path.join(out, '.pcb'))
        .filter((f) => f.startsWith('log'))
        .sort(),
    ).toEqual(['log.shard-0-of-2.jsonl', 'log.shard-1-of-2.jsonl']);
    expect((await readParquet(path.join(out, 'manifest.parquet'))).map((m) => m.row)).toEqual(range(30));

    const rest = JSON.parse((await runPcb(['download', file, '--out', out, '--threads', '2', '--processes', '2', ...common])).stdout);
    expect(rest).toMatchObject({ processed: 10, skipped: 30, ok: 10 });
    expect(requested(tag)).toEqual(range(40));
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    expect(manifest.map((m) => m.row)).toEqual(range(40));
    expect(manifest.every((m) => m.status === 'ok')).toBe(true);
    expect((await readParquet(path.join(out, 'metadata.parquet'), '')).length).toBe(40);
    expect(readdirSync(out).filter((f) => f.endsWith('.png')).length).toBe(40);
    const verify = await runPcb(['verify', out]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/records and disk agree/);

    // One process resumes what two wrote.
    const one = JSON.parse((await runPcb(['download', file, '--out', out, '--threads', '1', ...common])).stdout);
    expect(one).toMatchObject({ processed: 0, skipped: 40, processes: 1 });
  });

  it('under --shard, the processes take exactly the shard rows one process would, into the shard records', async () => {
    const dir = tmpDir();
    const tag = `ps${Date.now()}`;
    const file = await input(dir, 40, tag);
    const rowsOf = async (out: string) => (await readParquet(path.join(out, 'manifest.shard-1-of-2.parquet'))).map((m) => m.row);
    const a = await runPcb(['download', file, '--out', path.join(dir, 'a'), '--shard', '1/2', '--threads', '2', '--processes', '2', ...common]);
    const b = await runPcb(['download', file, '--out', path.join(dir, 'b'), '--shard', '1/2', '--threads', '1', ...common]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const rows = await rowsOf(path.join(dir, 'b'));
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(35);
    expect(await rowsOf(path.join(dir, 'a'))).toEqual(rows);
    expect(JSON.parse(a.stdout)).toMatchObject({ shard: '1/2', processes: 2, ok: rows.length });
  });

  for (const [layout, ext] of [
    ['webdataset', '.tar'],
    ['parquet', '.parquet'],
  ])
    it(`${layout}: each process writes its own shards, every sample once, and verify agrees`, async () => {
      const dir = tmpDir();
      const file = await input(dir, 24, `pw${layout}${Date.now()}`);
      const out = path.join(dir, 'out');
      const r = await runPcb([
        'download',
        file,
        '--out',
        out,
        '--threads',
        '2',
        '--processes',
        '2',
        '--output-format',
        layout,
        '--samples-per-tar',
        '5',
        ...common,
      ]);
      expect(r.code).toBe(0);
      const tars = readdirSync(out).filter((f) => f.endsWith(ext) && /^shard-/.test(f));
      expect(tars.some((t) => t.startsWith('shard-0-of-2-'))).toBe(true);
      expect(tars.some((t) => t.startsWith('shard-1-of-2-'))).toBe(true);
      const manifest = await readParquet(path.join(out, 'manifest.parquet'));
      expect(manifest.map((m) => m.row)).toEqual(range(24));
      expect(new Set(manifest.map((m) => m.path)).size).toBe(24);
      const verify = await runPcb(['verify', out]);
      expect(verify.code).toBe(0);
    });

  it('SIGINT stops every process cleanly (exit 130, records of what settled); the rerun does the rest, each row once', async () => {
    const dir = tmpDir();
    const tag = `pi${Date.now()}`;
    const n = 160;
    const file = await input(dir, n, tag, 100);
    const out = path.join(dir, 'out');
    let pid = 0;
    const run = runPcb(['download', file, '--out', out, '--threads', '2', '--processes', '2', '--concurrency', '2', ...common], {
      onSpawn: (p) => {
        pid = p;
      },
    });
    await until(() => loggedAll(out) >= 6, 'rows in the logs');
    process.kill(pid, 'SIGINT');
    const r = await run;
    expect(r.code).toBe(130);
    const s = JSON.parse(r.stdout);
    expect(s.interrupted).toBe(true);
    expect(s.processed).toBeLessThan(n);
    expect((await readParquet(path.join(out, 'manifest.parquet'))).length).toBe(s.processed);
    expect(readdirSync(out).filter((f) => f.endsWith('.png')).length).toBe(s.ok);
    const rest = await runPcb(['download', file, '--out', out, '--threads', '2', '--processes', '2', ...common]);
    expect(rest.code).toBe(0);
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    expect(manifest.map((m) => m.row)).toEqual(range(n));
    expect(manifest.every((m) => m.status === 'ok')).toBe(true);
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('a process killed mid-run: exit 1 naming it, records of every settled row, and the rerun finishes; a killed coordinator takes its processes along', async () => {
    const dir = tmpDir();
    const tag = `pk${Date.now()}`;
    const n = 120;
    const file = await input(dir, n, tag, 100);
    const out = path.join(dir, 'out');
    const args = ['download', file, '--out', out, '--threads', '2', '--processes', '2', '--concurrency', '2', ...common];
    let pid = 0;
    const run = runPcb(args, {
      onSpawn: (p) => {
        pid = p;
      },
    });
    await until(() => loggedAll(out) >= 6 && childPids(pid).length === 2, 'rows in the logs');
    process.kill(childPids(pid)[0], 'SIGKILL');
    const r = await run;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^pcb: process \d of 2 ended \(SIGKILL\) before it finished; .*rerun to resume\n$/);
    const s = JSON.parse(r.stdout);
    expect(s.process_failures.length).toBe(1);
    // The records hold every row a process logged; the summary, those it reported before it was killed (batched every 100 ms).
    const recorded = (await readParquet(path.join(out, 'manifest.parquet'))).length;
    expect(recorded).toBeGreaterThanOrEqual(s.processed);
    expect(recorded).toBe(loggedAll(out));

    // kill -9 of the coordinator: its processes leave at once, and the rerun is not locked out.
    const second = runPcb(args, {
      onSpawn: (p) => {
        pid = p;
      },
    });
    await until(() => childPids(pid).length === 2, 'the processes to start');
    const children = childPids(pid);
    await until(() => loggedAll(out) > s.processed + 4, 'more rows in the logs');
    process.kill(pid, 'SIGKILL');
    await second;
    // The rerun starts as soon as they have exited, reaped or not: a zombie holds no lock.
    await until(() => children.every((c) => !running(c)), 'the processes to leave', 10_000);
    const rest = await runPcb(args);
    expect(rest.stderr).toBe('');
    expect(rest.code).toBe(0);
    const manifest = await readParquet(path.join(out, 'manifest.parquet'));
    expect(manifest.map((m) => m.row)).toEqual(range(n));
    expect(manifest.every((m) => m.status === 'ok')).toBe(true);
    expect(readdirSync(out).filter((f) => f.endsWith('.png')).length).toBe(n);
    expect(readdirSync(out).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
