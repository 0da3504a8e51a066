import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../src/version.js';
import type { Summary } from '../src/run/progress.js';
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

/** Clock ticks per second in /proc's CPU times (USER_HZ, 100 on Linux). */
const TICK = 100;

export interface Sampled {
  stdout: string;
  code: number | null;
  peakRssMb: number;
  timeline: [number, number][];
  mainCpuS: number;
}

/** Run bin/pcb, sampling its RSS and its main thread's CPU from /proc every 200 ms. */
export async function sampled(args: string[]): Promise<Sampled> {
  const started = Date.now();
  const timeline: [number, number][] = [];
  let peak = 0;
  let mainCpuS = 0;
  let timer: NodeJS.Timeout | null = null;
  const sample = (pid: number) => {
    try {
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      peak = Math.max(peak, rss);
      timeline.push([(Date.now() - started) / 1000, rss]);
      const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      mainCpuS = (Number(stat[11]) + Number(stat[12])) / TICK;
    } catch {
      /* exited between samples */
    }
  };
  const r = await run(path.join(projectRoot(), 'bin', 'pcb'), args, {
    onSpawn: (pid) => {
      timer = setInterval(() => sample(pid), 200);
    },
  });
  if (timer) clearInterval(timer);
  return { stdout: r.stdout, code: r.code, peakRssMb: peak, timeline, mainCpuS };
}
