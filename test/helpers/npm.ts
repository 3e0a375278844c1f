// Running npm (and other commands) the way the package test needs: in a given
// directory, with an environment of our choosing, bounded in time (killed by
// pid), and with a PATH that has no C/C++ compiler on it.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, realpathSync, symlinkSync } from 'node:fs';
import path from 'node:path';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `file args` (in `cwd`, with exactly `env`, when given); kills it (by pid) after timeoutMs. */
export function runCommand(
  file: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${file}: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, stdout, stderr });
    });
  });
}

/** A command's outcome for an assertion message: the exit and the tail of its output. */
export function describeResult(what: string, r: CommandResult): string {
  const tail = (s: string) => s.trim().split('\n').slice(-25).join('\n');
  return `${what}: ${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`;
}

/** The first executable `name` on `pathList`. */
export function which(name: string, pathList = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathList.split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** npm's own script (npm-cli.js), so that npm runs under a PATH we choose. */
export function npmCli(): string {
  const fromNpm = process.env.npm_execpath;
  if (fromNpm !== undefined && /npm-cli\.js$/.test(fromNpm) && existsSync(fromNpm)) return fromNpm;
  const onPath = which('npm');
  if (onPath === undefined) throw new Error('npm is not on PATH');
  return realpathSync(onPath);
}

/**
 * A directory holding only `node` and `sh`: as PATH, it offers no compiler,
 * make or python (npm adds its own directories for scripts; none has a compiler).
 */
export function noCompilerBin(dir: string): string {
  mkdirSync(dir, { recursive: true });
  symlinkSync(process.execPath, path.join(dir, 'node'));
  symlinkSync('/bin/sh', path.join(dir, 'sh')); // npm runs scripts with `sh -c`
  return dir;
}

/** This process's environment without what npm put there for the script that runs us (npm_*, INIT_CWD). */
export function cleanEnv(overrides: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== 'INIT_CWD' && key !== 'NODE_OPTIONS') env[key] = value;
  }
  return { ...env, ...overrides };
}
