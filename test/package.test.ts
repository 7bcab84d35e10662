// The npm package as a user gets it: `npm pack`, installed into an empty folder, where `npx tsc-nn` and
// `require('tsc-nn')` work and the tarball holds what package.json's `files` says (no tests, no TypeScript
// configuration) and the licence it declares.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { useTempDir } from './data/helpers';

const root = path.resolve(__dirname, '..');
const tmp = useTempDir('tsc-nn-package-');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

describe('the packed package', () => {
  it('installs into an empty folder, where the CLI and the library work', () => {
    // --ignore-scripts packs the dist/ this checkout built (prepack would rebuild it under the other tests' feet).
    const packed = execFileSync(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp()], { cwd: root, encoding: 'utf8' });
    const [info] = JSON.parse(packed) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    expect(files).toContain('LICENSE');
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/tools/cli.js');
    expect(files).toContain('models/resnet.ts');
    expect(files.filter((f) => /^(test|\.ci)\//.test(f) || /tsconfig|vitest\.config/.test(f))).toEqual([]);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).license).toBe('MIT');
    expect(fs.readFileSync(path.join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);

    const user = path.join(tmp(), 'user');
    fs.mkdirSync(user);
    fs.writeFileSync(path.join(user, 'package.json'), JSON.stringify({ name: 'user', version: '1.0.0', private: true }));
    // From npm's cache where it can (npm ci filled it): the registry is reachable here but slow to ask.
    execFileSync(npm, ['install', path.join(tmp(), info!.filename), '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: user, encoding: 'utf8', stdio: 'pipe', timeout: 240_000 });
    const run = (...args: string[]) => spawnSync(npm, ['exec', '--', 'tsc-nn', ...args], { cwd: user, encoding: 'utf8', timeout: 120_000, env: { ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache') } });

    const bench = run('bench', '--steps', '1', '--batch', '2', '--backend', 'js', '--json');
    expect(bench.status, bench.stderr).toBe(0);
    expect(JSON.parse(bench.stdout)).toMatchObject({ model: 'shufflenet', size: '0.5x', backend: 'js', batch: 2 });

    const compiled = run('compile', 'node_modules/tsc-nn/models/resnet.ts', '--depth', '20', '--emit', 'ir', '--out', 'out', '--json');
    expect(compiled.status, compiled.stderr).toBe(0);
    expect(JSON.parse(compiled.stdout)).toMatchObject({ model: 'resnet', params: 269_722 });

    const script = "const { loadModel, compileModel } = require('tsc-nn');\n"
      + "compileModel(loadModel('node_modules/tsc-nn/examples/small-convnet.ts'), { mode: 'infer', batch: 1, backend: 'js' })\n"
      + "  .then((net) => { console.log(net.run({ image: new Float32Array(3 * 16 * 16) }).logits.length); net.close(); });\n";
    fs.writeFileSync(path.join(user, 'use.js'), script);
    const used = spawnSync(process.execPath, ['use.js'], { cwd: user, encoding: 'utf8', timeout: 120_000, env: { ...process.env, TSC_NN_CACHE: path.join(tmp(), 'cache') } });
    expect(used.status, used.stderr).toBe(0);
    expect(used.stdout.trim()).toBe('10');
  }, 420_000);
});
