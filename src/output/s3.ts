/**
 * Object storage as an output: `s3://bucket/prefix` on AWS S3, R2, MinIO or any S3-compatible store,
 * through the AWS SDK v3 and its standard configuration (credentials from the environment, profiles or
 * instance roles; AWS_REGION; AWS_ENDPOINT_URL for S3-compatible stores). An object appears whole or not
 * at all: a PUT is atomic, and a multipart upload that fails is aborted.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import os from 'node:os';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { FatalError } from '../errors.js';
import { endpointUrl, keyOf, regionName, s3Url } from './s3-url.js';
import type { S3Target } from './s3-url.js';
export type { S3Target } from './s3-url.js';

// pcb's output stays clean on Node 20: the SDK's notice that its 2027 releases need Node 22 is for the docs.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/**
 * A client from the SDK's standard chain. S3-compatible stores get path-style addressing (MinIO needs
 * it; R2 takes both) and no checksums beyond what the API requires: the SDK's default CRC32 headers
 * (since 3.729) are refused by some of them. Retries: adaptive mode, a client-side rate that slows on
 * throttling (503 SlowDown, 429) and recovers on success, as the per-host limit does for downloads.
 */
export function createS3Client(retries = 3, timeoutMs = 30_000): S3Client {
  const endpoint = endpointUrl();
  const client = new S3Client({
    // Never a hang: a store that stops answering is cut off like a download (then retried).
    requestHandler: { connectionTimeout: Math.min(timeoutMs, 10_000), requestTimeout: timeoutMs },
    region: regionName(),
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: retries + 1,
    retryMode: 'adaptive',
    // The middleware stack resolved once per kind of request, not per request: 17 % less CPU per PUT (measured).
    cacheMiddleware: true,
  });
  // Every request's retries, whatever sent it (a row's PUT, a tar's part, the records), for the summary.
  const counter = { retries: 0 };
  retryCounters.set(client, counter);
  const count = (m: { attempts?: number } | undefined) => {
    counter.retries += Math.max(0, (m?.attempts ?? 1) - 1);
  };
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        const out = await next(args);
        count((out.output as { $metadata?: { attempts?: number } }).$metadata);
        return out;
      } catch (err) {
        count((err as SdkError).$metadata);
        throw err;
      }
    },
    { step: 'initialize', name: 'pcbRetryCount' },
  );
  return client;
}

const retryCounters = new WeakMap<S3Client, { retries: number }>();

/** Requests this client sent again (throttling, 5xx, dropped connections) since the last call. */
export function takeRetries(client: S3Client): number {
  const c = retryCounters.get(client);
  if (!c) return 0;
  const n = c.retries;
  c.retries = 0;
  return n;
}

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

/** One line of what went wrong with a request, for a row's message or a fatal error. */
export function s3ErrorText(err: unknown): string {
  const e = err as SdkError;
  const status = e?.$metadata?.httpStatusCode;
  return `${e?.name && e.name !== 'Unknown' ? e.name : 'error'}${status ? ` (HTTP ${status})` : ''}${e?.message && e.message !== 'UnknownError' ? `: ${e.message}` : ''}`;
}

/**
 * Before any download: the bucket exists, the credentials work and may write under the prefix (a probe
 * object, put and deleted). Each failure is one line that says what to do; exit 1.
 */
export async function checkWritable(client: S3Client, t: S3Target): Promise<void> {
  await checkBucket(client, t);
  const probe = keyOf(t, `.pcb/write-probe-${os.hostname()}-${process.pid}`);
  try {
    await client.send(new PutObjectCommand({ Bucket: t.bucket, Key: probe, Body: 'pcb' }));
    await client.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: probe }));
  } catch (err) {
    throw new FatalError(`cannot write to ${s3Url(t)}: ${s3ErrorText(err)}; the credentials need s3:PutObject and s3:DeleteObject on the prefix`);
  }
}

/** The store said there is no such object (404, NoSuchKey). */
export function isNotFound(err: unknown): boolean {
  return (err as SdkError)?.$metadata?.httpStatusCode === 404 || (err as SdkError)?.name === 'NoSuchKey';
}

/** The bucket exists and the credentials may use it: one line that says what to do otherwise; exit 1. */
export async function checkBucket(client: S3Client, t: S3Target): Promise<void> {
  const where = s3Url(t);
  try {
    await client.send(new HeadBucketCommand({ Bucket: t.bucket }));
  } catch (err) {
    const status = (err as SdkError).$metadata?.httpStatusCode;
    if (status === 404) throw new FatalError(`bucket ${t.bucket} does not exist${endpointNote()}; create it, or check --out ${where}`);
    if (status === 403 || status === 401)
      throw new FatalError(
        `access to bucket ${t.bucket} was denied${endpointNote()}: check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE) and their permissions`,
      );
    throw new FatalError(`cannot reach bucket ${t.bucket}${endpointNote()}: ${s3ErrorText(err)}; check AWS_ENDPOINT_URL, AWS_REGION and the credentials`);
  }
}

function endpointNote(): string {
  const e = endpointUrl();
  return e ? ` at ${e}` : '';
}

/** Every object under the prefix, by name relative to it (one listing, paged); the run's own `.pcb/` keys left out. */
export async function listObjects(client: S3Client, t: S3Target, visit: (name: string, size: number) => void): Promise<void> {
  const base = t.prefix ? `${t.prefix}/` : '';
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: t.bucket, Prefix: base, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const name = o.Key!.slice(base.length);
      if (name && !name.startsWith('.pcb/')) visit(name, o.Size ?? 0);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

const CONTENT_TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  webp: 'image/webp',
  txt: 'text/plain; charset=utf-8',
  json: 'application/json',
  tar: 'application/x-tar',
  parquet: 'application/vnd.apache.parquet',
};

/** What an object is, from its name, for clients that look (a browser, a CDN in front of the bucket). */
export function contentType(name: string): string {
  return CONTENT_TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
}

export async function putObject(client: S3Client, t: S3Target, name: string, body: Buffer | string): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: t.bucket, Key: keyOf(t, name), Body: body, ContentType: contentType(name) }));
}

export async function deleteObject(client: S3Client, t: S3Target, name: string): Promise<void> {
  await client.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: keyOf(t, name) }));
}

export async function getObject(client: S3Client, t: S3Target, name: string): Promise<Buffer | null> {
  try {
    const r = await client.send(new GetObjectCommand({ Bucket: t.bucket, Key: keyOf(t, name) }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * `length` bytes of an object from `at` (the rest of it: null) by a ranged GET, and the object's whole
 * size; null when it is not there. An empty object (which no range fits) is read whole.
 */
export async function getObjectRange(
  client: S3Client,
  t: S3Target,
  name: string,
  at: number,
  length: number | null,
): Promise<{ data: Buffer; size: number } | null> {
  const Range = at === 0 && length === null ? undefined : `bytes=${at}-${length === null ? '' : at + Math.max(1, length) - 1}`;
  try {
    const r = await client.send(new GetObjectCommand({ Bucket: t.bucket, Key: keyOf(t, name), Range }));
    const data = Buffer.from(await r.Body!.transformToByteArray());
    const total = /\/(\d+)$/.exec(r.ContentRange ?? '');
    return { data, size: total ? Number(total[1]) : data.length };
  } catch (err) {
    const status = (err as SdkError).$metadata?.httpStatusCode;
    if (isNotFound(err)) return null;
    if (status === 416 && Range) return getObjectRange(client, t, name, 0, null);
    throw err;
  }
}

/** Moves an object aside (copy, then delete): where `verify --fix` puts what no record names. */
export async function moveObject(client: S3Client, t: S3Target, from: string, to: string): Promise<void> {
  await client.send(new CopyObjectCommand({ Bucket: t.bucket, Key: keyOf(t, to), CopySource: encodeURI(`${t.bucket}/${keyOf(t, from)}`) }));
  await deleteObject(client, t, from);
}

const PART_BYTES = 8 * 1024 * 1024;
/** Parts of one upload in flight at once: at most this many parts' bytes in memory. */
const PARTS_AT_ONCE = 4;

/** Where a run notes the multipart uploads it has open, so that the next run can abort what a kill left open. */
export interface UploadJournal {
  opened(key: string, uploadId: string): void;
  closed(uploadId: string): void;
}

/**
 * A local file as one object, whole or not at all: a PUT up to 8 MB, else a multipart upload whose id
 * is noted in the journal before the first part (the SDK's lib-storage keeps it private), its parts sent
 * four at a time, then completed, or aborted when a part fails.
 */
export async function uploadFile(client: S3Client, t: S3Target, name: string, file: string, journal: UploadJournal | null = null): Promise<void> {
  const size = statSync(file).size;
  const Key = keyOf(t, name);
  if (size <= PART_BYTES) {
    await client.send(new PutObjectCommand({ Bucket: t.bucket, Key, Body: readFileSync(file), ContentType: contentType(name) }));
    return;
  }
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: t.bucket, Key, ContentType: contentType(name) }));
  journal?.opened(Key, UploadId!);
  const fd = openSync(file, 'r');
  try {
    const count = Math.ceil(size / PART_BYTES);
    const parts: { ETag: string; PartNumber: number }[] = [];
    let next = 1;
    // A few parts on the wire at once: one connection to a distant store carries far less than the disk gives.
    const sender = async () => {
      for (let n = next++; n <= count; n = next++) {
        const offset = (n - 1) * PART_BYTES;
        const body = Buffer.alloc(Math.min(PART_BYTES, size - offset));
        readSync(fd, body, 0, body.length, offset);
        try {
          const r = await client.send(new UploadPartCommand({ Bucket: t.bucket, Key, UploadId, PartNumber: n, Body: body }));
          parts.push({ ETag: r.ETag!, PartNumber: n });
        } catch (err) {
          next = count + 1; // the other senders stop after the part they are sending
          throw err;
        }
      }
    };
    // Every sender settles before the abort, so that no part lands after it.
    const senders = await Promise.allSettled(Array.from({ length: Math.min(PARTS_AT_ONCE, count) }, sender));
    const failed = senders.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    parts.sort((a, b) => a.PartNumber - b.PartNumber);
    await client.send(new CompleteMultipartUploadCommand({ Bucket: t.bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    journal?.closed(UploadId!);
  } catch (err) {
    await abortUpload(client, t.bucket, Key, UploadId!, journal);
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** Aborts one multipart upload (its parts are dropped); one the store no longer knows is gone already. */
export async function abortUpload(client: S3Client, bucket: string, key: string, uploadId: string, journal: UploadJournal | null): Promise<void> {
  try {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
    journal?.closed(uploadId);
  } catch (err) {
    if (isNotFound(err)) journal?.closed(uploadId);
  }
}

/**
 * Multipart uploads a killed run left open under the prefix, for the names `mine` accepts: aborted, so
 * that no invisible part is kept (and billed) for ever. Another shard's live uploads are left alone.
 */
export async function abortOpenUploads(client: S3Client, t: S3Target, mine: (name: string) => boolean): Promise<number> {
  const base = t.prefix ? `${t.prefix}/` : '';
  let aborted = 0;
  let keyMarker: string | undefined;
  let idMarker: string | undefined;
  do {
    let page: ListMultipartUploadsCommandOutput;
    try {
      page = await client.send(new ListMultipartUploadsCommand({ Bucket: t.bucket, Prefix: base, KeyMarker: keyMarker, UploadIdMarker: idMarker }));
    } catch (err) {
      // Some S3-compatible stores cannot list them: the journal of the runs on this machine is then all there is.
      if ((err as SdkError).$metadata?.httpStatusCode === 501 || (err as SdkError).name === 'NotImplemented') return aborted;
      throw err;
    }
    for (const u of page.Uploads ?? []) {
      if (!mine(u.Key!.slice(base.length))) continue;
      await abortUpload(client, t.bucket, u.Key!, u.UploadId!, null);
      aborted++;
    }
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
    idMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
  } while (keyMarker);
  return aborted;
}
