// A small convnet written in the tsc-nn DSL: conv-BN-ReLU, a grouped conv, pooling and a classifier.
// Compile it with: npx tsc-nn compile examples/small-convnet.ts --batch 2
import { batchNorm, conv2d, defineModel, dense, globalAvgPool, maxPool2d, relu, type ParamSpec } from 'tsc-nn';

const bn = (prefix: string, c: number): Record<string, ParamSpec> => ({
  [`${prefix}.weight`]: { shape: [c], role: 'param', init: { kind: 'const', value: 1 } },
  [`${prefix}.bias`]: { shape: [c], role: 'param', init: { kind: 'const', value: 0 } },
  [`${prefix}.running_mean`]: { shape: [c], role: 'state', init: { kind: 'const', value: 0 } },
  [`${prefix}.running_var`]: { shape: [c], role: 'state', init: { kind: 'const', value: 1 } },
});

export default defineModel({
  name: 'small-convnet',
  defaults: { width: 8, classes: 10, resolution: 16 },
  params: ({ width, classes }) => ({
    'conv1.weight': { shape: [width, 3, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: 27 } },
    ...bn('bn1', width),
    'conv2.weight': { shape: [2 * width, width / 2, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: (width / 2) * 9 } },
    ...bn('bn2', 2 * width),
    'fc.weight': { shape: [classes, 2 * width], role: 'param', init: { kind: 'he_normal', fanIn: 2 * width } },
    'fc.bias': { shape: [classes], role: 'param', init: { kind: 'const', value: 0 } },
  }),
  inputs: ({ resolution }, batch) => ({ image: [batch, 3, resolution, resolution] }),
  forward: (p, { image }, _config, { training }) => {
    const norm = (prefix: string) => ({
      weight: p[`${prefix}.weight`]!, bias: p[`${prefix}.bias`]!,
      running_mean: p[`${prefix}.running_mean`]!, running_var: p[`${prefix}.running_var`]!,
    });
    let x = relu(batchNorm(conv2d(image!, p['conv1.weight']!, { padding: 1 }), norm('bn1'), { training }));
    x = maxPool2d(x, { kernel: 3, stride: 2, padding: 'same' });
    x = relu(batchNorm(conv2d(x, p['conv2.weight']!, { padding: 1, groups: 2 }), norm('bn2'), { training }));
    return dense(globalAvgPool(x), p['fc.weight']!, p['fc.bias']!);
  },
});
