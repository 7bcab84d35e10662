// Parameter initialisation from a model's ParamSpecs: He-normal or Xavier-uniform for convolutions, normal and
// constants otherwise.
// Every tensor draws from its own seeded stream, so a given seed always gives the same network.
import type { ParamSpec } from '../ir/model';
import { sizeOf } from '../ir/graph';
import { Rng } from './data/rng';

function gaussian(rng: Rng): number {
  // Box-Muller; 1 - u keeps the logarithm finite.
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

export function initParams(specs: Readonly<Record<string, ParamSpec>>, seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  Object.entries(specs).forEach(([name, spec], index) => {
    const data = new Float32Array(sizeOf(spec.shape));
    const init = spec.init;
    if (init.kind === 'const') data.fill(init.value);
    else if (init.kind === 'xavier_uniform') {
      const bound = Math.sqrt(6 / (init.fanIn + init.fanOut));
      const rng = Rng.derive(seed, 7, index);
      for (let i = 0; i < data.length; i++) data[i] = bound * (2 * rng.next() - 1);
    } else {
      const std = init.kind === 'normal' ? init.std : Math.sqrt(2 / init.fanIn);
      const rng = Rng.derive(seed, 7, index);
      for (let i = 0; i < data.length; i++) data[i] = std * gaussian(rng);
    }
    out.set(name, data);
  });
  return out;
}
