import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.join(import.meta.dirname, '..', 'src');

/**
 * Imports run one way: cli → report → run → the stages → what every stage shares (the files at the top of
 * src/). A stage may use the stages listed before it here and nothing after it. docs/development.md says the same.
 */
const MAY_IMPORT: Record<string, string[]> = {
  '.': [],
  input: ['.'],
  image: ['.'],
  fetch: ['.', 'image'],
  output: ['.', 'input'],
  run: ['.', 'input', 'image', 'fetch', 'output'],
  report: ['.', 'input', 'image', 'output', 'run'],
  cli: ['.', 'input', 'image', 'fetch', 'output', 'run', 'report'],
  kit: ['.', 'input', 'image', 'fetch', 'output', 'run'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** The stage a file belongs to: its first folder under src/, or '.' at the top. */
function stageOf(file: string): string {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length === 1 ? '.' : rel[0];
}

/** Every relative module a file names: static and dynamic imports, re-exports, and worker or process entry URLs. */
function relativeImports(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) specs.push(m[1]);
  return specs;
}

/** Each import that climbs: `file → module (stage may not import stage)`. */
function climbingImports(sources: { file: string; text: string }[]): string[] {
  const out: string[] = [];
  for (const { file, text } of sources) {
    const from = stageOf(file);
    for (const spec of relativeImports(text)) {
      const to = stageOf(path.resolve(path.dirname(file), spec));
      if (to !== from && !MAY_IMPORT[from]?.includes(to)) {
        out.push(
          `src/${path.relative(SRC, file)} imports ${spec} (${from === '.' ? 'the top of src/' : `${from}/`} may not import ${to === '.' ? 'the top' : `${to}/`})`,
        );
      }
    }
  }
  return out;
}

describe('the module map', () => {
  const files = sourceFiles(SRC);

  it('has every folder of src/ in the map, and at most 6 files at its top', () => {
    const folders = readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect(folders.filter((f) => !(f in MAY_IMPORT))).toEqual([]);
    expect(files.filter((f) => stageOf(f) === '.').length).toBeLessThanOrEqual(6);
  });

  it('has imports that run one way only', () => {
    expect(climbingImports(files.map((file) => ({ file, text: readFileSync(file, 'utf8') })))).toEqual([]);
  });

  it('finds a climbing import when one is planted', () => {
    const planted = path.join(SRC, 'image', 'resize.ts');
    const text = `${readFileSync(planted, 'utf8')}\nimport { runDownload } from '../run/run.js';\n`;
    expect(climbingImports([{ file: planted, text }])).toEqual(['src/image/resize.ts imports ../run/run.js (image/ may not import run/)']);
    // A dynamic import and a worker's entry URL count too.
    const dynamic = `const { Source } = await import('../input/source.js');\nnew URL('../output/tars.js', import.meta.url);`;
    expect(climbingImports([{ file: planted, text: dynamic }])).toHaveLength(2);
  });

  it('keeps every source file under 450 lines', () => {
    const long = files.map((f) => ({ f: path.relative(SRC, f), n: readFileSync(f, 'utf8').split('\n').length })).filter((x) => x.n > 450);
    expect(long).toEqual([]);
  });
});
