/**
 * The shard rule: which rows a shard holds (hash % n = i, in input/source.ts's SQL), how a process's share
 * composes with a --shard, and how files tagged with a shard are told apart. Used by input, output and run.
 */
import { InvalidArgumentError } from 'commander';
import { UsageError } from './errors.js';

export interface Shard {
  index: number;
  count: number;
  reason: string;
}

/**
 * Rows of `shard` split over `count` processes, as one shard of the whole input: hash % n = i and
 * floor(hash / n) % count = j select the same rows as hash % (n·count) = i + n·j.
 */
export function composeShard(shard: Shard | null, share: Shard): Shard {
  const base = shard ?? { index: 0, count: 1, reason: '' };
  return { index: base.index + base.count * share.index, count: base.count * share.count, reason: 'a process of this run' };
}

export function parseShard(value: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new InvalidArgumentError(`--shard takes <i>/<n> with 0 <= i < n (e.g. 0/4), got '${value}'.`);
  }
  return { index, count, reason: `--shard ${index}/${count}` };
}

/**
 * The shard when --shard is absent: Slurm job arrays, then Kubernetes Indexed Jobs.
 * Returns null when no scheduler index is present.
 */
export function shardFromEnvironment(env: NodeJS.ProcessEnv, shardCount: number | null): Shard | null {
  const slurmId = env.SLURM_ARRAY_TASK_ID;
  if (slurmId !== undefined && slurmId !== '') {
    const min = Number(env.SLURM_ARRAY_TASK_MIN ?? 0);
    const count = shardCount ?? (env.SLURM_ARRAY_TASK_COUNT ? Number(env.SLURM_ARRAY_TASK_COUNT) : NaN);
    const index = Number(slurmId) - (Number.isFinite(min) ? min : 0);
    if (!Number.isInteger(count) || count < 1) {
      throw new UsageError(`SLURM_ARRAY_TASK_ID is set but the shard count is unknown: pass --shard-count <n> or --shard <i>/<n>.`);
    }
    if (!Number.isInteger(index) || index < 0 || index >= count) {
      throw new UsageError(`SLURM_ARRAY_TASK_ID=${slurmId} (min ${min}) is outside 0..${count - 1}: pass --shard <i>/<n>.`);
    }
    return {
      index,
      count,
      reason: `Slurm array task ${slurmId} (SLURM_ARRAY_TASK_MIN=${min}, ${shardCount ? '--shard-count' : 'SLURM_ARRAY_TASK_COUNT'}=${count})`,
    };
  }
  const k8s = env.JOB_COMPLETION_INDEX;
  if (k8s !== undefined && k8s !== '') {
    if (!shardCount) throw new UsageError(`JOB_COMPLETION_INDEX is set: pass --shard-count <n> (the Job's completions) or --shard <i>/<n>.`);
    const index = Number(k8s);
    if (!Number.isInteger(index) || index < 0 || index >= shardCount) {
      throw new UsageError(`JOB_COMPLETION_INDEX=${k8s} is outside 0..${shardCount - 1}: check --shard-count.`);
    }
    return { index, count: shardCount, reason: `Kubernetes Indexed Job (JOB_COMPLETION_INDEX=${k8s}, --shard-count ${shardCount})` };
  }
  if (shardCount) throw new UsageError(`--shard-count needs a scheduler index (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX), or use --shard <i>/<n>.`);
  return null;
}

/** Share `index` of `total` split over `count` parts as evenly as whole numbers allow (they add up to total). */
export function evenShare(total: number, index: number, count: number): number {
  return Math.floor(total / count) + (index < total % count ? 1 : 0);
}

export function shardTag(shard: Shard | null): string {
  return shard ? `shard-${shard.index}-of-${shard.count}` : '';
}

/** Whether a file tagged `shard-a-of-m` holds rows of `shard` (a process's share of it, say); every tag belongs to the whole. */
export function tagInShard(tag: string, shard: Shard | null): boolean {
  if (!shard) return true;
  const m = /^shard-(\d+)-of-(\d+)$/.exec(tag);
  if (!m) return false;
  const [a, count] = [Number(m[1]), Number(m[2])];
  return count % shard.count === 0 && a % shard.count === shard.index;
}
