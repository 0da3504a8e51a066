/** Quoting for identifiers and literals spliced into DuckDB SQL. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** A one-line, human message out of a DuckDB error. */
export function duckMessage(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, 1)
    .join(' ')
    .replace(/\b[A-Z][A-Za-z]*( [A-Z][A-Za-z]*)? Error: /g, '')
    .slice(0, 400);
}
