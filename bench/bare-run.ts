/**
 * Bare sharp over the kit's 96×64 JPEGs from memory, `n` times: the header, then every byte decoded
 * (bench/bare.ts), nothing else. For bench/instructions.ts, which counts what a run of it executes.
 *
 *   node dist/bench/bare-run.js <n>
 */
import { photoSet } from '../src/kit/photos.js';
import { bareValidate } from './bare.js';

const n = Number(process.argv[2]);
const tiny = await photoSet(100, [96, 64], 80);
for (let i = 0; i < n; i++) await bareValidate(tiny[i % tiny.length].data);
