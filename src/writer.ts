/**
 * Where an ok row's sample lands, behind one interface (after webdataset's TarWriter): a flat folder
 * (`<id>.<ext>` + `<id>.txt`) or tar shards (`--output-format webdataset`). Chosen once per worker
 * from the options; processRow does not know which.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { writeAtomic } from './output.js';
import { captionFileName } from './row.js';
import { TarShardWriter, memberPath, sampleKey } from './tars.js';
import type { TarShardOptions } from './tars.js';
import { s3Url } from './s3-url.js';
import type { S3Target } from './s3-url.js';

export type OutputFormat = 'files' | 'webdataset';

export interface Sample {
  id: string;
  /** The image's extension: png, jpg, webp. */
  ext: string;
  image: Buffer;
  caption: string;
  /** The sample's metadata (webdataset's `<key>.json`). */
  meta: Record<string, unknown>;
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

/** `<out>/<id>.<ext>` and `<out>/<id>.txt`, each written atomically; an image whose caption fails goes too. */
export class FilesWriter implements SampleWriter {
  constructor(
    private readonly out: string,
    private readonly tmpDir: string,
  ) {}

  async write(s: Sample): Promise<Written> {
    const name = `${s.id}.${s.ext}`;
    let imageWritten = false;
    try {
      writeAtomic(this.out, this.tmpDir, name, s.image);
      imageWritten = true;
      writeAtomic(this.out, this.tmpDir, captionFileName(name), s.caption);
      // --overwrite into another format: the row's old image goes once the new one is in place.
      if (s.previousPath && s.previousPath !== name) await rm(path.join(this.out, path.basename(s.previousPath)), { force: true });
    } catch (err) {
      if (imageWritten) await rm(path.join(this.out, name), { force: true }).catch(() => undefined);
      throw err;
    }
    return { path: name, closedTar: null };
  }
}

/** One sample per ok row in this worker's open tar: `<key>.<ext>`, `<key>.txt`, `<key>.json`. */
export class TarWriter implements SampleWriter {
  private readonly shards: TarShardWriter;
  private readonly out: string;
  constructor(o: TarShardOptions) {
    this.shards = new TarShardWriter(o);
    this.out = o.out;
  }

  async write(s: Sample): Promise<Written> {
    const key = sampleKey(s.id);
    const image = `${key}.${s.ext}`;
    const { tar, closed } = this.shards.add([
      { name: image, data: s.image },
      { name: `${key}.txt`, data: Buffer.from(s.caption, 'utf8') },
      { name: `${key}.json`, data: Buffer.from(JSON.stringify(s.meta), 'utf8') },
    ]);
    // --overwrite of a flat folder into tars: the row's old files go once its sample is in a tar.
    if (s.previousPath && !s.previousPath.includes('.tar/')) {
      await rm(path.join(this.out, path.basename(s.previousPath)), { force: true });
      await rm(path.join(this.out, captionFileName(path.basename(s.previousPath))), { force: true });
    }
    return { path: memberPath(tar, image), closedTar: closed ? tar : null };
  }
}

/**
 * `<id>.<ext>` and `<id>.txt` as objects under an S3 prefix: each a PUT, whole or not at all, the two at
 * once (a row waits one round trip to the store, not two); if either fails, the other is deleted. The
 * SDK is loaded on the first sample, so a local run never loads it.
 */
export class S3FilesWriter implements SampleWriter {
  readonly holdsBytes = true;
  private store: Promise<{ s3: typeof import('./s3.js'); client: import('@aws-sdk/client-s3').S3Client }> | null = null;
  constructor(
    private readonly target: S3Target,
    private readonly attempts: number,
    private readonly timeoutMs: number,
  ) {}

  private opened: Awaited<NonNullable<S3FilesWriter['store']>> | null = null;

  private open() {
    this.store ??= import('./s3.js').then((s3) => (this.opened = { s3, client: s3.createS3Client(this.attempts - 1, this.timeoutMs) }));
    return this.store;
  }

  takeRetries(): number {
    return this.opened ? this.opened.s3.takeRetries(this.opened.client) : 0;
  }

  async write(s: Sample): Promise<Written> {
    const { s3, client } = await this.open();
    const name = `${s.id}.${s.ext}`;
    const objects: [string, Buffer | string][] = [
      [name, s.image],
      [captionFileName(name), s.caption],
    ];
    const puts = await Promise.allSettled(objects.map(([key, body]) => s3.putObject(client, this.target, key, body)));
    const failed = puts.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    try {
      if (failed) throw failed.reason;
      // --overwrite into another format: the row's old image goes (its caption has the same name: replaced).
      if (s.previousPath && s.previousPath !== name) await s3.deleteObject(client, this.target, path.basename(s.previousPath));
    } catch (err) {
      // Half a sample is no sample: what was stored goes again, and a rerun redoes the row.
      await Promise.all(objects.map(([key], i) => (puts[i].status === 'fulfilled' ? s3.deleteObject(client, this.target, key).catch(() => undefined) : null)));
      throw new Error(`upload to ${s3Url(this.target)} failed: ${s3.s3ErrorText(err)}`);
    }
    return { path: name, closedTar: null };
  }
}

/** What a worker needs to know to make its writer (sent once, in WorkerConfig). */
export interface OutputSettings {
  /** With an S3 output, where files go (tars are uploaded by the main thread once their rows are logged). */
  remote: S3Target | null;
  /** Tries of one upload, the first included. */
  uploadAttempts: number;
  /** An upload request with no progress for this long is cut off (then retried). */
  uploadTimeoutMs: number;
  format: OutputFormat;
  samplesPerTar: number;
  /** Tar names: `pcb` or the shard's tag, then the run's id. */
  tarPrefix: string;
  run: string;
}

export function createWriter(out: string, tmpDir: string, o: OutputSettings, worker: number): SampleWriter {
  if (o.format === 'webdataset') return new TarWriter({ out, tmpDir, prefix: o.tarPrefix, run: o.run, worker, samplesPerTar: o.samplesPerTar });
  return o.remote ? new S3FilesWriter(o.remote, o.uploadAttempts, o.uploadTimeoutMs) : new FilesWriter(out, tmpDir);
}
