// `tsc-nn check-op FILE.ts`: property-test the custom ops a file exports with `defineOpCheck`.
import { UserError } from '../../src/ir/errors';
import { loadUserModule } from '../../src/api/load-model';
import { runOpCheck, type OpCheck } from '../../src/frontend/opcheck';
import { createBackend } from '../../src/backends/registry';
import { positiveInt, type Command } from './common';

const isOpCheck = (x: unknown): x is OpCheck =>
  !!x && typeof (x as OpCheck).name === 'string' && typeof (x as OpCheck).draw === 'function' && typeof (x as OpCheck).apply === 'function';

export const checkOpCommand: Command = {
  name: 'check-op',
  summary: 'property-test custom ops (exported with defineOpCheck) against the float64 reference',
  usage: 'tsc-nn check-op FILE.ts [--runs N] [--seed N] [--backend cpu,webasm,...] [--json]',
  options: { runs: { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' } },
  run({ values, positionals }) {
    const file = positionals[0];
    if (!file) throw new UserError('check-op needs a file: tsc-nn check-op FILE.ts');
    const backends = typeof values.backend === 'string' ? values.backend.split(',') : ['cpu', 'webasm'];
    backends.forEach((b) => createBackend(b));
    const mod = loadUserModule(file);
    const checks = Object.values(mod).filter(isOpCheck);
    if (checks.length === 0) throw new UserError(`${file}: exports no op checks; export one made with defineOpCheck({ name, draw, apply })`);
    const numRuns = positiveInt('runs', values.runs, 50);
    const seed = values.seed === undefined ? undefined : positiveInt('seed', values.seed, 1);
    const results = checks.map((c) => runOpCheck(c, { backends, numRuns, seed }));
    if (values.json) console.log(JSON.stringify(results));
    else {
      for (const r of results) {
        if (r.failure) console.log(`FAIL ${r.name}: ${r.failure}\n  counterexample: ${r.counterexample}`);
        else console.log(`ok   ${r.name}: ${r.runs} trials: equal to the float64 reference on ${backends.join(', ')}${r.gradients ? '; gradients match finite differences' : '; no gradient rule, gradients not checked'}`);
      }
    }
    if (results.some((r) => r.failure)) process.exitCode = 1;
  },
};
