// The loss curve beside a run's log: a resumed run logs again the steps an interrupted run had logged after its
// checkpoint, and the curve takes the latest entry of each step.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeCurves } from '../../src/api/train';
import { useTempDir } from '../data/helpers';

const tmp = useTempDir('tsc-nn-curves-');
const line = (step: number, loss: number): string => JSON.stringify({ epoch: 1, step, loss, lr: 0.1, top1: 0.5, ms: 1 });

describe('writeCurves', () => {
  it('uses the latest entry of a step logged twice', async () => {
    const resumed = path.join(tmp(), 'resumed.jsonl');
    fs.writeFileSync(resumed, [line(1, 2.3), line(2, 2.0), line(3, 9.9), line(2, 2.0), line(3, 1.5), line(4, 1.2)].join('\n') + '\n');
    const straight = path.join(tmp(), 'straight.jsonl');
    fs.writeFileSync(straight, [line(1, 2.3), line(2, 2.0), line(3, 1.5), line(4, 1.2)].join('\n') + '\n');
    await writeCurves(resumed, path.join(tmp(), 'a.svg'), 'm');
    await writeCurves(straight, path.join(tmp(), 'b.svg'), 'm');
    const svg = fs.readFileSync(path.join(tmp(), 'a.svg'), 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toBe(fs.readFileSync(path.join(tmp(), 'b.svg'), 'utf8'));
  });
});
