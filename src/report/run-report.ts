/** `pcb report`: one self-contained HTML page of a folder's runs and dataset, built from its records and logs. */
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FatalError } from '../errors.js';
import { STATE_DIR, tempName } from '../output/folder.js';
import { RunPaths } from '../output/paths.js';
import { closeDuckDB, openDuckDB } from '../input/source.js';
import type { Store } from '../output/store.js';
import { gatherReport } from './data.js';
import { makeThumbs } from './thumbs.js';
import { renderPage } from './page.js';

export interface ReportOptions {
  /** The file to write [<out>/.pcb/report.html]. */
  output: string | null;
  samples: number;
}

/** `out` is the local folder with `.pcb/` (an S3 output's state folder); `label` names the output as the user gave it. */
export async function runReport(out: string, o: ReportOptions, store: Store): Promise<void> {
  if (!existsSync(out)) throw new FatalError(`${out} does not exist; pass the folder pcb download wrote (--out)`);
  const paths = new RunPaths(out);
  if (!existsSync(paths.stateDir)) throw new FatalError(`${out} is not a folder pcb wrote (${STATE_DIR}/ is missing); run pcb download --out ${out} first`);
  const file = path.resolve(o.output ?? paths.state('report.html'));
  const conn = await openDuckDB(Math.min(4, os.availableParallelism()));
  let html: string;
  try {
    const data = await gatherReport(conn, out, store.label, o.samples);
    html = await renderPage(data, await makeThumbs(store, data.samples));
  } finally {
    closeDuckDB(conn);
  }
  const tmp = tempName(file);
  try {
    writeFileSync(tmp, html);
    renameSync(tmp, file);
  } catch (err) {
    throw new FatalError(`cannot write the report to ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose another -o`);
  }
  process.stdout.write(`${file}\n`);
}
