// The import graph of the sources: every relative import (type-only ones included) between .ts files, its cycles,
// and imports that go up src/'s layers. `node dist/tools/check/import-graph.js` prints both and exits 1 when there
// are any; test/architecture.test.ts runs the same checks.
import * as fs from 'node:fs';
import * as path from 'node:path';

const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'"]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/g;

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

function resolve(from: string, spec: string): string | undefined {
  const base = path.resolve(path.dirname(from), spec.replace(/\.js$/, ''));
  return [`${base}.ts`, path.join(base, 'index.ts')].find((f) => fs.existsSync(f));
}

/** File -> the files it imports, for every .ts file under `dirs`. */
export function importGraph(dirs: readonly string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of dirs.flatMap(tsFiles)) {
    const text = fs.readFileSync(file, 'utf8');
    const deps = [...text.matchAll(IMPORT)].map((m) => resolve(file, m[1]!)).filter((f): f is string => f !== undefined);
    graph.set(file, [...new Set(deps)]);
  }
  return graph;
}

/** The strongly connected components with more than one file (or a file importing itself): Tarjan's algorithm. */
export function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); component.push(w); } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

/**
 * src/'s layers, lowest first: a file may import from its own folder and from folders of lower layers only.
 * Folders on one layer do not import each other. src/web (the browser runtime) imports nothing of the compiler.
 */
export const SRC_LAYERS: readonly (readonly string[])[] = [
  ['platform', 'web'], ['ir'], ['passes'], ['codegen'], ['backends'], ['runtime', 'models'], ['frontend'], ['dsl.ts'], ['api'], ['export'], ['index.ts'],
];

const layerOf = (srcRelative: string): { unit: string; layer: number } => {
  const unit = srcRelative.split(path.sep)[0]!;
  return { unit, layer: SRC_LAYERS.findIndex((l) => l.includes(unit)) };
};

/** Imports inside `srcDir` that reach a unit of the same or a higher layer: "from -> to" (paths relative to src). */
export function layerViolations(graph: ReadonlyMap<string, readonly string[]>, srcDir: string): string[] {
  const out: string[] = [];
  for (const [file, deps] of graph) {
    const from = path.relative(srcDir, file);
    if (from.startsWith('..')) continue;
    const a = layerOf(from);
    for (const dep of deps) {
      const to = path.relative(srcDir, dep);
      const b = layerOf(to);
      if (a.unit !== b.unit && (a.layer < 0 || b.layer < 0 || b.layer >= a.layer)) out.push(`${from} -> ${to}`);
    }
  }
  return out;
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..', '..');
  const dirs = process.argv.length > 2 ? process.argv.slice(2) : ['src', 'tools'].map((d) => path.join(root, d));
  const graph = importGraph(dirs);
  const cycles = importCycles(graph);
  for (const c of cycles) console.log(`cycle: ${c.map((f) => path.relative(root, f)).join(' <-> ')}`);
  const upward = layerViolations(graph, path.join(root, 'src'));
  for (const v of upward) console.log(`upward import: ${v}`);
  console.log(`${cycles.length} import cycle${cycles.length === 1 ? '' : 's'}, ${upward.length} upward import${upward.length === 1 ? '' : 's'}`);
  process.exitCode = cycles.length || upward.length ? 1 : 0;
}
