/**
 * The floor of a tiny-image row's whole job, without pcb: one thread fetches each image over a keep-alive
 * connection (undici, as pcb), reads its header and decodes every byte with sharp (what `--resize none`
 * asks), and writes the image and a caption atomically (temporary file, then rename). No pool, no
 * messages between threads, no limits, no records. Prints the process's CPU ms per row. Its files stay:
 * deleting them is the caller's, once nothing more is measured (see retire() in bench/scale.ts).
 *
 *   node dist/bench/floor-work.js <url-base> <images> <rows> <dir>
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bareValidate } from './bare.js';
import { Agent } from 'undici';
import { cpuNow } from './spawn.js';

async function main(): Promise<void> {
  const [base, imagesArg, rowsArg, dir] = process.argv.slice(2);
  const images = Number(imagesArg);
  const rows = Number(rowsArg);
  const agent = new Agent({ connections: 1 });
  const tmp = path.join(dir, '.tmp');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const caption = 'x'.repeat(570);
  const one = async (i: number) => {
    const url = new URL(`${base}/img/photo-${i % images}.jpg`);
    const res = await agent.request({ origin: url.origin, path: url.pathname, method: 'GET' });
    const data = Buffer.from(await res.body.arrayBuffer());
    await bareValidate(data);
    for (const [name, bytes] of [
      [`${i}.jpg`, data],
      [`${i}.txt`, caption],
    ] as const) {
      const t = path.join(tmp, `${name}.tmp`);
      writeFileSync(t, bytes);
      renameSync(t, path.join(dir, name));
    }
  };
  for (let i = 0; i < 200; i++) await one(i);
  const c0 = cpuNow();
  for (let i = 200; i < rows + 200; i++) await one(i);
  const ms = ((cpuNow() - c0) * 1000) / rows;
  await agent.close();
  process.stdout.write(`${ms}\n`);
}

await main();
