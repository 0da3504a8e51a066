/**
 * verify's pass over parquet shards: each shard read once, a row group at a time, every sample in it
 * checked against the ok row that recorded it (image complete, of the recorded size, with a caption),
 * every sample no row recorded reported stray, every recorded sample the shard lacks reported missing.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Store } from './store.js';
import { readSliceOf } from './store.js';
import { eachShardSample, PARQUET_EXT } from './parquet-shards.js';
import { isShardName, memberPath } from './tars.js';
import { checkImage } from './verify.js';
import type { Note, RecordedRow } from './verify.js';
import { duckMessage } from '../sql.js';

export class ParquetChecks {
  /** Recorded samples by shard, then by member. */
  private readonly expected = new Map<string, Map<string, RecordedRow>>();

  expect(shard: string, member: string, r: RecordedRow): void {
    let members = this.expected.get(shard);
    if (!members) this.expected.set(shard, (members = new Map()));
    members.set(member, r);
  }

  /** Checks every parquet shard recorded or on disk; the number of samples found in them. */
  async run(conn: DuckDBConnection, place: Store, names: Set<string>, deep: boolean, note: Note): Promise<number> {
    const shards = new Set([...this.expected.keys(), ...[...names].filter((n) => isShardName(n) && n.endsWith(PARQUET_EXT))]);
    let found = 0;
    for (const shard of [...shards].sort()) {
      const members = this.expected.get(shard) ?? new Map<string, RecordedRow>();
      const file = names.has(shard) ? await place.tarFile(shard) : null;
      if (!file) {
        for (const [member, r] of members) note(Number(r.row), memberPath(shard, member), 'missing_image', `${shard} is not there`, r);
        continue;
      }
      const seen = new Set<string>();
      try {
        await eachShardSample(conn, file, async (s) => {
          found++;
          seen.add(s.member);
          const path = memberPath(shard, s.member);
          const r = members.get(s.member);
          if (!r) return note(null, path, 'stray', 'a sample no ok row of the records wrote');
          if (s.caption === null) return note(Number(r.row), path, 'missing_caption', `no caption for ${s.member} in ${shard}`, r);
          const image = s.image ?? Buffer.alloc(0);
          const p = await checkImage(async (at, length) => readSliceOf(image, at, length), Number(r.width), Number(r.height), deep);
          if (p) note(Number(r.row), path, p.problem, p.detail, r);
        });
      } catch (err) {
        // Not a parquet file DuckDB can read (torn, or not pcb's): every sample recorded in it is lost with it.
        note(null, shard, 'damaged_tar', `not a readable parquet file: ${duckMessage(err).split('\n')[0]}`);
        for (const [member, r] of members) if (!seen.has(member)) note(Number(r.row), memberPath(shard, member), 'damaged_tar', `${shard} cannot be read`, r);
        continue;
      }
      for (const [member, r] of members) if (!seen.has(member)) note(Number(r.row), memberPath(shard, member), 'missing_image', `no ${member} in ${shard}`, r);
    }
    return found;
  }
}
