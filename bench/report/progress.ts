// The progress bar on stderr: redrawn in place on a terminal, one line per
// step otherwise (CI logs), so stdout carries only the table.
export class Progress {
  private done = 0;
  private readonly started = Date.now();
  private readonly tty = process.stderr.isTTY === true;

  constructor(private total: number) {}

  /** Steps that will not run after all (a server skipped). */
  drop(steps: number): void {
    this.total -= steps;
  }

  /** Shows that `what` is starting. */
  step(what: string): void {
    const width = 28;
    const filled = Math.round((this.done / this.total) * width);
    const bar = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
    const elapsed = (Date.now() - this.started) / 1000;
    const eta = this.done > 0 ? ` ETA ${clock((elapsed / this.done) * (this.total - this.done))}` : '';
    const line = `${bar} ${this.done}/${this.total}${eta}  ${what}`;
    if (this.tty) {
      const cols = process.stderr.columns ?? 120;
      process.stderr.write(`\r\x1b[K${line.slice(0, cols - 1)}`);
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  advance(): void {
    this.done++;
  }

  /** A message that must stay visible (e.g. a failed cell). */
  note(message: string): void {
    process.stderr.write(this.tty ? `\r\x1b[K${message}\n` : `${message}\n`);
  }

  finish(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(`done: ${this.total} cells in ${clock((Date.now() - this.started) / 1000)}\n`);
  }
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
