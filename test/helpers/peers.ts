// Peer processes for the client and SOCKET tests: libqb C servers of ours
// (bench/c/qb-echo-server.c, which also switches the rate limit on
// SIGUSR1/SIGUSR2), and Node children running qbipc as a server
// or a client. Every wait is on a child's output or exit,
// bounded by a timer; every child is ended by its pid.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileIfStale } from './c-programs.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, from dist/test/helpers or test/helpers. */
export const ROOT = resolve(here, here.includes(`${join('dist', 'test')}`) ? '../../..' : '../..');

function sh(file: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    execFile(file, args, (error, stdout, stderr) => done({ code: error === null ? 0 : 1, out: `${stdout}${stderr}` }));
  });
}

const built = new Map<string, Promise<string>>();

/** Compiles one libqb C program into build/test-c (libs after the source), only when the source (or a header beside it) is newer. */
export function buildLibqbProgram(source: string, name: string): Promise<string> {
  let promise = built.get(name);
  if (promise === undefined) {
    promise = (async () => {
      const binary = join(ROOT, 'build', 'test-c', name);
      await compileIfStale(source, binary, async (output) => {
        const pc = await sh('pkg-config', ['--cflags', '--libs', 'libqb']);
        if (pc.code !== 0) throw new Error(`libqb-dev is missing: apt-get install -y libqb-dev (${pc.out.trim()})`);
        const flags = pc.out.trim().split(/\s+/);
        return [
          '-O2',
          '-Wall',
          ...flags.filter((f) => !f.startsWith('-l')),
          '-o',
          output,
          source,
          ...flags.filter((f) => f.startsWith('-l')),
        ];
      });
      return binary;
    })();
    promise.catch(() => built.delete(name));
    built.set(name, promise);
  }
  return promise;
}

/** A child whose output lines (stdout and stderr) the test waits on. */
export class LineChild {
  readonly pid: number;
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  private readonly waiters: Array<{ re: RegExp; from: number; resolve: (m: RegExpMatchArray) => void }> = [];
  private stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(file: string, args: string[], options: { cwd?: string } = {}) {
    this.child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd });
    this.pid = this.child.pid!;
    const partial = { stdout: '', stderr: '' };
    for (const stream of ['stdout', 'stderr'] as const) {
      this.child[stream]!.setEncoding('utf8').on('data', (chunk: string) => {
        if (stream === 'stderr') this.stderr = (this.stderr + chunk).slice(-4000);
        const parts = (partial[stream] + chunk).split('\n');
        partial[stream] = parts.pop() ?? '';
        for (const line of parts) this.line(line);
      });
    }
    this.exited = new Promise((done) => this.child.once('exit', (code, signal) => done({ code, signal })));
  }

  /** A line of stdout or stderr: the waiters see both. */
  private line(line: string): void {
    this.lines.push(line);
    for (const w of [...this.waiters]) {
      const m = line.match(w.re);
      if (m && this.lines.length > w.from) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first line from now on (or already seen, with `seen`) that matches. */
  waitFor(re: RegExp, timeoutMs = 20_000, seen = true): Promise<RegExpMatchArray> {
    if (seen) {
      for (const line of this.lines) {
        const m = line.match(re);
        if (m) return Promise.resolve(m);
      }
    }
    return new Promise((resolveMatch, reject) => {
      const entry = {
        re,
        from: this.lines.length,
        resolve: (m: RegExpMatchArray) => {
          clearTimeout(timer);
          resolveMatch(m);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(entry), 1);
        reject(
          new Error(
            `pid ${this.pid}: no line matching ${re} within ${timeoutMs} ms; stdout: ${this.lines.slice(-5).join(' | ')}; stderr: ${this.stderr}`,
          ),
        );
      }, timeoutMs);
      void this.exited.then(({ code, signal }) => {
        if (!this.waiters.includes(entry)) return;
        this.waiters.splice(this.waiters.indexOf(entry), 1);
        clearTimeout(timer);
        reject(new Error(`pid ${this.pid} exited (${code ?? signal}) before a line matching ${re}; stderr: ${this.stderr}`));
      });
      this.waiters.push(entry);
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.running) {
      this.kill('SIGTERM');
      const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await this.exited;
  }
}

/**
 * bench/c/qb-echo-server.c, a libqb C server, once it printed "ready pid=P"
 * (SIGUSR1: rate limit OFF, SIGUSR2: NORMAL, each answered by a line once applied).
 */
export async function startCServer(name: string, transport: 'shm' | 'socket'): Promise<LineChild> {
  const binary = await buildLibqbProgram(join(ROOT, 'bench', 'c', 'qb-echo-server.c'), 'qb-echo-server');
  const child = new LineChild(binary, ['-n', name, '-t', transport]);
  await child.waitFor(/^ready pid=/);
  return child;
}

/** A qbipc echo service in a child process (dist/test/helpers/qbipc-server-child.js). */
export async function startQbipcServerChild(name: string, transport: 'shm' | 'socket'): Promise<LineChild> {
  const child = new LineChild(process.execPath, [join(here, 'qbipc-server-child.js'), name, transport]);
  await child.waitFor(/^ready pid=/);
  return child;
}

/** A qbipc client in a child process, streaming round trips (dist/test/helpers/qbipc-client-child.js). */
export async function startQbipcClientChild(name: string): Promise<LineChild> {
  const child = new LineChild(process.execPath, [join(here, 'qbipc-client-child.js'), name]);
  await child.waitFor(/^ready pid=/);
  return child;
}

/** /dev/shm entries of connections served by `serverPid`. */
export function connectionDirs(serverPid: number): string[] {
  return readdirSync('/dev/shm').filter((e) => e.startsWith(`qb-${serverPid}-`));
}

/**
 * After a server was killed: its clients removed their files (libqb's client
 * leaves the empty directory); remove what is left, and report what was not empty.
 */
export function removeEmptyDirs(serverPid: number): string[] {
  const notEmpty: string[] = [];
  for (const entry of connectionDirs(serverPid)) {
    try {
      rmdirSync(`/dev/shm/${entry}`);
    } catch {
      notEmpty.push(entry);
    }
  }
  return notEmpty;
}
