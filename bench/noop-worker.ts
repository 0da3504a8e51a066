/** A worker that settles every row at once: what is left is the pool's own dispatch cost (bench:scale). */
import type { RowTask } from '../src/result.js';

export default function noop(task: RowTask): { row: number; status: 'ok' } {
  return { row: task.row, status: 'ok' };
}
