import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { FatalError } from './errors.js';

/**
 * Write a file so that it is either absent or whole: a temporary name inside the run's own
 * temporary folder (same filesystem), then one rename.
 */
export async function writeAtomic(dir: string, tmpDir: string, name: string, data: Buffer | string): Promise<void> {
  const tmp = path.join(tmpDir, `${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, path.join(dir, name));
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
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
