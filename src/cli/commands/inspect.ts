import type { Command } from '@commander-js/extra-typings';
import { OPT, resolutionFor } from '../cli-options.js';
import prettyBytes from 'pretty-bytes';
import { Source } from '../../input/source.js';
import { ident, literal } from '../../sql.js';
import type { OutputFormat, ResizeMode } from '../../image/target-size.js';
import type { CdnResize } from '../../fetch/cdn.js';
import { UsageError } from '../../errors.js';

export interface InspectOptions {
  urlColumn: string;
  captionColumn: string;
  fallbackCaptionColumn: string;
  where: string | null;
  resize: ResizeMode;
  resolution: number;
  format: OutputFormat;
  cdnResize: CdnResize;
  json: boolean;
}

/**
 * Bytes per pixel, for estimates only. Originals: the dataset card's "over 7 TB" for ~567,000 photos of
 * ~24 MP is about 0.5 B/px. PNG: the default (adaptive filter, zlib 6) measured by `npm run bench:photos`
 * on 30 real photographs at 1024 px (1,816 KB for 1.69 MP). Renditions, JPEG and WebP: measured by
 * `npm run bench` on the kit's photo-like JPEGs at 1536×1024 (imgix 0.28 MB; JPEG q95 416 KB, WebP 370 KB).
 */
export const SOURCE_BYTES_PER_PIXEL = 0.5;
export const RENDITION_BYTES_PER_PIXEL = 0.18;
export const OUTPUT_BYTES_PER_PIXEL: Record<OutputFormat, number> = { png: 1.1, jpeg: 0.27, webp: 0.24 };

/** W'·H' of targetSize() in SQL (round_even is Python's round), for the estimate over every row. */
export function targetPixelsSql(mode: ResizeMode, res: number, w: string, h: string): string {
  if (mode === 'none') return `(${w} * ${h})`;
  const k = mode === 'shortest-side' ? `(${res} / least(${w}, ${h}))` : `sqrt(${res} * 1e6 / (${w} * ${h}))`;
  const side = (s: string) => `(CASE WHEN ${k} > 1 THEN floor(${s} / 64) * 64 ELSE greatest(1, round_even(${s} * ${k} / 64, 0)) * 64 END)`;
  return `(${side(w)} * ${side(h)})`;
}

function bar(n: number, max: number, width = 40): string {
  return '█'.repeat(max ? Math.round((n / max) * width) : 0);
}

export async function inspectReport(input: string, o: InspectOptions): Promise<Record<string, unknown>> {
  const source = await Source.open(input);
  await source.checkWhere(o.where);
  const c = source.conn;
  const scan = `read_parquet(${literal(input)})`;
  const q = async (sql: string) => (await c.runAndReadAll(sql)).getRowObjectsJS();
  // A present column's "has a value" test: a non-empty list, or non-blank text.
  const filled = (col: string) => (source.isList(col) ? `coalesce(len(${ident(col)}), 0) > 0` : `trim(coalesce(CAST(${ident(col)} AS VARCHAR), '')) <> ''`);
  const countWhere = (cols: string[]) => {
    const present = cols.filter((c) => source.has(c));
    return present.length ? `count(*) FILTER (WHERE ${present.map(filled).join(' OR ')})::DOUBLE` : 'NULL';
  };
  const cap = o.captionColumn;
  const fb = o.fallbackCaptionColumn;
  const [counts] = await q(`SELECT count(*)::DOUBLE AS rows, ${countWhere([cap])} AS caption, ${countWhere([fb])} AS fallback,
    ${countWhere([cap, fb])} AS any_caption, ${countWhere([o.urlColumn])} AS with_url FROM ${scan}`);
  const rows = Number(counts.rows);
  const kept = o.where ? Number((await q(`SELECT count(*)::DOUBLE AS n FROM ${scan} WHERE (${o.where})`))[0].n) : rows;
  const report: Record<string, unknown> = {
    input,
    columns: source.columns,
    rows,
    coverage: {
      caption_column: cap,
      caption: counts.caption === null ? null : Number(counts.caption) / Math.max(rows, 1),
      fallback_column: fb,
      fallback: counts.fallback === null ? null : Number(counts.fallback) / Math.max(rows, 1),
      any: counts.any_caption === null ? null : Number(counts.any_caption) / Math.max(rows, 1),
      url: counts.with_url === null ? null : Number(counts.with_url) / Math.max(rows, 1),
    },
    where: o.where,
    rows_kept: kept,
  };
  if (source.has('width') && source.has('height')) {
    const w = 'TRY_CAST(width AS DOUBLE)';
    const h = 'TRY_CAST(height AS DOUBLE)';
    const filt = `WHERE ${w} > 0 AND ${h} > 0${o.where ? ` AND (${o.where})` : ''}`;
    const hist = async (expr: string, step: number) =>
      (await q(`SELECT floor(${expr} / ${step}) * ${step} AS lo, count(*)::DOUBLE AS n FROM ${scan} ${filt} GROUP BY 1 ORDER BY 1`)).map((r) => ({
        from: Number(r.lo),
        to: Number(r.lo) + step,
        rows: Number(r.n),
      }));
    report.width_histogram = await hist(w, 1000);
    report.height_histogram = await hist(h, 1000);
    report.megapixel_histogram = await hist(`${w} * ${h} / 1e6`, 4);
    const [ar] = await q(`SELECT quantile_cont(${w} / ${h}, [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) AS q,
      count(*) FILTER (WHERE ${w} > ${h})::DOUBLE AS landscape, count(*) FILTER (WHERE ${w} < ${h})::DOUBLE AS portrait, count(*) FILTER (WHERE ${w} = ${h})::DOUBLE AS square FROM ${scan} ${filt}`);
    const qs = (ar.q as number[] | null) ?? [];
    report.aspect_ratio = {
      quantiles: Object.fromEntries(
        ['p1', 'p10', 'p25', 'p50', 'p75', 'p90', 'p99'].map((k, i) => [k, qs[i] === undefined ? null : Math.round(Number(qs[i]) * 1000) / 1000]),
      ),
      landscape: Number(ar.landscape),
      portrait: Number(ar.portrait),
      square: Number(ar.square),
    };
    const target = targetPixelsSql(o.resize, o.resolution, w, h);
    const [est] = await q(`SELECT sum(${w} * ${h})::DOUBLE AS src_px, sum(${target})::DOUBLE AS out_px,
      count(*) FILTER (WHERE ${w} < 64 OR ${h} < 64)::DOUBLE AS too_small FROM ${scan} ${filt}`);
    // With an imgix rendition the download is about the size of the covering rendition, not the original.
    const viaCdn = o.cdnResize === 'imgix' && o.resize !== 'none';
    const downloadBytes = viaCdn ? Number(est.out_px) * 1.05 * RENDITION_BYTES_PER_PIXEL : Number(est.src_px) * SOURCE_BYTES_PER_PIXEL;
    report.estimate = {
      label:
        'estimate (bytes per pixel: originals from the dataset card, PNG measured on real photographs, the rest on the bench kit; real sizes vary with content)',
      resize: o.resize,
      resolution: o.resolution,
      format: o.format,
      cdn_resize: o.cdnResize,
      download_bytes: Math.round(downloadBytes),
      output_bytes: Math.round(Number(est.out_px) * OUTPUT_BYTES_PER_PIXEL[o.format]),
      too_small_rows: Number(est.too_small),
    };
  }
  return report;
}

export async function runInspect(input: string, o: InspectOptions): Promise<void> {
  if (o.resize === 'shortest-side' && o.resolution < 64) throw new UsageError(`--resolution for shortest-side is at least 64 pixels; got ${o.resolution}.`);
  const r = await inspectReport(input, o);
  if (o.json) {
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const pct = (x: unknown) => (x === null || x === undefined ? 'column absent' : `${(Number(x) * 100).toFixed(1)} %`);
  const cov = r.coverage as Record<string, unknown>;
  const lines: string[] = [
    `${input}: ${r.rows} rows`,
    'columns:',
    ...(r.columns as { name: string; type: string }[]).map((c) => `  ${c.name.padEnd(24)} ${c.type}`),
    `caption coverage (non-null, non-empty): ${cov.caption_column} ${pct(cov.caption)} · ${cov.fallback_column} ${pct(cov.fallback)} · either ${pct(cov.any)} · url ${pct(cov.url)}`,
  ];
  if (r.where) lines.push(`--where ${r.where}: keeps ${r.rows_kept} of ${r.rows} rows`);
  for (const key of ['width_histogram', 'height_histogram', 'megapixel_histogram'] as const) {
    const h = r[key] as { from: number; to: number; rows: number }[] | undefined;
    if (!h) continue;
    const max = Math.max(...h.map((b) => b.rows));
    lines.push(`${key.replace('_', ' ')}:`, ...h.map((b) => `  ${`${b.from}-${b.to}`.padStart(13)} ${String(b.rows).padStart(8)} ${bar(b.rows, max)}`));
  }
  const ar = r.aspect_ratio as { quantiles: Record<string, number>; landscape: number; portrait: number; square: number } | undefined;
  if (ar)
    lines.push(
      `aspect ratio (w/h): ${Object.entries(ar.quantiles)
        .map(([k, v]) => `${k} ${v}`)
        .join(' · ')}; landscape ${ar.landscape}, portrait ${ar.portrait}, square ${ar.square}`,
    );
  const est = r.estimate as Record<string, number | string> | undefined;
  if (est) {
    lines.push(
      `${est.label}`,
      `  download ≈ ${prettyBytes(Number(est.download_bytes))}${o.cdnResize === 'imgix' ? ' (imgix renditions)' : ' (originals)'}`,
      `  output   ≈ ${prettyBytes(Number(est.output_bytes))} as ${o.format}, --resize ${o.resize} --resolution ${o.resolution}`,
      `  rows under 64 px on a side (too_small): ${est.too_small_rows}`,
    );
  } else {
    lines.push('no width/height columns: no histograms or size estimate');
  }
  process.stdout.write(lines.join('\n') + '\n');
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('schema, row count, caption coverage, size histograms and estimated download/output size')
    .argument('<input.parquet>')
    .addOption(OPT.urlColumn())
    .addOption(OPT.captionColumn())
    .addOption(OPT.fallbackCaptionColumn())
    .addOption(OPT.where())
    .addOption(OPT.resize())
    .addOption(OPT.resolution())
    .addOption(OPT.format())
    .addOption(OPT.cdnResize())
    .addOption(OPT.json())
    .action(async (input, opts) => {
      await runInspect(input, {
        urlColumn: opts.urlColumn,
        captionColumn: opts.captionColumn,
        fallbackCaptionColumn: opts.fallbackCaptionColumn,
        where: opts.where ?? null,
        resize: opts.resize,
        resolution: resolutionFor(opts.resize, opts.resolution),
        format: opts.format,
        cdnResize: opts.cdnResize,
        json: Boolean(opts.json),
      });
    });
}
