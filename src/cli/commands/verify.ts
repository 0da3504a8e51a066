/** `pcb verify` on the command line: the records against the store, both ways (output/verify.ts does the checking). */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Option } from '@commander-js/extra-typings';
import type { Command } from '@commander-js/extra-typings';
import { OPT } from '../cli-options.js';
import { openOutput } from './remote.js';

export function register(program: Command): void {
  program
    .command('verify')
    .description("check the records against the disk, both ways: every ok row's image and caption, every image on disk")
    .argument('<out>', 'the folder pcb download wrote')
    .addOption(new Option('--fix', 'mark disagreeing rows so the next pcb download redoes them; move stray images into .pcb/stray/'))
    .addOption(new Option('--deep', 'decode every image fully (default: headers only)'))
    .addOption(OPT.json())
    .addOption(OPT.stateDir())
    .action(async (given, opts) => {
      // sharp is loaded only here: the main thread of a download never needs it.
      const { runVerify } = await import('../../output/verify.js');
      // Tars in a bucket are fetched into a temporary folder to be read.
      const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-verify-'));
      try {
        const { paths, store } = await openOutput(given, opts.stateDir ?? null, { write: Boolean(opts.fix), tmpDir: work });
        const o = { fix: Boolean(opts.fix), deep: Boolean(opts.deep), json: Boolean(opts.json) };
        process.exitCode = await runVerify(paths, o, store);
        // --fix rewrote the records: the store gets them too, where they are not already in it.
        if (o.fix) {
          const records = [paths.records.manifest, paths.records.metadata].filter((f) => existsSync(f));
          await store.publishRecords(records.map((file) => ({ name: path.basename(file), file })));
        }
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
}
