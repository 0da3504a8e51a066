/**
 * POSIX ustar members, written and read. Hand-written rather than a tar library: a writer that appends
 * samples with positioned writes needs each member's byte offset (for the index) and nothing else of
 * tar, which is one 512-byte header a member; names longer than ustar's 100 bytes get a pax `path` record.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export const BLOCK = 512;
/** tar's blocking factor 20: archives end padded to a whole record, as GNU tar and Python's tarfile write them. */
export const RECORD = BLOCK * 20;

const pad = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;

function octal(buf: Buffer, value: number, at: number, width: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0') + '\0', at, width, 'latin1');
}

function header(name: string, size: number, type: '0' | 'x', mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  octal(h, 0o644, 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  octal(h, size, 124, 12);
  octal(h, mtime, 136, 12);
  h.fill(0x20, 148, 156);
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

/** A pax record "<len> path=<name>\n", whose length counts its own digits. */
function paxPath(name: string): Buffer {
  const body = ` path=${name}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`, 'utf8');
}

export interface MemberInput {
  name: string;
  data: Buffer;
}

/** Where a member's bytes landed, relative to the start of the buffer: what an index records. */
export interface MemberPlacement {
  name: string;
  offset: number;
  length: number;
}

/** Members as one buffer of headers, data and padding, placed at `base` in the archive. */
export function packMembers(members: MemberInput[], base: number, mtime = Math.floor(Date.now() / 1000)): { bytes: Buffer; placed: MemberPlacement[] } {
  const parts: Buffer[] = [];
  const placed: MemberPlacement[] = [];
  let at = base;
  const push = (b: Buffer) => {
    parts.push(b);
    at += b.length;
  };
  for (const m of members) {
    if (Buffer.byteLength(m.name) > 100) {
      const pax = paxPath(m.name);
      push(header(`PaxHeader/${m.name.slice(0, 80)}`, pax.length, 'x', mtime));
      push(pax);
      push(Buffer.alloc(pad(pax.length)));
    }
    push(header(m.name, m.data.length, '0', mtime));
    placed.push({ name: m.name, offset: at, length: m.data.length });
    push(m.data);
    push(Buffer.alloc(pad(m.data.length)));
  }
  return { bytes: Buffer.concat(parts), placed };
}

/** The end of an archive that holds `size` bytes of members: two zero blocks, then padding to a whole record. */
export function archiveEnd(size: number): Buffer {
  const end = size + 2 * BLOCK;
  return Buffer.alloc(2 * BLOCK + ((RECORD - (end % RECORD)) % RECORD));
}

export interface ScannedMember extends MemberPlacement {
  /** Where the member's first header starts (its pax header, if any). */
  start: number;
}

/**
 * The regular-file members of an archive, in order, read header by header. `complete` is false when the
 * archive stops inside a member or a header fails its checksum; `end` is where the last whole member ends.
 */
export function scanTar(file: string): { members: ScannedMember[]; end: number; complete: boolean; size: number } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const members: ScannedMember[] = [];
    const h = Buffer.alloc(BLOCK);
    let at = 0;
    let end = 0;
    let start = 0;
    let longName: string | null = null;
    for (;;) {
      if (at + BLOCK > size) return { members, end, complete: false, size };
      readSync(fd, h, 0, BLOCK, at);
      if (h.every((b) => b === 0)) return { members, end, complete: true, size };
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
      if (sum !== Number.parseInt(h.toString('latin1', 148, 156).replace(/\0.*$/s, '').trim(), 8)) return { members, end, complete: false, size };
      const length = Number.parseInt(h.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
      const type = h.toString('latin1', 156, 157);
      const dataAt = at + BLOCK;
      if (dataAt + length > size) return { members, end, complete: false, size };
      if (longName === null) start = at;
      if (type === 'x') {
        const rec = Buffer.alloc(length);
        readSync(fd, rec, 0, length, dataAt);
        const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(rec.toString('utf8'));
        longName = m ? m[1] : null;
      } else {
        const name = longName ?? h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
        longName = null;
        if (type === '0' || type === '\0') members.push({ name, offset: dataAt, length, start });
        end = dataAt + length + pad(length);
      }
      at = dataAt + length + pad(length);
    }
  } finally {
    closeSync(fd);
  }
}
