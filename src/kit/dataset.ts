import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { literal, ident } from '../sql.js';

/** The Photo Concept Bucket columns and their parquet types. */
export const DATASET_COLUMNS: Record<string, string> = {
  id: 'BIGINT',
  url: 'VARCHAR',
  title: 'VARCHAR',
  tags: 'VARCHAR',
  cogvlm_caption: 'VARCHAR',
  width: 'BIGINT',
  height: 'BIGINT',
  aspect_ratio: 'DOUBLE',
  class_label: 'VARCHAR',
  type: 'VARCHAR',
  slug: 'VARCHAR',
  description: 'VARCHAR',
  alt: 'VARCHAR',
};

export type DatasetRow = Record<string, unknown>;

/** Write rows to a parquet file through DuckDB, with the given column types (default: the dataset's). */
export async function writeParquet(file: string, rows: DatasetRow[], columns: Record<string, string> = DATASET_COLUMNS): Promise<void> {
  const jsonl = `${file}.${process.pid}.jsonl`;
  writeFileSync(jsonl, rows.map((r) => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))).join('\n') + '\n');
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const spec = `{${Object.entries(columns)
      .map(([k, t]) => `${literal(k)}: ${literal(t)}`)
      .join(', ')}}`;
    const tmp = `${file}.${process.pid}.tmp`;
    const select = Object.keys(columns).map(ident).join(', ');
    await conn.run(
      `COPY (SELECT ${select} FROM read_json(${literal(jsonl)}, format = 'newline_delimited', columns = ${spec})) TO ${literal(tmp)} (FORMAT parquet)`,
    );
    renameSync(tmp, file);
  } finally {
    conn.closeSync();
    rmSync(jsonl, { force: true });
  }
}

const SUBJECTS = [
  'a mountain lake at dawn',
  'a street market in the rain',
  'a cup of coffee on a wooden table',
  'a dog running on a beach',
  'a city skyline at night',
  'autumn leaves on a forest path',
  'a portrait of a woman in a red coat',
  'a bowl of fresh fruit',
];

/** A dataset row in the Photo Concept Bucket shape for an image of w×h served at url. */
export function datasetRow(i: number, url: string, w: number, h: number, over: DatasetRow = {}): DatasetRow {
  const subject = SUBJECTS[i % SUBJECTS.length];
  return {
    id: 1_000_000 + i,
    url,
    title: `Photo of ${subject}`,
    tags: subject
      .split(' ')
      .filter((t) => t.length > 3)
      .join(', '),
    cogvlm_caption: `The image shows ${subject}, photographed in natural light with a shallow depth of field.`,
    width: w,
    height: h,
    aspect_ratio: Math.round((w / h) * 1000) / 1000,
    class_label: subject.split(' ').pop(),
    type: 'photo',
    slug: subject.replace(/\s+/g, '-'),
    description: `A photo of ${subject}.`,
    alt: `Free stock photo of ${subject}`,
    ...over,
  };
}

/**
 * With `fullShape`, the dataset's real weight: 20 columns and CogVLM-length captions (~570 characters,
 * varied per row so that they do not compress away), as `bench:scale` measures memory against.
 */
const LONG_CAPTION_TAIL = ` || ' ' || repeat('The photograph is taken from a low angle in soft daylight, with a shallow depth of field '
          || 'that blurs the background into gentle shapes of colour. ', 3) || md5(i::VARCHAR) || md5((i * 7)::VARCHAR)`;
const FULL_SHAPE_COLUMNS = `,
        'photographer ' || (i % 5000) AS photographer, 'https://www.pexels.com/@user' || (i % 5000) AS photographer_url,
        '#' || substr(md5(i::VARCHAR), 1, 6) AS avg_color, (i % 90000)::BIGINT AS photographer_id, 'pexels' AS license,
        (i % 2 = 0) AS liked, 'jpeg' AS source_format`;

/**
 * A parquet of n rows in the dataset's shape, made inside DuckDB (seconds for the full 567,000):
 * every 10th caption null, every 4th tags empty, Pexels-like sizes. URLs point at `urlBase`.
 */
export async function writeSyntheticDataset(file: string, n: number, urlBase = 'http://127.0.0.1:9', fullShape = false): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const tmp = `${file}.${process.pid}.tmp`;
    await conn.run(`COPY (SELECT (1000000 + i)::BIGINT AS id,
        ${literal(urlBase)} || '/img/photo-' || (i % 100) || '.jpg' AS url,
        'Photo ' || i AS title,
        CASE WHEN i % 4 = 0 THEN '' ELSE 'tag' || (i % 7) || ', tag' || (i % 11) END AS tags,
        CASE WHEN i % 10 = 0 THEN NULL ELSE 'The image shows scene number ' || i || '.'${fullShape ? LONG_CAPTION_TAIL : ''} END AS cogvlm_caption,
        (CASE i % 3 WHEN 0 THEN 6000 WHEN 1 THEN 4000 ELSE 5472 END)::BIGINT AS width,
        (CASE i % 3 WHEN 0 THEN 4000 WHEN 1 THEN 6000 ELSE 3648 END)::BIGINT AS height,
        round(width / height, 3) AS aspect_ratio, 'class' || (i % 5) AS class_label, 'photo' AS type,
        'slug-' || i AS slug, 'Description ' || i AS description, 'Alt ' || i AS alt${fullShape ? FULL_SHAPE_COLUMNS : ''}
      FROM range(${Math.floor(n)}) t(i)) TO ${literal(tmp)} (FORMAT parquet)`);
    renameSync(tmp, file);
  } finally {
    conn.closeSync();
  }
}
