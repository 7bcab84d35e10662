// On gl, results stay on the device as textures between kernels: every texture a run creates must be deleted
// (counted on the GL context itself), and results must still equal the float64 reference.
import { describe, it, expect } from 'vitest';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import { evaluateOutputs } from '../src/ir/reference';
import { createExecutor } from '../src/runtime/executor';
import { createBackend } from '../src/runtime/backend';
import { countGlTextures } from '../tools/bench/gl-memory';
import { randomFeeds, relL2, testBackends } from './helpers';

describe.runIf(testBackends.includes('gl'))('gl keeps results on the device', () => {
  // Several kernels, an intermediate read twice, a 2-output graph, and a kernel source shared by two nodes.
  const g = trace({ params: { w: { shape: [6, 2, 3, 3], role: 'param' } }, inputs: { x: [2, 4, 5, 5] } }, (p, { x }) => {
    const y = ops.relu(ops.conv2d(x!, p.w!, { padding: 1, groups: 2 }));
    const z = ops.add(ops.scale(y, 2), ops.scale(y, 2));
    return { out: ops.mean(z, [2, 3]), relu: y };
  });
  const feeds = randomFeeds(g, 3);

  it('deletes every texture a run creates, over 20 runs, and computes the reference', () => {
    const backend = createBackend('gl');
    const executor = createExecutor(g, backend);
    try {
      executor.run(feeds); // compiles the kernels
      const textures = countGlTextures(backend);
      const ref = evaluateOutputs(g, feeds);
      for (let run = 0; run < 20; run++) {
        const got = executor.run(feeds);
        for (const [name, r] of Object.entries(ref)) expect(relL2(r, got[name]!)).toBeLessThan(1e-5);
        expect(textures.live()).toBe(0);
      }
    } finally {
      executor.close();
    }
  });
});
