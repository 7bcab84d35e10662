// Does the gl backend free every texture? Runs ShuffleNet training steps on gpu.js's headless-GL backend and
// records, every few steps, the GL textures alive (counted on the GL context itself, not by tsc-nn's bookkeeping)
// and the resident memory. Usage (under a display):
//   xvfb-run -a node dist/tools/bench/gl-memory.js [--steps 1000] [--every 100] [--resolution 8] [--batch 1] [--json]
import { parseArgs } from 'node:util';
import { shufflenet } from '../../src/models/shufflenet';
import { createBackend, type Backend } from '../../src/backends/registry';
import { compilePrograms } from '../../src/api/programs';
import { initParams } from '../../src/runtime/init';
import { TrainStep } from '../../src/runtime/session';
import { positiveInt } from '../commands/common';

interface GlContext { createTexture(): unknown; deleteTexture(t: unknown): void }

/** Counts textures created and deleted on the gl backend's context from now on. */
export function countGlTextures(backend: Backend): { live(): number } {
  const gl = (backend.gpu as unknown as { context?: GlContext }).context;
  if (!gl) throw new Error('the gl backend has no context yet: run a kernel first');
  let live = 0;
  const create = gl.createTexture.bind(gl);
  const remove = gl.deleteTexture.bind(gl);
  gl.createTexture = () => { live++; return create(); };
  gl.deleteTexture = (t) => { live--; remove(t); };
  return { live: () => live };
}

export interface GlMemorySample { readonly step: number; readonly liveTextures: number; readonly rssMb: number; readonly loss: number }

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { steps: { type: 'string' }, every: { type: 'string' }, resolution: { type: 'string' }, batch: { type: 'string' }, json: { type: 'boolean' } },
  });
  const steps = positiveInt('steps', values.steps, 1000);
  const every = positiveInt('every', values.every, 100);
  const batch = positiveInt('batch', values.batch, 1);
  const config = shufflenet.configure!({ size: '0.5x', group: 3, stem: 'cifar', resolution: positiveInt('resolution', values.resolution, 8) });
  const program = await compilePrograms(shufflenet, config, 'train', batch);
  const backend = createBackend('gl');
  const step = new TrainStep(program.graph, backend, initParams(shufflenet.params(config), 1));
  const image = new Float32Array(batch * 3 * config.resolution ** 2).map((_, i) => Math.sin(i));
  const label = new Float32Array(batch).map((_, i) => i % config.classes);
  // The first step compiles every kernel (and creates each kernel's own textures); count from there.
  let loss = step.run(image, label, 0.01).loss;
  const textures = countGlTextures(backend);
  const samples: GlMemorySample[] = [];
  const started = performance.now();
  for (let s = 1; s <= steps; s++) {
    loss = step.run(image, label, 0.01).loss;
    if (s % every === 0 || s === 1) {
      const sample = { step: s, liveTextures: textures.live(), rssMb: Math.round(process.memoryUsage().rss / 2 ** 20), loss };
      samples.push(sample);
      if (!values.json) console.log(`step ${s}: ${sample.liveTextures} textures alive beyond the first step's, RSS ${sample.rssMb} MiB, loss ${loss.toFixed(4)}`);
    }
  }
  const summary = {
    backend: backend.name, device: backend.device, model: 'shufflenet 0.5x g3 cifar', resolution: config.resolution, batch,
    kernels: program.graph.nodes.filter((n) => n.expr).length, steps, seconds: Math.round((performance.now() - started) / 1000),
    maxLiveTextures: Math.max(...samples.map((x) => x.liveTextures)),
    rssGrowthMb: samples[samples.length - 1]!.rssMb - samples[0]!.rssMb, samples,
  };
  console.log(values.json ? JSON.stringify(summary) : `${steps} steps in ${summary.seconds} s: at most ${summary.maxLiveTextures} textures alive after a step; RSS grew ${summary.rssGrowthMb} MiB from step 1`);
}

if (process.argv[1] && /gl-memory\.[jt]s$/.test(process.argv[1])) {
  main().catch((e: unknown) => { console.error(`gl-memory: ${(e as Error).message}`); process.exit(1); });
}
