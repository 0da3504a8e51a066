/**
 * Where an ok row's sample lands, behind one interface (after webdataset's TarWriter): a flat folder
 * (`<id>.<ext>` + `<id>.txt`) or tar shards (`--output-format webdataset`). Chosen once per worker
 * from the options; processRow does not know which.
 */
import path from 'node:path';
import { captionFileName } from '../input/row.js';
import { TarShardWriter, memberPath, sampleKey } from './tars.js';
import type { TarShardOptions } from './tars.js';
import { openStore } from './store.js';
import type { OutputStore, Store, StoreSpec } from './store.js';

export type OutputFormat = 'files' | 'webdataset';

export interface Sample {
  id: string;
  /** The image's extension: png, jpg, webp. */
  ext: string;
  image: Buffer;
  caption: string;
  /** The sample's metadata as JSON text (webdataset's `<key>.json`). */
  meta: string;
  /** The image this row wrote before under another name (--overwrite into another format). */
  previousPath: string | null;
}

export interface Written {
  /** What the manifest records: `<id>.<ext>`, or `<tar>/<member>`. */
  path: string;
  /** A tar this sample filled and closed, in the temporary folder: moved into place once the row is logged. */
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
      if (s.previousPath && s.previousPath !== name) await this.store.remove(path.basename(s.previousPath));
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
      { name: `${key}.json`, data: Buffer.from(s.meta, 'utf8') },
    ]);
    // --overwrite of a flat folder into tars: the row's old files go once its sample is in a tar.
    if (s.previousPath && !s.previousPath.includes('.tar/')) {
      const store = await this.store();
      await store.remove(path.basename(s.previousPath));
      await store.remove(captionFileName(path.basename(s.previousPath)));
    }
    return { path: memberPath(tar, image), closedTar: closed ? tar : null };
  }
}

/** What a worker needs to know to make its writer (sent once, in WorkerConfig). */
export interface OutputSettings {
  /** The store samples go to (tars reach it through the main thread once their rows are logged). */
  store: StoreSpec;
  format: OutputFormat;
  samplesPerTar: number;
  /** Tar names: `pcb` or the shard's tag, then the run's id. */
  tarPrefix: string;
  run: string;
}

/** A worker's writer: the layout chosen once from the options, over the store. */
export async function createWriter(o: OutputSettings, worker: number): Promise<SampleWriter> {
  let opened: Promise<Store> | null = null;
  const store = () => (opened ??= openStore(o.store));
  if (o.format === 'webdataset') {
    return new TarWriter({ tmpDir: o.store.tmpDir, prefix: o.tarPrefix, run: o.run, worker, samplesPerTar: o.samplesPerTar }, store);
  }
  return new FilesWriter(await store());
}
