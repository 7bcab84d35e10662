// ResNet for CIFAR-10 (He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2): a 3x3
// convolution with 16 filters, then three stages of n basic blocks on 32x32, 16x16 and 8x8 feature maps with 16,
// 32 and 64 filters, global average pooling and a 10-way classifier: 6n + 2 weighted layers (--depth 20, 32, 44,
// 56, 110). Shortcuts are identities; where a stage halves the map and doubles the filters, the shortcut is
// option A: subsample by 2 and pad the new channels with zeros, so it has no parameters.
//
// Parameter names are those of the common PyTorch implementation (akamaster/pytorch_resnet_cifar10), so its
// state_dicts load by name.
//
//   npx tsc-nn compile models/resnet.ts --depth 20 --json      (0.27 M parameters, as in the paper's Table 6)
//   npx tsc-nn train models/resnet.ts --depth 20 --data ...    (see docs/results.md for the schedule)
import {
  add, batchNorm, batchNormOf, batchNormParams, compute, conv2d, defineModel, defineOp, defineOpCheck, dense, globalAvgPool, relu, select, UserError,
  type ParamSpec, type Tensor,
} from 'tsc-nn';

// ---- The option-A shortcut as a custom op: out[n, c, y, x] = in[n, c - pad, 2y, 2x] for the middle channels, 0 for
// the `pad` channels on either side. Its gradient is the reverse map: every even pixel of the input receives the
// gradient of the output element it was copied to; odd pixels and padded channels receive nothing.
interface ShortcutAttrs { readonly pad: number }

const subsamplePadGradOp = defineOp<ShortcutAttrs>({
  name: 'resnet_shortcut_a_grad',
  compute: ([g, x], { pad }) => compute(x!.shape, (n, c, y, xx) =>
    select(y.mod(2).eq(0).and(xx.mod(2).eq(0)), g!.at(n, c.add(pad), y.idiv(2), xx.idiv(2)), 0)),
});

const subsamplePadOp = defineOp<ShortcutAttrs>({
  name: 'resnet_shortcut_a',
  compute: ([x], { pad }) => {
    const [n, c, h, w] = x!.shape as [number, number, number, number];
    return compute([n, c + 2 * pad, Math.ceil(h / 2), Math.ceil(w / 2)], (i, ch, y, xx) =>
      select(ch.ge(pad).and(ch.lt(c + pad)), x!.at(i, ch.sub(pad), y.mul(2), xx.mul(2)), 0));
  },
  vjp: (g, [x], _out, attrs) => [subsamplePadGradOp([g, x!], attrs)],
});

/** Option A: keep every other pixel and zero-pad `pad` channels on each side (C -> C + 2 pad). */
export const shortcutA = (x: Tensor, pad: number): Tensor => subsamplePadOp([x], { pad });

// `tsc-nn check-op models/resnet.ts`: the shortcut on every backend against the float64 reference, and its
// gradient against finite differences.
export const shortcutACheck = defineOpCheck({
  name: 'resnet_shortcut_a',
  draw: (d) => ({ inputs: [[d(1, 3, 'batch'), d(1, 8, 'channels'), d(1, 9, 'height'), d(1, 9, 'width')]], attrs: { pad: d(0, 4, 'pad') } }),
  apply: ([x], { pad }) => shortcutA(x!, pad as number),
});

// ---- The network.
export interface ResNetConfig { depth: number; classes: number; resolution: number }

const STAGE_CHANNELS = [16, 32, 64] as const;

const conv3x3 = (out: number, inp: number): ParamSpec =>
  ({ shape: [out, inp, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: inp * 9 } });

interface Block { readonly prefix: string; readonly inp: number; readonly oup: number; readonly stride: number }

function blocks({ depth }: ResNetConfig): Block[] {
  const n = (depth - 2) / 6;
  const out: Block[] = [];
  let inp: number = STAGE_CHANNELS[0];
  STAGE_CHANNELS.forEach((oup, stage) => {
    for (let i = 0; i < n; i++) {
      out.push({ prefix: `layer${stage + 1}.${i}`, inp, oup, stride: stage > 0 && i === 0 ? 2 : 1 });
      inp = oup;
    }
  });
  return out;
}

export default defineModel<ResNetConfig>({
  name: 'resnet',
  defaults: { depth: 20, classes: 10, resolution: 32 },

  configure(o) {
    const cfg: ResNetConfig = { ...this.defaults, ...o };
    if (!Number.isInteger(cfg.depth) || cfg.depth < 8 || (cfg.depth - 2) % 6 !== 0) {
      throw new UserError(`--depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got ${cfg.depth}`);
    }
    if (!Number.isInteger(cfg.classes) || cfg.classes < 1) throw new UserError(`--classes must be a positive integer, got ${cfg.classes}`);
    if (!Number.isInteger(cfg.resolution) || cfg.resolution < 4) throw new UserError(`--resolution must be an integer of at least 4, got ${cfg.resolution}`);
    return cfg;
  },

  params(cfg) {
    const specs: Record<string, ParamSpec> = { 'conv1.weight': conv3x3(16, 3), ...batchNormParams('bn1', 16) };
    for (const b of blocks(cfg)) {
      Object.assign(specs, {
        [`${b.prefix}.conv1.weight`]: conv3x3(b.oup, b.inp), ...batchNormParams(`${b.prefix}.bn1`, b.oup),
        [`${b.prefix}.conv2.weight`]: conv3x3(b.oup, b.oup), ...batchNormParams(`${b.prefix}.bn2`, b.oup),
      });
    }
    specs['linear.weight'] = { shape: [cfg.classes, 64], role: 'param', init: { kind: 'he_normal', fanIn: 64 } };
    specs['linear.bias'] = { shape: [cfg.classes], role: 'param', init: { kind: 'const', value: 0 } };
    return specs;
  },

  inputs: (cfg, batch) => ({ image: [batch, 3, cfg.resolution, cfg.resolution] }),

  forward(p, { image }, cfg, { training }) {
    const bn = (x: Tensor, prefix: string): Tensor => batchNorm(x, batchNormOf(p, prefix), { training });

    // y = relu(F(x) + shortcut(x)), F = conv-BN-ReLU-conv-BN (the paper's Figure 2).
    const basicBlock = (x: Tensor, b: Block): Tensor => {
      const residual = bn(conv2d(relu(bn(conv2d(x, p[`${b.prefix}.conv1.weight`]!, { stride: b.stride, padding: 1 }), `${b.prefix}.bn1`)),
        p[`${b.prefix}.conv2.weight`]!, { padding: 1 }), `${b.prefix}.bn2`);
      const shortcut = b.stride === 1 && b.inp === b.oup ? x : shortcutA(x, (b.oup - b.inp) / 2);
      return relu(add(residual, shortcut));
    };

    let x = relu(bn(conv2d(image!, p['conv1.weight']!, { padding: 1 }), 'bn1'));
    for (const b of blocks(cfg)) x = basicBlock(x, b);
    return dense(globalAvgPool(x), p['linear.weight']!, p['linear.bias']!);
  },
});
