/**
 * A process of a coordinated run (coordinator.ts): the usual pool over its share of the rows, its settled
 * rows sent to the coordinator in batches for the one progress bar, its summary at the end. Signals are
 * the coordinator's to handle: it says when to stop, and a coordinator that is gone means stop.
 */
import { FatalError, UsageError } from '../errors.js';
import { runDownload } from './run.js';
import type { CoordinatorMessage, RowTally, ShareMessage } from './coordinator.js';
import type { RowResult } from '../result.js';

const BATCH_MS = 100;

const send = (m: ShareMessage) => {
  if (process.connected) process.send?.(m);
};

let stop: ((hard: boolean) => void) | null = null;
let finished = false;
let stopAsked: boolean | null = null;
let batch: RowTally[] = [];
let inFlight = () => 0;
let flushLog: () => void = () => undefined;

/** Rows reach the coordinator only once they are in the log file: a kill never counts a row the records lack. */
const flush = () => {
  if (!batch.length) return;
  flushLog();
  send({ t: 'rows', rows: batch, inFlight: inFlight() });
  batch = [];
};

function requestStop(hard: boolean): void {
  if (finished) return;
  if (hard) {
    stop?.(true);
    process.exit(0);
  }
  stopAsked = false;
  stop?.(false);
}

// Ctrl-C reaches every process of the terminal's group: the coordinator decides, and says so.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
// The coordinator is gone (killed): so is the run. Files are renamed into place whole; rows in flight are redone.
process.on('disconnect', () => requestStop(true));

process.on('message', (m: CoordinatorMessage) => {
  if (m.t === 'stop') requestStop(m.hard);
  else if (m.t === 'start') void start(m);
});

async function start({ options }: Extract<CoordinatorMessage, { t: 'start' }>): Promise<void> {
  const timer = setInterval(flush, BATCH_MS);
  try {
    const summary = await runDownload(options, {
      warn: (message) => send({ t: 'warn', message }),
      onPlanned: (counts) => send({ t: 'planned', ...counts }),
      onStart: (s) => {
        stop = s;
        if (stopAsked !== null) s(stopAsked);
      },
      onPool: (n, flushTheLog) => {
        inFlight = n;
        flushLog = flushTheLog;
      },
      onSettled: (r: RowResult) => {
        batch.push({ status: r.status, error: r.error, http_status: r.http_status, bytes: r.bytes, attempts: r.attempts, source: r.source });
      },
    });
    clearInterval(timer);
    flush();
    leave({ t: 'done', summary });
  } catch (err) {
    clearInterval(timer);
    flush();
    const known = err instanceof UsageError || err instanceof FatalError;
    leave({ t: 'fatal', exitCode: known ? err.exitCode : 1, message: known ? err.message : `unexpected error: ${(err as Error)?.message ?? err}` });
  }
}

/** The last message, then out: once it is sent, nothing of this process is needed (a stray handle must not keep it). */
function leave(m: ShareMessage): void {
  finished = true;
  const exit = () => setTimeout(() => process.exit(0), 100);
  if (!process.connected) return void exit();
  process.send?.(m, undefined, undefined, () => {
    process.disconnect?.();
    exit();
  });
}
