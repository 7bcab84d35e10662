// ShuffleNetV1 (Zhang et al., 2017), as in MindSpore's ShuffleNet tutorial: units of 1x1 group convolution,
// channel shuffle, 3x3 depthwise convolution and 1x1 group convolution, with a residual add (stride 1) or an
// average-pooled shortcut concatenated in front (stride 2). Parameter names follow the seed's module tree.
import { UserError } from '../ir/errors';
import type { Tensor } from '../ir/graph';
import { batchNormOf, batchNormParams, defineModel, type ParamSpec } from '../ir/model';
import { add, avgPool2d, batchNorm, concat, conv2d, dense, globalAvgPool, maxPool2d, relu, reshape, transpose } from '../ir/ops';

export const SIZES = ['0.5x', '1.0x', '1.5x', '2.0x'] as const;
export const GROUPS = [3, 8] as const;
export const STEMS = ['cifar', 'imagenet'] as const;
export type Size = (typeof SIZES)[number];
export type Stem = (typeof STEMS)[number];

/** Output channels of the stem and of stages 2-4, per group count and width multiplier (the paper's Table 1). */
const STAGE_OUT_CHANNELS: Record<number, Record<Size, readonly number[]>> = {
  3: { '0.5x': [12, 120, 240, 480], '1.0x': [24, 240, 480, 960], '1.5x': [24, 360, 720, 1440], '2.0x': [48, 480, 960, 1920] },
  8: { '0.5x': [16, 192, 384, 768], '1.0x': [24, 384, 768, 1536], '1.5x': [24, 576, 1152, 2304], '2.0x': [48, 768, 1536, 3072] },
};
const STAGE_REPEATS = [4, 8, 4];

export interface ShuffleNetConfig {
  size: Size;
  group: number;
  classes: number;
  stem: Stem;
  /** Input side: 32 for the cifar stem, 224 (CIFAR images resized) for the imagenet stem; 0 picks the stem's. */
  resolution: number;
  /**
   * Start the last BN of every residual (stride-1) unit at gamma = 0, so each unit begins as the identity (Goyal et
   * al. 2017; torchvision's zero_init_residual). The seed starts at 1; then the residual sums make the pooled
   * features ~37 long per image at initialisation and the classifier's curvature caps the stable learning rate
   * near 0.012 (docs/results.md).
   */
  zeroInitResidual: boolean;
  /**
   * How convolution weights start: 'he_normal' (tsc-nn's default, with which the committed checkpoint was trained)
   * or 'xavier_uniform', the seed's `weight_init='xavier_uniform'` on every convolution.
   */
  convInit: ConvInit;
}

export const CONV_INITS = ['he_normal', 'xavier_uniform'] as const;
export type ConvInit = (typeof CONV_INITS)[number];

/** One unit's shape: where its parameters live and how it convolves. */
interface Unit { readonly prefix: string; readonly inp: number; readonly oup: number; readonly stride: number; readonly firstGroup: boolean }

function units(cfg: ShuffleNetConfig): Unit[] {
  const channels = STAGE_OUT_CHANNELS[cfg.group]![cfg.size];
  const out: Unit[] = [];
  let inp = channels[0]!;
  STAGE_REPEATS.forEach((repeats, stage) => {
    const oup = channels[stage + 1]!;
    for (let i = 0; i < repeats; i++) {
      out.push({ prefix: `features.${out.length}`, inp, oup, stride: i === 0 ? 2 : 1, firstGroup: stage === 0 && i === 0 });
      inp = oup;
    }
  });
  return out;
}

const convParam = (out: number, inPerGroup: number, k: number, init: ConvInit): ParamSpec => ({
  shape: [out, inPerGroup, k, k], role: 'param',
  init: init === 'he_normal' ? { kind: 'he_normal', fanIn: inPerGroup * k * k } : { kind: 'xavier_uniform', fanIn: inPerGroup * k * k, fanOut: out * k * k },
});

function unitParams(u: Unit, { group, zeroInitResidual, convInit }: ShuffleNetConfig): Record<string, ParamSpec> {
  const mid = u.oup / 4;
  const branchOut = u.stride === 2 ? u.oup - u.inp : u.oup;
  const g1 = u.firstGroup ? 1 : group;
  return {
    [`${u.prefix}.branch_main_1.0.weight`]: convParam(mid, u.inp / g1, 1, convInit),
    ...batchNormParams(`${u.prefix}.branch_main_1.1`, mid),
    [`${u.prefix}.branch_main_2.0.weight`]: convParam(mid, 1, 3, convInit),
    ...batchNormParams(`${u.prefix}.branch_main_2.1`, mid),
    [`${u.prefix}.branch_main_2.2.weight`]: convParam(branchOut, mid / group, 1, convInit),
    ...batchNormParams(`${u.prefix}.branch_main_2.3`, branchOut, u.stride === 1 && zeroInitResidual ? 0 : 1),
  };
}

/** Split channels into g groups and interleave them: reshape [N, C/g, g, H, W], swap axes 1 and 2, reshape back. */
export function channelShuffle(x: Tensor, groups: number): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const grouped = reshape(x, [n, c / groups, groups, h, w]);
  return reshape(transpose(grouped, [0, 2, 1, 3, 4]), [n, c, h, w]);
}

export const shufflenet = defineModel<ShuffleNetConfig>({
  name: 'shufflenet',
  defaults: { size: '2.0x', group: 3, classes: 10, stem: 'cifar', resolution: 0, zeroInitResidual: false, convInit: 'he_normal' },

  configure(o) {
    const cfg: ShuffleNetConfig = { ...this.defaults, ...o };
    if (!SIZES.includes(cfg.size)) throw new UserError(`unknown size "${cfg.size}": valid sizes are ${SIZES.join(', ')}`);
    if (!(GROUPS as readonly number[]).includes(cfg.group)) throw new UserError(`unknown group ${cfg.group}: valid groups are ${GROUPS.join(', ')}`);
    if (!CONV_INITS.includes(cfg.convInit)) throw new UserError(`unknown conv-init "${cfg.convInit}": valid initialisers are ${CONV_INITS.join(', ')}`);
    if (!STEMS.includes(cfg.stem)) throw new UserError(`unknown stem "${cfg.stem}": valid stems are ${STEMS.join(', ')}`);
    if (!Number.isInteger(cfg.classes) || cfg.classes < 1) throw new UserError(`classes must be a positive integer, got ${cfg.classes}`);
    if (!cfg.resolution) cfg.resolution = cfg.stem === 'imagenet' ? 224 : 32;
    if (!Number.isInteger(cfg.resolution) || cfg.resolution < 8) throw new UserError(`resolution must be an integer of at least 8, got ${cfg.resolution}`);
    return cfg;
  },

  params(cfg) {
    const channels = STAGE_OUT_CHANNELS[cfg.group]![cfg.size];
    const last = channels[channels.length - 1]!;
    return {
      'first_conv.0.weight': convParam(channels[0]!, 3, 3, cfg.convInit),
      ...batchNormParams('first_conv.1', channels[0]!),
      ...Object.assign({}, ...units(cfg).map((u) => unitParams(u, cfg))),
      'classifier.weight': { shape: [cfg.classes, last], role: 'param', init: { kind: 'normal', std: 0.01 } },
      'classifier.bias': { shape: [cfg.classes], role: 'param', init: { kind: 'const', value: 0 } },
    };
  },

  inputs: (cfg, batch) => ({ image: [batch, 3, cfg.resolution, cfg.resolution] }),

  forward(p, { image }, cfg, { training }) {
    const bn = (x: Tensor, prefix: string): Tensor => batchNorm(x, batchNormOf(p, prefix), { training });

    const unit = (x: Tensor, u: Unit): Tensor => {
      const w = (name: string): Tensor => p[`${u.prefix}.${name}`]!;
      // Stride 2: the shortcut is the input's 3x3 average pool (taken first, so the input need not outlive it).
      const shortcut = u.stride === 1 ? x : avgPool2d(x, { kernel: 3, stride: 2, padding: 'same' });
      let branch = relu(bn(conv2d(x, w('branch_main_1.0.weight'), { groups: u.firstGroup ? 1 : cfg.group }), `${u.prefix}.branch_main_1.1`));
      if (cfg.group > 1) branch = channelShuffle(branch, cfg.group);
      branch = bn(conv2d(branch, w('branch_main_2.0.weight'), { stride: u.stride, padding: 1, groups: u.oup / 4 }), `${u.prefix}.branch_main_2.1`);
      branch = bn(conv2d(branch, w('branch_main_2.2.weight'), { groups: cfg.group }), `${u.prefix}.branch_main_2.3`);
      return relu(u.stride === 1 ? add(shortcut, branch) : concat([shortcut, branch], 1));
    };

    const stride = cfg.stem === 'imagenet' ? 2 : 1;
    let x = relu(bn(conv2d(image!, p['first_conv.0.weight']!, { stride, padding: 1 }), 'first_conv.1'));
    if (cfg.stem === 'imagenet') x = maxPool2d(x, { kernel: 3, stride: 2, padding: 'same' });
    for (const u of units(cfg)) x = unit(x, u);
    return dense(globalAvgPool(x), p['classifier.weight']!, p['classifier.bias']!);
  },
});
