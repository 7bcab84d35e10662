// Where in the model file a traced node was created. The model loader registers each transpiled file's source map,
// so stack frames of the generated JavaScript map back to the TypeScript the user wrote.
import * as path from 'node:path';
import { SourceMap } from 'node:module';

export interface SourceLoc { readonly file: string; readonly line: number; readonly col: number }

const sourceMaps = new Map<string, { map: SourceMap; source: string }>();
// The IR and passes directories, both as built (dist/src/...) and as sources (when stack traces are source-mapped).
const libraryDirs = [path.resolve(__dirname), path.resolve(__dirname, '..', 'passes')]
  .flatMap((d) => [d, d.replace(`${path.sep}dist${path.sep}src${path.sep}`, `${path.sep}src${path.sep}`)]);

/** Called by the model loader: frames in `generatedFile` map back to `source` through `map`. */
export function registerSourceMap(generatedFile: string, source: string, map: SourceMap): void {
  sourceMaps.set(generatedFile, { map, source });
}

export const formatLoc = (l: SourceLoc | undefined): string =>
  l ? `${path.relative(process.cwd(), l.file) || l.file}:${l.line}:${l.col}` : '<unknown>';

const frameRe = /\(?((?:file:\/\/)?[^\s()]+?):(\d+):(\d+)\)?$/;

/** The first stack frame outside the IR library itself: the user's op call site. */
export function callerLocation(): SourceLoc | undefined {
  const stack = new Error().stack?.split('\n').slice(1) ?? [];
  for (const line of stack) {
    const m = frameRe.exec(line.trim());
    if (!m) continue;
    const file = m[1]!.replace(/^file:\/\//, '');
    if (file.startsWith('node:') || !path.isAbsolute(file)) continue;
    if (libraryDirs.some((d) => file.startsWith(d + path.sep))) continue;
    const lineNo = Number(m[2]);
    const colNo = Number(m[3]);
    const mapped = sourceMaps.get(file);
    if (mapped) {
      const entry = mapped.map.findEntry(lineNo - 1, colNo - 1) as { originalLine?: number; originalColumn?: number };
      if (entry && entry.originalLine !== undefined) {
        return { file: mapped.source, line: entry.originalLine + 1, col: (entry.originalColumn ?? 0) + 1 };
      }
    }
    return { file, line: lineNo, col: colNo };
  }
  return undefined;
}
