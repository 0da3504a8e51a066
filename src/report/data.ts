/**
 * What the report shows, gathered with DuckDB from a folder's logs (its records when it has no log): counts,
 * the runs, rows settled over time, failures by code and host, the written images' sizes and aspect buckets,
 * caption lengths, and a random sample of ok rows for the contact sheet. No image is read here.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { STATE_DIR, readJson } from '../output/folder.js';
import { RunPaths } from '../output/paths.js';
import type { RunRecord } from '../output/folder.js';
import type { LockHolder } from '../output/lock.js';
import { staleReason } from '../output/lock.js';
import { logLinesSql } from '../output/row-log.js';
import { captionTextSql, captionWordsSql } from '../input/caption.js';
import { ident, literal } from '../sql.js';
import type { Summary } from '../run/progress.js';

/** A run's summary as `pcb download` appends it to `.pcb/runs.jsonl`, with the time it finished. */
export type RunLine = Summary & { finished_at?: string };

export interface Example {
  id: string | null;
  url: string | null;
  message: string | null;
}

export interface ReportData {
  label: string;
  generatedAt: string;
  /** Holders of a live lock: the run is still going. */
  inProgress: boolean;
  /** Where the counts come from, and what disagreed. */
  basis: string;
  settings: RunRecord | null;
  runs: RunLine[];
  totals: { rows: number; ok: number; failed: number; bytesDownloaded: number; bytesWritten: number | null; firstAt: number | null; lastAt: number | null };
  /** Rows settled per bin of `binS` seconds from `startAt`. */
  timeline: { binS: number; startAt: number; bins: { t: number; ok: number; failed: number }[] } | null;
  errors: { code: string; n: number; examples: Example[] }[];
  hosts: { host: string; failed: number; rows: number; codes: string; examples: Example[] }[];
  /** Written images by size: the aspect bucket is derived from these (SimpleTuner's rounding). */
  sizes: { width: number; height: number; n: number }[];
  captions: { available: boolean; note: string | null; words: { words: number; n: number }[]; sources: { source: string; n: number }[] };
  samples: { id: string; path: string; width: number; height: number; caption: string | null }[];
}

const q = async (conn: DuckDBConnection, sql: string): Promise<Record<string, unknown>[]> =>
  (await conn.runAndReadAll(sql))
    .getRowObjectsJS()
    .map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v])));

/** Each run's summary line, oldest first; a torn line (a kill mid-write) is skipped. */
export function readRunLines(stateOut: string): RunLine[] {
  const file = new RunPaths(stateOut).runsLog;
  if (!existsSync(file)) return [];
  const out: RunLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    try {
      if (line.trim()) out.push(JSON.parse(line) as RunLine);
    } catch {
      /* torn */
    }
  }
  return out;
}

/** Whether a live pcb holds a lock of the folder (any shard's). */
export function runInProgress(stateOut: string): boolean {
  const dir = new RunPaths(stateOut).stateDir;
  if (!existsSync(dir)) return false;
  return readdirSync(dir)
    .filter((f) => /^lock(\..+)?$/.test(f))
    .some((f) => {
      const h = readJson<LockHolder>(path.join(dir, f));
      return h !== null && staleReason(h) === null;
    });
}

const HOST_SQL = `coalesce(nullif(regexp_extract(url, '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]+)', 1), ''), '(no host)')`;

/** A bin width in seconds that cuts a span into at most ~60 bars. */
export function binSeconds(spanMs: number): number {
  const steps = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 86400];
  return steps.find((s) => spanMs / 1000 / s <= 60) ?? 86400;
}

export async function gatherReport(conn: DuckDBConnection, stateOut: string, label: string, samples: number): Promise<ReportData> {
  const paths = new RunPaths(stateOut);
  const logs = paths.allLogs();
  const manifest = path.join(stateOut, 'manifest.parquet');
  const metadata = path.join(stateOut, 'metadata.parquet');
  const settings = paths.runRecordRead();
  let basis: string;
  if (logs.length) {
    // Each line parsed once, the latest per row kept (latestSql reads the logs twice to hold less; here the table is the point).
    await conn.run(`CREATE OR REPLACE TEMP TABLE r AS SELECT row, id, url, status, error, message, bytes, written, words, width, height, path, caption_source, "at"
      FROM (${logLinesSql(logs)}) QUALIFY row_number() OVER (PARTITION BY row ORDER BY run DESC, seq DESC) = 1`);
    basis = `the logs in ${STATE_DIR}/ (${logs.length} ${logs.length === 1 ? 'file' : 'files'})`;
    if (existsSync(manifest)) {
      const [m] = await q(conn, `SELECT count(*)::DOUBLE AS n FROM read_parquet(${literal(manifest)})`);
      const [l] = await q(conn, 'SELECT count(*)::DOUBLE AS n FROM r');
      if (m.n !== l.n)
        basis += `; manifest.parquet holds ${m.n} rows where the logs hold ${l.n} (a run in progress, or records not rebuilt yet): the counts here are the logs'`;
    }
  } else if (existsSync(manifest)) {
    await conn.run(`CREATE OR REPLACE TEMP TABLE r AS SELECT row, id, url, status, error, message, bytes, NULL::BIGINT AS written, NULL::INTEGER AS words, width, height, path, caption_source,
      NULL::BIGINT AS "at" FROM read_parquet(${literal(manifest)})`);
    basis = 'manifest.parquet (no log in this folder: rows over time are not known)';
  } else {
    await conn.run(`CREATE OR REPLACE TEMP TABLE r AS SELECT NULL::BIGINT AS row WHERE FALSE`);
    basis = 'nothing yet: no row has settled';
  }
  const empty = !logs.length && !existsSync(manifest);
  const [t] = empty
    ? [{ rows: 0, ok: 0, failed: 0, down: 0, written: null, first: null, last: null }]
    : await q(
        conn,
        `SELECT count(*)::DOUBLE AS rows, count(*) FILTER (WHERE status = 'ok')::DOUBLE AS ok, count(*) FILTER (WHERE status = 'failed')::DOUBLE AS failed,
          coalesce(sum(bytes), 0)::DOUBLE AS down, sum(written)::DOUBLE AS written, min("at")::DOUBLE AS first, max("at")::DOUBLE AS last FROM r`,
      );
  const totals = {
    rows: Number(t.rows),
    ok: Number(t.ok),
    failed: Number(t.failed),
    bytesDownloaded: Number(t.down),
    bytesWritten: t.written === null ? null : Number(t.written),
    firstAt: t.first === null ? null : Number(t.first),
    lastAt: t.last === null ? null : Number(t.last),
  };
  const data: ReportData = {
    label,
    generatedAt: new Date().toISOString(),
    inProgress: runInProgress(stateOut),
    basis,
    settings,
    runs: readRunLines(stateOut),
    totals,
    timeline: null,
    errors: [],
    hosts: [],
    sizes: [],
    captions: { available: false, note: null, words: [], sources: [] },
    samples: [],
  };
  if (empty) return data;

  if (totals.firstAt !== null && totals.lastAt !== null) {
    const binS = binSeconds(totals.lastAt - totals.firstAt);
    const startAt = Math.floor(totals.firstAt / (binS * 1000)) * binS * 1000;
    const bins = await q(
      conn,
      `SELECT (("at" - ${startAt}) // ${binS * 1000})::DOUBLE AS t, count(*) FILTER (WHERE status = 'ok')::DOUBLE AS ok,
        count(*) FILTER (WHERE status = 'failed')::DOUBLE AS failed FROM r WHERE "at" IS NOT NULL GROUP BY 1 ORDER BY 1`,
    );
    data.timeline = { binS, startAt, bins: bins.map((b) => ({ t: Number(b.t), ok: Number(b.ok), failed: Number(b.failed) })) };
  }

  const examples = (v: unknown): Example[] => (v as { id: string | null; url: string | null; message: string | null }[]).map((e) => ({ ...e }));
  data.errors = (
    await q(
      conn,
      `SELECT coalesce(error, 'unknown') AS code, count(*)::DOUBLE AS n, list({'id': id, 'url': url, 'message': message} ORDER BY row)[1:3] AS examples
        FROM r WHERE status = 'failed' GROUP BY 1 ORDER BY n DESC, code`,
    )
  ).map((e) => ({ code: String(e.code), n: Number(e.n), examples: examples(e.examples) }));
  data.hosts = (
    await q(
      conn,
      `SELECT ${HOST_SQL} AS host, count(*) FILTER (WHERE status = 'failed')::DOUBLE AS failed, count(*)::DOUBLE AS rows,
        string_agg(DISTINCT error, ', ' ORDER BY error) FILTER (WHERE status = 'failed') AS codes,
        list({'id': id, 'url': url, 'message': message} ORDER BY row) FILTER (WHERE status = 'failed')[1:3] AS examples
        FROM r GROUP BY 1 HAVING count(*) FILTER (WHERE status = 'failed') > 0 ORDER BY failed DESC, host LIMIT 10`,
    )
  ).map((h) => ({ host: String(h.host), failed: Number(h.failed), rows: Number(h.rows), codes: String(h.codes ?? ''), examples: examples(h.examples) }));
  data.sizes = (
    await q(
      conn,
      `SELECT width::DOUBLE AS width, height::DOUBLE AS height, count(*)::DOUBLE AS n FROM r WHERE status = 'ok' AND width > 0 AND height > 0 GROUP BY ALL`,
    )
  ).map((s) => ({ width: Number(s.width), height: Number(s.height), n: Number(s.n) }));

  const pick = await q(
    conn,
    // The sample is taken of the ok rows (DuckDB samples a FROM before its WHERE).
    `SELECT * FROM (SELECT id, path, width::DOUBLE AS width, height::DOUBLE AS height, row FROM r WHERE status = 'ok' AND path IS NOT NULL)
      USING SAMPLE reservoir(${Math.max(0, samples)} ROWS) REPEATABLE (7)`,
  );
  // Their captions are read beside their images (thumbs.ts): the text the trainer gets.
  data.samples = pick
    .sort((a, b) => Number(a.row) - Number(b.row))
    .map((p) => ({ id: String(p.id), path: String(p.path), width: Number(p.width), height: Number(p.height), caption: null }));
  data.captions.sources = (
    await q(conn, `SELECT coalesce(caption_source, 'unknown') AS source, count(*)::DOUBLE AS n FROM r WHERE status = 'ok' GROUP BY 1 ORDER BY n DESC`)
  ).map((s) => ({ source: String(s.source), n: Number(s.n) }));
  const [w] = await q(conn, "SELECT count(*) FILTER (WHERE words IS NULL)::DOUBLE AS missing FROM r WHERE status = 'ok'");
  if (Number(w.missing) === 0) {
    // Every ok row's log line counted its caption's words: no caption is read.
    data.captions.available = true;
    data.captions.words = (await q(conn, "SELECT words::DOUBLE AS w, count(*)::DOUBLE AS n FROM r WHERE status = 'ok' GROUP BY 1 ORDER BY 1")).map((x) => ({
      words: Number(x.w),
      n: Number(x.n),
    }));
    return data;
  }
  // Rows logged before pcb counted words, or records without a log: the captions' text, counted here.
  const captionSql = await captionSource(conn, settings, metadata);
  if (captionSql.sql) {
    await conn.run(`CREATE OR REPLACE TEMP TABLE c AS SELECT k.row, ${captionWordsSql('k.caption')} AS words
      FROM (${captionSql.sql}) k SEMI JOIN (SELECT row, path FROM r WHERE status = 'ok') o ON ${captionSql.on}`);
    data.captions.available = true;
    data.captions.words = (await q(conn, 'SELECT words::DOUBLE AS w, count(*)::DOUBLE AS n FROM c GROUP BY 1 ORDER BY 1')).map((x) => ({
      words: Number(x.w),
      n: Number(x.n),
    }));
  }
  data.captions.note = captionSql.note;
  return data;
}

/**
 * Where the captions' text is: the input parquet (the caption column, else the fallback, as pcb wrote them), or
 * metadata.parquet's `caption` when the input is not on this machine. `on` joins it to the ok rows `o`.
 */
async function captionSource(
  conn: DuckDBConnection,
  settings: RunRecord | null,
  metadata: string,
): Promise<{ sql: string | null; on: string; note: string | null }> {
  if (settings?.input && existsSync(settings.input)) {
    const described = (await q(conn, `DESCRIBE SELECT * FROM read_parquet(${literal(settings.input)})`)).map((r) => ({
      name: String(r.column_name),
      type: String(r.column_type),
    }));
    const text = (name: string | null) => {
      const c = name ? described.find((d) => d.name === name) : undefined;
      return c ? captionTextSql(ident(c.name), c.type) : 'NULL::VARCHAR';
    };
    const caption = `coalesce(nullif(${text(settings.captionColumn)}, ''), nullif(${text(settings.fallbackCaptionColumn)}, ''), '')`;
    return {
      sql: `SELECT file_row_number AS row, ${caption} AS caption FROM read_parquet(${literal(settings.input)}, file_row_number = true)`,
      on: 'o.row = k.row',
      note: null,
    };
  }
  if (existsSync(metadata)) {
    return {
      sql: `SELECT o.row, m.caption FROM read_parquet(${literal(metadata)}) m JOIN (SELECT row, path FROM r WHERE status = 'ok') o ON o.path = m.file_name`,
      on: 'o.row = k.row',
      note: settings?.input ? `captions from metadata.parquet: the input ${settings.input} is not on this machine` : null,
    };
  }
  return { sql: null, on: '', note: `caption lengths unknown: neither the input${settings?.input ? ` (${settings.input})` : ''} nor metadata.parquet is here` };
}
