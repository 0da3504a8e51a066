import { promises as fsp, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { FatalError } from '../errors.js';

/** Temporary names unique within the run's own temporary folder: this thread's id and a count. */
let tmpCount = 0;

/**
 * Write a file so that it is either absent or whole: a temporary name inside the run's own temporary
 * folder (same filesystem), then one rename. Synchronous, on the calling (worker) thread: each async fs
 * call is a round trip through libuv's threadpool, and with open, write, close and rename for an image and
 * its caption those eight hand-offs cost more CPU than writing a small image (~9 % of a 96×64 JPEG row's
 * CPU, paired runs). A write blocks this worker's event loop only as long as the page cache takes the bytes.
 */
export function writeAtomic(dir: string, tmpDir: string, name: string, data: Buffer | string): void {
  const tmp = path.join(tmpDir, `w${threadId}-${++tmpCount}.tmp`);
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path.join(dir, name));
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* the write's own error is the one to report */
    }
    throw err;
  }
}

/**
 * Create a folder one level at a time: Node 20's recursive mkdir loops forever under /proc.
 */
export async function makeDirs(dir: string): Promise<void> {
  const abs = path.resolve(dir);
  const parts = abs.split(path.sep).filter(Boolean);
  let cur = path.parse(abs).root;
  for (const part of parts) {
    cur = path.join(cur, part);
    try {
      await fsp.mkdir(cur);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        const st = await fsp.stat(cur).catch(() => null);
        if (st && !st.isDirectory()) throw new FatalError(`--out ${dir}: ${cur} exists and is not a folder; choose another --out`);
        continue;
      }
      throw new FatalError(`cannot create --out ${dir}: ${code ?? (err as Error).message} at ${cur}; choose a writable folder`);
    }
  }
}

/** Fatal before any download: the output folder must exist (or be creatable) and take a file. */
export async function ensureWritableDir(dir: string): Promise<void> {
  await makeDirs(dir);
  const probe = path.join(dir, `.pcb-write-test-${process.pid}`);
  try {
    await fsp.writeFile(probe, 'ok');
    await fsp.rm(probe, { force: true });
  } catch (err) {
    throw new FatalError(`--out ${dir} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose a writable folder`);
  }
}
