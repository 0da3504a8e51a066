/** `pcb download` as the command line runs it: signals, the summary on stdout, the exit status. */
import { runDownload } from '../run.js';
import { runCoordinated } from '../coordinator.js';
import { formatSummary } from '../progress.js';
import type { DownloadOptions } from '../options.js';
import type { Summary } from '../progress.js';
import { STATE_DIR } from '../folder.js';
import { appendFileSync } from 'node:fs';
import path from 'node:path';

/** Each run's summary, one line in `.pcb/runs.jsonl` (the state folder's for s3://): the report shows a resumed dataset's runs in order. */
function recordRun(summary: Summary): void {
  try {
    appendFileSync(
      path.join(summary.state_dir ?? summary.out, STATE_DIR, 'runs.jsonl'),
      JSON.stringify({ ...summary, finished_at: new Date().toISOString() }) + '\n',
    );
  } catch {
    /* the summary still goes to stdout; the report then lacks this run's line */
  }
}

/** libuv's threadpool runs sharp's work for every thread; bin/pcb sizes it, a bare `node` keeps 4. */
function warnSmallThreadpool(o: DownloadOptions): void {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (pool < o.threads && !o.quiet) {
    process.stderr.write(
      `pcb: warning: libuv's threadpool has ${pool} threads for --threads ${o.threads}, so sharp runs at most ${pool} images at once: start pcb through bin/pcb (or npx pcb), which sizes it, or set UV_THREADPOOL_SIZE=${o.threads + 4}\n`,
    );
  }
}

export async function download(o: DownloadOptions): Promise<number> {
  warnSmallThreadpool(o);
  if (o.shard && !o.json && !o.quiet) process.stderr.write(`pcb: shard ${o.shard.index}/${o.shard.count} (${o.shard.reason})\n`);
  let signalCode = 0;
  const summary = await (o.processes > 1 ? runCoordinated : runDownload)(o, {
    warn: (msg) => {
      if (!o.quiet) process.stderr.write(`pcb: warning: ${msg}\n`);
    },
    onStart: (stop) => {
      const handler = (sig: NodeJS.Signals) => {
        const code = sig === 'SIGINT' ? 130 : 143;
        if (signalCode) {
          // Second signal: leave now. Images and captions are renamed into place whole, so nothing is half-written;
          // open multipart uploads are aborted first (for 3 s at most: a store that does not answer is not waited for).
          void Promise.race([stop(true), new Promise((r) => setTimeout(r, 3000).unref())]).finally(() => process.exit(code));
          return;
        }
        signalCode = code;
        // Stop the bar first: the notice then starts on a line of its own instead of over the bar.
        stop(false);
        process.stderr.write(`pcb: ${sig}: finishing rows in flight (a few seconds; again to quit now), then writing the records\n`);
      };
      process.on('SIGINT', handler);
      process.on('SIGTERM', handler);
    },
  });
  recordRun(summary);
  if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else process.stdout.write(formatSummary(summary) + '\n');
  if (signalCode) return signalCode;
  if (summary.process_failures.length) {
    process.stderr.write(`pcb: ${summary.process_failures[0]}; the rows it had in flight were not recorded: rerun to resume\n`);
    return 1;
  }
  if (o.maxFailureRate !== null && summary.processed > 0 && summary.failed / summary.processed > o.maxFailureRate) {
    process.stderr.write(
      `pcb: ${summary.failed} of ${summary.processed} rows failed (${((100 * summary.failed) / summary.processed).toFixed(1)} %), above --max-failure-rate ${o.maxFailureRate}; the manifest says why\n`,
    );
    return 3;
  }
  return 0;
}
