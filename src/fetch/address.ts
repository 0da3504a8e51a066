import ipaddr from 'ipaddr.js';
import { RowError } from '../errors.js';

/** Ranges a public crawler must never reach unless --allow-private-network. */
const BLOCKED_RANGES = new Set([
  'unspecified',
  'broadcast',
  'multicast',
  'linkLocal',
  'loopback',
  'private',
  'uniqueLocal',
  'carrierGradeNat',
  'reserved',
  'ipv4Mapped',
  'rfc6145',
  'rfc6052',
  '6to4',
  'teredo',
  'benchmarking',
  'amt',
  'as112',
  'as112v6',
  'orchid2',
  'droneRemoteIdProtocolEntityTags',
  'discard',
]);

/** True when the address is loopback, private, link-local, CGNAT, unspecified or otherwise not public. */
export function isBlockedAddress(address: string): boolean {
  let ip: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    ip = ipaddr.parse(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  } catch {
    return true;
  }
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
  return BLOCKED_RANGES.has(ip.range());
}

/** Parse a row's URL: null/empty → missing_url; not http(s) or unparsable → bad_url. */
export function parseRowUrl(raw: unknown): URL {
  if (raw === null || raw === undefined || (typeof raw === 'string' && raw.trim() === '')) {
    throw new RowError('missing_url', 'no url');
  }
  let url: URL;
  try {
    url = new URL(String(raw).trim());
  } catch {
    throw new RowError('bad_url', `not a URL: ${String(raw).slice(0, 200)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RowError('bad_url', `scheme ${url.protocol} is not http or https`);
  if (!url.hostname) throw new RowError('bad_url', 'no host');
  return url;
}

/** A literal IP host can be judged before connecting; names are judged on the address connected. */
export function checkLiteralHost(url: URL, allowPrivate: boolean): void {
  if (allowPrivate) return;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (ipaddr.isValid(host) && isBlockedAddress(host)) throw new RowError('blocked_address', `${host} is not a public address`);
}
