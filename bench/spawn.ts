import path from 'node:path';
import { projectRoot } from '../src/version.js';
import type { Summary } from '../src/progress.js';
import { spawnCollect } from '../src/kit/spawn.js';
import type { Ran, SpawnOptions } from '../src/kit/spawn.js';

export const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Run a command to its end: its exit code and stdout (stderr goes to ours). */
export function run(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<Ran> {
  return spawnCollect(cmd, args, { stderr: 'inherit', ...opts });
}

/** `bin/pcb download … --json --quiet`, as a user runs it; the summary it prints. */
export async function runPcbDownload(args: string[]): Promise<Summary> {
  const r = await run(path.join(projectRoot(), 'bin', 'pcb'), ['download', ...args, '--json', '--quiet']);
  if (r.code !== 0) throw new Error(`pcb exited ${r.code}`);
  return JSON.parse(r.stdout) as Summary;
}
