// On gl, results stay on the device as textures between kernels: every texture a run creates must be deleted
// (counted on the GL context itself), and results must still equal the float64 reference. Kernels whose innermost
// output axis is a multiple of 4 compute 4 outputs per thread, and their readers unpack them.
import { describe, it, expect } from 'vitest';
import { trace } from '../src/ir/trace';
import * as ops from '../src/ir/ops';
import { evaluateOutputs } from '../src/ir/reference';
import { createBackend, createExecutor } from '../src/backends/registry';
import { countGlTextures } from '../tools/bench/gl-memory';
import { lowerGraph } from '../src/codegen/lower';
import { printGpujsKernel } from '../src/codegen/gpujs';
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

describe.runIf(testBackends.includes('gl'))('gl computes 4 outputs per thread', () => {
  // relu -> 1x1 group conv -> relu on [2, 8, 4, 4]: every kernel's innermost axis is a multiple of 4, so each
  // is packed, and the conv and the last relu read packed textures.
  const g = trace({ params: {}, inputs: { x: [2, 8, 4, 4], w: [8, 4, 1, 1] } }, (_p, t) => ops.relu(ops.conv2d(ops.relu(t.x!), t.w!, { groups: 2 })));

  it('a packed reduction is one loop with 4 accumulators, and unpacks what it reads', () => {
    const conv = lowerGraph(g)[1]!;
    const { source, output } = printGpujsKernel(conv, { output: true, inputs: [true, false] });
    expect(output).toEqual([2 * 8 * 4]);
    expect(source).toContain('4 outputs per thread');
    expect(source.match(/for \(let r\d+ = 0;/g)).toHaveLength(1);
    expect(source.match(/let acc\d+ = 0;/g)).toHaveLength(4);
    expect(source).toMatch(/return \[acc\d+, acc\d+, acc\d+, acc\d+\];/);
    expect(source).toMatch(/== 3 \? p\d+\[3\]|: p\d+\[3\]/);
  });

  it('the packed chain equals the float64 reference', () => {
    const feeds = randomFeeds(g, 4);
    const executor = createExecutor(g, createBackend('gl'));
    try {
      const got = executor.run(feeds);
      for (const [name, r] of Object.entries(evaluateOutputs(g, feeds))) expect(relL2(r, got[name]!)).toBeLessThan(1e-5);
    } finally {
      executor.close();
    }
  });
});
