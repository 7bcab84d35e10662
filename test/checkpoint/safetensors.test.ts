import { promises as fsp, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/ir/errors';
import { nodeAtomicWriteIo, type AtomicWriteIo } from '../../src/platform/atomic';
import { checkpointName, latestCheckpoint, listCheckpoints, parseCheckpointName, pruneCheckpoints } from '../../src/runtime/checkpoint/checkpoints';
import { useTempDir } from '../data/helpers';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors, type StoredTensor } from '../../src/runtime/checkpoint/safetensors';

const tmp = useTempDir('safetensors-test-');

function sample(): Map<string, StoredTensor> {
  return new Map<string, StoredTensor>([
    ['stage2.0.conv1.weight', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -0]) }],
    ['step', { dtype: 'I64', shape: [], data: BigInt64Array.from([123456789012n]) }],
    ['mask', { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 0, 255]) }],
  ]);
}

/** Independent reader: length, JSON, then offsets into the data section. */
function parseByHand(bytes: Uint8Array) {
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  return { n, header, data: bytes.subarray(8 + n) };
}

function expectUserError(f: () => unknown, ...parts: string[]): void {
  let error: unknown;
  try {
    f();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(UserError);
  for (const p of parts) expect((error as Error).message).toContain(p);
  expect((error as Error).message).not.toContain('\n');
}

describe('safetensors encoding', () => {
  it('lays out an 8-aligned JSON header and widest-first data, readable by hand', () => {
    const bytes = encodeSafetensors(sample(), { format: 'pt', epoch: '3' });
    const { n, header, data } = parseByHand(bytes);
    expect(n % 8).toBe(0);
    expect(header.__metadata__).toEqual({ format: 'pt', epoch: '3' });
    expect(header['step']).toEqual({ dtype: 'I64', shape: [], data_offsets: [0, 8] });
    expect(header['stage2.0.conv1.weight']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [8, 32] });
    expect(header['mask']).toEqual({ dtype: 'U8', shape: [3], data_offsets: [32, 35] });
    expect(data.length).toBe(35);
    expect(Buffer.from(data).readFloatLE(8 + 4 * 2)).toBe(3.5);
    expect(Buffer.from(data).readBigInt64LE(0)).toBe(123456789012n);
  });

  it('round-trips any tensors and metadata', () => {
    const proto = new Map<string, StoredTensor>([['__proto__', { dtype: 'F32', shape: [1], data: Float32Array.from([1]) }]]);
    expect(decodeSafetensors(encodeSafetensors(proto), 'mem').tensors).toEqual(proto);
    const tensor = fc.oneof(
      fc.array(fc.float({ noNaN: true }), { maxLength: 20 }).map((a): StoredTensor => ({ dtype: 'F32', shape: [a.length], data: Float32Array.from(a) })),
      fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 12 }).map((a): StoredTensor => ({ dtype: 'I32', shape: [1, a.length], data: Int32Array.from(a) })),
      fc.array(fc.double({ noNaN: true }), { maxLength: 6 }).map((a): StoredTensor => ({ dtype: 'F64', shape: [a.length], data: Float64Array.from(a) })),
      fc.uint8Array({ maxLength: 9 }).map((a): StoredTensor => ({ dtype: 'U8', shape: [a.length], data: a })),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1 }).filter((s) => s !== '__metadata__'), tensor), fc.dictionary(fc.string(), fc.string()), (tensors, metadata) => {
        const map = new Map(Object.entries(tensors));
        const back = decodeSafetensors(encodeSafetensors(map, metadata), 'mem');
        expect(back.tensors).toEqual(map);
        expect(back.metadata).toEqual(metadata);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses tensors whose data does not match dtype or shape', () => {
    expectUserError(() => encodeSafetensors(new Map([['w', { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2, 3]) }]])), '"w"', 'shape [2]');
    expectUserError(() => encodeSafetensors(new Map([['w', { dtype: 'F32', shape: [1], data: Int32Array.from([1]) }]])), 'Int32Array');
  });
});

describe('safetensors decoding errors name the file', () => {
  const good = encodeSafetensors(sample());
  const { n } = parseByHand(good);
  const withHeader = (header: string, data = new Uint8Array(0)) => {
    const json = Buffer.from(header);
    const out = Buffer.alloc(8 + json.length + data.length);
    out.writeBigUInt64LE(BigInt(json.length), 0);
    json.copy(out, 8);
    out.set(data, 8 + json.length);
    return out;
  };

  it('bad header: too short, length past the end, not JSON, not an object', () => {
    expectUserError(() => decodeSafetensors(good.subarray(0, 5), 'a.safetensors'), 'a.safetensors', 'too short');
    const long = Buffer.from(good);
    long.writeBigUInt64LE(BigInt(good.length), 0);
    expectUserError(() => decodeSafetensors(long, 'b.safetensors'), 'b.safetensors', 'runs past the end');
    expectUserError(() => decodeSafetensors(withHeader('{"w": '), 'c.safetensors'), 'c.safetensors', 'not valid JSON');
    expectUserError(() => decodeSafetensors(withHeader('[1, 2]'), 'd.safetensors'), 'not a JSON object');
    expectUserError(() => decodeSafetensors(withHeader('{"__metadata__": {"a": 1}}'), 'e.safetensors'), '__metadata__');
  });

  it('truncated data', () => {
    expectUserError(() => decodeSafetensors(good.subarray(0, 8 + n + 20), 'f.safetensors'), 'f.safetensors', 'truncated', '"stage2.0.conv1.weight"');
  });

  it('offsets out of range or inconsistent with the shape', () => {
    expectUserError(() => decodeSafetensors(withHeader('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 0]}}', new Uint8Array(8)), 'g.safetensors'), 'g.safetensors', 'out of range');
    expectUserError(() => decodeSafetensors(withHeader('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}}', new Uint8Array(12)), 'h.safetensors'), 'out of range');
    expectUserError(() => decodeSafetensors(withHeader('{"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}', new Uint8Array(8)), 'i.safetensors'), 'data_offsets');
  });

  it('unsupported dtype', () => {
    expectUserError(() => decodeSafetensors(withHeader('{"w": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}}', new Uint8Array(2)), 'j.safetensors'), 'j.safetensors', 'unsupported dtype "BF16"');
  });
});

describe('atomic safetensors files', () => {

  it('writes, replaces and reads back, leaving no temp files', async () => {
    const dir = tmp();
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(file, sample(), { epoch: '1' });
    await writeSafetensors(file, sample(), { epoch: '2' });
    expect((await readSafetensors(file)).metadata).toEqual({ epoch: '2' });
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    await expect(readSafetensors(path.join(dir, 'missing.safetensors'))).rejects.toThrow(/cannot read .*missing\.safetensors/);
  });

  it('a failed write (disk full mid-file, or a failed rename) leaves the previous file intact', async () => {
    const dir = tmp();
    const file = path.join(dir, 'model.safetensors');
    const before = readFileSync(file);
    const diskFull: AtomicWriteIo = {
      ...nodeAtomicWriteIo,
      async writeFile(temp, data) {
        writeFileSync(temp, data.subarray(0, 10));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    };
    await expect(writeSafetensors(file, sample(), { epoch: '3' }, diskFull)).rejects.toThrow(/cannot write .*model\.safetensors: ENOSPC/);
    const renameFails: AtomicWriteIo = { ...nodeAtomicWriteIo, rename: () => Promise.reject(new Error('EXDEV: cross-device link')) };
    await expect(writeSafetensors(file, sample(), { epoch: '4' }, renameFails)).rejects.toBeInstanceOf(UserError);
    expect(readFileSync(file)).toEqual(before);
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
  });
});

describe('checkpoint rotation', () => {

  it('names checkpoints and parses the names back', () => {
    expect(checkpointName(3, 1562)).toBe('shufflenetv1-3_1562.safetensors');
    expect(parseCheckpointName('shufflenetv1-3_1562.safetensors')).toEqual({ epoch: 3, step: 1562 });
    expect(parseCheckpointName('shufflenetv1-3_1562.safetensors.tmp')).toBeUndefined();
  });

  it('keeps the last K by (epoch, step), whatever the file times', async () => {
    const ckpt = path.join(tmp(), 'ckpt');
    await fsp.mkdir(ckpt, { recursive: true });
    const order: [number, number][] = [[1, 5], [1, 40], [2, 3], [10, 1], [2, 100]];
    order.forEach(([e, s], i) => {
      const f = path.join(ckpt, checkpointName(e, s));
      writeFileSync(f, 'x');
      utimesSync(f, 1000 - i, 1000 - i); // newer checkpoints get older mtimes
    });
    writeFileSync(path.join(ckpt, 'notes.txt'), 'kept');
    expect((await listCheckpoints(ckpt)).map((c) => [c.epoch, c.step])).toEqual([[1, 5], [1, 40], [2, 3], [2, 100], [10, 1]]);
    expect((await pruneCheckpoints(ckpt, 2)).map((c) => path.basename(c.file))).toEqual([checkpointName(1, 5), checkpointName(1, 40), checkpointName(2, 3)]);
    expect(readdirSync(ckpt).sort()).toEqual([checkpointName(10, 1), checkpointName(2, 100), 'notes.txt'].sort());
    expect((await latestCheckpoint(ckpt))?.file).toBe(path.join(ckpt, checkpointName(10, 1)));
    expect(await listCheckpoints(path.join(tmp(), 'none'))).toEqual([]);
    await expect(pruneCheckpoints(ckpt, 0)).rejects.toThrow(RangeError);
  });
});
