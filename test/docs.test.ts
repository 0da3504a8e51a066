/**
 * Docs that cannot drift: the options table against the options as declared (cli-options.ts) and as
 * --help shows them, every relative link and anchor, every pcb command shown, and every figure a picture
 * of a run shows against the run recorded beside it.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CommanderError } from '@commander-js/extra-typings';
import { OPT } from '../src/cli/cli-options.js';
import { buildProgram } from '../src/cli/program.js';
import { PROJECT_URL, VERSION } from '../src/version.js';
import { cardItems, runCells } from '../src/report/page.js';
import type { ReportData } from '../src/report/data.js';
import { MIN_CORES_BUSY, QUIET, type ShotRecord } from '../bench/shot-rules.js';
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
  // Every option of `pcb download` (input is status's and merge's); an old name kept but hidden from --help is not a row.
  const options = Object.entries(OPT)
    .filter(([k]) => k !== 'input')
    .map(([, make]) => make())
    .filter((o) => !o.hidden);

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

/** Why a picture's record does not hold up, or [] when every figure it shows is the run's. */
function shotProblems(record: ShotRecord, png: Buffer): string[] {
  const problems: string[] = [];
  const sha = createHash('sha256').update(png).digest('hex');
  if (sha !== record.png.sha256)
    problems.push(`the picture is not the one its figures were taken from (sha256 ${sha.slice(0, 12)}, recorded ${record.png.sha256.slice(0, 12)})`);
  // A PNG's IHDR: width and height, big-endian, at bytes 16 and 20.
  if (png.readUInt32BE(16) !== record.png.width || png.readUInt32BE(20) !== record.png.height) problems.push('the picture is not the recorded size');
  if (record.runs.length !== 1) problems.push(`${record.runs.length} runs recorded: the picture is of one run in a fresh folder`);
  record.runs.forEach((r, i) => {
    const shown = record.shown.runs[i]?.join(' | ');
    const cells = runCells(r, i).join(' | ');
    if (shown !== cells) problems.push(`run ${i + 1}: the picture shows "${shown}", the run's record gives "${cells}"`);
  });
  if (record.shown.runs.length !== record.runs.length) problems.push(`the picture shows ${record.shown.runs.length} runs, ${record.runs.length} are recorded`);
  // The cards: each figure as the page formats its exact count, and the counts are the runs'.
  const n = (k: string) => Number(record.shown.cards[k]?.n);
  const sum = (f: (r: ShotRecord['runs'][number]) => number) => record.runs.reduce((a, r) => a + f(r), 0);
  const data = {
    totals: { rows: n('rows'), ok: n('ok'), failed: n('failed'), bytesDownloaded: n('downloaded'), bytesWritten: n('written') },
    runs: record.runs,
  } as unknown as ReportData;
  for (const [key, figure, label] of cardItems(data)) {
    const card = record.shown.cards[key];
    if (card?.figure !== figure || card.label !== label)
      problems.push(`card ${key}: the picture shows "${card?.figure} ${card?.label}", its count gives "${figure} ${label}"`);
  }
  const counts: [string, number][] = [
    ['rows', sum((r) => r.ok + r.failed)],
    ['ok', sum((r) => r.ok)],
    ['failed', sum((r) => r.failed)],
    ['downloaded', sum((r) => r.bytes_downloaded)],
  ];
  for (const [key, v] of counts) if (n(key) !== v) problems.push(`card ${key}: ${n(key)}, the runs give ${v}`);
  // A picture of pcb at work is of a quiet machine: nothing else busy around the run, and the run kept its cores busy.
  const last = record.runs.at(-1);
  if (record.other_work_busy.before > QUIET || record.other_work_busy.after > QUIET)
    problems.push(`other work kept the machine busy (${JSON.stringify(record.other_work_busy)})`);
  if (last && (last.cores_busy < MIN_CORES_BUSY || last.interrupted))
    problems.push(`the run kept ${Math.round(last.cores_busy * 100)} % of its cores busy${last.interrupted ? ' and was interrupted' : ''}: not a quiet run`);
  return problems;
}

/** Numbers in a docs sentence that describes a picture: each must be one the picture shows. */
function figuresIn(sentence: string): string[] {
  return [...sentence.matchAll(/\d[\d,.]*/g)].map((m) => m[0].replace(/[.,]$/, ''));
}

describe('the docs pictures', () => {
  const record = JSON.parse(readFileSync(path.join(ROOT, 'docs', 'report.json'), 'utf8')) as ShotRecord;
  const png = readFileSync(path.join(ROOT, 'docs', record.png.file));

  it('docs/report.png shows the run recorded in docs/report.json, made on a quiet machine (npm run docs:shots)', () => {
    expect(shotProblems(record, png)).toEqual([]);
  });

  it('the words under the picture in docs/report.md cite only figures the picture shows', () => {
    const page = readFileSync(path.join(ROOT, 'docs', 'report.md'), 'utf8');
    const caption = page.split('\n').find((l) => l.startsWith('*The demo'));
    expect(caption, 'docs/report.md has a caption under the picture (*The demo …*)').toBeDefined();
    const shown = [...Object.values(record.shown.cards).flatMap((c) => [c.figure, c.label]), ...record.shown.runs.flat()].join(' ');
    const cited = figuresIn(caption!);
    expect(cited.length).toBeGreaterThan(3);
    for (const f of cited) expect(shown, `docs/report.md cites ${f}, which the picture does not show`).toContain(f);
  });

  it('the check catches a picture that is not its record, a figure changed, a busy machine', () => {
    expect(shotProblems(record, Buffer.concat([png, Buffer.from([0])]))).toEqual([expect.stringMatching(/not the one its figures/)]);
    const slower = structuredClone(record);
    slower.runs[0].images_per_s /= 2;
    expect(shotProblems(slower, png).join('\n')).toMatch(/the run's record gives/);
    const busy = structuredClone(record);
    busy.other_work_busy.before = 0.5;
    busy.runs.at(-1)!.cores_busy = 0.2;
    expect(shotProblems(busy, png).join('\n')).toMatch(/other work.*\n.*not a quiet run/);
    expect(figuresIn('*The demo: 8.58 images/s, 11.9 s, 99 % of 2 cores.*')).toEqual(['8.58', '11.9', '99', '2']);
  });
});
