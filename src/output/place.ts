/**
 * Where an output is: a local folder, or an S3 prefix whose run state (log, lock, temporary files,
 * records before upload) lives in a local folder of its own. Every command resolves `<out>` here.
 */
import { UsageError } from '../errors.js';
import { defaultStateDir, parseS3Url } from './s3-url.js';
import type { S3Target } from './s3-url.js';

export interface OutputPlace {
  /** The local folder pcb keeps its state in: the output itself, or an S3 output's state folder. */
  out: string;
  remote: S3Target | null;
}

export function outputPlace(out: string, stateDir: string | null): OutputPlace {
  const remote = parseS3Url(out);
  if (!remote) {
    if (stateDir !== null) throw new UsageError(`--state-dir is for an s3:// --out; a local --out ${out} keeps its state in ${out}/.pcb/`);
    return { out, remote: null };
  }
  return { out: stateDir ?? defaultStateDir(remote), remote };
}
