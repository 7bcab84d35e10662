// Parameter initialisers: each draws from the distribution it names (moments checked on large tensors), and
// ShuffleNet's seed option gives every convolution Xavier-uniform bounds from its own fans.
import { describe, expect, it } from 'vitest';
import { initParams } from '../../src/runtime/init';
import { shufflenet } from '../../src/models/shufflenet';
import type { ParamSpec } from '../../src/ir/model';

const moments = (x: Float32Array): { mean: number; variance: number; min: number; max: number } => {
  let sum = 0;
  let sq = 0;
  for (const v of x) { sum += v; sq += v * v; }
  const mean = sum / x.length;
  return { mean, variance: sq / x.length - mean * mean, min: Math.min(...x), max: Math.max(...x) };
};

describe('initParams', () => {
  it('xavier_uniform is U(-a, a) with a = sqrt(6 / (fanIn + fanOut)); he_normal has variance 2 / fanIn', () => {
    const specs: Record<string, ParamSpec> = {
      x: { shape: [64, 32, 3, 3], role: 'param', init: { kind: 'xavier_uniform', fanIn: 32 * 9, fanOut: 64 * 9 } },
      h: { shape: [64, 32, 3, 3], role: 'param', init: { kind: 'he_normal', fanIn: 32 * 9 } },
    };
    const t = initParams(specs, 4);
    const a = Math.sqrt(6 / (32 * 9 + 64 * 9));
    const x = moments(t.get('x')!);
    expect(x.min).toBeGreaterThanOrEqual(-a);
    expect(x.max).toBeLessThanOrEqual(a);
    // 18,432 draws: the extremes come within 0.1 % of the bounds, the moments within a few standard errors.
    expect(x.max).toBeGreaterThan(0.999 * a);
    expect(x.min).toBeLessThan(-0.999 * a);
    expect(Math.abs(x.mean)).toBeLessThan(0.03 * a);
    expect(x.variance / (a * a / 3)).toBeCloseTo(1, 1);
    expect(moments(t.get('h')!).variance / (2 / (32 * 9))).toBeCloseTo(1, 1);
    // Same seed, same network; another seed, another one.
    expect(initParams(specs, 4).get('x')).toEqual(t.get('x'));
    expect(initParams(specs, 5).get('x')).not.toEqual(t.get('x'));
  });

  it("ShuffleNet's convInit 'xavier_uniform' (the seed's) bounds every convolution by its fans; the default stays he_normal", () => {
    const seedLike = shufflenet.params(shufflenet.configure!({ size: '0.5x', convInit: 'xavier_uniform' }));
    const convs = Object.entries(seedLike).filter(([, s]) => s.shape.length === 4);
    expect(convs.length).toBe(1 + 16 * 3);
    for (const [name, s] of convs) {
      const [o, i, kh, kw] = s.shape as [number, number, number, number];
      expect(s.init, name).toEqual({ kind: 'xavier_uniform', fanIn: i * kh * kw, fanOut: o * kh * kw });
    }
    const depthwise = initParams(seedLike, 1).get('features.0.branch_main_2.0.weight')!;
    expect(Math.max(...depthwise.map(Math.abs))).toBeLessThanOrEqual(Math.sqrt(6 / (9 + 30 * 9)));
    const byDefault = shufflenet.params(shufflenet.configure!({ size: '0.5x' }));
    expect(byDefault['first_conv.0.weight']!.init).toEqual({ kind: 'he_normal', fanIn: 27 });
    expect(() => shufflenet.configure!({ convInit: 'orthogonal' as 'he_normal' })).toThrow(/unknown conv-init "orthogonal": valid initialisers are he_normal, xavier_uniform/);
  });
});
