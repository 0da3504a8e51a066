/** What a run does: the rows selected (where → shard → limit), less those done before, as DuckDB tables. */
import { FatalError, UsageError } from '../errors.js';
import type { DownloadOptions } from '../options.js';
import { buildDuplicateTable, countPlan } from '../input/source.js';
import type { Plan, Source } from '../input/source.js';
import type { FileSettings } from '../output/folder.js';
import type { RunPaths } from '../output/paths.js';
import { buildDoneTable, buildPreviousTable } from '../output/records.js';
import type { OutputStore } from '../output/store.js';
import { duckMessage } from '../sql.js';
import { recordsCurrent } from './setup.js';
import { sampleColumnsFor } from '../output/writer.js';

export interface Planned {
  plan: Plan;
  selected: number;
  todo: number;
  skippedFailed: number;
}

/** A --where that DuckDB accepts up front can still fail on the data (a cast): that is the user's filter, exit 2. */
export async function withWhere<T>(where: string | null, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (where && !(err instanceof UsageError) && !(err instanceof FatalError)) {
      throw new UsageError(`--where ${JSON.stringify(where)} failed on this input's rows: ${duckMessage(err)}`);
    }
    throw err;
  }
}

/** The unsharded folder's manifest when it is newer than every log, else null. */
function currentManifest(paths: RunPaths, logs: string[]): string | null {
  if (paths.shard) return null;
  return recordsCurrent(paths.records, logs) ? paths.records.manifest : null;
}

/** What this run does: the rows selected (where → shard → limit), less those done before. */
export async function planRows(
  o: DownloadOptions,
  source: Source,
  paths: RunPaths,
  store: OutputStore,
  { settings, layoutBefore }: { settings: FileSettings; layoutBefore: string | null },
): Promise<Planned> {
  const logs = paths.allLogs();
  // --overwrite into another format or layout: the rows' old images go once their new ones are in place.
  const formatChanged = o.overwrite && layoutBefore !== null && layoutBefore !== `${o.format} ${o.outputFormat}`;
  const plan: Plan = {
    urlColumn: o.urlColumn,
    idColumn: o.idColumn,
    captionColumn: settings.captionColumn,
    fallbackColumn: settings.fallbackCaptionColumn,
    where: o.where,
    shard: o.shard,
    share: o.share,
    limit: o.limit,
    hashColumn: o.verifyHash?.column ?? null,
    sampleColumns: sampleColumnsFor(
      o.outputFormat,
      source.columns.map((c) => c.name),
    ),
    doneTable:
      o.overwrite || !logs.length
        ? null
        : await buildDoneTable(
            source.conn,
            // One listing of where the samples are, in whatever store holds them.
            (visit) => store.shardNames(paths.fileShard, visit),
            logs,
            { retryFailed: o.retryFailed, allowPrivateNetwork: o.allowPrivateNetwork, ignoreOptOut: o.ignoreOptOut },
            // The last run's manifest, when no log changed since: each row's latest outcome without parsing every log line.
            currentManifest(paths, logs),
          ),
    previousTable: formatChanged && logs.length ? await buildPreviousTable(source.conn, logs) : null,
  };
  const counts = await withWhere(o.where, async () => {
    plan.duplicateTable = await buildDuplicateTable(source, plan);
    return countPlan(source, plan);
  });
  return { plan, ...counts };
}
