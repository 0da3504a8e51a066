import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FatalError } from '../errors.js';
import { STATE_DIR, allLogPaths, readRunRecord, recordPaths } from '../folder.js';
import { copyAtomic, writeRecords } from '../records.js';
import { literal } from '../sql.js';
import type { RemoteOutput } from '../remote-output.js';
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

/**
 * `pcb merge s3://…`: the shards' records are in the bucket, each uploaded by the machine that ran it;
 * they are fetched, combined into manifest.parquet and metadata.parquet, and uploaded beside them.
 */
export async function runMergeRemote(remote: RemoteOutput, opts: { json: boolean }): Promise<void> {
  const { getObject, listObjects } = await import('../s3.js');
  const shards: string[] = [];
  await listObjects(remote.client, remote.target, (name) => {
    if (/^(manifest|metadata)\.shard-\d+-of-\d+\.parquet$/.test(name)) shards.push(name);
  });
  const manifests = shards.filter((n) => n.startsWith('manifest.'));
  if (!manifests.length) throw new FatalError(`${remote.url} has no shard records (manifest.shard-<i>-of-<n>.parquet); nothing to merge`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-merge-'));
  try {
    for (const n of shards) writeFileSync(path.join(work, n), (await getObject(remote.client, remote.target, n))!);
    const conn = await openDuckDB();
    const union = (kind: string) => `SELECT * FROM read_parquet(${literal(path.join(work, `${kind}.shard-*.parquet`))}, union_by_name = true)`;
    const files = [{ name: 'manifest.parquet', file: path.join(work, 'manifest.parquet') }];
    await copyAtomic(conn, `${union('manifest')} ORDER BY row`, files[0].file);
    const [{ rows, ok }] = (
      await conn.runAndReadAll(
        `SELECT count(*)::DOUBLE AS rows, count(*) FILTER (WHERE status = 'ok')::DOUBLE AS ok FROM read_parquet(${literal(files[0].file)})`,
      )
    ).getRowObjectsJS();
    if (shards.some((n) => n.startsWith('metadata.'))) {
      files.push({ name: 'metadata.parquet', file: path.join(work, 'metadata.parquet') });
      await copyAtomic(conn, union('metadata'), files[1].file);
    }
    conn.closeSync();
    await remote.upload(files);
    const result = {
      out: remote.url,
      shards: manifests.length,
      rows: Number(rows),
      ok: Number(ok),
      manifest: remote.urlOf('manifest.parquet'),
      metadata: files[1] ? remote.urlOf('metadata.parquet') : null,
    };
    if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
    else
      process.stdout.write(
        `merged ${manifests.length} shards' records: ${result.rows} rows (${result.ok} ok) → ${result.manifest}${result.metadata ? `, ${result.metadata}` : ''}\n`,
      );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
