// Compiles the benchmark's C programs (bench/c/) against Debian's libqb-dev, once.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const LIBQB_INSTALL_HINT =
  'install it with: sudo apt-get install -y libqb-dev pkg-config gcc   (Debian/Ubuntu; Fedora: sudo dnf install libqb-devel pkgconf gcc)';

function run(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

let flags: string[] | undefined;

/**
 * What is missing to build against libqb, as a message that says how to
 * install it; undefined when pkg-config finds libqb and a C compiler exists.
 */
export function libqbMissing(): string | undefined {
  if (flags !== undefined) return undefined;
  if (run('pkg-config', ['--version']) === undefined) return `pkg-config is missing (needed to find libqb-dev); ${LIBQB_INSTALL_HINT}`;
  const out = run('pkg-config', ['--cflags', '--libs', 'libqb']);
  if (out === undefined) return `libqb-dev is missing (pkg-config cannot find libqb); ${LIBQB_INSTALL_HINT}`;
  if (run('cc', ['--version']) === undefined) return `no C compiler (cc) to build the libqb programs; ${LIBQB_INSTALL_HINT}`;
  flags = out.split(/\s+/).filter(Boolean);
  return undefined;
}

/** libqb's version as pkg-config reports it ("2.0.6"), or undefined. */
export function libqbVersion(): string | undefined {
  return run('pkg-config', ['--modversion', 'libqb']);
}

/** bench/c/NAME.c → build/bench-c/NAME, rebuilt when the source is newer. */
export function buildC(name: string): string {
  const source = path.join(ROOT, 'bench', 'c', `${name}.c`);
  const outDir = path.join(ROOT, 'build', 'bench-c');
  const out = path.join(outDir, name);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) return out;
  const missing = libqbMissing();
  if (missing !== undefined) throw new Error(missing);
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', tmp, source, ...flags!], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    throw new Error(`compiling ${path.relative(ROOT, source)} failed:\n${String((error as { stderr?: Buffer }).stderr ?? error)}`, {
      cause: error,
    });
  }
  renameSync(tmp, out);
  return out;
}
