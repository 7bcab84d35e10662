// The layout the README promises: no import cycles anywhere in src/ and tools/, and src/'s folders import only
// downward (platform, web < ir < passes < codegen < backends < runtime, models < frontend < dsl < api < export < index).
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { importCycles, importGraph, layerViolations } from '../tools/check/import-graph';

const root = path.resolve(__dirname, '..');
const graph = importGraph(['src', 'tools'].map((d) => path.join(root, d)));

describe('architecture', () => {
  it('the checks find what they look for (a cycle and an upward import in a made-up graph)', () => {
    const src = path.join(root, 'src');
    const g = new Map([
      [path.join(src, 'ir/a.ts'), [path.join(src, 'ir/b.ts')]],
      [path.join(src, 'ir/b.ts'), [path.join(src, 'ir/a.ts'), path.join(src, 'api/train.ts')]],
      [path.join(src, 'api/train.ts'), [path.join(src, 'ir/a.ts')]],
    ]);
    expect(importCycles(g).map((c) => c.map((f) => path.relative(src, f)))).toEqual([['api/train.ts', 'ir/a.ts', 'ir/b.ts']]);
    expect(layerViolations(g, src)).toEqual(['ir/b.ts -> api/train.ts']);
  });

  it('has no import cycles', () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(importCycles(graph).map((c) => c.map((f) => path.relative(root, f)).join(' <-> '))).toEqual([]);
  });

  it("src/'s folders import only from lower layers", () => {
    expect(layerViolations(graph, path.join(root, 'src'))).toEqual([]);
  });
});
