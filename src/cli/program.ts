/** The command line: a list of commands, each registering itself with its options from the declared set (cli-options.ts). */
import { Command } from '@commander-js/extra-typings';
import { VERSION } from '../version.js';
import * as config from './commands/config.js';
import * as download from './commands/download.js';
import * as inspect from './commands/inspect.js';
import * as merge from './commands/merge.js';
import * as report from './commands/report.js';
import * as status from './commands/status.js';
import * as verify from './commands/verify.js';

/** In the order `pcb --help` lists them. */
const COMMANDS: { register(program: Command): void }[] = [download, inspect, config, verify, status, report, merge];

export function buildProgram() {
  const program = new Command('pcb')
    .description('Turn a parquet list of image URLs and captions into a training-ready folder of resized images and caption files.')
    .version(VERSION)
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`pcb: ${str.replace(/^error: /, '')}`) });
  for (const command of COMMANDS) command.register(program);
  return program;
}
