// A progress bar on stderr for long work. Drawn only on a terminal (a log file gets one final line),
// so --json output on stdout stays machine-readable.

export class Progress {
  private done = 0;
  private readonly start = Date.now();
  private lastDraw = 0;
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly label: string, private readonly total: number, private readonly unit = '') {}

  tick(n = 1, note = ''): void {
    this.done += n;
    const now = Date.now();
    if (this.tty && (now - this.lastDraw > 100 || this.done >= this.total)) {
      this.lastDraw = now;
      this.draw(note);
    }
  }

  private draw(note: string): void {
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = 28;
    const filled = Math.round(frac * width);
    const secs = (Date.now() - this.start) / 1000;
    const rate = secs > 0 ? this.done / secs : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : 0;
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    process.stderr.write(
      `\r${this.label} ${bar} ${this.done}/${this.total}${this.unit} ${rate.toFixed(1)}${this.unit}/s eta ${eta.toFixed(0)}s ${note}\x1b[K`,
    );
  }

  finish(note = ''): void {
    const secs = (Date.now() - this.start) / 1000;
    if (this.tty) {
      this.draw(note);
      process.stderr.write('\n');
    } else {
      process.stderr.write(`${this.label}: ${this.done}/${this.total}${this.unit} in ${secs.toFixed(1)}s ${note}\n`);
    }
  }
}
