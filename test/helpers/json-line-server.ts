// A server child that prints one JSON object per line and takes commands on
// stdin (the scenario servers of the differential tests, the handler-failure
// server): every wait is on a line or an exit, bounded; the child is ended by
// its pid, and what is left of its /dev/shm directories is removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import type { Observation } from './scenario-handlers.js';

/** The callbacks' lines. */
export const CALLBACKS = new Set(['accept', 'created', 'closed', 'destroyed']);

interface Waiter {
  from: number;
  match: (o: Observation) => boolean;
  resolve: (o: Observation | undefined) => void;
  timer: NodeJS.Timeout;
}

export class JsonLineServer {
  readonly pid: number;
  /** Every line printed, parsed, in order. */
  readonly lines: Observation[] = [];
  private readonly waiters: Waiter[] = [];
  private stderrTail = '';
  private paused = false;
  private readonly exited: Promise<void>;

  private constructor(
    readonly label: string,
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.pid = child.pid!;
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) this.line(line);
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    child.stdin!.on('error', () => undefined); // EPIPE once it exited: seen through 'exit'
    child.stdio[3]!.on('error', () => undefined);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.resolve(undefined);
        }
        resolve();
      }),
    );
  }

  /**
   * Starts `file args` (stdin, stdout, stderr and the gate pipe on fd 3) and waits
   * for its {"ev":"ready"} line. `name` is the service name it serves.
   */
  static async start(label: string, name: string, file: string, args: string[]): Promise<JsonLineServer> {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const server = new JsonLineServer(label, name, child);
    if ((await server.next((o) => o.ev === 'ready', 0, 20_000)) === undefined) {
      await server.stop();
      throw new Error(`${label} did not start: ${server.stderrTail}`);
    }
    return server;
  }

  private line(text: string): void {
    let o: Observation;
    try {
      o = JSON.parse(text) as Observation;
    } catch {
      o = { ev: 'unparsed', text };
    }
    this.lines.push(o);
    const index = this.lines.length - 1;
    for (const w of [...this.waiters]) {
      if (index >= w.from && w.match(o)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(o);
      }
    }
  }

  /** The index the next line will have: pass it to `next` or `since`. */
  get mark(): number {
    return this.lines.length;
  }

  /** The first line from index `from` on that matches; undefined after timeoutMs (or if the server exits). */
  next(match: (o: Observation) => boolean, from = this.mark, timeoutMs = 10_000): Promise<Observation | undefined> {
    const seen = this.lines.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        from,
        match,
        resolve,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(undefined);
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Lines from index `from` on, optionally only the callbacks'. */
  since(from: number, callbacksOnly = false): Observation[] {
    return this.lines.slice(from).filter((o) => !callbacksOnly || CALLBACKS.has(o.ev));
  }

  /** Runs a command; resolves with its reply line (it throws if none comes: the server is stuck or gone). */
  async command(command: string, timeoutMs = 10_000): Promise<Observation> {
    const from = this.mark;
    const reply = command === 'pause' ? 'paused' : command;
    this.child.stdin!.write(`${command}\n`);
    const o = await this.next((x) => x.ev === reply, from, timeoutMs);
    if (o === undefined)
      throw new Error(`${this.label} ${this.pid}: no reply to "${command}" within ${timeoutMs} ms; stderr: ${this.stderrTail}`);
    return o;
  }

  /** Blocks the whole server (it reads the gate pipe): what clients send meanwhile queues up unread. */
  async pause(): Promise<void> {
    await this.command('pause');
    this.paused = true;
  }

  /** Opens the gate; resolves when the server says it goes on. */
  async resume(): Promise<void> {
    const from = this.mark;
    this.paused = false;
    (this.child.stdio[3] as NodeJS.WritableStream).write('x');
    if ((await this.next((o) => o.ev === 'resumed', from)) === undefined) throw new Error(`${this.label} ${this.pid} did not resume`);
  }

  /** The end of what it wrote to stderr. */
  get stderr(): string {
    return this.stderrTail;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The server's connection directories of one client (qb-SERVER-CLIENT-*). */
  directoriesOf(clientPid: number): string[] {
    return readdirSync('/dev/shm').filter((e) => e.startsWith(`qb-${this.pid}-${clientPid}-`));
  }

  /**
   * SIGTERM (after opening the gate), SIGKILL after graceMs; then removes what
   * is left of its connection directories (libqb's client leaves the empty
   * directory; a leak the test reports is removed too).
   */
  async stop(graceMs = 5000): Promise<void> {
    if (this.running) {
      if (this.paused) (this.child.stdio[3] as NodeJS.WritableStream).write('x');
      this.signal('SIGTERM');
      const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    for (const entry of readdirSync('/dev/shm').filter((e) => e.startsWith(`qb-${this.pid}-`))) {
      rmSync(`/dev/shm/${entry}`, { recursive: true, force: true });
    }
  }

  private signal(signal: NodeJS.Signals): void {
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }
}
