// `npm run bench` starts here: compiles the TypeScript only when a source is
// newer than its output (or the output is missing), so a fresh clone — which
// `npm install` just built — goes straight to the benchmark. Plain JS: it runs
// before anything is compiled.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mtime = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
};

function* sources(dir) {
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(rel);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield rel;
  }
}

const config = mtime(path.join(root, 'tsconfig.json'));
const stale = ['src', 'workers', 'test', 'bench'].some((dir) =>
  [...sources(dir)].some((rel) => {
    const out = mtime(path.join(root, 'dist', rel.replace(/\.ts$/, '.js')));
    return out < 0 || out < mtime(path.join(root, rel)) || out < config;
  }),
);
if (stale) {
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], {
      stdio: 'inherit',
    });
  } catch (error) {
    process.exit(typeof error.status === 'number' ? error.status : 1); // tsc printed why
  }
}
