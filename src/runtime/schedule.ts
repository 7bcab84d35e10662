// The seed's learning-rate schedule: linear warm-up for the first epochs, then cosine decay to a final value.
// (The seed's code trains with the last value of its schedule list by mistake; this applies it per step.)
export interface LrSchedule {
  readonly base: number;
  readonly final: number;
  readonly warmupEpochs: number;
  readonly epochs: number;
  readonly stepsPerEpoch: number;
}

export function learningRate(s: LrSchedule, globalStep: number): number {
  const warmup = Math.min(s.warmupEpochs * s.stepsPerEpoch, s.epochs * s.stepsPerEpoch);
  if (globalStep < warmup) return (s.base * (globalStep + 1)) / warmup;
  const total = s.epochs * s.stepsPerEpoch;
  const t = total > warmup ? Math.min(1, (globalStep - warmup) / (total - warmup)) : 1;
  return s.final + ((s.base - s.final) * (1 + Math.cos(Math.PI * t))) / 2;
}
