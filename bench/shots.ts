/**
 * `npm run docs:shots`: docs/report.png, the report of a demo run made on a quiet machine, and docs/report.json
 * beside it: the run the picture shows (its `.pcb/runs.jsonl` lines), every figure the picture shows as the page
 * drew it, how busy the machine was around the run, and the picture's sha256. test/docs.test.ts ties each figure
 * to the run, as it ties the options table to the code; a picture retaken without its figures fails there.
 *
 * Needs Debian's chromium (`apt-get install chromium`). Refuses a machine busy with other work (the picture
 * would show a slow demo and few cores busy, as the first one did); `--anyway` takes it regardless.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../src/version.js';
import { readRunLines } from '../src/report/data.js';
import { QUIET, type ShotRecord } from './shot-rules.js';

const ROOT = projectRoot();
const DOCS = path.join(ROOT, 'docs');
const WIDTH = 1150;
const HEIGHT = 2350;

/** Busy share of all cores over `ms`, from /proc/stat (user + nice + system + irq + softirq + steal over all). */
async function machineBusy(ms: number): Promise<number> {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] }).on('exit', (c) => resolve(c ?? 1)));
}

async function main(): Promise<number> {
  const anyway = process.argv.includes('--anyway');
  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (!chromium) {
    process.stderr.write('docs:shots: no chromium here (apt-get install chromium)\n');
    return 1;
  }
  const before = await machineBusy(3000);
  if (before > QUIET && !anyway) {
    process.stderr.write(`docs:shots: the machine is ${Math.round(before * 100)} % busy with other work; wait until it is quiet (or pass --anyway)\n`);
    return 1;
  }
  // A fresh folder: the picture shows one run, a new user's first demo (runs.jsonl keeps every run's line).
  const out = path.join(ROOT, 'demo-output');
  rmSync(out, { recursive: true, force: true });
  if ((await run(process.execPath, [path.join(ROOT, 'dist', 'src', 'kit', 'demo.js')])) !== 0) return 1;
  const after = await machineBusy(3000);
  const html = path.join(out, '.pcb', 'report.html');

  const puppeteer = (await import('puppeteer-core')).default;
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const png = path.join(DOCS, 'report.png');
  let shown: ShotRecord['shown'];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: WIDTH, height: HEIGHT });
    await page.goto(`file://${html}`, { waitUntil: 'load' });
    // Run in the page (a string: this file is compiled without the DOM's types).
    shown = (await page.evaluate(`(() => {
      const cards = {};
      for (const el of document.querySelectorAll('[id^="count-"]')) {
        cards[el.id.slice(6)] = { figure: el.querySelector('b')?.textContent ?? '', label: el.querySelector('span')?.textContent ?? '', n: el.dataset.n ?? '' };
      }
      const runs = [...document.querySelectorAll('#run-table tr')].slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? ''));
      const header = [...document.querySelectorAll('h1, .sub')].map((e) => e.textContent ?? '');
      return { cards, runs, header };
    })()`)) as typeof shown;
    await page.screenshot({ path: png, clip: { x: 0, y: 0, width: WIDTH, height: HEIGHT } });
  } finally {
    await browser.close();
  }
  const record: ShotRecord = {
    made_at: new Date().toISOString(),
    commit: execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim(),
    machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model ?? '', node: process.version },
    other_work_busy: { before: Number(before.toFixed(3)), after: Number(after.toFixed(3)) },
    runs: readRunLines(out),
    shown,
    png: { file: 'report.png', sha256: createHash('sha256').update(readFileSync(png)).digest('hex'), width: WIDTH, height: HEIGHT },
  };
  writeFileSync(path.join(DOCS, 'report.json'), `${JSON.stringify(record, null, 2)}\n`);
  const last = record.runs.at(-1);
  process.stderr.write(
    `docs:shots: docs/report.png and docs/report.json: ${last?.images_per_s.toFixed(2)} images/s, ${last?.wall_s.toFixed(1)} s, ${Math.round((last?.cores_busy ?? 0) * 100)} % of ${last?.cores_available} cores busy; other work ${Math.round(before * 100)} % before, ${Math.round(after * 100)} % after\n`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`docs:shots: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
