// ShuffleNetV1 end to end (the issue's "done when"): for every size x group with the cifar stem, and 0.5x with
// both groups on the imagenet stem (batch 2, 224x224), the compiled gpu.js programs equal the float64 reference
// interpreter run on the UNOPTIMISED traced graph:
//
// - Training step (forward in training mode, backward, momentum update), compiled with the full train pipeline
//   (autodiff, optimizer, shuffle fusion, epilogue fusion). The reference is the traced training graph with only
//   autodiff and the optimizer applied (they define what a step computes; no fusion). The momentum buffers are fed
//   as zeros, so `update:momentum.P` is exactly the gradient of P (plus 4e-5 * P for conv and dense weights): the
//   backward is checked through the outputs the real training step produces, after fusion has been free to keep
//   the gradients out of memory. logits, loss, BN running statistics and parameter updates are compared as well.
// - Inference (BN folded, fully optimised), checked against the SAME reference evaluation: the running statistics
//   fed to the inference program are the batch statistics the reference computed (recovered exactly from its
//   running-statistic outputs, fed as zeros), so inference BN computes the same function as training BN on this
//   batch and its logits must equal the reference's training-mode logits. One reference evaluation per config
//   thus checks forward and backward (the reference interpreter is most of the cost). 0.5x g3 is also checked
//   directly against the reference of its own traced inference graph, which validates that shortcut.
//
// Tolerances (relative L2): 1e-5 forward, 1e-4 backward (float32 intermediates vs float64 over long sums), per
// output; gradients that vanish analytically are compared on the scale of the whole gradient. The data keeps ReLU
// inputs off their kinks (see trainFeeds), which the test checks on the reference values: otherwise a single ReLU
// whose sign float32 rounding flips would move every gradient by ~1e-3 and no float32 program could pass.
// Batch 1 for the cifar stem (its last stage is 4x4, so batch statistics stay well defined), 2 for imagenet.
import { afterAll, describe, it, expect } from 'vitest';
import { shufflenet, SIZES, GROUPS, type ShuffleNetConfig, type Size, type Stem } from '../src/models/shufflenet';
import { buildGraph } from '../src/frontend/build';
import { evaluate, evaluateOutputs } from '../src/ir/reference';
import { countParams } from '../src/ir/model';
import { UserError } from '../src/ir/errors';
import { outputKey, sizeOf, type Graph } from '../src/ir/graph';
import { formatLoc } from '../src/ir/location';
import { poolGeometry, type PoolAttrs } from '../src/ir/ops';
import { gradients } from '../src/passes/autodiff';
import { momentumSgd, momentumName, SEED_MOMENTUM } from '../src/passes/optimizer';
import { isIndexRemapping } from '../src/passes/fuse-index-remapping';
import { passesFor, runPasses } from '../src/passes/pipeline';
import { availableBackends, createBackend, createExecutor, type Backend } from '../src/backends/registry';
import { initParams } from '../src/runtime/init';
import { relL2, uniform } from './helpers';

const FORWARD_TOL = 1e-5;
const BACKWARD_TOL = 1e-4;
// gpu.js's cpu backend computes in float64 and rounds only what it stores; wasm computes and accumulates in float32
// (as a GPU does), so long sums and batch statistics of a few elements carry float32 rounding (measured: forward
// up to 1.5e-6 and BN running variances up to 1.2e-5 at batch 1, gradients up to 8e-5).
const FLOAT32 = { forward: 5e-5, backward: 3e-4 } as const;
const TOLERANCES = { cpu: { forward: FORWARD_TOL, backward: BACKWARD_TOL }, wasm: FLOAT32, native: FLOAT32, webgpu: FLOAT32, gl: FLOAT32 } as const;
// The GPU backends (WebGPU on Dawn, headless GL), where they start, check the 0.5x g3 cifar configuration.
const GPU_BACKENDS = (['webgpu', 'gl'] as const).filter((b) => availableBackends().includes(b));
const backendsFor = (c: Config): readonly (keyof typeof TOLERANCES)[] =>
  (c.size === '0.5x' && c.group === 3 && c.stem === 'cifar' ? [...CHECKED_BACKENDS, ...GPU_BACKENDS] : CHECKED_BACKENDS);
const LR = 0.5;

interface Config { readonly size: Size; readonly group: number; readonly stem: Stem; readonly batch: number }
const CONFIGS: Config[] = [
  ...SIZES.flatMap((size) => GROUPS.map((group): Config => ({ size, group, stem: 'cifar', batch: 1 }))),
  ...GROUPS.map((group): Config => ({ size: '0.5x', group, stem: 'imagenet', batch: 2 })),
];

/** Run a compiled graph once (results poisoned with NaN first, so unwritten elements show). */
function runOnce(g: Graph, backend: Backend, feeds: Readonly<Record<string, Float32Array>>): Record<string, Float32Array> {
  const executor = createExecutor(g, backend, { poison: true });
  try { return executor.run(feeds); } finally { executor.close(); }
}

const l2 = (a: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! ** 2; return Math.sqrt(s); };
const secs = (t0: number): string => `${((performance.now() - t0) / 1000).toFixed(1)}s`;

/**
 * Feeds for every source of the training-step graph. Convolution and dense weights are He/normal initialised (as
 * training starts); running statistics and momentum buffers are zero; labels are class indices.
 *
 * BN scales and shifts keep every ReLU input that receives gradient away from the kink. A float32 program and the
 * float64 reference can disagree on the sign of a ReLU input within rounding of zero; that flips one element of the
 * gradient mask, which (a few hundred thousand activations) moves every gradient by ~1e-3 relative. With uniform
 * random BN parameters, 1.0x g8, 1.5x g3 and 2.0x g3 each had such an element (e.g. -3.5e-8 against an rms of 1.6),
 * and perturbing the parameters by one float32 ulp moved the float64 reference gradients by ~1e-2: no float32
 * program can meet 1e-4 there. So:
 * - BNs feeding a ReLU directly (branch_main_1.1, and the cifar stem's) have channels that are alive (shift
 *   1.5..2.5) or dead (shift -2.5..-1.5, a quarter of them), scale 0.1..0.25: their ReLU inputs are beyond +-0.9
 *   while |normalized value| < 6, and dead channels exercise the ReLU's zero branch (exact zeros flow on through
 *   the depthwise conv and the pooled shortcut);
 * - the last BN of a branch (branch_main_2.3) has shift 0.7..1.0, scale 0.05..0.1, so the residual sum (of a
 *   non-negative shortcut and a positive branch) is positive. Then every ReLU after the last stage passes the
 *   global-pool gradient, which is constant over each channel at batch 1, and a training-mode BN maps a constant
 *   gradient to zero: the whole last stage would get no gradient. So in the last unit a few channels (c % 64 == 5)
 *   have shift 0 and scale 0.5..1 on a shortcut the unit before zeroed (shift -50 there): ReLUs that are partly on
 *   (a few dozen values near zero at most, so a near-kink is unlikely, and checked);
 * - the BN after the depthwise conv (branch_main_2.1), which feeds a conv, and the imagenet stem's BN, whose ReLU
 *   feeds a max-pool that passes gradient only to each window's maximum, are unconstrained (scale 0.5..1.5, shift
 *   -0.5..0.5).
 * (With the initial scale 1 and shift 0, ReLU's homogeneity also makes some gradients cancel to an eps-sized
 * remainder that no float32 program reproduces to 1e-4.) The test checks the margins on the reference values.
 */
function trainFeeds(g: Graph, cfg: ShuffleNetConfig, seed: number): Record<string, Float32Array> {
  const init = initParams(shufflenet.params(cfg), seed);
  const last = Math.max(...g.sources().map((n) => Number(/^features\.(\d+)\./.exec(n.name!)?.[1] ?? -1)));
  const feeds: Record<string, Float32Array> = {};
  g.sources().forEach((n, i) => {
    const name = n.name!;
    const size = sizeOf(n.shape);
    const s = seed * 101 + i;
    const bn = /^(first_conv\.1|features\.(\d+)\.branch_main_(1\.1|2\.1|2\.3))\.(weight|bias)$/.exec(name);
    if (name === 'image') feeds[name] = uniform(size, s);
    else if (name === 'label') feeds[name] = Float32Array.from({ length: size }, (_, j) => (seed + 7 * j) % cfg.classes);
    else if (name === 'lr') feeds[name] = new Float32Array([LR]);
    else if (/running_(mean|var)$/.test(name) || name.startsWith('momentum.')) feeds[name] = new Float32Array(size);
    else if (bn) {
      const unit = bn[2] === undefined ? -1 : Number(bn[2]);
      const weight = bn[4] === 'weight';
      const partial = (c: number) => c % 64 === 5;
      if (bn[3] === '2.1' || (bn[1] === 'first_conv.1' && cfg.stem === 'imagenet')) {
        feeds[name] = weight ? uniform(size, s, 0.5, 1.5) : uniform(size, s, -0.5, 0.5);
      } else if (bn[3] === '2.3') {
        const base = weight ? uniform(size, s, 0.05, 0.1) : uniform(size, s, 0.7, 1);
        if (unit === last) base.forEach((_, c) => { if (partial(c)) base[c] = weight ? 0.5 + 0.5 * base[c]! / 0.1 : 0; });
        if (unit === last - 1 && !weight) base.forEach((_, c) => { if (partial(c)) base[c] = -50; });
        feeds[name] = base;
      } else {
        feeds[name] = weight ? uniform(size, s, 0.1, 0.25)
          : Float32Array.from(uniform(size, s, 0, 1), (u) => (u < 0.25 ? -1.5 - 4 * u : 1.5 + (u - 0.25) * 4 / 3));
      }
    } else {
      const v = init.get(name);
      if (!v) throw new Error(`no feed for ${n.op} ${name}`);
      feeds[name] = v;
    }
  });
  return feeds;
}

/**
 * Where the reference sits near a discontinuity of the gradient: ReLU inputs within 1e-5 of their channel's rms of
 * zero (not exactly zero, which float32 reproduces) that receive gradient, and max-pool windows, receiving gradient,
 * whose two largest values are within 1e-5 rms. Also counts the ReLU inputs at or below zero, to show the zero branch is exercised.
 */
function discontinuities(g: Graph, values: readonly Float64Array[]): { nearKinks: number; nearTies: number; inactive: number; where: string[] } {
  const where: string[] = [];
  let nearKinks = 0;
  let nearTies = 0;
  let inactive = 0;
  for (const n of g.nodes) {
    if (n.op === 'relu_grad') {
      const x = values[n.inputs[0]!]!;
      const cot = values[n.inputs[1]!]!;
      // The scale of a value's float32 rounding: the rms of its channel (NCHW), or of the tensor.
      const shape = g.node(n.inputs[0]!).shape;
      const [C, HW] = shape.length === 4 ? [shape[1]!, shape[2]! * shape[3]!] : [1, x.length];
      const sq = new Float64Array(C);
      x.forEach((v, i) => { sq[Math.floor(i / HW) % C] += v * v; });
      const rmsOf = (i: number) => Math.sqrt(sq[Math.floor(i / HW) % C]! / (x.length / C));
      x.forEach((v, i) => {
        const rms = rmsOf(i);
        if (v !== 0 && Math.abs(v) < 1e-5 * rms && cot[i] !== 0) {
          nearKinks++;
          if (where.length < 5) where.push(`ReLU input %${n.inputs[0]} (${g.node(n.inputs[0]!).op}, ${formatLoc(g.node(n.inputs[0]!).loc)})[${i}] = ${v.toExponential(2)}, rms ${rms.toExponential(2)}`);
        }
        if (v <= 0) inactive++;
      });
    }
    if (n.op !== 'max_pool2d_grad') continue;
    const [xId, , gId] = n.inputs;
    const x = values[xId!]!;
    const cot = values[gId!]!;
    const rms = l2(x) / Math.sqrt(x.length);
    const [N, C, H, W] = g.node(xId!).shape as [number, number, number, number];
    const a = n.attrs as unknown as PoolAttrs;
    const gy = poolGeometry(H, a);
    const gx = poolGeometry(W, a);
    for (let nc = 0; nc < N * C; nc++) {
      for (let oy = 0; oy < gy.out; oy++) for (let ox = 0; ox < gx.out; ox++) {
        if (cot[(nc * gy.out + oy) * gx.out + ox] === 0) continue;
        let best = -Infinity;
        let second = -Infinity;
        for (let ky = 0; ky < a.kernel; ky++) for (let kx = 0; kx < a.kernel; kx++) {
          const y = oy * a.stride - gy.before + ky;
          const xx = ox * a.stride - gx.before + kx;
          if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
          const v = x[(nc * H + y) * W + xx]!;
          if (v > best) { second = best; best = v; } else if (v > second) second = v;
        }
        if (best !== second && best - second < 1e-5 * rms) {
          nearTies++;
          if (where.length < 5) where.push(`max-pool %${n.id} window ${nc}/${oy}/${ox}: ${best} vs ${second}`);
        }
      }
    }
  }
  return { nearKinks, nearTies, inactive, where };
}

/** The kernels of a compiled program that only move data (what shuffle fusion must leave none of). */
function dataMovementKernels(g: Graph): string[] {
  return g.nodes.filter((n) => n.expr && (n.op === 'reshape' || n.op === 'transpose' || isIndexRemapping(n.expr)))
    .map((n) => `%${n.id} ${n.fused ? `fused(${n.fused.join(' > ')})` : n.op}`);
}

/** BN batch statistics recovered from the reference's running-statistic outputs (fed as zeros, momentum 0.1). */
function batchStatistics(infer: Graph, ref: Record<string, Float64Array>): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const bn of infer.nodes.filter((n) => n.op === 'batch_norm_infer')) {
    const [x, , , rm, rv] = bn.inputs.map((i) => infer.node(i));
    const count = x!.shape[0]! * x!.shape[2]! * x!.shape[3]!;
    // running_mean' = 0.9 * 0 + 0.1 * mean; running_var' = 0.9 * 0 + 0.1 * var * count / max(count - 1, 1).
    out[rm!.name!] = Float32Array.from(ref[`state:${rm!.name}`]!, (v) => v / 0.1);
    out[rv!.name!] = Float32Array.from(ref[`state:${rv!.name}`]!, (v) => (v / 0.1) * Math.max(count - 1, 1) / count);
  }
  return out;
}

// Every configuration on gpu.js's cpu (the portable kernels), tsc-nn's WebAssembly SIMD target (the portable CPU
// path) and, where a C compiler works, its native target (the fast CPU path).
const CHECKED_BACKENDS = (['cpu', 'wasm', 'native'] as const).filter((b) => b !== 'native' || availableBackends().includes(b));

describe('ShuffleNetV1 compiled on gpu.js cpu, wasm and native equals the float64 reference of the unoptimised traced graph', () => {
  const timings: string[] = [];
  afterAll(() => { if (timings.length) console.log(`ShuffleNet timings (this machine, this load):\n${timings.join('\n')}`); });

  for (const c of CONFIGS) {
    const title = `${c.size} g${c.group} ${c.stem} stem, batch ${c.batch}: training step and BN-folded inference`;
    it(title, () => {
      const t0 = performance.now();
      const cfg = shufflenet.configure!({ size: c.size, group: c.group, stem: c.stem });

      // The one reference evaluation: unoptimised training step (traced forward + autodiff + momentum SGD).
      const train = buildGraph(shufflenet, cfg, { batch: c.batch, mode: 'train' });
      const stepGraph = momentumSgd(gradients(train).graph, SEED_MOMENTUM).graph;
      const feeds = trainFeeds(stepGraph, cfg, 1);
      let t = performance.now();
      const values = evaluate(stepGraph, feeds);
      const ref = Object.fromEntries(stepGraph.outputs.map((o) => [outputKey(o), values[o.node]!]));
      const refTime = secs(t);
      // The data keeps ReLU inputs off their kinks (see trainFeeds) and still has inactive ReLU inputs.
      const near = discontinuities(stepGraph, values);
      expect(near.nearKinks, near.where.join('\n')).toBe(0);
      expect(near.inactive).toBeGreaterThan(0);

      const trainProgram = runPasses(train, passesFor('train'));
      expect(dataMovementKernels(trainProgram.graph)).toEqual([]);
      const infer = buildGraph(shufflenet, cfg, { batch: c.batch, mode: 'infer' });
      const inferProgram = runPasses(infer, passesFor('infer'));
      const inferGraph = inferProgram.graph;
      expect(inferGraph.nodes.filter((n) => n.op === 'batch_norm_infer' || n.fused?.includes('batch_norm_infer'))).toEqual([]);
      expect(inferProgram.passes[0]!.changed).toEqual({ folded: infer.nodes.filter((n) => n.op === 'batch_norm_infer').length });
      expect(dataMovementKernels(inferGraph)).toEqual([]);
      for (const name of backendsFor(c)) {
        const backend = createBackend(name);
        // Compiled training step (the full train pipeline), then BN-folded inference.
        t = performance.now();
        const got = runOnce(trainProgram.graph, backend, feeds);
        const trainTime = secs(t);
        expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());

        // Gradients are the momentum updates minus weight decay; a few vanish analytically (see below).
        const paramNames = train.sources('param').map((p) => p.name!);
        const rank = new Map(train.sources('param').map((p) => [p.name!, p.shape.length]));
        const grad = (out: Record<string, ArrayLike<number>>, p: string): Float64Array => {
          const decay = rank.get(p)! > 1 ? SEED_MOMENTUM.weightDecay : 0;
          return Float64Array.from(out[`update:${momentumName(p)}`]!, (v, i) => v - decay * feeds[p]![i]!);
        };
        const globalGrad = l2(paramNames.flatMap((p) => Array.from(grad(ref, p))));
        expect(globalGrad).toBeGreaterThan(0);
        const failures: string[] = [];
        const vanishing: string[] = [];
        let worstBackward = 0;
        for (const [key, r] of Object.entries(ref)) {
          const o = got[key]!;
          if (o.some((v) => Number.isNaN(v))) { failures.push(`${key}: NaN`); continue; }
          const isGrad = key.startsWith('update:momentum.');
          if (isGrad) {
            const p = key.slice('update:momentum.'.length);
            const gr = grad(ref, p);
            // The bias of the BN after each depthwise conv feeds a 1x1 conv and then a training-mode BN, which
            // subtracts the per-channel mean: its gradient is exactly zero (the reference gets ~1e-16, float32 ~1e-8).
            if (l2(gr) < 1e-10 * globalGrad) {
              vanishing.push(p);
              const abs = l2(Array.from(grad(got, p), (v, i) => v - gr[i]!));
              if (!(abs < 1e-6 * globalGrad)) failures.push(`${key}: analytically zero gradient, compiled |g| ${abs.toExponential(2)} vs global ${globalGrad.toExponential(2)}`);
              continue;
            }
          }
          const tol = isGrad || key.startsWith('update:') ? TOLERANCES[name].backward : TOLERANCES[name].forward;
          const err = relL2(r, o);
          if (isGrad) worstBackward = Math.max(worstBackward, err);
          if (!(err < tol)) failures.push(`${key}: relative L2 ${err.toExponential(2)} >= ${tol}`);
        }
        // Max-pool near-ties (imagenet stem) would be the remaining source of float32/float64 gradient disagreement.
        if (failures.length && near.nearTies) failures.push(`(the reference has ${near.nearTies} max-pool windows whose two largest values are within 1e-5 rms)`);
        expect(failures).toEqual([]);
        expect(vanishing.sort()).toEqual(paramNames.filter((p) => /branch_main_2\.1\.bias$/.test(p)).sort());

        // BN-folded inference on the batch statistics equals the reference's training-mode logits.
        t = performance.now();
        const inferFeeds: Record<string, Float32Array> = { ...feeds, ...batchStatistics(infer, ref) };
        const used = Object.fromEntries(inferGraph.sources().map((n) => [n.name!, inferFeeds[n.name!]!]));
        const logits = runOnce(inferGraph, backend, used).logits!;
        const inferTime = secs(t);
        const forwardErr = relL2(ref.logits!, logits);
        expect(forwardErr).toBeLessThan(TOLERANCES[name].forward);
        timings.push(`${title} on ${name}: total ${secs(t0)} (reference ${refTime}, compiled step ${trainTime}, inference ${inferTime}); `
          + `forward rel L2 ${forwardErr.toExponential(1)}, worst gradient rel L2 ${worstBackward.toExponential(1)}, `
          + `inactive ReLU inputs ${near.inactive}, max-pool near-ties ${near.nearTies}, `
          + `kernels step ${trainProgram.graph.nodes.filter((n) => n.expr).length}, inference ${inferGraph.nodes.filter((n) => n.expr).length}`);
        console.log(timings[timings.length - 1]);
      }
    }, 3_600_000);
  }

  it('0.5x g3 cifar: BN-folded inference equals the reference of its own traced inference graph', () => {
    const cfg = shufflenet.configure!({ size: '0.5x', group: 3, stem: 'cifar' });
    const infer = buildGraph(shufflenet, cfg, { batch: 1, mode: 'infer' });
    const feeds = trainFeeds(infer, cfg, 3);
    // Inference needs real running statistics: positive variances, non-zero means.
    infer.sources('state').forEach((n, i) => {
      feeds[n.name!] = n.name!.endsWith('running_var') ? uniform(sizeOf(n.shape), 500 + i, 0.5, 2) : uniform(sizeOf(n.shape), 500 + i, -0.3, 0.3);
    });
    const ref = evaluateOutputs(infer, feeds);
    const program = runPasses(infer, passesFor('infer'));
    const got = runOnce(program.graph, createBackend('cpu'), feeds);
    expect(relL2(ref.logits!, got.logits!)).toBeLessThan(FORWARD_TOL);
    expect(l2(ref.logits!)).toBeGreaterThan(0);
  }, 600_000);
});

describe('ShuffleNetV1 configurations and parameter names', () => {
  const configure = (o: Partial<ShuffleNetConfig>) => shufflenet.configure!(o);

  it('1.0x g3 with 10 classes has 914,338 trainable parameters', () => {
    expect(countParams(shufflenet.params(configure({ size: '1.0x', group: 3, classes: 10 })))).toBe(914_338);
  });

  it('an unknown size or group is a UserError listing the valid ones', () => {
    expect(() => configure({ size: '3.0x' as Size })).toThrow(UserError);
    expect(() => configure({ size: '3.0x' as Size })).toThrow(/unknown size "3\.0x": valid sizes are 0\.5x, 1\.0x, 1\.5x, 2\.0x/);
    expect(() => configure({ group: 4 })).toThrow(UserError);
    expect(() => configure({ group: 4 })).toThrow(/unknown group 4: valid groups are 3, 8/);
  });

  it('parameter names and shapes follow the seed module tree', () => {
    const cfg = configure({ size: '1.0x', group: 3, classes: 10 });
    const specs = shufflenet.params(cfg);
    // Stage 2 of 1.0x g3: 24 -> 240 channels, mid = 240 / 4 = 60; the first unit's branch is 240 - 24 = 216 wide.
    expect(specs['first_conv.0.weight']!.shape).toEqual([24, 3, 3, 3]);
    expect(specs['first_conv.1.running_var']!.role).toBe('state');
    expect(specs['features.0.branch_main_1.0.weight']!.shape).toEqual([60, 24, 1, 1]); // groups 1 in the first unit
    expect(specs['features.0.branch_main_2.0.weight']!.shape).toEqual([60, 1, 3, 3]); // depthwise
    expect(specs['features.0.branch_main_2.2.weight']!.shape).toEqual([240 - 24, 60 / 3, 1, 1]);
    expect(specs['features.1.branch_main_1.0.weight']!.shape).toEqual([60, 240 / 3, 1, 1]); // group conv afterwards
    expect(specs['features.1.branch_main_2.2.weight']!.shape).toEqual([240, 60 / 3, 1, 1]);
    expect(specs['features.15.branch_main_2.3.bias']!.shape).toEqual([960]);
    expect(specs['features.16.branch_main_1.0.weight']).toBeUndefined();
    expect(specs['classifier.weight']!.shape).toEqual([10, 960]);
    expect(specs['classifier.bias']!.shape).toEqual([10]);

    // The traced graph convolves with those groups: groups 1 first, then 3; the depthwise conv has mid groups.
    const g = buildGraph(shufflenet, cfg, { batch: 1, mode: 'infer' });
    const convOf = (weight: string) => g.nodes.find((n) => n.op === 'conv2d' && g.node(n.inputs[1]!).name === weight)!;
    expect(convOf('features.0.branch_main_1.0.weight').attrs.groups).toBe(1);
    expect(convOf('features.0.branch_main_2.0.weight').attrs).toEqual({ stride: 2, padding: 1, groups: 60 });
    expect(convOf('features.0.branch_main_2.2.weight').attrs.groups).toBe(3);
    expect(convOf('features.1.branch_main_1.0.weight').attrs.groups).toBe(3);
    expect(convOf('features.4.branch_main_2.0.weight').attrs.stride).toBe(2);
  });

  it('the imagenet stem downsamples 224x224 by 4 before stage 2; the cifar stem keeps 32x32', () => {
    const at = (stem: Stem) => {
      const g = buildGraph(shufflenet, configure({ size: '0.5x', group: 3, stem }), { batch: 2, mode: 'infer' });
      return g.nodes.find((n) => n.op === 'conv2d' && g.node(n.inputs[1]!).name === 'features.0.branch_main_1.0.weight')!;
    };
    expect(at('imagenet').shape).toEqual([2, 30, 56, 56]);
    expect(at('cifar').shape).toEqual([2, 30, 32, 32]);
  });

  it('zeroInitResidual starts the last BN of each stride-1 unit at gamma 0 and leaves every other init alone', () => {
    const seed = shufflenet.params(configure({ size: '0.5x', group: 3 }));
    const zero = shufflenet.params(configure({ size: '0.5x', group: 3, zeroInitResidual: true }));
    const changed = Object.keys(seed).filter((k) => JSON.stringify(seed[k]!.init) !== JSON.stringify(zero[k]!.init));
    // Stages of 4, 8 and 4 units: units 0, 4 and 12 downsample (stride 2) and concatenate rather than add.
    const residual = Array.from({ length: 16 }, (_, i) => i).filter((i) => ![0, 4, 12].includes(i));
    expect(changed.sort()).toEqual(residual.map((i) => `features.${i}.branch_main_2.3.weight`).sort());
    for (const k of changed) expect(zero[k]!.init).toEqual({ kind: 'const', value: 0 });
  });
});
