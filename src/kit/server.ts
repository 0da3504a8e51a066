import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { projectRoot } from '../version.js';

/** The kit's private CA and its server certificate (localhost and 127.0.0.1–32), valid for a century. */
export const KIT_TLS = {
  ca: path.join(projectRoot(), 'src', 'kit', 'tls', 'ca.pem'),
  cert: path.join(projectRoot(), 'src', 'kit', 'tls', 'server.pem'),
  key: path.join(projectRoot(), 'src', 'kit', 'tls', 'server-key.pem'),
};

/** A simulated wide-area link in front of every path: what a CDN far away looks like from here. */
export interface LinkOptions {
  /** HTTPS with the kit's certificate (clients trust it through NODE_EXTRA_CA_CERTS=KIT_TLS.ca). */
  tls?: boolean;
  /** With tls: offer HTTP/2 by ALPN (HTTP/1.1 still served to clients that do not ask for h2). */
  h2?: boolean;
  /** Listen on 127.0.0.1 … 127.0.0.<hosts>, one port: that many distinct hosts. */
  hosts?: number;
  /** Time to first byte, each response drawn uniformly from ms × (1 ± jitter). */
  ttfbMs?: number;
  jitter?: number;
  /** Body bandwidth per response, bytes/s (null: as fast as loopback). */
  bytesPerSec?: number | null;
  /** More open requests than this on one host are answered `capStatus` (429 unless set) with Retry-After. */
  capPerHost?: number | null;
  capStatus?: number;
  retryAfterS?: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  userAgent: string;
  at: number;
}

/**
 * The offline kit's loopback image server (127.0.0.1, ephemeral port). Serves registered images from
 * memory and injects faults by path, so tests, demo and bench never leave the machine:
 *   /img/<name>                      the image
 *   /delay/<ms>/<name>               the image after a pause
 *   /status/<code>[?retry-after=s]   that HTTP status
 *   /flaky/<key>/<n>/<code>/<name>   <code> for the first n requests of <key>, then the image
 *   /slow-headers                    never answers
 *   /stall/<name>                    headers, then nothing
 *   /drip                            1 KiB every 500 ms, forever
 *   /redirect/<n>/<name>             n redirects, then the image   · /loop   redirects to itself
 *   /redirect-to?url=<u>             one redirect to any URL
 *   /html  /empty  /reset            an HTML page as image/jpeg · an empty 200 · a dropped connection
 *   /as-html/<name>                  the image, labelled text/html
 *   /truncated/<name>                the first half of the image
 *   /big-chunked                     endless chunked body, no length · /big-declared  a huge Content-Length
 *   /optout/<value>/<name>           the image with X-Robots-Tag: <value>
 *   /imgix/<name>?w=&h=&fit=max      imgix semantics: scale down to fit w/h, never up
 *   /imgix-small/<name>?w=           a rendition smaller than asked (a misbehaving CDN)
 */
export class KitServer {
  readonly requests: LoggedRequest[] = [];
  /** Off for long benches: the log would grow with every request. */
  recordRequests = true;
  private readonly images = new Map<string, { data: Buffer; type: string }>();
  private readonly flaky = new Map<string, number>();
  private readonly renditions = new Map<string, Buffer>();
  private servers: http.Server[] = [];
  private active = 0;
  private link: LinkOptions = {};
  /** Open requests per host (the address the client connected to). */
  private readonly openPerHost = new Map<string, number>();
  /** Connections accepted, requests answered with the cap's status, and requests, for the bench. */
  connections = 0;
  answered429 = 0;
  /** The most requests open at once on any one host. */
  maxOpenPerHost = 0;
  served = 0;
  /** The most requests this server had open at once. */
  maxConcurrent = 0;
  port = 0;
  /** CPU time this process spent serving (µs), for the bench to discount. */
  private cpuAtStart: NodeJS.CpuUsage = process.cpuUsage();

  put(name: string, data: Buffer, type = 'image/jpeg'): this {
    this.images.set(name, { data, type });
    return this;
  }

  get base(): string {
    return this.hostBase(1);
  }

  /** The base URL of host k (127.0.0.k). */
  hostBase(k: number): string {
    return `${this.link.tls ? 'https' : 'http'}://127.0.0.${k}:${this.port}`;
  }

  url(p: string): string {
    return `${this.base}${p.startsWith('/') ? p : '/' + p}`;
  }

  async start(link: LinkOptions = {}): Promise<this> {
    this.link = link;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.linked(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    };
    const tls = link.tls ? { key: readFileSync(KIT_TLS.key), cert: readFileSync(KIT_TLS.cert) } : null;
    for (let k = 1; k <= (link.hosts ?? 1); k++) {
      const server = (
        tls && link.h2
          ? http2.createSecureServer({ ...tls, allowHTTP1: true, settings: { maxConcurrentStreams: 256 } }, handler as never)
          : tls
            ? https.createServer(tls, handler)
            : http.createServer(handler)
      ) as http.Server;
      server.on(tls ? 'secureConnection' : 'connection', () => this.connections++);
      server.keepAliveTimeout = 30_000;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.port, `127.0.0.${k}`, resolve);
      });
      this.port = (server.address() as AddressInfo).port;
      this.servers.push(server);
    }
    this.cpuAtStart = process.cpuUsage();
    return this;
  }

  /** The link's delay, bandwidth and per-host cap around handle(). */
  private async linked(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const l = this.link;
    this.served++;
    const host = req.socket.localAddress ?? '';
    const open = (this.openPerHost.get(host) ?? 0) + 1;
    this.openPerHost.set(host, open);
    this.maxOpenPerHost = Math.max(this.maxOpenPerHost, open);
    res.on('close', () => this.openPerHost.set(host, (this.openPerHost.get(host) ?? 1) - 1));
    if (l.capPerHost && open > l.capPerHost) {
      this.answered429++;
      res.writeHead(l.capStatus ?? 429, { 'retry-after': String(l.retryAfterS ?? 1), 'content-type': 'text/plain' });
      res.end('too many requests');
      return;
    }
    if (l.ttfbMs) await new Promise((r) => setTimeout(r, l.ttfbMs! * (1 + (l.jitter ?? 0) * (2 * Math.random() - 1))));
    if (l.bytesPerSec) throttle(res, l.bytesPerSec);
    return this.handle(req, res);
  }

  cpuSeconds(): number {
    const u = process.cpuUsage(this.cpuAtStart);
    return (u.user + u.system) / 1e6;
  }

  async stop(): Promise<void> {
    for (const server of this.servers.splice(0)) {
      // An HTTP/2 server has no closeAllConnections: its sessions close with it.
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  count(pred: (p: string) => boolean): number {
    return this.requests.filter((r) => pred(r.path)).length;
  }

  private sendImage(res: http.ServerResponse, name: string, headers: Record<string, string> = {}): void {
    const img = this.images.get(decodeURIComponent(name));
    if (!img) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': img.type, 'content-length': String(img.data.length), ...headers });
    res.end(img.data);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', this.base);
    this.active++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.active);
    res.on('close', () => {
      this.active--;
    });
    if (this.recordRequests)
      this.requests.push({ method: req.method ?? 'GET', path: u.pathname + u.search, userAgent: String(req.headers['user-agent'] ?? ''), at: Date.now() });
    const parts = u.pathname.split('/').filter(Boolean);
    const rest = (from: number) => parts.slice(from).join('/');
    switch (parts[0]) {
      case 'img':
        return this.sendImage(res, rest(1));
      case 'delay': {
        await new Promise((r) => setTimeout(r, Number(parts[1])));
        return this.sendImage(res, rest(2));
      }
      case 'status': {
        const headers: Record<string, string> = { 'content-type': 'text/plain' };
        const ra = u.searchParams.get('retry-after');
        if (ra) headers['retry-after'] = ra;
        res.writeHead(Number(parts[1]), headers);
        res.end(`status ${parts[1]}`);
        return;
      }
      case 'flaky': {
        const [key, n, code] = [parts[1], Number(parts[2]), Number(parts[3])];
        const seen = this.flaky.get(key) ?? 0;
        this.flaky.set(key, seen + 1);
        if (seen < n) {
          const headers: Record<string, string> = {};
          const ra = u.searchParams.get('retry-after');
          if (ra) headers['retry-after'] = ra;
          res.writeHead(code, headers);
          res.end('try again');
          return;
        }
        return this.sendImage(res, rest(4));
      }
      case 'slow-headers':
        return; // never answers; the client's deadline must end it
      case 'stall': {
        const img = this.images.get(rest(1));
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(img?.data.length ?? 100000) });
        res.write(img ? img.data.subarray(0, 100) : Buffer.alloc(100));
        return; // and nothing more
      }
      case 'drip': {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        const t = setInterval(() => {
          if (!res.destroyed) res.write(Buffer.alloc(1024, 0xff));
        }, 500);
        res.on('close', () => clearInterval(t));
        return;
      }
      case 'redirect': {
        const n = Number(parts[1]);
        const next = n <= 1 ? `/img/${rest(2)}` : `/redirect/${n - 1}/${rest(2)}`;
        res.writeHead(302, { location: next });
        res.end();
        return;
      }
      case 'loop':
        res.writeHead(301, { location: '/loop' });
        res.end();
        return;
      case 'redirect-to':
        res.writeHead(302, { location: u.searchParams.get('url') ?? '/' });
        res.end();
        return;
      case 'html': {
        const body = Buffer.from('<!doctype html><html><body>Access denied</body></html>');
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(body.length) });
        res.end(body);
        return;
      }
      case 'empty':
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': '0' });
        res.end();
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'chunked': {
        // A slow body of unknown length: 64 KiB pieces every 5 ms, no Content-Length.
        const img = this.images.get(rest(1));
        if (!img) {
          res.writeHead(404);
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': img.type });
        for (let off = 0; off < img.data.length && !res.destroyed; off += 65536) {
          res.write(img.data.subarray(off, off + 65536));
          await new Promise((r) => setTimeout(r, 5));
        }
        res.end();
        return;
      }
      case 'as-html': {
        const img = this.images.get(rest(1));
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(img?.data);
        return;
      }
      case 'truncated': {
        const img = this.images.get(rest(1));
        const half = img ? img.data.subarray(0, Math.floor(img.data.length / 2)) : Buffer.alloc(0);
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(half.length) });
        res.end(half);
        return;
      }
      case 'big-chunked': {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        const chunk = Buffer.alloc(1 << 20, 0xab);
        let sent = 0;
        const pump = () => {
          while (!res.destroyed && sent < 1 << 30) {
            sent += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      case 'big-declared': {
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(10 * 1024 ** 3) });
        res.write(Buffer.alloc(1024));
        return;
      }
      case 'optout':
        return this.sendImage(res, rest(2), { 'x-robots-tag': decodeURIComponent(parts[1]) });
      case 'imgix':
      case 'imgix-small': {
        const name = rest(1);
        const img = this.images.get(name);
        if (!img) {
          res.writeHead(404);
          res.end();
          return;
        }
        const w = Number(u.searchParams.get('w') ?? 0) || undefined;
        const h = Number(u.searchParams.get('h') ?? 0) || undefined;
        if (!w && !h) return this.sendImage(res, name);
        const key = `${parts[0]}:${name}:${w}:${h}`;
        let out = this.renditions.get(key);
        if (!out) {
          const resize = parts[0] === 'imgix-small' ? { width: 100 } : { width: w, height: h, fit: 'inside' as const, withoutEnlargement: true };
          out = await sharp(img.data).resize(resize).jpeg({ quality: 90 }).toBuffer();
          this.renditions.set(key, out);
        }
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(out.length) });
        res.end(out);
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
    }
  }
}

/** Paces a response's body at `bytesPerSec`: end() and write() send it in slices every 20 ms. */
function throttle(res: http.ServerResponse, bytesPerSec: number): void {
  const slice = Math.max(1024, Math.round(bytesPerSec / 50));
  const end = res.end.bind(res) as (chunk?: unknown) => http.ServerResponse;
  const write = res.write.bind(res) as (chunk: Buffer) => boolean;
  res.end = ((chunk?: unknown) => {
    if (!Buffer.isBuffer(chunk)) return end(chunk);
    void (async () => {
      for (let off = 0; off < chunk.length && !res.destroyed; off += slice) {
        write(chunk.subarray(off, off + slice));
        await new Promise((r) => setTimeout(r, 20));
      }
      end();
    })();
    return res;
  }) as typeof res.end;
}
