/**
 * Where an ok row's sample lands, behind one interface (after webdataset's TarWriter): a flat folder
 * (`<id>.<ext>` + `<id>.txt`), tar shards (`--output-format webdataset`) or parquet shards
 * (`--output-format parquet`). Chosen once per worker from the options; processRow does not know which.
 */
import path from 'node:path';
import { captionFileName } from '../input/row.js';
import { TarShardWriter, memberPath, sampleKey, shardName, splitMemberPath } from './tars.js';
import type { TarShardOptions } from './tars.js';
import { PARQUET_EXT, ParquetSpool, spoolDir, spoolLine } from './parquet-shards.js';
import { openStore } from './store.js';
import type { OutputStore, Store, StoreSpec } from './store.js';

export type OutputFormat = 'files' | 'webdataset' | 'parquet';

/** Keys of a sample's .json that pcb sets: a tar's sample leaves out input columns of the same name. */
export const SAMPLE_KEYS = new Set(['id', 'row', 'url', 'caption', 'caption_source', 'width', 'height', 'original_width', 'original_height']);

/** The input columns each sample carries: a tar's .json the ones pcb does not set itself, a parquet row all of them; files none. */
export function sampleColumnsFor(format: OutputFormat, names: string[]): string[] | null {
  if (format === 'webdataset') return names.filter((n) => !SAMPLE_KEYS.has(n));
  return format === 'parquet' ? names : null;
}

export interface Sample {
  id: string;
  /** The image's extension: png, jpg, webp. */
  ext: string;
  image: Buffer;
  caption: string;
  /** What pcb knows of the row and the written image (SAMPLE_KEYS), as JSON text. */
  own: string;
  /** The input's columns this layout carries (sampleColumnsFor), as DuckDB wrote them in JSON; never parsed (JSON.parse turns 1.0 into 1). */
  columns: string | null;
  /** The image this row wrote before under another name (--overwrite into another format). */
  previousPath: string | null;
}

export interface Written {
  /** What the manifest records: `<id>.<ext>`, or `<tar>/<member>`. */
  path: string;
  /** A shard (tar or parquet) this sample filled and closed, in the temporary folder: moved into place once the row is logged. */
  closedTar: string | null;
}

export interface SampleWriter {
  /** Writes one sample whole or not at all. */
  write(s: Sample): Promise<Written>;
  /** Its bytes stay in memory until written (an upload): they count against the memory budget meanwhile. */
  readonly holdsBytes?: boolean;
  /** Retries the store asked for (throttling, dropped connections), since the last call. */
  takeRetries?(): number;
}

/** `<id>.<ext>` and `<id>.txt` in the store, together or not at all. */
export class FilesWriter implements SampleWriter {
  readonly holdsBytes: boolean;
  /** Only a store that sends requests has retries to count (a folder's rows skip the count). */
  readonly takeRetries?: () => number;
  constructor(private readonly store: Store) {
    this.holdsBytes = store.holdsBytes;
    const retries = (store as Partial<OutputStore>).takeRetries;
    if (store.holdsBytes && retries) this.takeRetries = () => retries.call(store) ?? 0;
  }

  async write(s: Sample): Promise<Written> {
    const name = `${s.id}.${s.ext}`;
    const objects = [
      { name, data: s.image },
      { name: captionFileName(name), data: s.caption },
    ];
    await this.store.putAll(objects);
    try {
      // --overwrite into another format: the row's old image goes once the new one is in place (its caption has the same name: replaced).
      // A sample of a shard went with its shard (--overwrite removes them): its member's name may be this very file's.
      if (s.previousPath && s.previousPath !== name && !splitMemberPath(s.previousPath)) await this.store.remove(path.basename(s.previousPath));
    } catch (err) {
      await Promise.all(objects.map((o) => this.store.remove(o.name).catch(() => undefined)));
      throw err;
    }
    return { path: name, closedTar: null };
  }
}

/** One sample per ok row in this worker's open tar: `<key>.<ext>`, `<key>.txt`, `<key>.json`. */
export class TarWriter implements SampleWriter {
  private readonly shards: TarShardWriter;
  constructor(
    o: TarShardOptions,
    /** Opened only when a sample replaces flat files (a bucket's SDK is not loaded by a worker that never needs it). */
    private readonly store: () => Promise<Store>,
  ) {
    this.shards = new TarShardWriter(o);
  }

  async write(s: Sample): Promise<Written> {
    const key = sampleKey(s.id);
    const image = `${key}.${s.ext}`;
    const { tar, closed } = this.shards.add([
      { name: image, data: s.image },
      { name: `${key}.txt`, data: Buffer.from(s.caption, 'utf8') },
      { name: `${key}.json`, data: Buffer.from(tarMeta(s.own, s.columns), 'utf8') },
    ]);
    await dropFlatFiles(s.previousPath, this.store);
    return { path: memberPath(tar, image), closedTar: closed ? tar : null };
  }
}

/** --overwrite of a flat folder into shards: the row's old image and caption go once its sample is in a shard. */
async function dropFlatFiles(previous: string | null, store: () => Promise<Store>): Promise<void> {
  if (!previous || splitMemberPath(previous)) return;
  const opened = await store();
  await opened.remove(path.basename(previous));
  await opened.remove(captionFileName(path.basename(previous)));
}

/** A tar sample's .json: pcb's own keys, then the input's other columns. */
export function tarMeta(own: string, columns: string | null): string {
  const c = columns?.trim() ?? '';
  return c.length > 2 ? `${own.slice(0, -1)},${c.slice(1)}` : own;
}

/** One sample per ok row in this worker's open parquet shard, spooled until the shard closes (see parquet-shards.ts). */
export class ParquetWriter implements SampleWriter {
  private spool: ParquetSpool | null = null;
  private name = '';
  private seq = 0;
  constructor(
    private readonly o: TarShardOptions,
    private readonly store: () => Promise<Store>,
  ) {}

  async write(s: Sample): Promise<Written> {
    if (!this.spool) {
      this.name = shardName(this.o.prefix, this.o.run, this.o.worker, this.seq++, PARQUET_EXT);
      this.spool = new ParquetSpool(spoolDir(this.o.tmpDir, this.name));
    }
    const key = sampleKey(s.id);
    const member = `${key}.${s.ext}`;
    this.spool.add(spoolLine({ key, fileName: member, image: s.image, own: s.own, columns: s.columns }));
    await dropFlatFiles(s.previousPath, this.store);
    const shard = this.name;
    if (this.spool.count < this.o.samplesPerTar) return { path: memberPath(shard, member), closedTar: null };
    // Full: the main thread turns the spool into the shard once this row is logged.
    this.spool.close();
    this.spool = null;
    return { path: memberPath(shard, member), closedTar: shard };
  }
}

/** What a worker needs to know to make its writer (sent once, in WorkerConfig). */
export interface OutputSettings {
  /** The store samples go to (tars reach it through the main thread once their rows are logged). */
  store: StoreSpec;
  format: OutputFormat;
  samplesPerShard: number;
  /** Tar names: `pcb` or the shard's tag, then the run's id. */
  tarPrefix: string;
  run: string;
}

/** A worker's writer: the layout chosen once from the options, over the store. */
export async function createWriter(o: OutputSettings, worker: number): Promise<SampleWriter> {
  let opened: Promise<Store> | null = null;
  const store = () => (opened ??= openStore(o.store));
  const shards = { tmpDir: o.store.tmpDir, prefix: o.tarPrefix, run: o.run, worker, samplesPerTar: o.samplesPerShard };
  if (o.format === 'webdataset') return new TarWriter(shards, store);
  if (o.format === 'parquet') return new ParquetWriter(shards, store);
  return new FilesWriter(await store());
}
