// Timing one benchmark configuration: a warm-up step, then timed steps until the count or the time budget is
// reached (slow systems still get at least one), summarised as medians with min and max.

export interface StepTimes<T> { readonly firstStepMs: number; readonly times: readonly number[]; /** What the warm-up step returned. */ readonly first: T }

export async function timeSteps<T>(step: () => T | Promise<T>, steps: number, budgetMs = Infinity): Promise<StepTimes<Awaited<T>>> {
  let t = performance.now();
  const first = await step();
  const firstStepMs = performance.now() - t;
  const times: number[] = [];
  let spent = 0;
  while (times.length < steps && (times.length === 0 || spent < budgetMs)) {
    t = performance.now();
    await step();
    const ms = performance.now() - t;
    times.push(ms);
    spent += ms;
  }
  return { firstStepMs, times, first };
}

export interface StepSummary {
  readonly firstStepMs: number;
  readonly medianStepMs: number;
  readonly minStepMs: number;
  readonly maxStepMs: number;
  readonly steps: number;
  readonly imagesPerSec: number;
}

/** The middle value (the mean of the two middle values of an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarize(t: StepTimes<unknown>, batch: number): StepSummary {
  const mid = median(t.times);
  return {
    firstStepMs: Math.round(t.firstStepMs), medianStepMs: Math.round(mid), minStepMs: Math.round(Math.min(...t.times)),
    maxStepMs: Math.round(Math.max(...t.times)), steps: t.times.length, imagesPerSec: (1000 * batch) / mid,
  };
}

/** Peak resident memory of this process so far. */
export const peakRssMb = (): number => Math.round(process.resourceUsage().maxRSS / 1024);
