import type { Command } from '@commander-js/extra-typings';
import { OPT } from '../cli-options.js';
import { parseS3Url } from '../../output/s3-url.js';
import { openStore } from '../../output/store.js';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FatalError } from '../../errors.js';
import { STATE_DIR } from '../../output/folder.js';
import { RunPaths } from '../../output/paths.js';
import type { OutputStore } from '../../output/store.js';
import { copyAtomic, writeRecords } from '../../output/records.js';
import { literal } from '../../sql.js';
import { openDuckDB } from '../../input/source.js';

/** Combine every shard's log in one folder into manifest.parquet and metadata.parquet. */
export async function runMerge(out: string, opts: { input: string | null; json: boolean }): Promise<void> {
  const paths = new RunPaths(out);
  if (!existsSync(paths.stateDir)) throw new FatalError(`${out} has no pcb records (${STATE_DIR}/ is missing); nothing to merge`);
  const logs = paths.allLogs();
  if (!logs.length) throw new FatalError(`${out} has no logs in ${STATE_DIR}/; nothing to merge`);
  const run = paths.runRecordRead();
  const input = opts.input ?? run?.input ?? null;
  if (input && !existsSync(input)) throw new FatalError(`input ${input} does not exist; pass --input <parquet>`);
  const dest = paths.records;
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
export async function runMergeRemote(store: OutputStore, opts: { json: boolean }): Promise<void> {
  const shards: string[] = [];
  await store.list((name) => {
    if (/^(manifest|metadata)\.shard-\d+-of-\d+\.parquet$/.test(name)) shards.push(name);
  });
  const manifests = shards.filter((n) => n.startsWith('manifest.'));
  if (!manifests.length) throw new FatalError(`${store.label} has no shard records (manifest.shard-<i>-of-<n>.parquet); nothing to merge`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'pcb-merge-'));
  try {
    for (const n of shards) writeFileSync(path.join(work, n), (await store.bytes(n, 0, null))!.data);
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
    await store.publishRecords(files);
    const result = {
      out: store.label,
      shards: manifests.length,
      rows: Number(rows),
      ok: Number(ok),
      manifest: store.recordUrl('manifest.parquet'),
      metadata: files[1] ? store.recordUrl('metadata.parquet') : null,
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

export function register(program: Command): void {
  program
    .command('merge')
    .description("combine every shard's records in <out> into manifest.parquet and metadata.parquet")
    .argument('<out>', 'the shared output folder')
    .addOption(OPT.input())
    .addOption(OPT.json())
    .action(async (out, opts) => {
      const target = parseS3Url(out);
      if (!target) return runMerge(out, { input: opts.input ?? null, json: Boolean(opts.json) });
      // In the bucket: each machine's shard records are there, whatever state folder it kept.
      const store = await openStore({ out: os.tmpdir(), tmpDir: os.tmpdir(), remote: target, retries: 3, timeoutMs: 30_000, shard: null });
      await store.check(true);
      await runMergeRemote(store, { json: Boolean(opts.json) });
    });
}
