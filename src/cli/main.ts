import { CommanderError } from '@commander-js/extra-typings';
import { FatalError, UsageError } from '../errors.js';
import { buildProgram } from './program.js';

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      return 2;
    }
    if (err instanceof UsageError || err instanceof FatalError) {
      process.stderr.write(`pcb: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`pcb: unexpected error: ${(err as Error)?.message ?? err}${process.env.PCB_DEBUG ? '\n' + (err as Error)?.stack : ''}\n`);
    return 1;
  }
}

// Output piped into a reader that closed (`pcb download --help | head -1`): nobody is listening, leave quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
}

main(process.argv).then((code) => {
  process.exitCode = code;
  // Pools and sockets are closed by now; leave promptly even if a stray handle lingers.
  setTimeout(() => process.exit(code), 200).unref();
});
