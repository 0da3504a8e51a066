/** S3 output addresses (`s3://bucket/prefix`) and the settings read from the environment: no SDK here, so every command can parse --out cheaply. */
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';

import type { S3Target } from '../options.js';
export type { S3Target };

/** `s3://bucket/some/prefix` → { bucket, prefix }; null for a local path. */
export function parseS3Url(out: string): S3Target | null {
  if (!/^s3:\/\//i.test(out)) return null;
  const m = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(out);
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
    throw new UsageError(`--out ${out}: an S3 output is s3://<bucket>/<prefix>, with a bucket name of 3-63 lower-case letters, digits, dots and hyphens`);
  }
  const prefix = m[2].replace(/\/+$/, '');
  if (prefix.split('/').some((p) => p === '' || p === '.' || p === '..')) throw new UsageError(`--out ${out}: the prefix has an empty, '.' or '..' part`);
  return { bucket: m[1], prefix };
}

export function s3Url(t: S3Target): string {
  return `s3://${t.bucket}${t.prefix ? `/${t.prefix}` : ''}`;
}

/** The object key of `name` under the target's prefix. */
export function keyOf(t: S3Target, name: string): string {
  return t.prefix ? `${t.prefix}/${name}` : name;
}

/** Where the run's log, lock and temporary files live for an S3 output: a folder per output under the user's cache. */
export function defaultStateDir(t: S3Target, env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, '_');
  return path.join(cache, 'pcb', 's3', safe(t.bucket), t.prefix ? safe(t.prefix) : '_root');
}

/** The store's endpoint when it is not AWS's own: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL. */
export function endpointUrl(env: NodeJS.ProcessEnv = process.env): string | null {
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || null;
}

export function regionName(env: NodeJS.ProcessEnv = process.env): string {
  return env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
}
