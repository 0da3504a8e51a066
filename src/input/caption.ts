/**
 * A caption's text, one rule for both engines: the worker's (JavaScript) writes the .txt and the tar's
 * .txt and .json, DuckDB's writes metadata.parquet's `caption` and feeds the report and status. The
 * whitespace trimmed off is written once, as code points, and each engine's pattern is made from it.
 */

/** JavaScript's String.prototype.trim set: tab to carriage return, space, the Unicode space separators, line and paragraph separators, BOM. */
const CAPTION_SPACE: [number, number][] = [
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
];

/** The class in a pattern whose code points are written by `written` (JavaScript `\u{…}`, RE2 `\x{…}`). */
function spaceClass(written: (cp: number) => string): string {
  return `[${CAPTION_SPACE.map(([a, b]) => (a === b ? written(a) : `${written(a)}-${written(b)}`)).join('')}]`;
}

const JS_EDGES = new RegExp(`^${spaceClass((cp) => `\\u{${cp.toString(16)}}`)}+|${spaceClass((cp) => `\\u{${cp.toString(16)}}`)}+$`, 'gu');
const SQL_CLASS = spaceClass((cp) => `\\x{${cp.toString(16)}}`);

const JS_RUN = new RegExp(`${spaceClass((cp) => `\\u{${cp.toString(16)}}`)}+`, 'u');

/** A caption without the whitespace at its ends. */
export function trimCaption(s: string): string {
  return s.replace(JS_EDGES, '');
}

/** The same in DuckDB. */
export function trimCaptionSql(expr: string): string {
  return `regexp_replace(${expr}, '^${SQL_CLASS}+|${SQL_CLASS}+$', '', 'g')`;
}

/** Words in a caption: runs of anything but that whitespace (the report's caption lengths). */
export function captionWords(text: string): number {
  const t = trimCaption(text);
  return t ? t.split(JS_RUN).length : 0;
}

/** The same in DuckDB. */
export function captionWordsSql(expr: string): string {
  const t = trimCaptionSql(expr);
  return `CASE WHEN coalesce(${t}, '') = '' THEN 0 ELSE len(regexp_split_to_array(${t}, '${SQL_CLASS}+')) END`;
}

/** A column's caption text in JavaScript: a list's items trimmed, empty ones dropped, joined with ", "; anything else as text, trimmed. */
export function captionText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value))
    return value
      .filter((v) => v !== null && v !== undefined)
      .map((v) => trimCaption(String(v)))
      .filter(Boolean)
      .join(', ');
  return trimCaption(String(value));
}

/** The same in DuckDB, for a column of `type`: lists (`VARCHAR[]`) and arrays (`VARCHAR[3]`) item by item. */
export function captionTextSql(expr: string, type: string): string {
  if (!type.endsWith(']')) return trimCaptionSql(`CAST(${expr} AS VARCHAR)`);
  const items = `list_transform(CAST(${expr} AS VARCHAR[]), __c -> ${trimCaptionSql('__c')})`;
  return `array_to_string(list_filter(${items}, __c -> __c <> ''), ', ')`;
}
