/**
 * An output as the commands that read it (status, verify, merge, config, report) open it: its local
 * state folder (`.pcb/`: the output itself, or an S3 output's --state-dir) and the store of its samples.
 */
import { existsSync } from 'node:fs';
import { FatalError } from '../../errors.js';
import { outputPlace } from '../../output/place.js';
import { RunPaths } from '../../output/paths.js';
import { openStore } from '../../output/store.js';
import type { OutputStore } from '../../output/store.js';

export interface OpenedOutput {
  paths: RunPaths;
  store: OutputStore;
}

export async function openOutput(outArg: string, stateDir: string | null, o: { write: boolean; tmpDir?: string }): Promise<OpenedOutput> {
  const place = outputPlace(outArg, stateDir);
  const paths = new RunPaths(place.out);
  if (place.remote && !existsSync(paths.stateDir)) {
    throw new FatalError(`no run state for ${outArg} in ${place.out}: run this on the machine that ran pcb download, or pass its --state-dir`);
  }
  const store = await openStore({
    out: place.out,
    tmpDir: o.tmpDir ?? paths.state('tmp-read'),
    remote: place.remote,
    retries: 3,
    timeoutMs: 30_000,
    shard: null,
  });
  await store.check(o.write);
  return { paths, store };
}
