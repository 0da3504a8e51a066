import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../src/version.js';

/** A bench's latest results as `bench/results/<name>.md` and `.json`; the table is printed too. */
export function writeResults(name: string, md: string, json: unknown): void {
  const dir = path.join(projectRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${name}.md`), md + '\n');
  writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(json, null, 2) + '\n');
  process.stdout.write(`${md}\n\nwritten: bench/results/${name}.{md,json}\n`);
}
