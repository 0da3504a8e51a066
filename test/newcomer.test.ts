/** The newcomer's first hour: what a user sees in a terminal, with hints that say which flag to use. */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PCB, ROOT, runInPty, runPcb, screen, sh, tmpDir, until, useKit } from './helpers.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';

const kit = useKit(4);
const workDir = () => tmpDir();

describe('in a terminal', () => {
  it('Ctrl-C: the bar stops, the notice and the summary each start on a line of their own', async () => {
    const dir = workDir();
    const input = path.join(dir, 'in.parquet');
    await writeParquet(
      input,
      Array.from({ length: 120 }, (_, i) => datasetRow(i, kit.server.url(`/delay/100/${kit.photos[i % kit.photos.length].name}?c=${i}`), 640, 480)),
    );
    const run = runInPty(
      [PCB, 'download', input, '--out', path.join(dir, 'out'), '--allow-private-network', '--threads', '1', '--concurrency', '2', '--resolution', '256'],
      160,
    );
    await until(() => /ok [1-9]\d* failed/.test(run.output()), 'the bar to count a row');
    run.type('\x03');
    const { code, raw } = await run.done;
    expect(code).toBe(130);
    const lines = screen(raw);
    const notice = lines.findIndex((l) => l.includes('SIGINT: finishing rows in flight'));
    const summary = lines.findIndex((l) => l.includes('rows processed of 120 selected'));
    expect(notice, lines.join('\n')).toBeGreaterThan(0);
    expect(lines[notice]).toMatch(/^pcb: SIGINT: finishing rows in flight \(a few seconds; again to quit now\), then writing the records$/);
    expect(lines[summary]).toMatch(/^interrupted: \d+ rows processed of 120 selected$/);
    expect(lines[summary + 1]).toMatch(/^ {2}ok \d+ · failed 0 · skipped 0 \(done before\)$/);
    for (const l of lines.slice(notice)) expect(l).not.toMatch(/img\/s \|/);
  });

  it('at 80 columns the bar fits: counts, failures and ETA all shown', async () => {
    const dir = workDir();
    const input = path.join(dir, 'in.parquet');
    await writeParquet(
      input,
      Array.from({ length: 60 }, (_, i) =>
        datasetRow(i, kit.server.url(i % 7 ? `/delay/50/${kit.photos[i % kit.photos.length].name}?w=${i}` : '/status/404'), 640, 480),
      ),
    );
    const run = runInPty(
      [PCB, 'download', input, '--out', path.join(dir, 'out'), '--allow-private-network', '--threads', '1', '--concurrency', '2', '--resolution', '256'],
      80,
    );
    const { code, raw } = await run.done;
    expect(code).toBe(0);
    const bars = screen(raw).filter((l) => l.includes('img/s |'));
    expect(bars.length).toBeGreaterThan(0);
    for (const b of bars) {
      expect(b.length, b).toBeLessThanOrEqual(80);
      expect(b).toMatch(/ok \d+ failed \d+ \| ETA \S+$/);
    }
    expect(raw).toMatch(/\(1 thread\)/);
    // The bar shows the requests in flight; the summary the most rows in flight and the fixed setting.
    expect(bars.some((b) => /\| \d+ in flight \|/.test(b))).toBe(true);
    expect(raw).toMatch(/in flight: up to \d+ rows \(--concurrency 2\)/);
  });

  it('a closed pipe is a clean exit: no EPIPE, no stack trace', () => {
    for (const args of [['download', '--help'], ['--help']]) {
      const r = spawnSync('bash', ['-c', `${sh(PCB)} ${args.join(' ')} | head -1; echo "exit=\${PIPESTATUS[0]}" >&2`], { encoding: 'utf8' });
      expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.stderr).toMatch(/exit=0/);
      expect(r.stderr).not.toMatch(/EPIPE|Error|at /);
    }
    const help = spawnSync(PCB, ['download', '--help'], { encoding: 'utf8' }).stdout;
    expect(help).toMatch(/--overwrite +redo rows already done \(default: resume\)\n/);
    expect(help).not.toMatch(/\(default: false\)/);
  });

  it("warns when started without bin/pcb and libuv's pool is smaller than --threads", () => {
    const dir = workDir();
    const r = spawnSync('node', [path.join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'download', path.join(dir, 'missing.parquet'), '--threads', '8'], {
      encoding: 'utf8',
      env: { ...process.env, UV_THREADPOOL_SIZE: '' },
    });
    expect(r.stderr).toMatch(/warning: libuv's threadpool has 4 threads for --threads 8.*bin\/pcb/);
  });
});

describe('hints and policies', () => {
  it('loopback URLs: a hint names --allow-private-network, and a rerun with it retries those rows', async () => {
    const dir = workDir();
    const input = path.join(dir, 'in.parquet');
    await writeParquet(
      input,
      Array.from({ length: 5 }, (_, i) => datasetRow(i, kit.server.url(`/img/${kit.photos[i % kit.photos.length].name}`), 640, 480)),
    );
    const out = path.join(dir, 'out');
    const first = await runPcb(['download', input, '--out', out]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/hint: 5 rows were refused as blocked_address .*add --allow-private-network/);
    const again = JSON.parse((await runPcb(['download', input, '--out', out, '--allow-private-network', '--json'])).stdout);
    expect([again.processed, again.ok, again.skipped]).toEqual([5, 5, 0]);
  });

  it('says how many skipped rows failed for good and how to retry them; shows the top HTTP statuses', async () => {
    const dir = workDir();
    const input = path.join(dir, 'in.parquet');
    const urls = ['/status/404', '/status/404', '/status/403', `/img/${kit.photos[0].name}`];
    await writeParquet(
      input,
      urls.map((u, i) => datasetRow(i, kit.server.url(`${u}?s=${i}`), 640, 480)),
    );
    const out = path.join(dir, 'out');
    const first = await runPcb(['download', input, '--out', out, '--allow-private-network']);
    expect(first.stdout).toMatch(/http_status +3 \(404 ×2, 403 ×1\)/);
    const second = await runPcb(['download', input, '--out', out, '--allow-private-network']);
    expect(second.stdout).toMatch(/skipped 4 \(done before: 1 ok, 3 failed for good\)/);
    expect(second.stdout).toMatch(/hint: 3 of the skipped rows failed for good before: --retry-failed retries them/);
  });

  it('--max-failure-rate: exit 3 with one line above it, 0 at or under it', async () => {
    const dir = workDir();
    const input = path.join(dir, 'in.parquet');
    await writeParquet(
      input,
      Array.from({ length: 4 }, (_, i) => datasetRow(i, kit.server.url(i < 3 ? `/status/404?f=${i}` : `/img/${kit.photos[0].name}`), 640, 480)),
    );
    const over = await runPcb(['download', input, '--out', path.join(dir, 'a'), '--allow-private-network', '--quiet', '--max-failure-rate', '0.5']);
    expect(over.code).toBe(3);
    expect(over.stderr.trim().split('\n')).toEqual(['pcb: 3 of 4 rows failed (75.0 %), above --max-failure-rate 0.5; the manifest says why']);
    const under = await runPcb(['download', input, '--out', path.join(dir, 'b'), '--allow-private-network', '--quiet', '--max-failure-rate', '0.75']);
    expect(under.code).toBe(0);
    const bad = await runPcb(['download', input, '--out', path.join(dir, 'c'), '--max-failure-rate', '20%']);
    expect(bad.code).toBe(2);
  });

  it('pcb status without the input it was made from: what the log knows, and how to count the rest', async () => {
    const dir = workDir();
    const input = path.join(dir, 'in.parquet');
    await writeParquet(
      input,
      Array.from({ length: 3 }, (_, i) => datasetRow(i, kit.server.url(i ? `/img/${kit.photos[0].name}?x=${i}` : '/status/404'), 640, 480)),
    );
    const out = path.join(dir, 'out');
    await runPcb(['download', input, '--out', out, '--allow-private-network', '--quiet']);
    renameSync(input, path.join(dir, 'moved.parquet'));
    expect(existsSync(input)).toBe(false);
    const r = await runPcb(['status', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/2 ok, 1 failed/);
    expect(r.stdout).toMatch(/http_status +1/);
    expect(r.stdout).toMatch(/rows left: unknown: the input .*in\.parquet is not there any more; pass --input <parquet>/);
    const withInput = await runPcb(['status', out, '--input', path.join(dir, 'moved.parquet')]);
    expect(withInput.stdout).toMatch(/left to do in .*moved\.parquet: 0 of 3 selected rows/);
    expect(readFileSync(path.join(out, '.pcb', 'run.json'), 'utf8')).toContain('in.parquet');
  });
});
