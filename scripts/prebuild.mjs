// `npm run prebuild:addon` (and `npm pack`/`npm publish`, through prepack): builds the
// native helper for the running Node into prebuilds/<platform>-<arch>/, where
// node-gyp-build finds it at run time, so that installing the package needs no compiler.
//
// The helper makes SharedArrayBuffers over mmap'd memory with V8's own API (N-API
// cannot), so a binary fits one Node ABI only: it is tagged with the ABI
// (node.abi115.glibc.node for Node 20 on glibc), never as N-API (prebuildify's
// default, which would claim it loads in every Node). Another Node builds from source.
// Plain JS: it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuildify = path.join(path.dirname(require.resolve('prebuildify/package.json')), 'bin.js');

// Only what this build makes ships: no binary of older sources, none of another ABI.
rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });

const args = [prebuildify, '--no-napi', '--name', 'node', '--tag-libc', '--strip', '--target', `node@${process.versions.node}`];
// The build's chatter goes to stderr: `npm pack --json` prints the tarball's manifest on stdout.
// JOBS: node-gyp compiles the sources in parallel, on every CPU unless told otherwise.
const result = spawnSync(process.execPath, args, {
  cwd: root,
  stdio: ['ignore', 2, 2],
  env: { ...process.env, JOBS: process.env.JOBS ?? 'max' },
});
if (result.status !== 0) {
  console.error(
    `prebuild: prebuildify failed (${result.error?.message ?? `exit ${result.status}`}); it needs node-gyp's tools: python3, make, a C++17 compiler`,
  );
  process.exit(1);
}
for (const dir of readdirSync(path.join(root, 'prebuilds'))) {
  for (const file of readdirSync(path.join(root, 'prebuilds', dir))) console.error(`prebuild: prebuilds/${dir}/${file}`);
}
