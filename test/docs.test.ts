/** Docs that cannot drift: the README's options table against the options as declared (cli-options.ts). */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { OPT } from '../src/cli-options.js';
import { PROJECT_URL, VERSION } from '../src/version.js';
import { ROOT } from './helpers.js';

interface Row {
  flags: string[];
  defaults: string;
}

/** The rows of the README's `pcb download` options table: each row's long flags and its default cell. */
function readmeOptions(readme: string): Row[] {
  const section = readme.slice(readme.indexOf('## Options'), readme.indexOf('Resize formulas'));
  return section
    .split('\n')
    .filter((l) => /^\| `-/.test(l))
    .map((l) => {
      const [flags, defaults] = l.split(/(?<!\\)\|/).slice(1, 3);
      return { flags: flags.match(/--[a-z0-9-]+/g) ?? [], defaults: defaults.trim() };
    });
}

/** Values a default cell claims: backticked text and bare numbers. */
const claims = (cell: string): string[] => (cell.match(/`[^`]+`|\b\d[\d.]*\b/g) ?? []).map((c) => c.replace(/`/g, ''));

describe('README options table', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const rows = readmeOptions(readme);
  // Every option of `pcb download` (input is status's and merge's).
  const options = Object.entries(OPT)
    .filter(([k]) => k !== 'input')
    .map(([, make]) => make());

  it('lists every option of pcb download, and nothing that is not one', () => {
    const documented = rows.flatMap((r) => r.flags);
    for (const o of options) expect(documented, `${o.long} is missing from the README's options table`).toContain(o.long);
    const real = new Set(options.map((o) => o.long));
    for (const f of documented) expect(real.has(f), `the README lists ${f}, which pcb download does not take`).toBe(true);
  });

  it("shows each option's default as the code declares it; where the code declares none, claims only what its help says", () => {
    for (const o of options) {
      const row = rows.find((r) => r.flags.includes(o.long!))!;
      const cell = claims(row.defaults);
      // The user agent is shown as its template: the version and the URL change, the shape does not.
      const declared = typeof o.defaultValue === 'string' ? o.defaultValue.replace(VERSION, '<version>').replace(PROJECT_URL, 'project URL') : o.defaultValue;
      if (declared !== undefined && typeof declared !== 'boolean') {
        // Rows that document several flags give their defaults in the same order.
        const i = row.flags.indexOf(o.long!);
        const shown = cell.length === row.flags.length ? cell[i] : cell.join(' ');
        expect(shown, `${o.long}: the README says '${row.defaults}', the code's default is '${declared}'`).toContain(String(declared));
      } else {
        for (const c of cell) expect(o.description, `${o.long}: the README claims a default of '${c}' that its help does not give`).toContain(c);
      }
    }
  });
});
