/**
 * What makes a docs picture of a run honest, shared by `npm run docs:shots` (which refuses to take one otherwise)
 * and test/docs.test.ts (which checks the picture in the repository against the run recorded beside it).
 */
import type { RunLine } from '../src/report/data.js';

/** The share of the machine's CPU that other work may take before or after the run. */
export const QUIET = 0.15;

/** The share of its cores a demo run on a quiet machine keeps busy at least (it measured 96-99 % on two cores). */
export const MIN_CORES_BUSY = 0.8;

/** What `docs:shots` writes beside a picture (docs/report.json). */
export interface ShotRecord {
  made_at: string;
  commit: string;
  machine: { cores: number; cpu: string; node: string };
  other_work_busy: { before: number; after: number };
  /** The run's `.pcb/runs.jsonl` lines, oldest first. */
  runs: RunLine[];
  /** Every figure the picture shows, as the page drew it. */
  shown: { cards: Record<string, { figure: string; label: string; n: string }>; runs: string[][]; header: string[] };
  png: { file: string; sha256: string; width: number; height: number };
}
