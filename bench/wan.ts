/**
 * `npm run bench:wan`: pcb over a simulated wide-area link, on loopback. The kit server adds a time to
 * first byte (± 50 %), optionally a per-response bandwidth, a per-host cap answered with 429 +
 * Retry-After, 32 hosts (127.0.0.1–32) and TLS with the kit's private CA.
 *
 * Tiny images (96×64 JPEGs): 2 cores then ask for as many rows per second (~170) as a many-core server
 * does at 1024 px, so that in-flight limits bind here as they would there. Real photos (Debian's
 * wallpapers when `.cache/photos` holds them, else the kit's 24 MP photos) give the CPU-heavy case.
 * Each scenario runs with pcb's defaults and with the old fixed settings (16 per thread, 64 per host),
 * and reports rows/s against the no-latency rate of the same images and defaults, in the same run.
 *
 *   npm run bench:wan [-- --seconds 20] [--quick | --only <part of a scenario's name>]
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KIT_TLS, KitServer } from '../src/kit/server.js';
import type { LinkOptions } from '../src/kit/server.js';
import { photoSet } from '../src/kit/photos.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import { projectRoot } from '../src/version.js';
import type { Summary } from '../src/run/progress.js';
import { run } from './spawn.js';
import { writeResults } from './results.js';

const ROOT = projectRoot();
const WORK = path.join(ROOT, '.cache', 'bench-wan');

interface Images {
  kind: 'tiny' | 'photos';
  files: { name: string; data: Buffer; width: number; height: number }[];
}

interface Scenario {
  name: string;
  images: Images;
  link: LinkOptions;
  /** The no-latency run whose rows/s this one is compared with. */
  against: string;
  /** Rows served per second the target is set from, when the host is the bound (48 / 0.4 s). */
  serves?: number;
  /** Every tenth row on a second host that is down: refusing connections, or accepting and never answering. */
  dead?: 'refuses' | 'silent';
  target: number;
}

interface Measured {
  scenario: string;
  settings: 'defaults' | 'fixed 16/64';
  rows: number;
  rows_per_s: number;
  ratio: number | null;
  ok: number;
  requests: number;
  answered_429: number;
  connections: number;
  cpu_per_wall: number;
  peak_rss_mb: number;
  in_flight_peak: number;
  parked_peak: number;
  limited_by: string;
}

function argOf(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

async function realPhotos(): Promise<Images> {
  const dir = path.join(ROOT, '.cache', 'photos');
  if (existsSync(dir)) {
    const names = readdirSync(dir)
      .filter((f) => /\.jpe?g$/i.test(f))
      .sort()
      .slice(0, 25);
    if (names.length >= 10) {
      const sharp = (await import('sharp')).default;
      const files = [];
      for (const name of names) {
        const data = readFileSync(path.join(dir, name));
        const m = await sharp(data).metadata();
        files.push({ name, data, width: m.width ?? 0, height: m.height ?? 0 });
      }
      return { kind: 'photos', files };
    }
  }
  return { kind: 'photos', files: await photoSet(20) };
}

async function writeInput(file: string, images: Images, server: KitServer, hosts: number, rows: number, deadBase: string | null): Promise<void> {
  const out = [];
  for (let i = 0; i < rows; i++) {
    const img = images.files[i % images.files.length];
    const base = deadBase && i % 10 === 9 ? deadBase : server.hostBase((i % hosts) + 1);
    out.push(datasetRow(i, `${base}/img/${encodeURIComponent(img.name)}?row=${i}`, img.width, img.height));
  }
  await writeParquet(file, out);
}

/** A host that is down: a port nothing listens on, or a server that accepts and never answers. Its base URL, and how to stop it. */
async function deadHost(kind: 'refuses' | 'silent'): Promise<{ base: string; stop: () => void }> {
  const server = net.createServer((socket) => socket.on('error', () => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  if (kind === 'refuses') {
    await new Promise<void>((r) => server.close(() => r()));
    return { base, stop: () => undefined };
  }
  return { base, stop: () => server.close() };
}

async function measure(s: Scenario, fixed: boolean, rows: number, base: number | null): Promise<Measured> {
  const server = await new KitServer().start(s.link);
  server.recordRequests = false;
  for (const f of s.images.files) server.put(f.name, f.data);
  const input = path.join(WORK, `${s.name.replace(/\W+/g, '-')}.parquet`);
  const dead = s.dead ? await deadHost(s.dead) : null;
  await writeInput(input, s.images, server, s.link.hosts ?? 1, rows, dead?.base ?? null);
  const out = path.join(WORK, 'out');
  rmSync(out, { recursive: true, force: true });
  const args = ['download', input, '--out', out, '--threads', String(os.availableParallelism()), '--allow-private-network', '--json', '--quiet'];
  if (fixed) args.push('--concurrency', '16', '--max-host-connections', '64');
  const r = await run(path.join(ROOT, 'bin', 'pcb'), args, { env: s.link.tls ? { NODE_EXTRA_CA_CERTS: KIT_TLS.ca } : {} });
  await server.stop();
  dead?.stop();
  if (r.code !== 0) throw new Error(`pcb exited ${r.code} in ${s.name}`);
  const sum = JSON.parse(r.stdout) as Summary;
  const rps = sum.processed / sum.wall_s;
  const shares = Object.entries(sum.limited_by)
    .filter(([, v]) => v >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${Math.round(v * 100)}%`)
    .join(', ');
  return {
    scenario: s.name,
    settings: fixed ? 'fixed 16/64' : 'defaults',
    rows,
    rows_per_s: rps,
    ratio: base ? rps / base : null,
    ok: sum.ok,
    requests: server.served,
    answered_429: server.answered429,
    connections: server.connections,
    cpu_per_wall: sum.cpu_s / sum.wall_s,
    peak_rss_mb: sum.peak_rss_bytes / 2 ** 20,
    in_flight_peak: sum.in_flight_peak,
    parked_peak: sum.parked_peak,
    limited_by: shares,
  };
}

async function main(): Promise<void> {
  mkdirSync(WORK, { recursive: true });
  const seconds = argOf('--seconds', 20);
  const quick = process.argv.includes('--quick');
  const tiny: Images = { kind: 'tiny', files: (await photoSet(50, [96, 64], 80)).map((p) => ({ ...p })) };
  const photos = await realPhotos();
  const one = (ttfbMs: number, more: LinkOptions = {}): LinkOptions => ({ ttfbMs, jitter: 0.5, ...more });
  const scenarios: Scenario[] = [
    { name: 'tiny, one host, 0 ms', images: tiny, link: one(0), against: 'tiny, one host, 0 ms', target: 1 },
    { name: 'tiny, one host, 100 ms', images: tiny, link: one(100), against: 'tiny, one host, 0 ms', target: 0.8 },
    { name: 'tiny, one host, 400 ms', images: tiny, link: one(400), against: 'tiny, one host, 0 ms', target: 0.8 },
    { name: 'tiny, one host, 1500 ms', images: tiny, link: one(1500), against: 'tiny, one host, 0 ms', target: 0.7 },
    { name: 'tiny, 32 hosts, 400 ms', images: tiny, link: one(400, { hosts: 32 }), against: 'tiny, one host, 0 ms', target: 0.8 },
    {
      name: 'tiny, one host, 400 ms, 429 beyond 48 open',
      images: tiny,
      link: one(400, { capPerHost: 48, retryAfterS: 1 }),
      against: 'tiny, one host, 0 ms',
      serves: 48 / 0.4,
      target: 0.7,
    },
    {
      name: 'tiny, one host, 400 ms, 1 row in 10 on a host that refuses',
      images: tiny,
      link: one(400),
      dead: 'refuses',
      against: 'tiny, one host, 0 ms',
      // No target: the run ends only when the dead host's rows have used their retries.
      target: 1,
    },
    {
      name: 'tiny, one host, 400 ms, 1 row in 10 on a host that never answers',
      images: tiny,
      link: one(400),
      dead: 'silent',
      against: 'tiny, one host, 0 ms',
      // No target: the run ends only after the dead host's first requests reach the 30 s timeout.
      target: 1,
    },
    { name: 'tiny, HTTPS, one host, 400 ms', images: tiny, link: one(400, { tls: true }), against: 'tiny, one host, 0 ms', target: 0.6 },
    { name: `${photos.kind}, one host, 0 ms`, images: photos, link: one(0), against: `${photos.kind}, one host, 0 ms`, target: 1 },
    { name: `${photos.kind}, one host, 800 ms`, images: photos, link: one(800), against: `${photos.kind}, one host, 0 ms`, target: 0.85 },
  ];
  const only = process.argv.indexOf('--only');
  const pick = only >= 0 ? process.argv[only + 1] : null;
  // A scenario's baseline always runs first, so its ratio is from this run.
  const wanted = (s: Scenario) => (pick ? s.name.includes(pick) : !quick || /(one host, (0|400) ms)$/.test(s.name));
  const chosen = scenarios.filter((s) => wanted(s) || scenarios.some((o) => wanted(o) && o.against === s.name));
  const results: Measured[] = [];
  const base = new Map<string, number>();
  for (const s of chosen) {
    for (const fixed of [false, true]) {
      const ref = base.get(s.against) ?? null;
      // Rows for about `seconds` at the no-latency rate (a first guess for the baseline itself).
      const rate = ref ?? (s.images.kind === 'tiny' ? 175 : 5.5);
      // The old fixed settings run at a fraction of the rate over a slow link: a third of the rows tells their rate as well.
      const slow = fixed && (s.link.ttfbMs ?? 0) >= 400;
      const rows = Math.round(Math.max(s.images.kind === 'tiny' ? 600 : 40, Math.round(rate * seconds)) / (slow ? 3 : 1));
      process.stderr.write(`bench:wan: ${s.name}, ${fixed ? 'fixed 16/64' : 'defaults'}, ${rows} rows\n`);
      const m = await measure(s, fixed, rows, s.serves ?? ref);
      if (!fixed && s.against === s.name) base.set(s.name, m.rows_per_s);
      results.push(m);
    }
  }
  const target = new Map(chosen.map((s) => [s.name, s]));
  const f = (n: number, d = 1) => n.toFixed(d);
  const lines = [
    `## pcb bench:wan — ${new Date().toISOString().slice(0, 10)} on ${os.hostname()} (${os.availableParallelism()} cores)`,
    '',
    `Loopback CDN (time to first byte ± 50 %), \`--threads ${os.availableParallelism()}\`, PNG at 1024 px (tiny images stay 64×64). Ratio: rows/s against the same images at no latency with pcb's defaults, in this run (for the 429 host: against what it can serve, 48 open / 0.4 s = 120 rows/s). "fixed 16/64" is \`--concurrency 16 --max-host-connections 64\`, the old defaults. ${photos.kind === 'photos' ? 'Photos: Debian wallpapers (real photographs).' : "Photos: the kit's 24 MP photos."}`,
    '',
    '| scenario | settings | rows | rows/s | ratio | target | ok | requests | 429 share | connections | CPU-s/wall-s | peak RSS MB | peak in flight (+ parked) | limited by |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.map((m) => {
      const t = target.get(m.scenario)!;
      return `| ${m.scenario} | ${m.settings} | ${m.rows} | ${f(m.rows_per_s)} | ${m.ratio === null ? '' : f(m.ratio, 2)} | ${m.settings === 'defaults' && t.target < 1 ? `≥ ${t.target}` : ''} | ${m.ok} | ${m.requests} | ${f((100 * m.answered_429) / Math.max(1, m.requests))} % | ${m.connections} | ${f(m.cpu_per_wall, 2)} | ${f(m.peak_rss_mb, 0)} | ${m.in_flight_peak}${m.parked_peak ? ` (+ ${m.parked_peak})` : ''} | ${m.limited_by} |`;
    }),
  ];
  const md = lines.join('\n');
  // A partial run (--quick, --only) has its own file: the full table stays whole.
  writeResults(quick || pick ? 'wan-quick' : 'wan-latest', md, { date: new Date().toISOString(), results });
}

main().catch((err) => {
  process.stderr.write(`bench:wan: ${(err as Error).message}\n`);
  process.exit(1);
});
