/** The report as one self-contained HTML page: inline CSS, inline SVG charts, thumbnails as data URIs, no script. */
import prettyBytes from 'pretty-bytes';
import type { ReportData, RunLine } from './data.js';
import type { Thumb } from './thumbs.js';
import { aspectBucket, aspectChart, barsChart, binLabel, captionChart, timelineChart } from './charts.js';

/** 77 CLIP tokens less the start and end tokens, at ~1.3 tokens a word: an estimate, labelled as one. */
export const CLIP_WORDS = Math.floor(75 / 1.3);

export const esc = (s: unknown): string =>
  String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

const num = (n: number) => n.toLocaleString('en-US');
const pct = (a: number, b: number) => (b ? `${((100 * a) / b).toFixed(1)} %` : '–');

const CSS = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666}.banner{background:#fff4d6;border:1px solid #e8c766;padding:8px 12px;border-radius:6px;margin:12px 0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}.card{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}.card.bad b{color:#c9302c}.card.good b{color:#2e6fc7}
table{border-collapse:collapse;background:#fff;margin:8px 0}td,th{border:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}td{white-space:nowrap}td:last-child{white-space:normal;min-width:220px}td.w{white-space:normal;min-width:120px}
th{background:#f2f2f2;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ex{color:#555;font-size:12px;word-break:break-all}.chart{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:8px;margin:8px 0;overflow-x:auto}
.sheet{display:grid;grid-template-columns:repeat(auto-fill,minmax(168px,1fr));gap:8px}
figure{margin:0;background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:4px;text-align:center}
figure img{max-width:160px;max-height:160px;display:block;margin:0 auto}figcaption{font-size:11px;color:#555;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.note{color:#666;font-size:12px}.wide{overflow-x:auto}
`;

/** The cards at the top, as [key, figure, label, exact count, class]: what a person reads first. */
export function cardItems(d: ReportData): [string, string, string, number | null, string?][] {
  const t = d.totals;
  const last = d.runs.at(-1);
  const items: [string, string, string, number | null, string?][] = [
    ['rows', num(t.rows), 'rows settled', t.rows],
    ['ok', num(t.ok), `ok (${pct(t.ok, t.rows)})`, t.ok, 'good'],
    ['failed', num(t.failed), `failed (${pct(t.failed, t.rows)})`, t.failed, t.failed ? 'bad' : undefined],
    ['downloaded', prettyBytes(t.bytesDownloaded), 'downloaded', t.bytesDownloaded],
    ['written', t.bytesWritten === null ? '–' : prettyBytes(t.bytesWritten), 'written (images + captions)', t.bytesWritten],
  ];
  if (last) items.push(['rate', `${last.images_per_s.toFixed(1)}`, 'images/s, last run', last.images_per_s]);
  return items;
}

function cards(d: ReportData): string {
  // data-n: the exact count, for a reader (or a test) that should not parse the text.
  return `<div class="cards">${cardItems(d)
    .map(([key, v, l, n, c]) => `<div class="card${c ? ` ${c}` : ''}" id="count-${key}" data-n="${n ?? ''}"><b>${esc(v)}</b><span>${esc(l)}</span></div>`)
    .join('')}</div>`;
}

/** The runs table's columns, and one run's cells as text: the table and the docs' pictures are checked against these. */
export const RUN_COLUMNS = [
  '#',
  'finished',
  'shard',
  'selected',
  'ok',
  'failed',
  'skipped',
  'downloaded',
  'wall',
  'images/s',
  'cores busy',
  'allocator',
  'what bound it',
];
export function runCells(r: RunLine, i: number): string[] {
  return [
    String(i + 1),
    r.finished_at ?? '',
    r.shard ?? '',
    num(r.selected),
    num(r.ok),
    num(r.failed),
    num(r.skipped),
    prettyBytes(r.bytes_downloaded),
    `${r.wall_s.toFixed(1)} s`,
    r.images_per_s.toFixed(2),
    `${Math.round(r.cores_busy * 100)} % of ${r.cores_available}`,
    r.allocator,
    `${boundShort(r.limited_by_hint)}${r.interrupted ? ' (interrupted)' : ''}`,
  ];
}

function runsTable(runs: RunLine[]): string {
  if (!runs.length) return '<p class="note">No run summary in this folder yet (runs finished by pcb record theirs in .pcb/runs.jsonl).</p>';
  // Numbers right-aligned; the last cell carries the whole hint as its title.
  const rows = runs.map((r, i) => {
    const cells = runCells(r, i).map((c) => esc(c));
    cells[12] = `${esc(boundShort(r.limited_by_hint))}${r.interrupted ? ' <b>(interrupted)</b>' : ''}`;
    const cls = (k: number) => ([0, 3, 4, 5, 6, 7, 8, 9, 10].includes(k) ? ' class="n"' : k === 11 ? ' class="w"' : '');
    const td = cells.map((c, k) => (k === 12 ? `<td title="${esc(r.limited_by_hint ?? '')}">${c}</td>` : `<td${cls(k)}>${c}</td>`));
    return `<tr>${td.join('')}</tr>`;
  });
  return `<div class="wide"><table id="run-table"><tr>${RUN_COLUMNS.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>${rows.join('')}</table></div>`;
}

/** The hint's first clause ("network-bound (97 % of the run)"); the whole sentence is the cell's title. */
const boundShort = (hint: string | null) => (hint ? hint.split(':')[0] : '');

const examples = (ex: { id: string | null; url: string | null; message: string | null }[]) =>
  ex.map((e) => `<div class="ex">${esc(e.id)} · ${esc(e.url)}${e.message ? ` · ${esc(e.message)}` : ''}</div>`).join('');

export async function renderPage(d: ReportData, thumbs: Thumb[]): Promise<string> {
  const chart = (svg: string) => `<div class="chart">${svg}</div>`;
  const parts: string[] = [];
  parts.push(`<h1>pcb report: ${esc(d.label)}</h1><div class="sub">made ${esc(d.generatedAt)} · from ${esc(d.basis)}</div>`);
  if (d.inProgress)
    parts.push(`<div class="banner" id="in-progress">A run is still going: this report shows the rows settled when it was made (${esc(d.generatedAt)}).</div>`);
  if (d.settings) {
    const s = d.settings;
    parts.push(
      `<div class="sub">input ${esc(s.input)}${s.where ? ` · where ${esc(s.where)}` : ''} · ${esc(s.outputFormat ?? 'files')} of ${esc(s.format)} · resize ${esc(s.resize)} ${esc(s.resolution)}</div>`,
    );
  }
  parts.push(`<section id="run"><h2>The run</h2>${cards(d)}${runsTable(d.runs)}</section>`);

  parts.push('<section id="time"><h2>Over time</h2>');
  parts.push(
    d.timeline?.bins.length
      ? chart(await timelineChart(d.timeline.bins, d.timeline.binS)) +
          `<p class="note">Rows settled per ${binLabel(d.timeline.binS)}, ok and failed stacked, from the log's times (first row ${esc(new Date(d.totals.firstAt ?? 0).toISOString())}, last ${esc(new Date(d.totals.lastAt ?? 0).toISOString())}).</p>`
      : '<p class="note">No times to show: the logs of this folder are older than the report, or not here.</p>',
  );
  parts.push('</section>');

  parts.push('<section id="failures"><h2>Failures</h2>');
  if (!d.errors.length) parts.push('<p>No row failed.</p>');
  else {
    parts.push(
      chart(
        await barsChart(
          d.errors.map((e) => ({ label: e.code, n: e.n })),
          'failed rows',
          '#d9534f',
        ),
      ),
    );
    parts.push(
      `<table id="error-table"><tr><th>error</th><th>rows</th><th>examples (id · url · reason)</th></tr>${d.errors
        .map((e) => `<tr data-code="${esc(e.code)}" data-n="${e.n}"><td>${esc(e.code)}</td><td class="n">${num(e.n)}</td><td>${examples(e.examples)}</td></tr>`)
        .join('')}</table>`,
    );
    parts.push(
      `<h3>Hosts with the most failures (top 10)</h3><table id="host-table"><tr><th>host</th><th>failed</th><th>of rows</th><th>codes</th><th>examples</th></tr>${d.hosts
        .map(
          (h) =>
            `<tr><td>${esc(h.host)}</td><td class="n">${num(h.failed)}</td><td class="n">${num(h.rows)}</td><td>${esc(h.codes)}</td><td>${examples(h.examples)}</td></tr>`,
        )
        .join('')}</table>`,
    );
  }
  parts.push('</section>');

  parts.push('<section id="trainer"><h2>What the trainer will see</h2>');
  const buckets = new Map<number, number>();
  for (const s of d.sizes) buckets.set(aspectBucket(s.width, s.height), (buckets.get(aspectBucket(s.width, s.height)) ?? 0) + s.n);
  const sortedBuckets = [...buckets].sort((a, b) => a[0] - b[0]).map(([bucket, n]) => ({ bucket, n }));
  if (sortedBuckets.length) {
    parts.push(chart(await aspectChart(sortedBuckets)));
    parts.push(`<p class="note">${sortedBuckets.length} aspect buckets. SimpleTuner buckets an image by round(width ÷ height, 2).</p>`);
    const sizes = [...d.sizes].sort((a, b) => b.n - a.n);
    const top = sizes.slice(0, 15).map((s) => ({ label: `${s.width}×${s.height} (${aspectBucket(s.width, s.height).toFixed(2)})`, n: s.n }));
    parts.push(chart(await barsChart(top, `images (the ${top.length} most common of ${sizes.length} sizes)`)));
  } else parts.push('<p>No image written yet.</p>');
  const c = d.captions;
  if (c.sources.length) {
    parts.push(
      `<table id="caption-sources"><tr><th>caption from</th><th>images</th></tr>${c.sources
        .map(
          (s) =>
            `<tr><td>${esc(s.source === 'primary' ? `${d.settings?.captionColumn ?? 'caption column'} (primary)` : s.source === 'fallback' ? `${d.settings?.fallbackCaptionColumn ?? 'fallback column'} (fallback)` : s.source)}</td><td class="n">${num(s.n)}</td></tr>`,
        )
        .join('')}</table>`,
    );
  }
  if (c.available && c.words.length) {
    const total = c.words.reduce((a, w) => a + w.n, 0);
    const over = c.words.filter((w) => w.words > CLIP_WORDS).reduce((a, w) => a + w.n, 0);
    parts.push(chart(await captionChart(c.words, CLIP_WORDS)));
    parts.push(
      `<p id="caption-over">${num(over)} of ${num(total)} captions (${pct(over, total)}) are longer than ~${CLIP_WORDS} words, about 77 CLIP tokens: CLIP-based text encoders cut them. <span class="note">(A word-count estimate at ~1.3 tokens a word, not a tokenizer's count.)</span></p>`,
    );
  }
  if (c.note) parts.push(`<p class="note">${esc(c.note)}</p>`);
  parts.push('</section>');

  parts.push(
    `<section id="sheet"><h2>A contact sheet</h2><p class="note">${thumbs.length} ok images picked at random, from the written files; hover for the caption.</p><div class="sheet">`,
  );
  for (const t of thumbs) {
    const title = `${t.id} · ${t.width}×${t.height}${t.caption ? `\n${t.caption}` : ''}`;
    parts.push(
      t.uri
        ? `<figure title="${esc(title)}"><img src="${t.uri}" alt="${esc(t.id)}"><figcaption>${esc(t.id)}</figcaption></figure>`
        : `<figure title="${esc(title)}" class="missing"><figcaption>${esc(t.id)}: ${esc(t.problem)}</figcaption></figure>`,
    );
  }
  parts.push('</div></section>');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>pcb report: ${esc(d.label)}</title><style>${CSS}</style></head><body><main>${parts.join('\n')}</main></body></html>\n`;
}
