/**
 * `node dist/bench/h2.js`: undici 7's HTTP/2 (`allowH2`) against HTTP/1.1 keep-alive, on the kit's TLS
 * server at a simulated time to first byte: rows/s, client CPU per request, connections, failures.
 * The transport alone (tiny bodies, no resize), so that any difference is the protocol's.
 */
import os from 'node:os';
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { KIT_TLS, KitServer } from '../src/kit/server.js';
import { photoSet } from '../src/kit/photos.js';

/** The server runs in a child process, so that this process's CPU is the client's alone. */
async function serve(ttfbMs: number): Promise<void> {
  const server = await new KitServer().start({ tls: true, h2: true, ttfbMs, jitter: 0.5 });
  server.recordRequests = false;
  const [photo] = await photoSet(1, [96, 64], 80);
  server.put('p.jpg', photo.data);
  process.send!({ base: server.base });
  process.on('message', () => {
    process.send!({ connections: server.connections });
    void server.stop().then(() => process.exit(0));
  });
}

async function measure(mode: 'h1' | 'h2', ttfbMs: number, requests: number, inFlight: number) {
  const child = fork(fileURLToPath(import.meta.url), ['serve', String(ttfbMs)]);
  const next$ = () => new Promise<Record<string, unknown>>((r) => child.once('message', (m) => r(m as Record<string, unknown>)));
  const { base } = (await next$()) as { base: string };
  const server = { base };
  // h2 multiplexes only with pipelining > 1 in undici 7 (nodejs/undici#4143): streams per session.
  const connect = { ca: readFileSync(KIT_TLS.ca) };
  const agent = new Agent(
    mode === 'h2' ? { connect, allowH2: true, connections: 4, pipelining: 128 } : { connect, connections: inFlight, keepAliveTimeout: 30_000 },
  );
  let next = 0;
  let failed = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const lane = async () => {
    while (next < requests) {
      const i = next++;
      try {
        const res = await agent.request({ origin: server.base, path: `/img/p.jpg?i=${i}`, method: 'GET' });
        await res.body.arrayBuffer();
        if (res.statusCode !== 200) failed++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await agent.close();
  const done = next$();
  child.send('stop');
  const { connections } = (await done) as { connections: number };
  const clientCpuMs = (cpu.user + cpu.system) / 1000 / requests;
  return { mode, ttfbMs, requests, inFlight, rps: requests / wall, clientCpuMsPerRequest: clientCpuMs, connections, failed };
}

async function main(): Promise<void> {
  if (process.argv[2] === 'serve') return serve(Number(process.argv[3]));
  const rows = [];
  for (const [ttfb, n, c] of [
    [0, 4000, 64],
    [400, 3000, 256],
  ] as const) {
    for (const mode of ['h1', 'h2'] as const) rows.push(await measure(mode, ttfb, n, c));
  }
  const md = [
    `## undici ${(await import('undici/package.json', { with: { type: 'json' } })).default.version}: HTTP/2 against HTTP/1.1 keep-alive — ${new Date().toISOString().slice(0, 10)} on ${os.hostname()}`,
    '',
    '| protocol | time to first byte | requests | in flight | requests/s | client CPU ms/request | connections | failed |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.mode === 'h2' ? 'h2 (allowH2, 4 connections × 128 streams)' : 'HTTP/1.1 keep-alive'} | ${r.ttfbMs} ms | ${r.requests} | ${r.inFlight} | ${r.rps.toFixed(0)} | ${r.clientCpuMsPerRequest.toFixed(3)} | ${r.connections} | ${r.failed} |`,
    ),
  ].join('\n');
  process.stdout.write(md + '\n');
}

main().catch((err) => {
  process.stderr.write(`bench:h2: ${(err as Error).message}\n`);
  process.exit(1);
});
