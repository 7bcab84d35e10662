// A small convnet written in the tsc-nn DSL: conv-BN-ReLU, a grouped conv, pooling and a classifier.
// Compile it with: npx tsc-nn compile examples/small-convnet.ts --batch 2
import { batchNorm, batchNormOf, batchNormParams, conv2d, defineModel, dense, globalAvgPool, maxPool2d, relu } from 'tsc-nn';

export default defineModel({
  name: 'small-convnet',
  defaults: { width: 8, classes: 10, resolution: 16 },
  params: ({ width, classes }) => ({
    'conv1.weight': { shape: [width, 3, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: 27 } },
    ...batchNormParams('bn1', width),
    'conv2.weight': { shape: [2 * width, width / 2, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: (width / 2) * 9 } },
    ...batchNormParams('bn2', 2 * width),
    'fc.weight': { shape: [classes, 2 * width], role: 'param', init: { kind: 'he_normal', fanIn: 2 * width } },
    'fc.bias': { shape: [classes], role: 'param', init: { kind: 'const', value: 0 } },
  }),
  inputs: ({ resolution }, batch) => ({ image: [batch, 3, resolution, resolution] }),
  forward: (p, { image }, _config, { training }) => {
    let x = relu(batchNorm(conv2d(image!, p['conv1.weight']!, { padding: 1 }), batchNormOf(p, 'bn1'), { training }));
    x = maxPool2d(x, { kernel: 3, stride: 2, padding: 'same' });
    x = relu(batchNorm(conv2d(x, p['conv2.weight']!, { padding: 1, groups: 2 }), batchNormOf(p, 'bn2'), { training }));
    return dense(globalAvgPool(x), p['fc.weight']!, p['fc.bias']!);
  },
});
