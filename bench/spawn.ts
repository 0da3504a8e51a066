import { spawn } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../src/version.js';
import type { Summary } from '../src/progress.js';

export const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Run a command to its end: its exit code and stdout (stderr goes to ours). */
export function run(cmd: string, args: string[], stdin: 'ignore' | 'inherit' = 'ignore'): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [stdin, 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout: out }));
  });
}

/** `bin/pcb download … --json --quiet`, as a user runs it; the summary it prints. */
export async function runPcbDownload(args: string[]): Promise<Summary> {
  const r = await run(path.join(projectRoot(), 'bin', 'pcb'), ['download', ...args, '--json', '--quiet']);
  if (r.code !== 0) throw new Error(`pcb exited ${r.code}`);
  return JSON.parse(r.stdout) as Summary;
}
