// The published package, used as a user gets it. `npm pack` runs in a copy of
// the repository (the pack rebuilds build/ and dist/, which the tests running
// beside this one use); the tarball is installed into a fresh project with no
// C/C++ compiler, make or python on PATH, npm offline and its cache empty (the
// dependencies come as tarballs packed from the repository's node_modules, so
// nothing is fetched). There an ESM script and a CommonJS script each serve a
// stock libqb C client a verified round trip, the README's TypeScript compiles
// under strict settings, and `qbipc --version` answers. Then the source build:
// with the prebuilt binary removed and the compiler back on PATH, `npm rebuild
// qbipc` compiles the helper and the service works again.
// Every wait is on a process's output or exit, bounded by a timer that kills
// the process by pid; the temporary directory goes at the end.
import test, { type ExecutionContext } from 'ava';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCPrograms, runProgram } from './helpers/c-programs.js';
import { uniqueName } from './helpers/echo-service.js';
import { cleanEnv, describeResult, noCompilerBin, npmCli, runCommand, which, type CommandResult } from './helpers/npm.js';
import { connectionDirs, LineChild } from './helpers/peers.js';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url))); // dist/test/ -> the repository
const ROOT_PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
};
const PREBUILT = `prebuilds/${process.platform}-${process.arch}/node.abi${process.versions.modules}.glibc.node`;
const NPM = npmCli();
// Alone, the whole file takes about a minute and a half; the two compiles (the pack's prebuilt
// binary, the source build) can take minutes on a busy 2-CPU machine.
const STEP_MS = 150_000;
const COMPILE_MS = 360_000;

const tmp = mkdtempSync(path.join(tmpdir(), 'qbipc-package-'));
const cache = path.join(tmp, 'npm-cache'); // empty: an offline install can take nothing from it
const consumer = path.join(tmp, 'consumer');
const installed = path.join(consumer, 'node_modules', 'qbipc');
const noCompiler = noCompilerBin(path.join(tmp, 'no-compiler-bin'));
const offline = {
  npm_config_offline: 'true',
  npm_config_cache: cache,
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};
// Where this Node's headers are, for the source build (node-gyp would otherwise download them).
const headers = path.dirname(path.dirname(process.execPath));
const nodedir = existsSync(path.join(headers, 'include', 'node', 'node.h')) ? { npm_config_nodedir: headers } : {};

let tarball: string | undefined;
let depTarballs: string[] = [];
let qbclient = '';

test.before(async () => {
  ({ qbclient } = await buildCPrograms()); // with the compiler, before anything runs without one
});

test.after.always(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const npm = (cwd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = STEP_MS) =>
  runCommand(process.execPath, [NPM, ...args], { cwd, env, timeoutMs });

function succeeded(t: ExecutionContext, what: string, r: CommandResult): boolean {
  const ok = !r.timedOut && r.code === 0;
  if (!ok) t.fail(describeResult(what, r));
  return ok;
}

/** The package directories qbipc's dependencies resolve to in the repository, theirs too (optional ones only if installed). */
function dependencyDirs(): string[] {
  const found = new Set<string>();
  const visit = (fromDir: string, pkg: { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }) => {
    const wanted = [
      ...Object.keys(pkg.dependencies ?? {}).map((n) => [n, false] as const),
      ...Object.keys(pkg.optionalDependencies ?? {}).map((n) => [n, true] as const),
    ];
    for (const [name, optional] of wanted) {
      let dir: string | undefined;
      for (let d = fromDir; d.startsWith(ROOT); d = path.dirname(d)) {
        if (existsSync(path.join(d, 'node_modules', name, 'package.json'))) {
          dir = path.join(d, 'node_modules', name);
          break;
        }
      }
      if (dir === undefined) {
        if (optional) continue; // another platform's binary package
        throw new Error(`dependency ${name} is not installed in ${ROOT}/node_modules (run npm install)`);
      }
      if (found.has(dir)) continue;
      found.add(dir);
      visit(dir, JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Parameters<typeof visit>[1]);
    }
  };
  visit(ROOT, ROOT_PKG);
  return [...found];
}

/** Runs `script` (in the consumer project) as a service NAME; a libqb C client does one checked round trip; SIGTERM stops it. */
async function serveOneRoundTrip(t: ExecutionContext, script: string, args: string[]): Promise<void> {
  const name = uniqueName('pkg');
  const server = new LineChild(process.execPath, [path.join(consumer, script), name, ...args], { cwd: consumer });
  try {
    const [, loadedFrom] = await server.waitFor(/^ready (.*)$/, 60_000);
    t.is(loadedFrom, path.join(installed, 'dist', 'src', 'index.js'), `${script} loaded qbipc from the installed package`);
    const client = await runProgram(qbclient, ['-n', name, '-k', '1', '-s', '200', '-t', '10000'], { timeoutMs: 30_000 });
    t.false(client.timedOut, `${script}: the C client timed out`);
    t.is(client.code, 0, `${script}: ${client.stdout}${client.stderr}`);
    t.regex(client.stdout, /^ok count=1 usec=\d+ errors=0$/m, `${script}: one verified round trip`);
    server.kill('SIGTERM');
    const exit = await server.exited;
    t.deepEqual(exit, { code: 0, signal: null }, `${script} stopped cleanly on SIGTERM: ${server.lines.join(' | ')}`);
    t.deepEqual(connectionDirs(server.pid), [], `${script} left nothing in /dev/shm`);
  } finally {
    await server.stop(2_000);
    for (const dir of connectionDirs(server.pid)) rmSync(path.join('/dev/shm', dir), { recursive: true, force: true });
  }
}

test.serial('npm pack: the tarball holds the library, its prebuilt helper, LICENSE and README, and not the benchmark', async (t) => {
  t.timeout(COMPILE_MS + 30_000);
  const source = path.join(tmp, 'source');
  const skip = new Set(['node_modules', 'dist', 'build', 'prebuilds', '.git', 'results']);
  cpSync(ROOT, source, { recursive: true, filter: (from) => !skip.has(path.basename(from)) && !from.endsWith('.tgz') });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(source, 'node_modules'), 'dir');
  const r = await npm(source, ['pack', '--json', '--pack-destination', tmp], cleanEnv({ ...offline, ...nodedir }), COMPILE_MS);
  if (!succeeded(t, 'npm pack', r)) return;
  const [manifest] = JSON.parse(r.stdout) as Array<{
    filename: string;
    size: number;
    unpackedSize: number;
    files: Array<{ path: string }>;
  }>;
  const packedFiles = manifest!.files.map((f) => f.path);
  tarball = path.join(tmp, manifest!.filename); // first: the tests below use it whatever this one finds
  t.log(`${manifest!.filename}: ${manifest!.size} bytes, ${manifest!.unpackedSize} unpacked, ${packedFiles.length} files`);
  for (const needed of [
    PREBUILT,
    'LICENSE',
    'README.md',
    'package.json',
    'binding.gyp',
    'dist/src/index.js',
    'dist/src/index.d.ts',
    'dist/workers/shard.js',
    'dist/src/cli/main.js',
  ]) {
    t.true(packedFiles.includes(needed), `${needed} is in the tarball`);
  }
  t.deepEqual(
    packedFiles.filter((f) => /^(dist\/)?(bench|test)\//.test(f) || f.startsWith('docs/benchmark')),
    [],
    'no benchmark harness, no tests',
  );
});

test.serial('installs with neither a C/C++ compiler on PATH nor the network, without compiling anything', async (t) => {
  t.timeout(STEP_MS);
  if (tarball === undefined) return t.fail('needs the tarball of the test above');
  for (const tool of ['cc', 'gcc', 'g++', 'c++', 'make', 'python3'])
    t.is(which(tool, noCompiler), undefined, `${tool} is not on the install's PATH`);
  const deps = path.join(tmp, 'deps');
  mkdirSync(deps);
  const packed = await npm(
    ROOT,
    ['pack', '--ignore-scripts', '--json', '--pack-destination', deps, ...dependencyDirs()],
    cleanEnv(offline),
  );
  if (!succeeded(t, 'npm pack of the dependencies', packed)) return;
  depTarballs = (JSON.parse(packed.stdout) as Array<{ filename: string }>).map((p) => path.join(deps, p.filename));

  mkdirSync(consumer);
  writeFileSync(
    path.join(consumer, 'package.json'),
    `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
  );
  const env = { HOME: process.env.HOME ?? tmp, PATH: noCompiler, ...offline };
  const r = await npm(consumer, ['install', '--foreground-scripts', tarball, ...depTarballs], env);
  if (!succeeded(t, 'npm install of the tarball', r)) return;
  t.regex(r.stdout, /node-gyp-build/, 'the install script ran');
  t.true(existsSync(path.join(installed, PREBUILT)), 'the prebuilt helper was installed');
  t.false(existsSync(path.join(installed, 'build')), 'nothing was compiled');

  const maps = readdirSync(installed, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.map'));
  t.true(maps.length > 0);
  const missing = maps.flatMap((map) => {
    const { sources } = JSON.parse(readFileSync(path.join(installed, map), 'utf8')) as { sources: string[] };
    return sources.map((s) => path.resolve(installed, path.dirname(map), s)).filter((s) => !existsSync(s));
  });
  t.deepEqual(missing, [], 'every source map points at a shipped source');
  const internal = readdirSync(path.join(installed, 'dist'), { recursive: true, encoding: 'utf8' }).filter(
    (f) => f.endsWith('.d.ts') && readFileSync(path.join(installed, 'dist', f), 'utf8').includes('@internal'),
  );
  t.deepEqual(internal, [], 'no @internal member in the published declarations');
});

test.serial('installed with --ignore-scripts, the prebuilt helper still loads', async (t) => {
  t.timeout(STEP_MS);
  if (tarball === undefined || depTarballs.length === 0) return t.fail('needs the tarballs of the tests above');
  const project = path.join(tmp, 'no-scripts');
  mkdirSync(project);
  writeFileSync(
    path.join(project, 'package.json'),
    `${JSON.stringify({ name: 'no-scripts', version: '1.0.0', private: true }, null, 2)}\n`,
  );
  const env = { HOME: process.env.HOME ?? tmp, PATH: noCompiler, ...offline };
  const r = await npm(project, ['install', '--ignore-scripts', tarball, ...depTarballs], env);
  if (!succeeded(t, 'npm install --ignore-scripts', r)) return;
  // importing qbipc loads the native helper at once
  const load = await runCommand(process.execPath, ['-e', 'console.log(typeof require("qbipc").createService)'], {
    cwd: project,
    env: cleanEnv({}),
    timeoutMs: 60_000,
  });
  t.is(load.code, 0, describeResult('require("qbipc")', load));
  t.is(load.stdout.trim(), 'function');
});

test.serial('an ES module serves a libqb C client over SHM, in-thread', async (t) => {
  t.timeout(STEP_MS);
  if (!existsSync(installed)) return t.fail('needs the install of the test above');
  writeFileSync(
    path.join(consumer, 'serve.mjs'),
    `import { createService, IpcType, REQUEST_HEADER_SIZE, makeResponse, readRequestHeader } from 'qbipc';
import { fileURLToPath } from 'node:url';

const [name, type] = process.argv.slice(2);
const service = createService(name, 0, IpcType[type], {
  msgProcess(conn, request) {
    const { id } = readRequestHeader(request);
    return conn.responseSend(makeResponse(id, 0, request.subarray(REQUEST_HEADER_SIZE))) < 0 ? -1 : 0;
  },
});
service.on('error', (error) => { console.error(error); process.exitCode = 1; });
process.once('SIGTERM', () => void service.destroy());
await service.run();
console.log(\`ready \${fileURLToPath(import.meta.resolve('qbipc'))}\`);
`,
  );
  await serveOneRoundTrip(t, 'serve.mjs', ['SHM']);
});

test.serial('a CommonJS script (require) serves a libqb C client over SOCKET, with a CommonJS worker module', async (t) => {
  t.timeout(STEP_MS);
  if (!existsSync(installed)) return t.fail('needs the install of the test above');
  writeFileSync(
    path.join(consumer, 'handlers.cjs'),
    `const { REQUEST_HEADER_SIZE, makeResponse, readRequestHeader } = require('qbipc');

module.exports = {
  msgProcess(conn, request) {
    const { id } = readRequestHeader(request);
    return conn.responseSend(makeResponse(id, 0, request.subarray(REQUEST_HEADER_SIZE))) < 0 ? -1 : 0;
  },
};
`,
  );
  writeFileSync(
    path.join(consumer, 'serve.cjs'),
    `const path = require('node:path');
const { createService, IpcType } = require('qbipc');

const [name, type] = process.argv.slice(2);
const service = createService(name, 0, IpcType[type], {}, { workers: 1, workerModule: path.join(__dirname, 'handlers.cjs') });
service.on('error', (error) => { console.error(error); process.exitCode = 1; });
process.once('SIGTERM', () => void service.destroy());
service.run().then(() => console.log(\`ready \${require.resolve('qbipc')}\`), (error) => { console.error(error); process.exitCode = 1; });
`,
  );
  await serveOneRoundTrip(t, 'serve.cjs', ['SOCKET']);
});

const TS_OPTIONS = {
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  noImplicitOverride: true,
  noFallthroughCasesInSwitch: true,
  verbatimModuleSyntax: true,
  isolatedModules: true,
  module: 'nodenext',
  target: 'es2022',
  lib: ['es2022'],
  types: ['node'],
  typeRoots: [path.join(ROOT, 'node_modules', '@types')],
  noEmit: true,
};

/** The README's ```ts blocks as modules of the consumer project, and a CommonJS module using the types. */
function writeTypeScript(): string[] {
  const readme = readFileSync(path.join(installed, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
  const dir = path.join(consumer, 'ts');
  mkdirSync(dir, { recursive: true });
  const files = blocks.map((code, i) => {
    const file = path.join(dir, `readme-${i + 1}.ts`);
    writeFileSync(file, code);
    return file;
  });
  const cjs = path.join(dir, 'require.cts');
  writeFileSync(
    cjs,
    `import qbipc = require('qbipc');

const service: qbipc.Service = qbipc.createService('typed', 0, qbipc.IpcType.SOCKET, {
  msgProcess: (conn: qbipc.Connection, request: Uint8Array) => (conn.responseSend(qbipc.makeResponse(qbipc.requestId(request), 0)) < 0 ? -1 : 0),
});
export = service;
`,
  );
  return [...files, cjs];
}

const tsc = (project: string) =>
  runCommand(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], {
    cwd: consumer,
    env: cleanEnv({}),
    timeoutMs: 120_000,
  });

test.serial("the README's TypeScript examples, and a CommonJS module using the types, compile under strict settings", async (t) => {
  t.timeout(STEP_MS);
  if (!existsSync(installed)) return t.fail('needs the install of the test above');
  const files = writeTypeScript();
  t.true(files.length >= 5, `the README has its examples (${files.length - 1} ts blocks)`);
  const project = path.join(consumer, 'tsconfig.json');
  writeFileSync(project, JSON.stringify({ compilerOptions: { ...TS_OPTIONS, skipLibCheck: true }, files }, null, 2));
  const r = await tsc(project);
  t.is(r.code, 0, describeResult('tsc', r));
});

// The published declarations themselves must check too (a consumer with skipLibCheck: false):
// no public class may name an internal interface (stripInternal drops members, not `implements`).
test.serial('the published declarations type-check (skipLibCheck: false)', async (t) => {
  t.timeout(STEP_MS);
  if (!existsSync(installed)) return t.fail('needs the install of the test above');
  const project = path.join(consumer, 'tsconfig.libcheck.json');
  writeFileSync(project, JSON.stringify({ compilerOptions: { ...TS_OPTIONS, skipLibCheck: false }, files: writeTypeScript() }, null, 2));
  const r = await tsc(project);
  const ours = r.stdout.split('\n').filter((line) => line.includes('node_modules/qbipc/'));
  t.deepEqual(ours, [], "no error in qbipc's declarations");
});

test.serial('qbipc --version prints the version; qbipc bench says the benchmark lives in the repository', async (t) => {
  t.timeout(STEP_MS);
  if (!existsSync(installed)) return t.fail('needs the install of the test above');
  const bin = path.join(consumer, 'node_modules', '.bin', 'qbipc');
  const env = cleanEnv({ PATH: noCompiler });
  const version = await runCommand(bin, ['--version'], { cwd: consumer, env, timeoutMs: 60_000 });
  t.is(version.code, 0, describeResult('qbipc --version', version));
  t.is(version.stdout.trim(), ROOT_PKG.version);
  const before = readdirSync(consumer).sort();
  const bench = await runCommand(bin, ['bench', '--quick'], { cwd: consumer, env, timeoutMs: 60_000 });
  t.is(bench.code, 1, describeResult('qbipc bench', bench));
  t.regex(bench.stderr, /not part of the installed package: it lives in qbipc's repository.*npm run bench/s);
  t.deepEqual(readdirSync(consumer).sort(), before, 'qbipc bench wrote nothing');
});

test.serial(
  'with the prebuilt helper removed, npm rebuild compiles it from source (compiler back on PATH) and the service works',
  async (t) => {
    t.timeout(COMPILE_MS + 60_000);
    if (!existsSync(path.join(consumer, 'serve.mjs'))) return t.fail('needs the install and the ESM script of the tests above');
    rmSync(path.join(installed, 'prebuilds'), { recursive: true });
    const broken = await runCommand(process.execPath, ['-e', 'require("qbipc")'], { cwd: consumer, env: cleanEnv({}), timeoutMs: 60_000 });
    t.not(broken.code, 0);
    t.regex(
      broken.stderr,
      /cannot load its native helper: no prebuilt binary .* fits Node v[\d.]+ \(ABI \d+\).*npm rebuild qbipc --build-from-source/s,
      'without a binary, the import says what is missing and what to do',
    );

    const r = await npm(
      consumer,
      ['rebuild', 'qbipc', '--foreground-scripts'],
      cleanEnv({ ...offline, ...nodedir, JOBS: 'max' }),
      COMPILE_MS,
    );
    if (!succeeded(t, 'npm rebuild qbipc', r)) return;
    const built = path.join(installed, 'build', 'Release', 'qbipc_native.node');
    t.true(existsSync(built) && statSync(built).size > 0, 'the helper was compiled');
    await serveOneRoundTrip(t, 'serve.mjs', ['SHM']);
  },
);
