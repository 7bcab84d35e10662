// ShuffleNetV1 in PyTorch on the CPU: tools/torch's independent nn.Module (its state_dict names are tsc-nn's) in a
// Python process of its own (torch_peer.py, which documents the line protocol). Images and labels travel through a
// temp file only when a different array comes, so a step costs the PyTorch step plus a small round trip.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { loadCheckpoint, saveCheckpoint } from '../../../src/runtime/checkpoint/model-checkpoint';
import { shufflenet } from '../../../src/models/shufflenet';
import { BN_EPS, BN_MOMENTUM, LABEL_SMOOTHING, SGD, paramData, planShuffleNet } from './architecture';
import { PeerUnavailable, type PeerConfig, type PeerModel } from './types';

/** Debian's python3-torch; TSC_NN_PYTHON names another interpreter (as for tools/torch). */
export const PYTHON = process.env.TSC_NN_PYTHON ?? '/usr/bin/python3';
const THREADS = 2;
/** tsc does not copy the script into dist/: it is run from the sources. */
const SCRIPT = path.join(__dirname.replace(`${path.sep}dist${path.sep}tools${path.sep}`, `${path.sep}tools${path.sep}`), 'torch_peer.py');

type Reply = Record<string, unknown>;

/** The script's process: one request in flight at a time (the benchmark awaits every step). */
function startScript(args: readonly string[]): { request(message?: Reply): Promise<Reply>; close(): void } {
  const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr = (stderr + s).slice(-4096); });
  const waiting: { resolve(line: string): void; reject(e: Error): void }[] = [];
  let failure: Error | undefined;
  const fail = (e: Error) => {
    failure ??= e;
    for (const w of waiting.splice(0)) w.reject(failure);
  };
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.resolve(line));
  child.on('error', (e: NodeJS.ErrnoException) => fail(e.code === 'ENOENT' ? new PeerUnavailable(`${PYTHON} not found`) : e));
  // 'close' comes after the last stdout line, so a final reply is read before the exit is reported.
  child.on('close', (code, signal) => {
    const last = stderr.trim().split('\n').at(-1);
    fail(new Error(`${path.basename(SCRIPT)} exited (${signal ?? `status ${code}`})${last ? `: ${last}` : ''}`));
  });
  // A write after the process died: its 'close' says why.
  child.stdin.on('error', () => undefined);
  return {
    async request(message) {
      const line = new Promise<string>((resolve, reject) => (failure ? reject(failure) : waiting.push({ resolve, reject })));
      if (message) child.stdin.write(`${JSON.stringify(message)}\n`);
      return JSON.parse(await line) as Reply;
    },
    close: () => child.stdin.end(),
  };
}

export async function createPytorchPeer(cfg: PeerConfig, params: ReadonlyMap<string, Float32Array>): Promise<PeerModel> {
  const plan = planShuffleNet(cfg);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-nn-torch-'));
  const file = (name: string) => path.join(dir, name);
  // A tsc-nn checkpoint: its metadata gives the script the model's configuration.
  const names = Object.keys(plan.shapes);
  await saveCheckpoint(file('params.safetensors'), new Map(names.map((name) => [name, paramData(params, plan.shapes, name)])),
    new Map(Object.entries(plan.shapes)), { config: { model: shufflenet.name, ...plan.config }, epoch: 0, step: 0 });
  const script = startScript([
    '--checkpoint', file('params.safetensors'), '--threads', String(THREADS), '--momentum', String(SGD.momentum), '--weight-decay', String(SGD.weightDecay),
    '--bn-momentum', String(BN_MOMENTUM), '--bn-eps', String(BN_EPS), '--label-smoothing', String(LABEL_SMOOTHING),
  ]);
  const dispose = () => {
    script.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ready = await script.request();
    if (typeof ready.cannot === 'string') throw new PeerUnavailable(ready.cannot);
  } catch (e) {
    dispose();
    throw e;
  }

  const resolution = plan.config.resolution;
  const sent = new Map<'images' | 'labels', Float32Array>();
  /** The request, naming the data file when `data` is not the array the script already has. */
  const withData = (request: Reply, kind: 'images' | 'labels', data: Float32Array): Reply => {
    if (sent.get(kind) === data) return request;
    fs.writeFileSync(file(`${kind}.f32`), data);
    sent.set(kind, data);
    const shape = kind === 'images' ? [data.length / (3 * resolution * resolution), 3, resolution, resolution] : [data.length];
    return { ...request, [kind]: { path: file(`${kind}.f32`), shape } };
  };

  return {
    system: 'pytorch',
    async infer(images) {
      const { logits } = await script.request(withData({ op: 'infer' }, 'images', images));
      const bytes = Buffer.from(logits as string, 'base64');
      return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    },
    async trainStep(images, labels, lr) {
      const { loss } = await script.request(withData(withData({ op: 'train', lr }, 'images', images), 'labels', labels));
      return loss as number;
    },
    async parameters() {
      await script.request({ op: 'parameters', path: file('state.safetensors') });
      return (await loadCheckpoint(file('state.safetensors'))).tensors;
    },
    async peakRssMb() {
      return (await script.request({ op: 'peak-rss' })).peakRssMb as number;
    },
    dispose,
  };
}
