/**
 * A real S3 server on loopback for the tests and bench:s3: s3rver (objects on disk, the S3 protocol, the
 * real SDK on the other side), behind a small proxy that logs every request and injects what a real
 * store does that s3rver does not: throttling (503 SlowDown), slow parts, and the two multipart calls it
 * lacks (listing open uploads and aborting one), done on s3rver's own upload folder.
 * s3rver is a development dependency: this file is for the kit only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface S3Request {
  method: string;
  path: string;
  status: number;
  /** The Range header of a ranged GET. */
  range: string | null;
}

export interface S3Faults {
  /** Answer 503 SlowDown to every n-th PUT (objects and parts); the retry goes through. */
  slowDownEveryNthPut?: number;
  /** Hold each part of a multipart upload this long before passing it on. */
  partDelayMs?: number;
  /** Hold every request this long before passing it on: a store's time to first byte over a WAN. */
  latencyMs?: number;
  /**
   * Create each multipart upload in s3rver at once but hold its answer this long: a client killed
   * meanwhile never learns the upload's id (the upload is open in the store, in no journal).
   */
  holdCreateAnswerMs?: number;
}

/** The access key s3rver accepts (any other is refused with InvalidAccessKeyId). */
export const KIT_S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

export class KitS3Server {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'pcb-s3-'));
  readonly requests: S3Request[] = [];
  faults: S3Faults = {};
  /** Multipart uploads created whose answer was held (holdCreateAnswerMs). */
  heldCreates = 0;
  injected = 0;
  private s3rver: { run(): Promise<AddressInfo>; close(): Promise<void> } | null = null;
  private proxy: http.Server | null = null;
  private backend = 0;
  /** The proxy's own connections to s3rver: destroyed at stop, so that s3rver's close never waits on them. */
  private readonly agent = new http.Agent({ keepAlive: true });
  private puts = 0;
  private readonly throttled = new Set<string>();
  port = 0;

  constructor(private readonly buckets: string[] = ['train']) {}

  async start(): Promise<this> {
    const { default: S3rver } = (await import('s3rver' as string)) as { default: new (o: object) => KitS3Server['s3rver'] };
    this.s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: this.dir, configureBuckets: this.buckets.map((name) => ({ name })) });
    this.backend = (await this.s3rver!.run()).port;
    this.proxy = http.createServer((req, res) =>
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      }),
    );
    await new Promise<void>((resolve) => this.proxy!.listen(0, '127.0.0.1', resolve));
    this.port = (this.proxy.address() as AddressInfo).port;
    return this;
  }

  /** What pcb and the SDK are pointed at (AWS_ENDPOINT_URL) and authenticate with. */
  get env(): NodeJS.ProcessEnv {
    return { ...KIT_S3_CREDENTIALS, AWS_ENDPOINT_URL: `http://127.0.0.1:${this.port}` };
  }

  /** Multipart uploads begun and neither completed nor aborted, as s3rver keeps them on disk. */
  openUploads(bucket = 'train'): { uploadId: string; key: string }[] {
    const dir = this.uploadsDir(bucket);
    if (!existsSync(dir)) return [];
    // An upload s3rver is creating has its folder before its key: it is not there yet.
    return readdirSync(dir).flatMap((uploadId) => {
      const key = path.join(dir, uploadId, 'key');
      return existsSync(key) ? [{ uploadId, key: readFileSync(key, 'utf8') }] : [];
    });
  }

  private uploadsDir(bucket: string): string {
    return path.join(this.dir, bucket, '._S3rver_uploads');
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const [, bucket] = url.pathname.split('/');
    const log = (status: number) =>
      this.requests.push({ method: req.method ?? '', path: `${url.pathname}${url.search}`, status, range: req.headers.range ?? null });
    const reply = (status: number, body = '') => {
      log(status);
      res.writeHead(status, { 'content-type': 'application/xml' }).end(body);
    };
    // Every n-th PUT of an object or part not throttled before: its retry goes through, so every row can end ok.
    if (req.method === 'PUT' && this.faults.slowDownEveryNthPut && !this.throttled.has(req.url ?? '') && ++this.puts % this.faults.slowDownEveryNthPut === 0) {
      this.throttled.add(req.url ?? '');
      this.injected++;
      req.resume();
      return reply(503, '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
    }
    if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
      rmSync(path.join(this.uploadsDir(bucket), url.searchParams.get('uploadId')!), { recursive: true, force: true });
      return reply(204);
    }
    if (req.method === 'GET' && url.searchParams.has('uploads')) {
      const prefix = url.searchParams.get('prefix') ?? '';
      const uploads = this.openUploads(bucket)
        .filter((u) => u.key.startsWith(prefix))
        .map((u) => `<Upload><Key>${u.key}</Key><UploadId>${u.uploadId}</UploadId></Upload>`)
        .join('');
      return reply(
        200,
        `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>${bucket}</Bucket><IsTruncated>false</IsTruncated>${uploads}</ListMultipartUploadsResult>`,
      );
    }
    if (req.method === 'PUT' && url.searchParams.has('partNumber') && this.faults.partDelayMs) await new Promise((r) => setTimeout(r, this.faults.partDelayMs));
    if (this.faults.latencyMs) await new Promise((r) => setTimeout(r, this.faults.latencyMs));
    const holdAnswer = req.method === 'POST' && url.searchParams.has('uploads') ? (this.faults.holdCreateAnswerMs ?? 0) : 0;
    const up = http.request({ host: '127.0.0.1', port: this.backend, method: req.method, path: req.url, headers: req.headers, agent: this.agent }, (answer) => {
      log(answer.statusCode ?? 0);
      const pass = () => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      };
      if (!holdAnswer) return pass();
      this.heldCreates++;
      answer.pause();
      setTimeout(pass, holdAnswer).unref();
    });
    up.on('error', () => res.destroy());
    // A client that went away mid-body (a killed pcb): the request to s3rver goes too, or it would wait for ever.
    req.on('close', () => {
      if (!req.complete) up.destroy();
    });
    req.pipe(up);
  }

  async stop(): Promise<void> {
    this.proxy?.closeAllConnections();
    this.agent.destroy();
    await new Promise((r) => this.proxy?.close(r));
    await this.s3rver?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
