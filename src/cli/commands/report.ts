/** `pcb report` on the command line: one self-contained HTML page of an output (report/ builds it). */
import { existsSync } from 'node:fs';
import { Option } from '@commander-js/extra-typings';
import type { Command } from '@commander-js/extra-typings';
import { FatalError } from '../../errors.js';
import { numberOption } from '../../options.js';
import { parseS3Url } from '../../output/s3-url.js';
import { OPT } from '../cli-options.js';
import { RunPaths } from '../../output/paths.js';
import { outputPlace } from '../../output/place.js';
import { openOutput } from './remote.js';

export function register(program: Command): void {
  program
    .command('report')
    .description('one self-contained HTML page of the run and the dataset: counts, failures, aspect buckets, caption lengths, a contact sheet')
    .argument('<out>', 'the folder pcb download wrote, or its s3://bucket/prefix')
    .addOption(new Option('-o, --output <file.html>', 'where to write the page [<out>/.pcb/report.html, or the state folder for s3://]'))
    .addOption(new Option('--samples <n>', 'images on the contact sheet').default(48).argParser(numberOption('--samples', 0, true)))
    .addOption(OPT.stateDir())
    .action(async (given, opts) => {
      // sharp and Vega are loaded only here.
      const { runReport } = await import('../../report/run-report.js');
      if (!parseS3Url(given) && !existsSync(given)) throw new FatalError(`${given} does not exist; pass the folder pcb download wrote (--out)`);
      const state = new RunPaths(outputPlace(given, opts.stateDir ?? null).out);
      const { paths, store } = await openOutput(given, opts.stateDir ?? null, { write: false, tmpDir: state.state('tmp-report') });
      await runReport(paths.out, { output: opts.output ?? null, samples: Math.floor(opts.samples) }, store);
    });
}
