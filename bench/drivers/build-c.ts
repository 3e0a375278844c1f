// Compiles the benchmark's C programs against Debian's libqb-dev, once.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function libqbFlags(): string[] {
  try {
    return execFileSync('pkg-config', ['--cflags', '--libs', 'libqb'], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
  } catch {
    throw new Error('libqb-dev is missing (pkg-config cannot find libqb): apt-get install -y libqb-dev pkg-config');
  }
}

/** bench/c/NAME.c → build/bench-c/NAME, rebuilt when the source is newer. */
export function buildC(name: string): string {
  const source = path.join(ROOT, 'bench', 'c', `${name}.c`);
  const outDir = path.join(ROOT, 'build', 'bench-c');
  const out = path.join(outDir, name);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) return out;
  mkdirSync(outDir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', tmp, source, ...libqbFlags()], { stdio: 'inherit' });
  renameSync(tmp, out);
  return out;
}
