/**
 * bench:s3's store in a process of its own: s3rver behind the kit's proxy, as the tests use it, with a
 * time to first byte. It prints its port, and answers "cpu" with its CPU seconds so far, so that the bench
 * can show the store's CPU apart from pcb's and from the image server's.
 *   node dist/bench/s3-store.js <bucket> <latencyMs>
 */
import { KitS3Server } from '../src/kit/s3-server.js';

const [bucket = 'bench', latency = '0'] = process.argv.slice(2);
const store = await new KitS3Server([bucket]).start();
store.faults = { latencyMs: Number(latency) };
process.on('message', (m) => {
  if (m !== 'cpu') return;
  const u = process.cpuUsage();
  process.send?.((u.user + u.system) / 1e6);
});
process.on('disconnect', () => {
  void store.stop().finally(() => process.exit(0));
});
process.send?.({ port: store.port });
