/**
 * The report's charts: Vega-Lite specs compiled and rendered to SVG in Node (Vega renders SVG without a DOM
 * or a canvas), so the page carries finished pictures and no charting script.
 */
import * as vega from 'vega';
import { compile } from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

/**
 * SimpleTuner's aspect bucket of an image: `round(width / height, 2)` in Python, which rounds the float's exact
 * value and sends exact ties (1.125 = 1152 / 1024) to the even digit. JS's toFixed also rounds the exact value
 * but sends ties up, so ties are settled here.
 */
export function aspectBucket(width: number, height: number): number {
  const x = width / height;
  const eighths = x * 8;
  // An exact tie at two decimals is a float of the form odd / 8 (…125, …375, …625, …875).
  if (Number.isInteger(eighths) && eighths % 2 === 1) {
    const lo = Math.floor(x * 100);
    return (lo % 2 === 0 ? lo : lo + 1) / 100;
  }
  return Number(x.toFixed(2));
}

const WIDTH = 640;
const CONFIG = {
  font: 'system-ui, sans-serif',
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: null },
};

async function render(spec: Record<string, unknown>): Promise<string> {
  const full = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: WIDTH, config: CONFIG, ...spec } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(full).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

const OK = '#3b7dd8';
const FAILED = '#d9534f';

/** Rows settled per bin, ok and failed stacked, on an axis of time since the first row settled. */
export function timelineChart(bins: { t: number; ok: number; failed: number }[], binS: number): Promise<string> {
  const unit = binS >= 3600 ? 3600 : binS >= 60 ? 60 : 1;
  const unitName = unit === 3600 ? 'hours' : unit === 60 ? 'minutes' : 's';
  const values = bins.flatMap((b) => [
    { from: (b.t * binS) / unit, to: ((b.t + 1) * binS) / unit, status: 'ok', n: b.ok },
    { from: (b.t * binS) / unit, to: ((b.t + 1) * binS) / unit, status: 'failed', n: b.failed },
  ]);
  return render({
    height: 180,
    data: { values },
    mark: { type: 'bar', binSpacing: 1 },
    encoding: {
      x: { field: 'from', type: 'quantitative', title: `${unitName} since the first row settled`, scale: { domainMin: 0, nice: false } },
      x2: { field: 'to' },
      y: { field: 'n', type: 'quantitative', aggregate: 'sum', title: `rows per ${binLabel(binS)}`, axis: { tickMinStep: 1 } },
      color: { field: 'status', type: 'nominal', scale: { domain: ['ok', 'failed'], range: [OK, FAILED] }, title: null },
      order: { field: 'status', sort: 'descending' },
    },
  });
}

export function binLabel(s: number): string {
  if (s < 60) return `${s} s`;
  if (s < 3600) return s === 60 ? 'minute' : `${s / 60} minutes`;
  return s === 3600 ? 'hour' : `${s / 3600} hours`;
}

/** A horizontal bar per label, longest first. */
export function barsChart(rows: { label: string; n: number }[], title: string, color = OK): Promise<string> {
  return render({
    height: { step: 18 },
    data: { values: rows },
    mark: { type: 'bar', color },
    encoding: {
      y: { field: 'label', type: 'nominal', sort: '-x', title: null, axis: { labelLimit: 260 } },
      x: { field: 'n', type: 'quantitative', title, axis: { tickMinStep: 1, format: 'd' } },
      tooltip: [{ field: 'label' }, { field: 'n' }],
    },
  });
}

/** Images per aspect bucket, in bucket order (portrait left, landscape right). */
export function aspectChart(buckets: { bucket: number; n: number }[]): Promise<string> {
  return render({
    height: 200,
    data: { values: buckets.map((b) => ({ bucket: b.bucket.toFixed(2), n: b.n })) },
    mark: { type: 'bar', color: OK },
    encoding: {
      x: { field: 'bucket', type: 'ordinal', sort: null, title: 'aspect bucket (width ÷ height, rounded as SimpleTuner does)', axis: { labelAngle: 0 } },
      y: { field: 'n', type: 'quantitative', title: 'images', axis: { tickMinStep: 1 } },
    },
  });
}

/** Captions by word count, with a rule where the token estimate passes 77. */
export function captionChart(words: { words: number; n: number }[], limitWords: number): Promise<string> {
  const most = Math.max(limitWords + 5, ...words.map((w) => w.words));
  const step = Math.max(1, Math.ceil(most / 50));
  return render({
    height: 180,
    layer: [
      {
        data: { values: words },
        mark: { type: 'bar', color: OK },
        encoding: {
          x: { field: 'words', type: 'quantitative', bin: { step, extent: [0, most + step] }, title: 'words in the caption' },
          y: { field: 'n', type: 'quantitative', aggregate: 'sum', title: 'captions', axis: { tickMinStep: 1 } },
        },
      },
      {
        data: { values: [{ words: limitWords }] },
        mark: { type: 'rule', color: FAILED, strokeDash: [4, 3], strokeWidth: 2 },
        encoding: { x: { field: 'words', type: 'quantitative' } },
      },
    ],
  });
}
