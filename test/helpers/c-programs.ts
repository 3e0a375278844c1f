// The C test programs (test/c/*.c): building them, and driving them.
//
//   qbclient  a stock libqb 2.x client, one command per stdin line, one reply
//             line per command ("ok k=v ..." / "err k=v ..."); also a
//             non-interactive load mode (-n NAME -k ROUNDS -s SIZE ...).
//   hostile   a raw attacker without libqb (sockets + mmap by hand).
//   manyconn  thousands of libqb connections from one process, some of whose
//             ring files it truncates (the server's SIGBUS guard at scale).
//
// Nothing here sleeps to synchronise: every wait is on a child's output or
// exit, bounded by a timer that kills the child by pid.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './npm.js';

export interface CPrograms {
  qbclient: string;
  hostile: string;
  manyconn: string;
}

/** The repository root: the nearest ancestor with qbipc's package.json (works from test/ and dist/test/). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && existsSync(join(dir, 'test', 'c'))) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'qbipc') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('c-programs: cannot find the qbipc repository root');
    dir = up;
  }
}

function run(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (error?.message ?? '') });
    });
  });
}

async function mtimeMs(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * When a C program's source last changed: the newest of the .c file and the
 * headers beside it (test/c/*.h), so that a changed header rebuilds its users.
 * Undefined when the .c file is missing.
 */
async function sourceMtimeMs(source: string): Promise<number | undefined> {
  const own = await mtimeMs(source);
  if (own === undefined) return undefined;
  const dir = dirname(source);
  const headers = await Promise.all(
    readdirSync(dir)
      .filter((f) => f.endsWith('.h'))
      .map((f) => mtimeMs(join(dir, f))),
  );
  return Math.max(own, ...headers.map((t) => t ?? 0));
}

let building: Promise<CPrograms> | undefined;

/**
 * Compiles test/c/qbclient.c and manyconn.c (linked with libqb) and
 * test/c/hostile.c (no libqb) into <repo>/build/test-c/, only when a source is newer than its
 * binary. Safe to call from several processes at once: each compiles to a
 * private temporary name and renames it into place.
 */
export function buildCPrograms(): Promise<CPrograms> {
  building ??= doBuild().catch((error: unknown) => {
    building = undefined;
    throw error;
  });
  return building;
}

async function doBuild(): Promise<CPrograms> {
  const root = repoRoot();
  const outDir = join(root, 'build', 'test-c');
  const pc = await run('pkg-config', ['--cflags', '--libs', 'libqb']);
  if (pc.code !== 0) {
    throw new Error(`libqb-dev is missing: apt-get install -y libqb-dev (pkg-config: ${pc.stderr.trim()})`);
  }
  const qbFlags = pc.stdout
    .trim()
    .split(/\s+/)
    .filter((f) => f !== '');
  const cflags = qbFlags.filter((f) => !f.startsWith('-l') && !f.startsWith('-L'));
  const libs = qbFlags.filter((f) => f.startsWith('-l') || f.startsWith('-L') || f === '-pthread');
  await mkdir(outDir, { recursive: true });

  const programs: Array<{ name: keyof CPrograms; pre: string[]; post: string[] }> = [
    { name: 'qbclient', pre: cflags, post: libs },
    { name: 'hostile', pre: ['-pthread'], post: [] }, // deliberately without libqb
    { name: 'manyconn', pre: cflags, post: libs },
  ];
  const result = {} as CPrograms;
  await Promise.all(
    programs.map(async ({ name, pre, post }) => {
      const source = join(root, 'test', 'c', `${name}.c`);
      const binary = join(outDir, name);
      result[name] = binary;
      await compileIfStale(source, binary, (output) => [
        '-std=c11',
        '-O2',
        '-Wall',
        '-Wextra',
        '-Werror',
        ...pre,
        '-o',
        output,
        source,
        ...post,
      ]);
    }),
  );
  return result;
}

/**
 * Compiles `source` into `binary` with cc (`ccArgs` given the file to write) when the binary is
 * missing or older than the source or a header beside it. It writes a temporary file and renames
 * it, so a test file compiling the same program at the same time never runs half a binary.
 */
export async function compileIfStale(
  source: string,
  binary: string,
  ccArgs: (output: string) => string[] | Promise<string[]>,
): Promise<void> {
  const srcTime = await sourceMtimeMs(source);
  if (srcTime === undefined) throw new Error(`${source} is missing`);
  const binTime = await mtimeMs(binary);
  if (binTime !== undefined && binTime >= srcTime) return;
  await mkdir(dirname(binary), { recursive: true });
  const temp = `${binary}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const cc = await run('cc', await ccArgs(temp));
  if (cc.code !== 0) {
    await rm(temp, { force: true });
    throw new Error(`compiling ${source} failed:\n${cc.stderr}`);
  }
  await rename(temp, binary);
}

export interface Reply {
  ok: boolean;
  /** key=value fields; a bare word such as "mismatch" or "noconn" maps to "". */
  fields: Record<string, string>;
}

/** Parses a qbclient reply line: "ok a=1 b=2" / "err errno=11". */
export function parseReply(line: string): Reply {
  const words = line.trim().split(/\s+/);
  const fields: Record<string, string> = {};
  for (const word of words.slice(1)) {
    const eq = word.indexOf('=');
    if (eq < 0) fields[word] = '';
    else fields[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return { ok: words[0] === 'ok', fields };
}

/** All key=value pairs of a program's output (e.g. hostile's "dir=..." and "result=..." lines). */
export function parseKeyValues(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const word of text.split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq > 0) fields[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return fields;
}

export interface RunAs {
  uid?: number;
  gid?: number;
  /** The one CPU the program may run on (taskset). */
  cpu?: number;
}

/** argv to run `file` as uid/gid via setpriv, on one CPU via taskset (both exec, so the pid is the program's). */
function commandFor(file: string, args: string[], as: RunAs): [string, string[]] {
  let command: [string, string[]] = [file, args];
  if (as.uid !== undefined || as.gid !== undefined) {
    const priv: string[] = [];
    if (as.uid !== undefined) priv.push(`--reuid=${as.uid}`);
    if (as.gid !== undefined) priv.push(`--regid=${as.gid}`);
    priv.push('--clear-groups', '--', file, ...args);
    command = ['setpriv', priv];
  }
  if (as.cpu !== undefined) command = ['taskset', ['-c', String(as.cpu), command[0], ...command[1]]];
  return command;
}

function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0));
}

interface Pending {
  line: string;
  resolve: (reply: string) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** A running interactive qbclient. */
export class QbClient {
  /** pid of the qbclient process itself (setpriv execs it). */
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private readonly pending: Pending[] = [];
  private partial = '';
  private stderrTail = '';
  private broken: string | undefined;
  private timedOut = false;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<number>;

  private constructor(child: ChildProcess, pid: number) {
    this.child = child;
    this.pid = pid;
    this.exited = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        const why = `qbclient ${pid} exited (code ${code}, signal ${signal})`;
        this.broken ??= why;
        for (const p of this.pending.splice(0)) {
          clearTimeout(p.timer);
          p.reject(new Error(`${why} during "${p.line}"${this.stderrHint()}`));
        }
        resolve(exitCode(code, signal));
      });
    });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.onData(chunk));
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4096);
    });
    child.stdin!.on('error', () => {
      // EPIPE after the process died: reported through 'close'
    });
  }

  /** Starts qbclient in interactive mode, optionally as another uid/gid. */
  static async start(opts: RunAs = {}): Promise<QbClient> {
    const { qbclient } = await buildCPrograms();
    const [file, args] = commandFor(qbclient, [], opts);
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (error) => reject(new Error(`cannot start qbclient: ${error.message}`)));
    });
    return new QbClient(child, child.pid!);
  }

  private stderrHint(): string {
    const tail = this.stderrTail.trim();
    return tail === '' ? '' : `; stderr: ${tail}`;
  }

  private onData(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      const p = this.pending.shift();
      if (p === undefined) {
        this.lines.push(line); // unsolicited (should not happen); kept for debugging
        continue;
      }
      clearTimeout(p.timer);
      p.resolve(line);
    }
  }

  /** Sends one command line; resolves with its reply line. */
  cmd(line: string, timeoutMs = 20_000): Promise<string> {
    if (this.broken !== undefined) {
      return Promise.reject(new Error(`qbclient: cannot run "${line}": ${this.broken}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.pending.indexOf(entry);
        if (index >= 0) this.pending.splice(index, 1);
        // A late reply would be taken as the answer to a later command.
        this.timedOut = true;
        this.broken = `"${line}" got no reply within ${timeoutMs} ms`;
        reject(new Error(`qbclient ${this.pid}: ${this.broken}${this.stderrHint()}`));
      }, timeoutMs);
      const entry: Pending = { line, resolve, reject, timer };
      this.pending.push(entry);
      this.child.stdin!.write(`${line}\n`);
    });
  }

  /** Sends a signal to the qbclient process (by pid). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.exitInfo !== undefined) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
  }

  /** Has the process exited? */
  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** Resolves with the exit status when the process has exited (128 + signal if killed). */
  waitExit(): Promise<number> {
    return this.exited;
  }

  /**
   * Sends "quit" and waits for the exit; kills by pid after `graceMs` (at
   * once if a command timed out: the process is stuck). Returns the exit status.
   */
  async close(graceMs = 5_000): Promise<number> {
    if (this.exitInfo === undefined) {
      this.broken ??= 'closed';
      if (this.child.stdin!.writable) this.child.stdin!.end('quit\n');
      const timer = setTimeout(() => this.kill('SIGKILL'), this.timedOut ? 0 : graceMs);
      try {
        return await this.exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return this.exited;
  }
}

export interface RunResult {
  /** Exit status; 128 + signal number when killed by a signal. */
  code: number;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion, killing it (by pid) after timeoutMs. */
export async function runProgram(path: string, args: string[], opts: { timeoutMs: number } & RunAs): Promise<RunResult> {
  const [file, argv] = commandFor(path, args, opts);
  const r = await runCommand(file, argv, { timeoutMs: opts.timeoutMs });
  return { ...r, code: exitCode(r.code, r.signal) };
}
