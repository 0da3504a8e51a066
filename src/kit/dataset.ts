import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { literal, ident } from '../sql.js';

/** The Photo Concept Bucket columns and their parquet types. */
export const DATASET_COLUMNS: Record<string, string> = {
  id: 'BIGINT', url: 'VARCHAR', title: 'VARCHAR', tags: 'VARCHAR', cogvlm_caption: 'VARCHAR', width: 'BIGINT', height: 'BIGINT',
  aspect_ratio: 'DOUBLE', class_label: 'VARCHAR', type: 'VARCHAR', slug: 'VARCHAR', description: 'VARCHAR', alt: 'VARCHAR',
};

export type DatasetRow = Record<string, unknown>;

/** Write rows to a parquet file through DuckDB, with the given column types (default: the dataset's). */
export async function writeParquet(file: string, rows: DatasetRow[], columns: Record<string, string> = DATASET_COLUMNS): Promise<void> {
  const jsonl = `${file}.${process.pid}.jsonl`;
  writeFileSync(jsonl, rows.map((r) => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))).join('\n') + '\n');
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const spec = `{${Object.entries(columns).map(([k, t]) => `${literal(k)}: ${literal(t)}`).join(', ')}}`;
    const tmp = `${file}.${process.pid}.tmp`;
    const select = Object.keys(columns).map(ident).join(', ');
    await conn.run(`COPY (SELECT ${select} FROM read_json(${literal(jsonl)}, format = 'newline_delimited', columns = ${spec})) TO ${literal(tmp)} (FORMAT parquet)`);
    renameSync(tmp, file);
  } finally {
    conn.closeSync();
    rmSync(jsonl, { force: true });
  }
}

const SUBJECTS = ['a mountain lake at dawn', 'a street market in the rain', 'a cup of coffee on a wooden table', 'a dog running on a beach',
  'a city skyline at night', 'autumn leaves on a forest path', 'a portrait of a woman in a red coat', 'a bowl of fresh fruit'];

/** A dataset row in the Photo Concept Bucket shape for an image of w×h served at url. */
export function datasetRow(i: number, url: string, w: number, h: number, over: DatasetRow = {}): DatasetRow {
  const subject = SUBJECTS[i % SUBJECTS.length];
  return {
    id: 1_000_000 + i, url, title: `Photo of ${subject}`, tags: subject.split(' ').filter((t) => t.length > 3).join(', '),
    cogvlm_caption: `The image shows ${subject}, photographed in natural light with a shallow depth of field.`,
    width: w, height: h, aspect_ratio: Math.round((w / h) * 1000) / 1000, class_label: subject.split(' ').pop(),
    type: 'photo', slug: subject.replace(/\s+/g, '-'), description: `A photo of ${subject}.`, alt: `Free stock photo of ${subject}`,
    ...over,
  };
}
