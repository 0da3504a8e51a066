/**
 * Parquet output: shards `<name>.parquet` whose rows are samples: `image` as the Hugging Face `Image`
 * feature stores it (`{bytes, path}`), the caption pcb chose, the sample's key and sizes, and every input
 * column as metadata.parquet has it. The file's key-value metadata names the `image` feature, so
 * `datasets.load_dataset("parquet", …)` decodes it with no code; row groups hold ROWS_PER_GROUP samples.
 *
 * A worker spools its open shard as JSON lines (the image in base64) into a folder under the run's
 * temporary folder, one file per row group. When the shard closes, DuckDB turns the spool into the
 * parquet file, reading the input columns back with their own types (a BIGINT beyond 2^53, a DOUBLE, a
 * date, a list). A kill leaves only spools, which never enter the folder: their rows are redone.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { DuckDBBlobValue } from '@duckdb/node-api';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Column } from '../input/source.js';
import { ident, literal } from '../sql.js';
import { tempName } from './folder.js';
import { RENAMED } from './records.js';

export const PARQUET_EXT = '.parquet';
/** Samples per row group: what `datasets` writes for image data, so that a reader streams a shard. */
export const ROWS_PER_GROUP = 100;
const SPOOL = '.spool';

/** The spool folder of a shard, beside it in the temporary folder. */
export const spoolDir = (tmpDir: string, shard: string) => path.join(tmpDir, shard + SPOOL);
export const isSpoolName = (n: string) => n.endsWith(PARQUET_EXT + SPOOL);
export const shardOfSpool = (n: string) => n.slice(0, -SPOOL.length);

/** One sample's spool line: its image (base64), key, file name, pcb's own fields and the input's columns, as JSON. */
export function spoolLine(s: { key: string; fileName: string; image: Buffer; own: string; columns: string | null }): string {
  return `{"image":"${s.image.toString('base64')}","key":${JSON.stringify(s.key)},"file_name":${JSON.stringify(s.fileName)},"own":${s.own},"input":${s.columns?.trim() || '{}'}}\n`;
}

/**
 * One worker's open shard as a spool: a line per sample, a new file every ROWS_PER_GROUP samples. Each
 * line is one write; a failed write is cut off again, so the spool holds whole samples only.
 */
export class ParquetSpool {
  private fd: number | null = null;
  private file = '';
  private size = 0;
  private samples = 0;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  get count(): number {
    return this.samples;
  }

  add(line: string): void {
    if (this.fd === null || this.samples % ROWS_PER_GROUP === 0) {
      if (this.fd !== null) closeSync(this.fd);
      this.file = path.join(this.dir, `${String(this.samples / ROWS_PER_GROUP).padStart(5, '0')}.jsonl`);
      this.fd = openSync(this.file, 'w');
      this.size = 0;
    }
    const bytes = Buffer.from(line, 'utf8');
    try {
      for (let done = 0; done < bytes.length; ) {
        const n = writeSync(this.fd, bytes, done, bytes.length - done, this.size + done);
        if (n === 0) throw new Error(`no byte written to ${this.file}`);
        done += n;
      }
    } catch (err) {
      try {
        ftruncateSync(this.fd, this.size);
      } catch {
        /* the write's own error is the one to report */
      }
      throw err;
    }
    this.size += bytes.length;
    this.samples++;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * The spool's files in order, each cut after its last whole line (a kill mid-write), empty ones gone; and
 * the longest line, which sets DuckDB's JSON buffer (it allocates that much per buffer, whatever a line needs).
 */
function spoolFiles(dir: string): { files: string[]; longest: number } {
  const files: string[] = [];
  let longest = 0;
  const buf = Buffer.alloc(1 << 20);
  for (const f of readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()) {
    const file = path.join(dir, f);
    const fd = openSync(file, 'r+');
    try {
      let end = 0;
      let at = 0;
      for (let n = readSync(fd, buf, 0, buf.length, 0); n > 0; n = readSync(fd, buf, 0, buf.length, at)) {
        for (let i = buf.indexOf(0x0a); i >= 0 && i < n; i = buf.indexOf(0x0a, i + 1)) {
          longest = Math.max(longest, at + i + 1 - end);
          end = at + i + 1;
        }
        at += n;
      }
      if (end < at) ftruncateSync(fd, end);
      if (end > 0) files.push(file);
    } finally {
      closeSync(fd);
    }
  }
  return { files, longest };
}

/** pcb's columns of a shard row, after `image`: the same names metadata.parquet gives them. */
const OWN = ['caption', 'caption_source', 'key', 'file_name', 'width', 'height'];

/** The Hugging Face features entry: `image` is an Image, decoded by `datasets` from its bytes. */
const HF_METADATA = JSON.stringify({ info: { features: { image: { _type: 'Image' } } } });

/**
 * Turns a closed shard's spool into `dest` (written beside it, renamed into place whole); false when the
 * spool holds no whole sample. `columns` are the input's, with their DuckDB types.
 */
export async function spoolToParquet(conn: DuckDBConnection, dir: string, dest: string, columns: Column[]): Promise<boolean> {
  const { files, longest } = existsSync(dir) ? spoolFiles(dir) : { files: [], longest: 0 };
  if (!files.length) {
    rmSync(dir, { recursive: true, force: true });
    return false;
  }
  const input = columns.length ? `STRUCT(${columns.map((c) => `${ident(c.name)} ${c.type}`).join(', ')})` : 'JSON';
  const taken = new Set([...OWN, 'image']);
  const inputCols = columns.map((c) => {
    const name = RENAMED[c.name] ?? (taken.has(c.name) ? `original_${c.name}` : c.name);
    return `input.${ident(c.name)} AS ${ident(name)}`;
  });
  // pcb's own sizes of the source image, where the input has no width and height of its own to keep.
  const has = (n: string) => columns.some((c) => c.name === n);
  const own = [...(has('width') ? [] : ['own.original_width AS original_width']), ...(has('height') ? [] : ['own.original_height AS original_height'])];
  const tmp = tempName(dest);
  await conn.run(`COPY (
    SELECT {'bytes': from_base64(image), 'path': file_name} AS image, own.caption AS caption, own.caption_source AS caption_source, key, file_name,
      own.width AS width, own.height AS height${[...own, ...(columns.length ? inputCols : [])].map((c) => `, ${c}`).join('')}
    FROM read_json([${files.map(literal).join(', ')}], format = 'newline_delimited', maximum_object_size = ${Math.max(longest + 1024, 1 << 20)},
      columns = {image: 'VARCHAR', key: 'VARCHAR', file_name: 'VARCHAR',
        own: 'STRUCT(caption VARCHAR, caption_source VARCHAR, width INTEGER, height INTEGER, original_width INTEGER, original_height INTEGER)',
        input: ${literal(input)}})
  ) TO ${literal(tmp)} (FORMAT parquet, ROW_GROUP_SIZE ${ROWS_PER_GROUP}, KV_METADATA {huggingface: ${literal(HF_METADATA)}})`);
  renameSync(tmp, dest);
  rmSync(dir, { recursive: true, force: true });
  return true;
}

/**
 * Each sample of a shard file, a row group at a time (memory holds one, whatever the shard's size): its
 * member name (`<key>.<ext>`), its caption, and its image's bytes.
 */
export async function eachShardSample(
  conn: DuckDBConnection,
  file: string,
  visit: (s: { member: string; caption: string | null; image: Buffer | null }) => void | Promise<void>,
  only: Set<string> | null = null,
): Promise<void> {
  const where = only ? ` WHERE image.path IN (${[...only].map(literal).join(', ') || 'NULL'})` : '';
  const result = await conn.stream(`SELECT image.path AS member, caption, image.bytes AS bytes FROM read_parquet(${literal(file)})${where}`);
  for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
    for (const [member, caption, blob] of chunk.getRows()) {
      const bytes = blob instanceof DuckDBBlobValue ? blob.bytes : null;
      await visit({
        member: String(member),
        caption: caption === null ? null : String(caption),
        image: bytes ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) : null,
      });
    }
  }
}

/** The dataset card that makes `load_dataset("<out>")` (and SimpleTuner's huggingface backend) read the shards and nothing else. */
export const DATASET_CARD = `---
configs:
- config_name: default
  data_files:
  - split: train
    path:
    - "pcb-*.parquet"
    - "shard-*-of-*.parquet"
---

Written by pcb (\`pcb download --output-format parquet\`). Each row is one sample: \`image\` (the encoded
image as written, a Hugging Face \`Image\`), \`caption\`, \`key\`, \`width\` and \`height\` of the written image,
and the input's columns. \`manifest.parquet\` and \`metadata.parquet\` beside the shards are pcb's records.
`;
