// A progress bar for long work: redrawn in place on a terminal, a line every tenth of the way otherwise (logs).
export class ProgressBar {
  private readonly start = Date.now();
  private lastTenth = -1;
  constructor(private readonly label: string, private readonly total: number, private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(done: number, info = ''): void {
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const text = `${this.label} ${String(done).padStart(String(this.total).length)}/${this.total} ${info} ETA ${formatSeconds(eta)}`;
    if (this.stream.isTTY) {
      const width = 24;
      const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
      this.stream.write(`\r[${bar}] ${text}\x1b[K`);
    } else if (Math.floor(frac * 10) > this.lastTenth) {
      this.lastTenth = Math.floor(frac * 10);
      this.stream.write(`${text}\n`);
    }
  }

  done(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}
