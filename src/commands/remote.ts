/**
 * The commands that read an output (status, verify, merge, config) on `s3://bucket/prefix`: the run's
 * state and records are in the local state folder (--state-dir), the samples in the bucket.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { FatalError } from '../errors.js';
import { STATE_DIR } from '../folder.js';
import { outputPlace } from '../place.js';
import type { RemoteOutput } from '../remote-output.js';

export interface OpenedOutput {
  /** The local folder with `.pcb/`: the output itself, or an S3 output's state folder. */
  out: string;
  remote: RemoteOutput | null;
}

export async function openOutput(outArg: string, stateDir: string | null, o: { write: boolean }): Promise<OpenedOutput> {
  const place = outputPlace(outArg, stateDir);
  if (!place.remote) return { out: place.out, remote: null };
  if (!existsSync(path.join(place.out, STATE_DIR))) {
    throw new FatalError(`no run state for ${outArg} in ${place.out}: run this on the machine that ran pcb download, or pass its --state-dir`);
  }
  const { RemoteOutput } = await import('../remote-output.js');
  const remote = new RemoteOutput(place.remote, 3, place.out);
  await remote.check(o.write);
  return { out: place.out, remote };
}
