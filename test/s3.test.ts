import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { query, readParquet, runPcb, tmpDir, until, useKit } from './helpers.js';
import { datasetRow, writeParquet } from '../src/kit/dataset.js';
import { photoSet } from '../src/kit/photos.js';
import { KitS3Server } from '../src/kit/s3-server.js';
import { scanTar } from '../src/output/tar.js';
import type { Ran } from '../src/kit/spawn.js';

// The test's own SDK client, like pcb, has no word to say about Node 20's end of support.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const kit = useKit(8, [320, 240]);
let s3: KitS3Server;
/** Photos whose noise makes PNGs of ~6 MB: four of them fill a tar past what a single PUT takes (8 MB). */
const big: string[] = [];
/** 96×64 photos: rows whose CPU is negligible beside any store latency. */
const tiny: string[] = [];
beforeAll(async () => {
  s3 = await new KitS3Server(['train']).start();
  for (const [i, p] of (await photoSet(4, [96, 64], 80)).entries()) {
    kit.server.put(`tiny-${i}.jpg`, p.data);
    tiny.push(`tiny-${i}.jpg`);
  }
  for (const [i, p] of (await photoSet(3, [1600, 1200], 90)).entries()) {
    kit.server.put(`big-${i}.jpg`, p.data);
    big.push(`/img/big-${i}.jpg`);
  }
});
afterAll(async () => {
  await s3?.stop();
});

const common = ['--allow-private-network', '--resolution', '128', '--quiet', '--json'];

function client(): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint: s3.env.AWS_ENDPOINT_URL,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
}

/** Every object under a prefix, by name relative to it, with its size. */
async function objects(prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await client().send(new ListObjectsV2Command({ Bucket: 'train', Prefix: `${prefix}/`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.set(o.Key!.slice(prefix.length + 1), o.Size ?? 0);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

async function getObject(key: string): Promise<Buffer> {
  const r = await client().send(new GetObjectCommand({ Bucket: 'train', Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

async function input(dir: string, n: number, tag: string, route = (i: number) => `/img/${kit.photos[i % kit.photos.length].name}`): Promise<string> {
  const file = path.join(dir, 'in.parquet');
  await writeParquet(
    file,
    Array.from({ length: n }, (_, i) => datasetRow(i, kit.server.url(`${route(i)}?t=${tag}&r=${i}`), 320, 240)),
  );
  return file;
}

/** pcb against the kit's S3 server, its state in the test's own folder. */
function pcbS3(args: string[], dir: string, env: NodeJS.ProcessEnv = {}) {
  return runPcb(args, { env: { ...s3.env, XDG_CACHE_HOME: path.join(dir, 'cache'), ...env } });
}

/** A download of the big photos at full size into tars of 4 (two tars past a single PUT: multipart) under `train/<prefix>`. */
const bigTars = (file: string, prefix: string) => [
  'download',
  file,
  '--out',
  `s3://train/${prefix}`,
  '--output-format',
  'webdataset',
  '--samples-per-tar',
  '4',
  '--resize',
  'none',
];

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const fetched = (tag: string) => kit.server.requests.filter((q) => q.path.includes(`t=${tag}&`)).length;

/** Ctrl-C until pcb is gone: the first asks for a soft stop, the next (signals that arrive together count once) for a hard one. */
async function ctrlCUntilGone(run: Promise<Ran>, pid: number): Promise<Ran> {
  let exited = false;
  void run.then(() => {
    exited = true;
  });
  while (!exited) {
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      break;
    }
    await new Promise((w) => setTimeout(w, 100));
  }
  return run;
}

describe('--out s3://bucket/prefix', () => {
  it('files: every ok row is an image and a caption object, the records are uploaded, and a rerun lists the prefix once', async () => {
    const dir = tmpDir();
    const tag = `s3f${Date.now()}`;
    const file = path.join(dir, 'in.parquet');
    const rows = Array.from({ length: 12 }, (_, i) => datasetRow(i, kit.server.url(`/img/${kit.photos[i % 8].name}?t=${tag}&r=${i}`), 320, 240));
    rows.push(datasetRow(12, kit.server.url(`/status/404?t=${tag}&r=12`), 320, 240));
    await writeParquet(file, rows);
    const r = await pcbS3(['download', file, '--out', 's3://train/files', '--threads', '2', '--processes', '2', ...common], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ out: 's3://train/files', ok: 12, failed: 1, manifest: 's3://train/files/manifest.parquet' });
    const names = await objects('files');
    for (const row of rows.slice(0, 12)) {
      expect(names.get(`${row.id}.png`)).toBeGreaterThan(0);
      expect(names.has(`${row.id}.txt`)).toBe(true);
    }
    expect(names.has(`${rows[12].id}.png`)).toBe(false);
    expect(names.has(`${rows[12].id}.txt`)).toBe(false);
    expect(names.has('manifest.parquet') && names.has('metadata.parquet') && names.has('.pcb/run.json')).toBe(true);
    // The uploaded records are the run's: one row per input row.
    writeFileSync(path.join(dir, 'manifest.parquet'), await getObject('files/manifest.parquet'));
    expect((await readParquet(path.join(dir, 'manifest.parquet'))).map((m) => m.row)).toEqual(range(13));
    const png = await sharp(await getObject(`files/${rows[0].id}.png`)).metadata();
    expect([png.format, png.height]).toEqual(['png', 128]);
    expect((await getObject(`files/${rows[0].id}.txt`)).toString()).toBe(String(rows[0].cogvlm_caption));

    // Resume: no image fetched again, no HEAD per row, one listing of the prefix.
    const before = s3.requests.length;
    const again = JSON.parse((await pcbS3(['download', file, '--out', 's3://train/files', '--threads', '2', ...common], dir)).stdout);
    expect(again).toMatchObject({ processed: 0, skipped: 13 });
    const during = s3.requests.slice(before);
    expect(during.filter((q) => q.method === 'HEAD' && q.path.startsWith('/train/files/'))).toEqual([]);
    expect(during.filter((q) => q.method === 'GET' && q.path.includes('list-type=2')).length).toBe(1);
    expect(fetched(tag)).toBe(13);

    const status = await pcbS3(['status', 's3://train/files', '--input', file, '--json'], dir);
    expect(JSON.parse(status.stdout)).toMatchObject({ out: 's3://train/files', ok: 12, failed: 1, left: 0 });
  });

  it('webdataset: tars uploaded whole (multipart when large) with their index, verify agrees; config names the bucket but writes no secret', async () => {
    const dir = tmpDir();
    const file = await input(dir, 8, `s3w${Date.now()}`, (i) => big[i % big.length]);
    const r = await pcbS3([...bigTars(file, 'wds'), '--format', 'png', '--threads', '1', ...common.filter((a) => a !== '--resolution' && a !== '128')], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const names = await objects('wds');
    const tars = [...names.keys()].filter((n) => n.endsWith('.tar'));
    expect(tars.length).toBe(2);
    for (const t of tars) expect(names.has(t.replace(/\.tar$/, '.json'))).toBe(true);
    expect(
      s3.requests.filter((q) => q.method === 'POST' && q.path.startsWith('/train/wds/')).map((q) => new URL(q.path, 'http://x').searchParams.has('uploads')),
    ).toContain(true);
    writeFileSync(path.join(dir, 'a.tar'), await getObject(`wds/${tars[0]}`));
    const scan = scanTar(path.join(dir, 'a.tar'));
    expect(scan.complete).toBe(true);
    expect(scan.members.filter((m) => m.name.endsWith('.png')).length).toBe(4);
    const verify = await pcbS3(['verify', 's3://train/wds'], dir);
    expect(verify.stdout).toMatch(/records and disk agree/);
    expect(verify.code).toBe(0);

    const config = await pcbS3(['config', 's3://train/files', '--state-dir', path.join(dir, 'nowhere')], dir);
    expect(config.code).toBe(1);
    expect(config.stderr).toMatch(/^pcb: no run state for s3:\/\/train\/files in .*--state-dir\n$/);
  });

  it('parquet: shards uploaded whole with the dataset card, verify reads them back, config says the huggingface backend needs a folder', async () => {
    const dir = tmpDir();
    const file = await input(dir, 9, `s3p${Date.now()}`);
    const r = await pcbS3(
      ['download', file, '--out', 's3://train/pq', '--output-format', 'parquet', '--samples-per-shard', '4', '--threads', '1', ...common],
      dir,
    );
    expect(r.code, r.stderr).toBe(0);
    const names = await objects('pq');
    const shards = [...names.keys()].filter((n) => n.endsWith('.parquet') && /^pcb-/.test(n));
    expect(shards.length).toBe(3);
    expect(names.has('README.md')).toBe(true);
    writeFileSync(path.join(dir, 'a.parquet'), await getObject(`pq/${shards[0]}`));
    const rows = await query(`SELECT key, octet_length(image.bytes) AS n FROM read_parquet('${path.join(dir, 'a.parquet')}')`);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(Number(row.n)).toBeGreaterThan(100);
    // The records name each row's downloaded bytes by their sha256, in a bucket run as in a folder.
    expect(names.has('manifest.parquet')).toBe(true);
    writeFileSync(path.join(dir, 'manifest.parquet'), await getObject('pq/manifest.parquet'));
    const manifest = await readParquet(path.join(dir, 'manifest.parquet'));
    expect(manifest).toHaveLength(9);
    for (const m of manifest)
      expect(m.sha256).toBe(
        createHash('sha256')
          .update(kit.photos[Number(m.row) % kit.photos.length].data)
          .digest('hex'),
      );
    const verify = await pcbS3(['verify', 's3://train/pq', '--json'], dir);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok_rows: 9, images_on_disk: 9, findings: [] });
    const config = await pcbS3(['config', 's3://train/pq'], dir);
    expect(config.code).toBe(1);
    expect(config.stderr).toMatch(/huggingface backend reads parquet shards from a folder/);
  });

  it('pcb config on an s3:// output: SimpleTuner aws entry, the metadata key in the bucket, no secret', async () => {
    const dir = tmpDir();
    const file = await input(dir, 4, `s3c${Date.now()}`);
    expect((await pcbS3(['download', file, '--out', 's3://train/cfg/run1', ...common], dir)).code).toBe(0);
    const r = await pcbS3(['config', 's3://train/cfg/run1'], dir);
    expect(r.code).toBe(0);
    const entry = JSON.parse(r.stdout);
    expect(entry).toMatchObject({
      id: 'run1',
      type: 'aws',
      aws_bucket_name: 'train',
      aws_data_prefix: 'cfg/run1',
      aws_endpoint_url: s3.env.AWS_ENDPOINT_URL,
      aws_region_name: 'us-east-1',
      caption_strategy: 'parquet',
      parquet: { path: 'cfg/run1/metadata.parquet', filename_column: 'file_name' },
    });
    expect(Object.keys(entry).filter((k) => /secret|access_key/.test(k))).toEqual([]);
    expect(r.stdout).not.toContain('S3RVER');
    expect(r.stderr).toMatch(/aws_access_key_id and aws_secret_access_key/);
  });

  it('throttling: 503 SlowDown on every third PUT is retried; every row ends ok and the summary counts the retries', async () => {
    const dir = tmpDir();
    const file = await input(dir, 8, `s3t${Date.now()}`);
    s3.faults = { slowDownEveryNthPut: 3 };
    const before = s3.injected;
    try {
      const r = await pcbS3(['download', file, '--out', 's3://train/throttled', '--threads', '2', ...common], dir);
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s.ok).toBe(8);
      // Every 503 was answered by one retry, and the summary counts each.
      expect(s3.injected - before).toBeGreaterThan(4);
      expect(s.upload_retries).toBe(s3.injected - before);
    } finally {
      s3.faults = {};
    }
    const names = await objects('throttled');
    expect([...names.keys()].filter((n) => n.endsWith('.png')).length).toBe(8);
  });

  it('a store slower than the workers: closed tars wait for room instead of piling up on local disk; every row lands once', async () => {
    const dir = tmpDir();
    const n = 60;
    const file = await input(dir, n, `s3b${Date.now()}`);
    const state = path.join(dir, 'state');
    const uploading = path.join(state, '.pcb', 'tmp', 'uploading');
    // Each request 500 ms away: ~30 tars of two rows take the store ~15 s, the rows' resizing well under 2 s of
    // CPU even with the machine's cores taken by other work, so the store is the bound with a margin load cannot erase.
    s3.faults = { latencyMs: 500 };
    let most = 0;
    const watch = setInterval(() => {
      if (existsSync(uploading)) most = Math.max(most, readdirSync(uploading).filter((f) => f.endsWith('.tar')).length);
    }, 10);
    try {
      const r = await pcbS3(
        [
          'download',
          file,
          '--out',
          's3://train/slow',
          '--output-format',
          'webdataset',
          '--samples-per-tar',
          '2',
          '--state-dir',
          state,
          '--threads',
          '1',
          '--concurrency',
          '1',
          ...common,
        ],
        dir,
      );
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout);
      expect(s.ok).toBe(n);
      // The summary says where the time went: the store, not the network or the CPU.
      expect(s.limited_by_hint).toMatch(/^store-bound \(\d+ % of the run\): rows waited for the bucket/);
    } finally {
      clearInterval(watch);
      s3.faults = {};
    }
    // 2 uploading, 4 waiting, and the tars of the rows already in flight (3 at --concurrency 1, 2 a tar) when
    // the run held back: 8 at most, where 30 were made at ~7 uploads a second and many more rows a second.
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(8);
    const names = [...(await objects('slow')).keys()];
    expect(names.filter((k) => k.endsWith('.tar')).length).toBe(n / 2);
    const verify = await pcbS3(['verify', 's3://train/slow', '--state-dir', state, '--json'], dir);
    expect(JSON.parse(verify.stdout).findings).toEqual([]);

    // Files: rows that wait for their PUTs are store-bound too. 2 s a PUT against a millisecond of CPU a row (96×64
    // photos; tens of ms under load): at 300 ms with 320×240 photos, a loaded machine's resizing took as long as the
    // uploads and the run read as CPU-bound.
    s3.faults = { latencyMs: 2000 };
    try {
      mkdirSync(path.join(dir, 'tiny'));
      const tinyFile = await input(path.join(dir, 'tiny'), n, `s3t${Date.now()}`, (i) => `/img/${tiny[i % tiny.length]}`);
      const files = JSON.parse((await pcbS3(['download', tinyFile, '--out', 's3://train/slowfiles', '--threads', '1', ...common], dir)).stdout);
      expect(files.ok).toBe(n);
      expect(files.limited_by_hint).toMatch(/^store-bound/);
      expect(files.limited_by.store).toBeGreaterThan(files.limited_by.network);
    } finally {
      s3.faults = {};
    }
  });

  it('--overwrite into another format: the new image and caption replace the old image; each object says what it is', async () => {
    const dir = tmpDir();
    const file = await input(dir, 3, `s3o${Date.now()}`);
    expect((await pcbS3(['download', file, '--out', 's3://train/fmt', ...common], dir)).code).toBe(0);
    const r = await pcbS3(['download', file, '--out', 's3://train/fmt', '--format', 'jpeg', '--overwrite', ...common], dir);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).ok).toBe(3);
    const names = [...(await objects('fmt')).keys()].filter((k) => !k.startsWith('.pcb/') && !k.endsWith('.parquet')).sort();
    const ids = names.filter((k) => k.endsWith('.jpg')).map((k) => k.slice(0, -4));
    expect(ids.length).toBe(3);
    expect(names).toEqual(ids.flatMap((id) => [`${id}.jpg`, `${id}.txt`]).sort());
    const head = async (key: string) => (await client().send(new HeadObjectCommand({ Bucket: 'train', Key: `fmt/${key}` }))).ContentType;
    expect(await head(`${ids[0]}.jpg`)).toBe('image/jpeg');
    expect(await head(`${ids[0]}.txt`)).toBe('text/plain; charset=utf-8');
    expect((await sharp(await getObject(`fmt/${ids[0]}.jpg`)).metadata()).format).toBe('jpeg');
  });

  it('a missing bucket or bad credentials: one line, exit 1, before any download', async () => {
    const dir = tmpDir();
    const tag = `s3x${Date.now()}`;
    const file = await input(dir, 4, tag);
    const missing = await pcbS3(['download', file, '--out', 's3://nosuchbucket/x', ...common], dir);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^pcb: bucket nosuchbucket does not exist at http:\/\/127\.0\.0\.1:\d+; create it, or check --out s3:\/\/nosuchbucket\/x\n$/,
    );
    const bad = await pcbS3(['download', file, '--out', 's3://train/x', ...common], dir, { AWS_ACCESS_KEY_ID: 'NOT-A-KEY' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^pcb: access to bucket train was denied at .*check the credentials.*\n$/);
    const url = await pcbS3(['download', file, '--out', 's3://B/x', ...common], dir);
    expect(url.code).toBe(2);
    expect(url.stderr).toMatch(/^pcb: --out s3:\/\/B\/x: an S3 output is s3:\/\/<bucket>\/<prefix>/);
    const stateLocal = await pcbS3(['download', file, '--out', path.join(dir, 'local'), '--state-dir', path.join(dir, 'state'), ...common], dir);
    expect(stateLocal.code).toBe(2);
    expect(stateLocal.stderr).toMatch(/^pcb: --state-dir is for an s3:\/\/ --out; .*\n$/);
    expect(fetched(tag)).toBe(0);
  });

  it('verify finds a deleted object; --fix marks its row and the next download redoes only it', async () => {
    const dir = tmpDir();
    const tag = `s3v${Date.now()}`;
    const file = await input(dir, 6, tag);
    expect((await pcbS3(['download', file, '--out', 's3://train/ver', ...common], dir)).code).toBe(0);
    const manifest = path.join(dir, 'm.parquet');
    writeFileSync(manifest, await getObject('ver/manifest.parquet'));
    const victim = (await readParquet(manifest)).find((m) => m.row === 3)!;
    await client().send(new DeleteObjectCommand({ Bucket: 'train', Key: `ver/${victim.path}` }));
    const found = await pcbS3(['verify', 's3://train/ver', '--json'], dir);
    expect(found.code).toBe(1);
    expect(JSON.parse(found.stdout)).toMatchObject({ problems: { missing_image: 1 }, findings: [{ row: 3, problem: 'missing_image' }] });
    expect((await pcbS3(['verify', 's3://train/ver', '--fix'], dir)).code).toBe(0);
    const before = fetched(tag);
    const redo = JSON.parse((await pcbS3(['download', file, '--out', 's3://train/ver', ...common], dir)).stdout);
    expect(redo).toMatchObject({ processed: 1, ok: 1 });
    expect(fetched(tag) - before).toBe(1);
    expect((await pcbS3(['verify', 's3://train/ver'], dir)).code).toBe(0);
  });

  it('verify reads each image by two ranged GETs (its header, its end), not whole, and still finds a torn and a wrong-sized one', async () => {
    const dir = tmpDir();
    const file = await input(dir, 3, `s3r${Date.now()}`, (i) => big[i % big.length]);
    expect((await pcbS3(['download', file, '--out', 's3://train/ranged', '--resize', 'none', ...common], dir)).code).toBe(0);
    const names = [...(await objects('ranged')).entries()].filter(([k]) => k.endsWith('.png'));
    expect(names.length).toBe(3);
    expect(names.every(([, size]) => size > 1_000_000)).toBe(true);
    const before = s3.requests.length;
    const clean = await pcbS3(['verify', 's3://train/ranged', '--json'], dir);
    expect(JSON.parse(clean.stdout).findings).toEqual([]);
    const gets = s3.requests.slice(before).filter((q) => q.method === 'GET' && new URL(q.path, 'http://x').pathname.endsWith('.png'));
    expect(gets.map((q) => q.range).sort()).toEqual(names.flatMap(([, size]) => ['bytes=0-65535', `bytes=${size - 12}-${size - 1}`]).sort());
    // A torn image (its end cut off) and one of another size, put over two of the objects.
    const [torn, resized] = [names[0][0], names[1][0]];
    const whole = await getObject(`ranged/${torn}`);
    await client().send(new PutObjectCommand({ Bucket: 'train', Key: `ranged/${torn}`, Body: whole.subarray(0, whole.length - 5000) }));
    const small = await sharp(whole).resize(64).png().toBuffer();
    await client().send(new PutObjectCommand({ Bucket: 'train', Key: `ranged/${resized}`, Body: small }));
    const found = JSON.parse((await pcbS3(['verify', 's3://train/ranged', '--json'], dir)).stdout) as { findings: { path: string; problem: string }[] };
    expect(found.findings.map((f) => [f.path, f.problem]).sort()).toEqual(
      [
        [torn, 'unreadable'],
        [resized, 'wrong_size'],
      ].sort(),
    );
  });

  it('kill -9 mid-upload: no partial object and no open multipart upload after the rerun, every row exactly once', async () => {
    const dir = tmpDir();
    const n = 12;
    const file = await input(dir, n, `s3k${Date.now()}`, (i) => big[i % big.length]);
    const args = [...bigTars(file, 'killed'), '--threads', '1', '--quiet', '--json', '--allow-private-network'];
    s3.faults = { partDelayMs: 400 };
    let pid = 0;
    const run = runPcb(args, {
      env: { ...s3.env, XDG_CACHE_HOME: path.join(dir, 'cache') },
      onSpawn: (p) => {
        pid = p;
      },
    });
    await until(() => s3.openUploads().some((u) => u.key.startsWith('killed/')), 'a multipart upload under way');
    process.kill(pid, 'SIGKILL');
    await run;
    s3.faults = {};
    const torn = await objects('killed');
    // Whatever is there is whole: no tar without its parts, nothing half-written.
    for (const t of [...torn.keys()].filter((k) => k.endsWith('.tar'))) {
      writeFileSync(path.join(dir, 't.tar'), await getObject(`killed/${t}`));
      expect(scanTar(path.join(dir, 't.tar')).complete).toBe(true);
    }
    const rest = await pcbS3(args, dir);
    expect(rest.code).toBe(0);
    expect(s3.openUploads().filter((u) => u.key.startsWith('killed/'))).toEqual([]);
    const verify = await pcbS3(['verify', 's3://train/killed', '--json'], dir);
    expect(JSON.parse(verify.stdout).findings).toEqual([]);
    writeFileSync(path.join(dir, 'm.parquet'), await getObject('killed/manifest.parquet'));
    const manifest = await readParquet(path.join(dir, 'm.parquet'));
    expect(manifest.map((m) => m.row)).toEqual(range(n));
    expect(manifest.every((m) => m.status === 'ok')).toBe(true);
    // Each sample once across the bucket's tars.
    const members: string[] = [];
    for (const t of [...(await objects('killed')).keys()].filter((k) => k.endsWith('.tar'))) {
      writeFileSync(path.join(dir, 't.tar'), await getObject(`killed/${t}`));
      members.push(
        ...scanTar(path.join(dir, 't.tar'))
          .members.filter((m) => m.name.endsWith('.png'))
          .map((m) => m.name),
      );
    }
    expect(members.sort()).toEqual(manifest.map((m) => `${m.id}.png`).sort());
  });

  /** A tar run of 12 big photos into `prefix`, `processes` processes, for a test to interrupt. */
  async function bigTarRun(processes: number, prefix: string): Promise<{ run: Promise<Ran>; pid: () => number }> {
    const dir = tmpDir();
    const file = await input(dir, 12, `${prefix}${Date.now()}`, (i) => big[i % big.length]);
    const args = [...bigTars(file, prefix), '--threads', String(processes), '--processes', String(processes)];
    let pid = 0;
    const run = runPcb([...args, '--quiet', '--json', '--allow-private-network'], {
      env: { ...s3.env, XDG_CACHE_HOME: path.join(dir, 'cache') },
      onSpawn: (p) => {
        pid = p;
      },
    });
    return { run, pid: () => pid };
  }

  it.each([1, 2])('a second Ctrl-C during a multipart upload: pcb (%i process) exits at once and leaves no open upload behind', async (processes) => {
    const prefix = `interrupted${processes}`;
    s3.faults = { partDelayMs: 1500 };
    try {
      const { run, pid } = await bigTarRun(processes, prefix);
      await until(() => s3.openUploads().some((u) => u.key.startsWith(`${prefix}/`)), 'a multipart upload under way');
      expect((await ctrlCUntilGone(run, pid())).code).toBe(130);
    } finally {
      s3.faults = {};
    }
    // No rerun needed: the interrupted run aborted what it had open.
    expect(s3.openUploads().filter((u) => u.key.startsWith(`${prefix}/`))).toEqual([]);
    expect(s3.requests.some((q) => q.method === 'DELETE' && q.path.startsWith(`/train/${prefix}/`) && q.path.includes('uploadId='))).toBe(true);
  });

  it.each([1, 2])(
    'a second Ctrl-C while the store has created an upload whose id pcb has not heard yet: pcb (%i process) still leaves no open upload',
    async (processes) => {
      const prefix = `unheard${processes}`;
      // The race replayed: the upload exists in the store, its id is on its way back and never arrives in time.
      s3.faults = { holdCreateAnswerMs: 60_000 };
      const held = s3.heldCreates;
      try {
        const { run, pid } = await bigTarRun(processes, prefix);
        await until(() => s3.heldCreates > held && s3.openUploads().some((u) => u.key.startsWith(`${prefix}/`)), 'an upload created, its answer held');
        expect((await ctrlCUntilGone(run, pid())).code).toBe(130);
      } finally {
        s3.faults = {};
      }
      expect(s3.openUploads().filter((u) => u.key.startsWith(`${prefix}/`))).toEqual([]);
    },
  );

  it('--shard on two machines into one prefix, each with its own state; merge combines them in the bucket', async () => {
    const dir = tmpDir();
    const file = await input(dir, 10, `s3m${Date.now()}`);
    for (const i of [0, 1]) {
      const r = await pcbS3(
        ['download', file, '--out', 's3://train/sharded', '--shard', `${i}/2`, '--state-dir', path.join(dir, `machine${i}`), ...common],
        dir,
      );
      expect(r.code).toBe(0);
    }
    const merge = await pcbS3(['merge', 's3://train/sharded', '--json'], dir);
    expect(merge.code).toBe(0);
    expect(JSON.parse(merge.stdout)).toMatchObject({ shards: 2, rows: 10, ok: 10, manifest: 's3://train/sharded/manifest.parquet' });
    writeFileSync(path.join(dir, 'm.parquet'), await getObject('sharded/manifest.parquet'));
    expect((await readParquet(path.join(dir, 'm.parquet'))).map((m) => m.row)).toEqual(range(10));
    writeFileSync(path.join(dir, 'md.parquet'), await getObject('sharded/metadata.parquet'));
    expect((await readParquet(path.join(dir, 'md.parquet'), '')).length).toBe(10);
  });
});
