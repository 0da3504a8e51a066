/**
 * Every path of a run, named once from the output's local folder, the shard and the process's share:
 * the log, the lock, the temporary folder, the records, run.json and the tars' name prefix. A command
 * that reads an output makes one for the whole of it (no shard).
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { composeShard, shardTag, tagInShard } from '../shard.js';
import type { Shard } from '../shard.js';
import { STATE_DIR, readJson } from './folder.js';
import type { RunRecord } from './folder.js';

export interface RecordPaths {
  manifest: string;
  metadata: string;
}

function tagged(base: string, shard: Shard | null, ext: string): string {
  const tag = shardTag(shard);
  return `${base}${tag ? `.${tag}` : ''}${ext}`;
}

export class RunPaths {
  /** The folder of pcb's own state: `<out>/.pcb`. */
  readonly stateDir: string;
  /** The shard whose files (log, lock, temporary folder, tars) this process writes: a process's share is a finer shard. */
  readonly fileShard: Shard | null;
  readonly log: string;
  readonly lock: string;
  readonly tmpDir: string;
  readonly runRecord: string;
  /** Each run's summary, a line per run (the report's history of a resumed output). */
  readonly runsLog: string;
  /** manifest and metadata parquet of the shard (of the whole output without one). */
  readonly records: RecordPaths;
  /** Tar names start with this: `pcb`, or the shard's tag. */
  readonly tarPrefix: string;
  /** The output (and shard) as messages name it. */
  readonly label: string;

  constructor(
    /** The local folder with `.pcb/`: the output itself, or an S3 output's state folder. */
    readonly out: string,
    readonly shard: Shard | null = null,
    share: Shard | null = null,
    /** --manifest, when given. */
    manifest: string | null = null,
  ) {
    this.stateDir = path.join(out, STATE_DIR);
    this.fileShard = share ? composeShard(shard, share) : shard;
    this.log = path.join(this.stateDir, tagged('log', this.fileShard, '.jsonl'));
    this.lock = path.join(this.stateDir, tagged('lock', this.fileShard, ''));
    this.tmpDir = path.join(this.stateDir, tagged('tmp', this.fileShard, ''));
    this.runRecord = path.join(this.stateDir, 'run.json');
    this.runsLog = path.join(this.stateDir, 'runs.jsonl');
    this.records = {
      manifest: manifest ?? path.join(out, tagged('manifest', shard, '.parquet')),
      metadata: path.join(out, tagged('metadata', shard, '.parquet')),
    };
    this.tarPrefix = shardTag(this.fileShard) || 'pcb';
    this.label = `${out}${this.fileShard ? ` (shard ${shardTag(this.fileShard)})` : ''}`;
  }

  /** A run's paths from its options. */
  static of(o: { out: string; shard: Shard | null; share: Shard | null; manifest: string | null }): RunPaths {
    return new RunPaths(o.out, o.shard, o.share, o.manifest);
  }

  /** Every log in the folder, of every shard and process. */
  allLogs(): string[] {
    if (!existsSync(this.stateDir)) return [];
    return readdirSync(this.stateDir)
      .filter((f) => /^log(\..+)?\.jsonl$/.test(f))
      .sort()
      .map((f) => path.join(this.stateDir, f));
  }

  /** The logs of this shard's rows, its processes' logs included (all of them for the whole input). */
  shardLogs(): string[] {
    return this.allLogs().filter((f) => tagInShard(/^log\.(.+)\.jsonl$/.exec(path.basename(f))?.[1] ?? '', this.shard));
  }

  /** How the folder was made, or null before its first run (or when run.json is torn). */
  runRecordRead(): RunRecord | null {
    return readJson<RunRecord>(this.runRecord);
  }

  /** A file in the state folder. */
  state(name: string): string {
    return path.join(this.stateDir, name);
  }
}
