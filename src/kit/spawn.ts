/** Spawn a command and collect what it prints: the one helper behind the tests' and the benches' runs of bin/pcb. */
import { spawn } from 'node:child_process';

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Killed (SIGKILL) after this long: a hang ends as a failure, not a stuck suite. */
  timeoutMs?: number;
  onSpawn?: (pid: number) => void;
  /** Called with all of stderr so far, each time more arrives. */
  onStderr?: (text: string) => void;
  /** 'inherit' passes stderr through (benches) instead of collecting it. */
  stderr?: 'pipe' | 'inherit';
}

export function spawnCollect(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', opts.stderr ?? 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => {
      stdout += d;
    });
    child.stderr?.on('data', (d) => {
      stderr += d;
      opts.onStderr?.(stderr);
    });
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : null;
    child.on('error', reject);
    if (child.pid) opts.onSpawn?.(child.pid);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
