/**
 * pcb's output as readers nobody here wrote read it: one caption rule in both engines, the tar's .json
 * keeping each column's type, and Hugging Face `datasets` loading a folder and tars as they are.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { captionText, captionTextSql, captionWords, captionWordsSql } from '../src/input/caption.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import { photoSet } from '../src/kit/photos.js';
import { scanTar } from '../src/output/tar.js';
import { ROOT, readParquet, runPcb, tmpDir, useKit } from './helpers.js';

/** Captions with whitespace of every kind at their ends, and inside. */
const TRICKY = [
  'Paint colours mixed on a palette.\n',
  '\n',
  '\u00a0\u3000 Tabs\tinside and a carriage return \r\n',
  '\ufeff\u2028 byte order mark and line separator \u2029\u205f',
  '  ',
  '\u000b\u000c vertical tab, form feed \u1680\u2000\u200a\u202f',
  'no space at all',
  '\u0085 next line (not trimmed by JavaScript) \u0085',
];

describe('one caption rule', () => {
  it('DuckDB and JavaScript make the same text of every caption, lists included', async () => {
    const conn = await (await DuckDBInstance.create(':memory:')).connect();
    try {
      for (const s of [...TRICKY, 'words\u3000apart\u00a0by\u2009unicode\u000bspaces']) {
        const sql = (await conn.runAndReadAll(`SELECT ${captionTextSql('$1', 'VARCHAR')} AS t, ${captionWordsSql('$1')} AS w`, [s])).getRowObjectsJS()[0];
        expect(sql.t, JSON.stringify(s)).toBe(captionText(s));
        expect(captionText(s)).toBe(s.trim());
        // The report's caption lengths: words counted the same way in both engines.
        expect(Number(sql.w), JSON.stringify(s)).toBe(captionWords(s));
        expect(captionWords(s)).toBe(s.trim() ? s.trim().split(/\s+/).length : 0);
      }
      const list = ['  red ', '', null, 'car\u00a0', '\n'];
      const sql = (
        await conn.runAndReadAll(`SELECT ${captionTextSql(`['  red ', '', NULL, 'car' || chr(160), chr(10)]`, 'VARCHAR[]')} AS t`)
      ).getRowObjectsJS()[0].t;
      expect(sql).toBe('red, car');
      expect(captionText(list)).toBe('red, car');
    } finally {
      conn.closeSync();
    }
  });
});

const kit = useKit(3, [640, 480]);

/** A parquet in the dataset's shape with tricky captions, a square photo, and columns of many types. */
async function trickyInput(dir: string): Promise<{ file: string; n: number }> {
  const [square] = await photoSet(1, [512, 512], 85);
  kit.server.put(square.name, square.data);
  const photos = [...kit.photos, square];
  const n = TRICKY.length;
  const rows = TRICKY.map((caption, i) => {
    const p = photos[i % photos.length];
    return datasetRow(i, kit.server.url(`/img/${p.name}?r=${i}`), p.width, p.height, {
      cogvlm_caption: caption,
      tags: i === 1 ? 'garden, path' : ' \u3000',
      aspect_ratio: p.width / p.height,
    });
  });
  const base = path.join(dir, 'base.parquet');
  await writeParquet(base, rows);
  const file = path.join(dir, 'in.parquet');
  const conn = await (await DuckDBInstance.create(':memory:')).connect();
  await conn.run(`COPY (SELECT *,
      CASE id % 4 WHEN 0 THEN 1.0 WHEN 1 THEN 'nan'::DOUBLE WHEN 2 THEN '-inf'::DOUBLE ELSE 2.5 END AS score,
      (9007199254740993 + id)::BIGINT AS big,
      DATE '2024-01-01' + (id % 7)::INTEGER AS taken,
      ['a', NULL, 'b'] AS labels
    FROM read_parquet('${base}') ORDER BY id) TO '${file}' (FORMAT parquet)`);
  conn.closeSync();
  return { file, n };
}

/** The tricky input written as a flat folder, as tars and as parquet shards (three per run: row groups and shards both close early). */
async function allLayouts(): Promise<{ n: number; files: string; tars: string; shards: string }> {
  const dir = tmpDir();
  const { file, n } = await trickyInput(dir);
  const files = path.join(dir, 'files');
  const tars = path.join(dir, 'tars');
  const shards = path.join(dir, 'shards');
  const common = ['--allow-private-network', '--quiet', '--json', '--threads', '2', '--resolution', '256'];
  expect((await runPcb(['download', file, '--out', files, ...common])).code).toBe(0);
  expect((await runPcb(['download', file, '--out', tars, ...common, '--output-format', 'webdataset'])).code).toBe(0);
  expect((await runPcb(['download', file, '--out', shards, ...common, '--output-format', 'parquet', '--samples-per-shard', '3'])).code).toBe(0);
  return { n, files, tars, shards };
}

const shardFiles = (out: string) =>
  readdirSync(out)
    .filter((f) => /^pcb-.*\.parquet$/.test(f))
    .map((f) => path.join(out, f));

function tarSamples(out: string): Map<string, Record<string, string>> {
  const samples = new Map<string, Record<string, string>>();
  for (const t of readdirSync(out).filter((f) => f.endsWith('.tar'))) {
    const data = readFileSync(path.join(out, t));
    for (const m of scanTar(path.join(out, t)).members) {
      const dot = m.name.indexOf('.');
      const key = m.name.slice(0, dot);
      if (!samples.has(key)) samples.set(key, {});
      samples.get(key)![m.name.slice(dot + 1)] = data.subarray(m.offset, m.offset + m.length).toString('utf8');
    }
  }
  return samples;
}

describe('files and tars as written', () => {
  it('the .txt, metadata.parquet, the tar .txt and .json and the parquet shards hold the same caption; the .json and the shards keep each column type', async () => {
    const { n, files, tars, shards } = await allLayouts();
    const meta = await readParquet(path.join(files, 'metadata.parquet'), 'id');
    const manifest = await readParquet(path.join(files, 'manifest.parquet'));
    expect(meta).toHaveLength(n);
    const samples = tarSamples(tars);
    expect(samples.size).toBe(n);
    for (const [i, m] of meta.entries()) {
      const expected = captionText(TRICKY[i]) || captionText(i === 1 ? 'garden, path' : ' \u3000');
      const txt = readFileSync(path.join(files, `${m.id}.txt`), 'utf8');
      expect(txt, `row ${i}`).toBe(expected);
      expect(m.caption, `row ${i}`).toBe(txt);
      expect(manifest[i].caption_source).toBe(captionText(TRICKY[i]) ? 'primary' : expected ? 'fallback' : 'none');
      const s = samples.get(String(m.id))!;
      expect(s.txt).toBe(txt);
      const json = JSON.parse(s.json);
      expect(json.caption).toBe(txt);
      // Types as the input has them: a whole DOUBLE stays a number with a fraction, a BIGINT past 2^53 keeps every digit.
      expect(s.json).toMatch(/"aspect_ratio":\d+\.\d+/);
      expect(s.json).toContain(`"big":${9007199254740993n + BigInt(Number(m.id))}`);
      expect(s.json).toMatch(new RegExp(`"score":${[`1.0`, 'null', 'null', '2.5'][Number(m.id) % 4].replace('.', '\\.')}[,}]`));
      expect(json.taken).toMatch(/^2024-01-0\d$/);
      expect(json.labels).toEqual(['a', null, 'b']);
    }
    // The parquet shards, as DuckDB reads them: one row per ok row, the same caption, each column in its own type.
    const conn = await (await DuckDBInstance.create(':memory:')).connect();
    try {
      const list = shardFiles(shards)
        .map((f) => `'${f}'`)
        .join(', ');
      const types = Object.fromEntries(
        (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet([${list}])`)).getRowObjectsJS().map((r) => [r.column_name, r.column_type]),
      );
      expect(types).toMatchObject({
        image: 'STRUCT(bytes BLOB, path VARCHAR)',
        caption: 'VARCHAR',
        big: 'BIGINT',
        score: 'DOUBLE',
        taken: 'DATE',
        labels: 'VARCHAR[]',
      });
      const rows = (
        await conn.runAndReadAll(
          `SELECT id, caption, big::VARCHAR AS big, score, taken::VARCHAR AS taken, labels, octet_length(image.bytes) AS bytes FROM read_parquet([${list}]) ORDER BY id`,
        )
      ).getRowObjectsJS();
      expect(rows).toHaveLength(n);
      for (const [i, m] of meta.entries()) {
        expect(String(rows[i].id)).toBe(String(m.id));
        expect(rows[i].caption, `row ${i}`).toBe(m.caption);
        expect(rows[i].big).toBe(String(9007199254740993n + BigInt(Number(m.id))));
        // NaN and ±Infinity have no JSON form: in a shard, as in a tar's .json, they are null.
        expect(rows[i].score).toBe([1, null, null, 2.5][Number(m.id) % 4]);
        expect(rows[i].taken).toBe(`2024-01-0${1 + (Number(m.id) % 7)}`);
        expect(Number(rows[i].bytes)).toBeGreaterThan(100);
      }
    } finally {
      conn.closeSync();
    }
  });
});

/** A Python with `datasets` and Pillow in a venv of the project's cache, made once; null (with why) where it cannot be. */
function hfPython(): { python: string | null; why: string } {
  const venv = path.join(ROOT, '.cache', 'hf-venv');
  const python = path.join(venv, 'bin', 'python');
  const ready = () => existsSync(python) && spawnSync(python, ['-c', 'import datasets, PIL'], { stdio: 'ignore' }).status === 0;
  if (ready()) return { python, why: '' };
  const mk = spawnSync('python3', ['-m', 'venv', venv], { encoding: 'utf8' });
  if (mk.status !== 0)
    return { python: null, why: `python3 -m venv failed (${(mk.stderr || mk.error?.message || '').trim().split('\n').pop()}); apt-get install python3-venv` };
  // Bounded: an index that cannot be reached must not cost minutes of retries.
  const pip = spawnSync(python, ['-m', 'pip', 'install', '--retries', '0', '--timeout', '20', '-q', 'datasets', 'pillow'], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (!ready()) return { python: null, why: `pip could not install datasets and Pillow (${(pip.stderr || '').trim().split('\n').pop()})` };
  return { python, why: '' };
}

describe('Hugging Face datasets reads the output as it is', () => {
  const hf = hfPython();
  if (!hf.python) process.stderr.write(`readers.test: skipping the datasets checks: ${hf.why}\n`);
  const withHf = hf.python ? it : it.skip;
  const load = (args: string[]) => {
    const r = spawnSync(hf.python!, [path.join(import.meta.dirname, 'fixtures', 'hf-load.py'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, HF_DATASETS_OFFLINE: '1', HF_HUB_OFFLINE: '1', HF_HOME: path.join(tmpDir(), 'hf') },
      maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw new Error(`datasets failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return JSON.parse(r.stdout) as { features: Record<string, string>; rows: Record<string, unknown>[] };
  };

  withHf(
    'imagefolder on a files output, webdataset on its tars, parquet on its shards (and on the folder): every ok row, images at their written sizes, caption = .txt, every column',
    async () => {
      const { n, files, tars, shards } = await allLayouts();
      const meta = await readParquet(path.join(files, 'metadata.parquet'), 'id');

      const folder = load(['imagefolder', files]);
      expect(folder.rows).toHaveLength(n);
      const byId = new Map(folder.rows.map((r) => [String(r.id), r]));
      for (const m of meta) {
        const r = byId.get(String(m.id))!;
        expect(r.image).toEqual({ image: [Number(m.width), Number(m.height)] });
        expect(r.caption).toBe(readFileSync(path.join(files, `${m.id}.txt`), 'utf8'));
        for (const col of ['url', 'title', 'original_width', 'original_height']) expect(String(r[col]), col).toBe(String(m[col]));
        expect(r.cogvlm_caption).toBe(TRICKY[Number(m.id) - 1_000_000]);
        expect(String(r.big)).toBe(String(9007199254740993n + BigInt(Number(m.id))));
      }

      const tarFiles = readdirSync(tars)
        .filter((f) => f.endsWith('.tar'))
        .map((f) => path.join(tars, f));
      const wds = load(['webdataset', ...tarFiles]);
      expect(wds.rows).toHaveLength(n);
      for (const r of wds.rows) {
        const json = r.json as Record<string, unknown>;
        const m = meta.find((x) => String(x.id) === String(json.id))!;
        expect(r.png).toEqual({ image: [Number(m.width), Number(m.height)] });
        expect(r.txt).toBe(m.caption);
        expect(json.caption).toBe(m.caption);
        // Every digit of a BIGINT past 2^53 (hf-load.py prints such integers as text).
        expect(String(json.big)).toBe(String(9007199254740993n + BigInt(Number(m.id))));
        expect(json.aspect_ratio).toBeTypeOf('number');
      }

      // Parquet shards: by their files, and by the folder (its dataset card names the shards, not pcb's records).
      for (const args of [
        ['parquet', ...shardFiles(shards)],
        ['folder', shards],
      ]) {
        const got = load(args);
        expect(got.features.image, args[0]).toMatch(/^Image\(/);
        expect(got.rows, args[0]).toHaveLength(n);
        for (const r of got.rows) {
          const m = meta.find((x) => String(x.id) === String(r.id))!;
          expect(r.image).toEqual({ image: [Number(m.width), Number(m.height)] });
          expect(r.caption).toBe(readFileSync(path.join(files, `${m.id}.txt`), 'utf8'));
          expect([r.width, r.height]).toEqual([Number(m.width), Number(m.height)]);
          for (const col of ['url', 'title', 'original_width', 'original_height']) expect(String(r[col]), col).toBe(String(m[col]));
          expect(r.cogvlm_caption).toBe(TRICKY[Number(m.id) - 1_000_000]);
          expect(String(r.big)).toBe(String(9007199254740993n + BigInt(Number(m.id))));
        }
      }
    },
  );
});
