/**
 * Docs that cannot drift: the options table against the options as declared (cli-options.ts) and as
 * --help shows them, every relative link and anchor, every pcb command shown.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CommanderError } from '@commander-js/extra-typings';
import { OPT } from '../src/cli/cli-options.js';
import { buildProgram } from '../src/cli/program.js';
import { PROJECT_URL, VERSION } from '../src/version.js';
import { ROOT } from './helpers.js';

interface Row {
  flags: string[];
  defaults: string;
}

/** The rows of the `pcb download` options table: each row's long flags and its default cell. */
function tableOptions(page: string): Row[] {
  const section = page.slice(page.indexOf('`pcb download <input.parquet> [options]`'), page.indexOf('Resize formulas'));
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

describe('the options table (docs/options.md)', () => {
  const page = readFileSync(path.join(ROOT, 'docs', 'options.md'), 'utf8');
  const rows = tableOptions(page);
  // Every option of `pcb download` (input is status's and merge's).
  const options = Object.entries(OPT)
    .filter(([k]) => k !== 'input')
    .map(([, make]) => make());

  it('lists every option of pcb download, and nothing that is not one', () => {
    const documented = rows.flatMap((r) => r.flags);
    for (const o of options) expect(documented, `${o.long} is missing from docs/options.md's table`).toContain(o.long);
    const real = new Set(options.map((o) => o.long));
    for (const f of documented) expect(real.has(f), `docs/options.md lists ${f}, which pcb download does not take`).toBe(true);
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
        expect(shown, `${o.long}: docs/options.md says '${row.defaults}', the code's default is '${declared}'`).toContain(String(declared));
      } else {
        for (const c of cell) expect(o.description, `${o.long}: docs/options.md claims a default of '${c}' that its help does not give`).toContain(c);
      }
    }
  });
});

/** README.md and every page of docs/. */
function pages(): { file: string; text: string }[] {
  const docs = readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => path.join(ROOT, 'docs', f));
  return [path.join(ROOT, 'README.md'), ...docs].map((file) => ({ file, text: readFileSync(file, 'utf8') }));
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** Relative links of a markdown page, outside code blocks: [text](target). */
function relativeLinks(text: string): string[] {
  const prose = text.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((t) => !/^[a-z]+:/.test(t));
}

/** Why a relative link from `file` does not resolve, or null when it does (the file, and its heading). */
function brokenLink(file: string, target: string): string | null {
  const [rel, anchor] = target.split('#');
  const dest = rel ? path.resolve(path.dirname(file), rel) : file;
  if (!existsSync(dest)) return `${target}: no such file`;
  if (!anchor) return null;
  const headings = [
    ...readFileSync(dest, 'utf8')
      .replace(/```[\s\S]*?```/g, '')
      .matchAll(/^#+ (.+)$/gm),
  ].map((m) => slug(m[1]));
  return headings.includes(anchor) ? null : `${target}: no heading #${anchor}`;
}

/** Words of a shell command line, quotes removed; a "$VAR" stands for a number, as the schedulers set them. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) words.push(m[1] ?? m[2] ?? m[3]);
  return words.map((w) => (/^\$[A-Z_]+$/.test(w) ? '8' : w));
}

/** Every pcb command a page shows: lines of its sh blocks (continuations joined), and a YAML command list. */
function shownCommands(text: string): string[][] {
  const out: string[][] = [];
  for (const [, lang, body] of text.matchAll(/```(\w*)\n([\s\S]*?)```/g)) {
    if (lang === 'sh') {
      for (const line of body.replace(/\\\n\s*/g, ' ').split('\n')) {
        const cmd = line.replace(/\s#.*$/, '').split(/\s(?:&&|\|\|?|;|\d?>)\s/)[0];
        const words = shellWords(cmd);
        const at = words.findIndex((w) => /(^|\/)pcb$/.test(w));
        if (at >= 0 && (at === 0 || /^(npx|.*\/bin\/pcb)$/.test(words[at - 1]) || words[at - 1] === 'npx')) out.push(words.slice(at + 1));
      }
    } else if (lang === 'yaml') {
      for (const [, list] of body.matchAll(/command:\s*(\[[\s\S]*?\])/g)) {
        const words = JSON.parse(list) as string[];
        const at = words.indexOf('pcb');
        if (at >= 0) out.push(words.slice(at + 1));
      }
    }
  }
  return out;
}

/** Why the CLI refuses `args`, or null when it parses them (nothing is run). */
async function cliRefuses(args: string[]): Promise<string | null> {
  const program = buildProgram();
  let said = '';
  for (const c of [program, ...program.commands]) {
    c.exitOverride();
    c.configureOutput({ writeOut: () => undefined, writeErr: () => undefined, outputError: (str) => (said += str) });
    c.action(() => undefined);
  }
  try {
    await program.parseAsync(['node', 'pcb', ...args]);
    return null;
  } catch (err) {
    if (err instanceof CommanderError) return said.trim() || err.message;
    return (err as Error).message;
  }
}

describe('the docs, as a user follows them', () => {
  it('every relative link in README.md and docs/ resolves, anchors included', () => {
    let links = 0;
    for (const { file, text } of pages()) {
      for (const target of relativeLinks(text)) {
        links++;
        expect(brokenLink(file, target), `${path.relative(ROOT, file)} links to ${target}`).toBeNull();
      }
    }
    expect(links).toBeGreaterThan(20);
  });

  it('every pcb command shown parses with the current CLI', async () => {
    const shown = pages().flatMap(({ file, text }) => shownCommands(text).map((args) => ({ file, args })));
    expect(shown.length).toBeGreaterThan(8);
    for (const { file, args } of shown) {
      expect(await cliRefuses(args), `${path.relative(ROOT, file)}: pcb ${args.join(' ')}`).toBeNull();
    }
  });

  it('the options table lists what pcb download --help shows, flag for flag', () => {
    const download = buildProgram().commands.find((c) => c.name() === 'download')!;
    const help = new Set(download.helpInformation().match(/--[a-z0-9-]+/g));
    help.delete('--help');
    const table = new Set(tableOptions(readFileSync(path.join(ROOT, 'docs', 'options.md'), 'utf8')).flatMap((r) => r.flags));
    expect([...table].sort()).toEqual([...help].sort());
  });

  it('the checks catch what they are for: a broken link, an unknown option, a wrong value', async () => {
    expect(brokenLink(path.join(ROOT, 'README.md'), 'docs/nowhere.md')).toMatch(/no such file/);
    expect(brokenLink(path.join(ROOT, 'README.md'), 'docs/options.md#no-such-heading')).toMatch(/no heading/);
    expect(await cliRefuses(['download', 'in.parquet', '--no-such-option'])).toMatch(/unknown option '--no-such-option'/);
    expect(await cliRefuses(['download', 'in.parquet', '--threads', 'many'])).toMatch(/--threads/);
    expect(await cliRefuses(['download', 'in.parquet', '--threads', '4', '--processes', 'auto'])).toBeNull();
    expect(shownCommands('```sh\nnpx pcb verify train  # check\n<clone>/bin/pcb download a.parquet \\\n  --threads "$SLURM_CPUS_PER_TASK"\n```\n')).toEqual([
      ['verify', 'train'],
      ['download', 'a.parquet', '--threads', '8'],
    ]);
  });
});
