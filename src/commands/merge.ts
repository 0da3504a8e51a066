import { existsSync } from 'node:fs';
import path from 'node:path';
import { FatalError } from '../errors.js';
import { STATE_DIR, allLogPaths, readRunRecord, recordPaths } from '../folder.js';
import { writeRecords } from '../records.js';
import { openDuckDB } from '../source.js';

/** Combine every shard's log in one folder into manifest.parquet and metadata.parquet. */
export async function runMerge(out: string, opts: { input: string | null; json: boolean }): Promise<void> {
  if (!existsSync(path.join(out, STATE_DIR))) throw new FatalError(`${out} has no pcb records (${STATE_DIR}/ is missing); nothing to merge`);
  const logs = allLogPaths(out);
  if (!logs.length) throw new FatalError(`${out} has no logs in ${STATE_DIR}/; nothing to merge`);
  const run = readRunRecord(out);
  const input = opts.input ?? run?.input ?? null;
  if (input && !existsSync(input)) throw new FatalError(`input ${input} does not exist; pass --input <parquet>`);
  const dest = recordPaths(out, null, null);
  const counts = await writeRecords(
    await openDuckDB(),
    logs,
    { input, captionColumn: run?.captionColumn ?? null, fallbackCaptionColumn: run?.fallbackCaptionColumn ?? null, outputFormat: run?.outputFormat ?? 'files' },
    dest,
  );
  const result = { out, logs: logs.length, rows: counts.rows, ok: counts.ok, manifest: dest.manifest, metadata: input ? dest.metadata : null };
  if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
  else
    process.stdout.write(
      `merged ${logs.length} logs: ${counts.rows} rows (${counts.ok} ok) → ${dest.manifest}${input ? `, ${dest.metadata}` : ' (no input known: metadata.parquet not written; pass --input)'}\n`,
    );
}
