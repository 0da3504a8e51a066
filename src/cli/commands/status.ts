import type { Command } from '@commander-js/extra-typings';
import { OPT } from '../cli-options.js';
import { openOutput } from './remote.js';
import { existsSync } from 'node:fs';
import { FatalError } from '../../errors.js';
import { STATE_DIR } from '../../output/folder.js';
import type { RunPaths } from '../../output/paths.js';
import type { OutputStore } from '../../output/store.js';
import { latestSql } from '../../output/row-log.js';
import { buildDoneTable } from '../../output/records.js';
import { rerunRetriedSql } from '../../errors.js';
import { Source, countPlan, openDuckDB } from '../../input/source.js';

export interface StatusReport {
  out: string;
  input: string | null;
  /** False when the recorded input is gone and no --input was given: rows left are then unknown. */
  input_found: boolean;
  ok: number;
  failed: number;
  failed_permanent: Record<string, number>;
  failed_transient: Record<string, number>;
  selected: number | null;
  left: number | null;
}

/** Counts from the folder's logs; with the input, also how many rows a rerun would still process. */
export async function statusReport(paths: RunPaths, inputOverride: string | null, store: OutputStore): Promise<StatusReport> {
  const { out } = paths;
  const label = store.label;
  // Where the samples are listed: the folder, or an S3 output's prefix (then `out` is its state folder).
  const names = (visit: (name: string) => void) => store.shardNames(null, visit);
  if (!existsSync(paths.stateDir)) throw new FatalError(`${out} has no pcb records (${STATE_DIR}/ is missing); run pcb download --out ${out} first`);
  const logs = paths.allLogs();
  const run = paths.runRecordRead();
  // The input recorded in run.json may have moved: then report what the log knows, and say --input gives the rest.
  const recorded = run?.input && existsSync(run.input) ? run.input : null;
  const input = inputOverride ?? recorded;
  const source = input ? await Source.open(input) : null;
  const conn = source?.conn ?? (await openDuckDB());
  const report: StatusReport = {
    out: label,
    input: input ?? run?.input ?? null,
    input_found: input !== null,
    ok: 0,
    failed: 0,
    failed_permanent: {},
    failed_transient: {},
    selected: null,
    left: null,
  };
  if (logs.length) {
    const rows = (
      await conn.runAndReadAll(`SELECT status, error, ${rerunRetriedSql()} AS transient, count(*)::DOUBLE AS n
      FROM (${latestSql(logs)}) GROUP BY ALL`)
    ).getRowObjectsJS();
    for (const r of rows) {
      const n = Number(r.n);
      if (r.status === 'ok') {
        report.ok += n;
        continue;
      }
      report.failed += n;
      const bucket = r.transient ? report.failed_transient : report.failed_permanent;
      bucket[String(r.error)] = (bucket[String(r.error)] ?? 0) + n;
    }
  }
  if (source && run) {
    const plan = {
      urlColumn: run.urlColumn,
      idColumn: run.idColumn,
      captionColumn: run.captionColumn,
      fallbackColumn: run.fallbackCaptionColumn,
      where: run.where,
      shard: null,
      limit: run.limit,
      doneTable: logs.length ? await buildDoneTable(conn, names, logs, { retryFailed: false, allowPrivateNetwork: false, ignoreOptOut: false }) : null,
    };
    const counts = await countPlan(source, plan);
    report.selected = counts.selected;
    report.left = counts.todo;
  }
  return report;
}

export async function runStatus(paths: RunPaths, opts: { input: string | null; json: boolean }, store: OutputStore): Promise<void> {
  const r = await statusReport(paths, opts.input, store);
  if (opts.json) {
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const list = (m: Record<string, number>) =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1])
      .map(([e, n]) => `    ${e.padEnd(20)} ${n}`);
  const lines = [
    `${r.out}: ${r.ok} ok, ${r.failed} failed`,
    `  failed for good (skipped by a rerun; --retry-failed retries them): ${Object.values(r.failed_permanent).reduce((a, b) => a + b, 0)}`,
    ...list(r.failed_permanent),
    `  failed transiently (a rerun retries them): ${Object.values(r.failed_transient).reduce((a, b) => a + b, 0)}`,
    ...list(r.failed_transient),
    r.left !== null
      ? `  left to do in ${r.input}: ${r.left} of ${r.selected} selected rows`
      : r.input && !r.input_found
        ? `  rows left: unknown: the input ${r.input} is not there any more; pass --input <parquet> to count them`
        : `  rows left: unknown (pass --input <parquet>)`,
    `  to see them: pcb report ${r.out}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export function register(program: Command): void {
  program
    .command('status')
    .description("rows done, failed (permanent vs transient) and left, from the folder's log; fetches nothing")
    .argument('<out>', 'the folder pcb download wrote')
    .addOption(OPT.input())
    .addOption(OPT.json())
    .addOption(OPT.stateDir())
    .action(async (given, opts) => {
      const { paths, store } = await openOutput(given, opts.stateDir ?? null, { write: false });
      await runStatus(paths, { input: opts.input ?? null, json: Boolean(opts.json) }, store);
    });
}
