// Loads a user's TypeScript file (a model or a custom op) through the TypeScript compiler API: type-check it,
// transpile it with a source map, and evaluate it as a CommonJS module whose `tsc-nn` import is this very library,
// so traced nodes point back to the user's file:line:col.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Module, { SourceMap } from 'node:module';
import type * as TS from 'typescript';
import { UserError } from '../ir/errors';
import { registerSourceMap } from '../ir/location';

const packageRoot = path.resolve(__dirname, '..', '..', ...(path.basename(path.resolve(__dirname, '..', '..')) === 'dist' ? ['..'] : []));

/** The type entry of what model files import: the built declarations when present, else the sources. */
function libraryTypes(): string {
  const built = path.join(packageRoot, 'dist', 'src', 'dsl.d.ts');
  return fs.existsSync(built) ? built : path.join(packageRoot, 'src', 'dsl.ts');
}

// The compiler is loaded when a model file is, not by every command: it costs about 46 MB of memory.
let compiler: typeof TS | undefined;
const typescript = (): typeof TS => (compiler ??= Module.createRequire(__filename)('typescript') as typeof TS);

/**
 * Where Node's type declarations are, if anywhere: a development checkout has them (a devDependency), an installed
 * package usually does not, and model files need none of them.
 */
function nodeTypeRoot(file: string): string | undefined {
  try {
    const found = Module.createRequire(file).resolve('@types/node/package.json', { paths: [path.dirname(file), packageRoot] });
    return path.dirname(path.dirname(found));
  } catch {
    return undefined;
  }
}

const compilerOptions = (ts: typeof TS, file: string): TS.CompilerOptions => ({
  strict: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  noEmit: true,
  skipLibCheck: true,
  ...(nodeTypeRoot(file) ? { types: ['node'], typeRoots: [nodeTypeRoot(file)!] } : { types: [] }),
  paths: { 'tsc-nn': [libraryTypes()] },
});

/** Type-check `file`; returns tsc-style `file:line:col: error TSnnnn: message` lines. */
export function typeCheck(file: string): string[] {
  const ts = typescript();
  const program = ts.createProgram([file], compilerOptions(ts, file));
  const diags = ts.getPreEmitDiagnostics(program).filter((d) => d.category === ts.DiagnosticCategory.Error);
  return diags.map((d) => {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (!d.file || d.start === undefined) return `error TS${d.code}: ${msg}`;
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${path.relative(process.cwd(), d.file.fileName)}:${line + 1}:${character + 1}: error TS${d.code}: ${msg}`;
  });
}

export class TypeCheckError extends UserError {
  constructor(readonly diagnostics: string[]) {
    super(diagnostics.join('\n'));
  }
}

const loaded = new Map<string, unknown>();

/** Transpile and evaluate a TypeScript module; its relative .ts imports load the same way. */
function evaluateTs(file: string, library: object): unknown {
  const hit = loaded.get(file);
  if (hit) return hit;
  const source = fs.readFileSync(file, 'utf8');
  const ts = typescript();
  const out = ts.transpileModule(source, {
    fileName: file,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, sourceMap: true, esModuleInterop: true },
  });
  registerSourceMap(file, file, new SourceMap(JSON.parse(out.sourceMapText!)));
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(file));
  const baseRequire = Module.createRequire(file);
  const localRequire = (spec: string): unknown => {
    if (spec === 'tsc-nn') return library;
    if (spec.startsWith('.')) {
      const base = path.resolve(path.dirname(file), spec.replace(/\.js$/, ''));
      const candidate = [base, `${base}.ts`, path.join(base, 'index.ts')].find((p) => p.endsWith('.ts') && fs.existsSync(p));
      if (candidate) return evaluateTs(candidate, library);
    }
    return baseRequire(spec);
  };
  mod.require = Object.assign(localRequire, baseRequire) as NodeJS.Require;
  loaded.set(file, mod.exports);
  (mod as unknown as { _compile(code: string, filename: string): void })._compile(out.outputText.replace(/\n\/\/# sourceMappingURL=.*$/, ''), file);
  loaded.set(file, mod.exports);
  return mod.exports;
}

/**
 * Type-check then load a TypeScript file whose `tsc-nn` import is `library` (the caller passes src/dsl, so this
 * module need not import the layers above it); type errors throw a TypeCheckError with tsc-style lines.
 */
export function loadTsModule(file: string, library: object): Record<string, unknown> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new UserError(`${file}: no such file`);
  if (!abs.endsWith('.ts')) throw new UserError(`${file}: expected a TypeScript (.ts) file`);
  const diagnostics = typeCheck(abs);
  if (diagnostics.length) throw new TypeCheckError(diagnostics);
  return evaluateTs(abs, library) as Record<string, unknown>;
}
