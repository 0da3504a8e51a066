/**
 * Hashes in the records and `--verify-hash`: each ok row's sha256 of the bytes the server sent, and a
 * check of those bytes against a hash column of the input (sha256 or md5), through the real bin/pcb.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { DATASET_COLUMNS, datasetRow, writeParquet } from '../src/kit/dataset.js';
import { readParquet, runPcb, tmpDir, useKit } from './helpers.js';

const kit = useKit(4);
const common = ['--allow-private-network', '--resolution', '128', '--quiet', '--json', '--threads', '1'];
const hash = (algo: string, data: Buffer) => createHash(algo).update(data).digest('hex');

/** Six rows: the right hash (in upper case for one), a wrong one, none, and an empty one. */
async function input(dir: string, algo: string): Promise<string> {
  const file = path.join(dir, `in-${algo}.parquet`);
  const given = (i: number): string | null => {
    const right = hash(algo, kit.photos[i % kit.photos.length].data);
    return [right, right.toUpperCase(), 'f'.repeat(right.length), null, '', ` ${right} `][i];
  };
  await writeParquet(
    file,
    Array.from({ length: 6 }, (_, i) =>
      datasetRow(i, kit.server.url(`/img/${kit.photos[i % kit.photos.length].name}?h=${algo}${i}`), 640, 480, { checksum: given(i) }),
    ),
    { ...DATASET_COLUMNS, checksum: 'VARCHAR' },
  );
  return file;
}

describe('hashes', () => {
  for (const [algo, flag] of [
    ['sha256', 'checksum'],
    ['sha256', 'checksum:sha256'],
    ['md5', 'checksum:md5'],
  ]) {
    it(`--verify-hash ${flag}: a right hash (any case, spaces trimmed) passes, a wrong one fails as hash_mismatch with both values, none is not checked`, async () => {
      const dir = tmpDir();
      const file = await input(dir, algo);
      const out = path.join(dir, 'out');
      const r = await runPcb(['download', file, '--out', out, '--verify-hash', flag, ...common]);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: 5, failed: 1 });
      const manifest = await readParquet(path.join(out, 'manifest.parquet'));
      expect(manifest.map((m) => m.status)).toEqual(['ok', 'ok', 'failed', 'ok', 'ok', 'ok']);
      const bad = manifest[2];
      const got = hash(algo, kit.photos[2 % kit.photos.length].data);
      expect(bad.error).toBe('hash_mismatch');
      expect(bad.message).toBe(`${algo} of the downloaded bytes is ${got}; the input says ${'f'.repeat(got.length)}`);
      // The records keep the sha256 of what came, for every row that downloaded, the mismatch included.
      for (const m of manifest) expect(m.sha256).toBe(hash('sha256', kit.photos[Number(m.row) % kit.photos.length].data));
      // A mismatch is for good: a rerun leaves it alone.
      const rerun = JSON.parse((await runPcb(['download', file, '--out', out, '--verify-hash', flag, ...common])).stdout);
      expect([rerun.processed, rerun.skipped]).toEqual([0, 6]);
    });
  }

  it('an unknown algorithm is one line and exit 2; an unknown column one line and exit 1', async () => {
    const dir = tmpDir();
    const file = await input(dir, 'sha256');
    const algo = await runPcb(['download', file, '--out', path.join(dir, 'a'), '--verify-hash', 'checksum:crc32']);
    expect(algo.code).toBe(2);
    expect(algo.stderr.trim().split('\n')).toHaveLength(1);
    expect(algo.stderr).toMatch(/--verify-hash: the algorithm is one of sha256, md5, got 'crc32'/);
    const column = await runPcb(['download', file, '--out', path.join(dir, 'b'), '--verify-hash', 'nope']);
    expect(column.code).toBe(1);
    expect(column.stderr.trim().split('\n')).toHaveLength(1);
    expect(column.stderr).toMatch(/column 'nope' \(--verify-hash\) is not in/);
  });
});
