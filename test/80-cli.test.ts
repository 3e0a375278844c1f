// The qbipc command line: bad flags fail fast with a clear message and exit
// code 2; `qbipc serve` is an echo service a stock libqb C client can use.
// Every wait is on a process's output or exit, bounded by a timer that kills
// the process by pid.
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildCPrograms, QbClient, runProgram } from './helpers/c-programs.js';
import { shmEntries, uniqueName } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const run = (...args: string[]) => runProgram(process.execPath, [CLI, ...args], { timeoutMs: 20_000 });

test.before(async () => {
  await buildCPrograms();
});

const usageErrors: Array<[string[], RegExp]> = [
  [[], /usage: qbipc <command>/],
  [['frob'], /unknown command "frob"/],
  [['serve'], /serve needs a service NAME/],
  [['serve', 'a', 'b'], /serve takes one NAME/],
  [['serve', 'x', '--workers', 'abc'], /--workers must be an integer from 0 to \d+, got "abc"/],
  [['serve', 'x', '--workers'], /--workers needs a value/],
  [['serve', 'x', '--type', 'mq'], /--type must be one of shm, socket, got "mq"/],
  [['serve', 'x', '--bogus'], /unknown flag --bogus/],
  [['serve', 'a/b'], /must not contain '\/'/],
  [['bench', '--servers', 'nope'], /--servers: unknown "nope"; choose from libqb, qbipc/],
  [['bench', '--rounds', '0'], /--rounds must be an integer from 1/],
  [['bench', '--seconds=-1'], /--seconds must be a number > 0, got "-1"/],
  [['bench', '--seconds', '-1'], /--seconds needs a value \(one that starts with "-" is written --seconds=VALUE\)/],
  [['bench', 'extra'], /unexpected argument "extra"/],
];

for (const [args, message] of usageErrors) {
  test(`qbipc ${args.join(' ') || '(nothing)'}: exit 2 and "${message.source}"`, async (t) => {
    const r = await run(...args);
    t.false(r.timedOut);
    t.is(r.code, 2, r.stderr);
    t.regex(r.stderr, message);
    t.regex(r.stderr, /usage: qbipc/, 'the usage follows the error');
    t.is(r.stdout, '');
  });
}

test('qbipc serve --help and bench --help print the usage on stdout, exit 0', async (t) => {
  for (const cmd of ['serve', 'bench']) {
    const r = await run(cmd, '--help');
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, new RegExp(`usage: qbipc ${cmd}`));
  }
});

test('qbipc bench without libqb-dev (no pkg-config on PATH): exit 1, says how to install it', async (t) => {
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, 'bench', '--quick'], { env: { PATH: '/nonexistent' }, timeout: 20_000 }, (error, _stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stderr });
    });
  });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /pkg-config is missing \(needed to find libqb-dev\); install it with: sudo apt-get install -y libqb-dev/);
});

/** Starts `qbipc serve NAME …`; resolves with its pid once it printed "ready". */
function startServe(args: string[]): Promise<{ pid: number; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(child.pid!, 'SIGKILL');
      reject(new Error(`qbipc serve was not ready within 20 s: ${err}`));
    }, 20_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /^ready pid=(\d+) /m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ pid: Number(m[1]), exited, stderr: () => err });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`qbipc serve exited (${code}) before it was ready: ${err}`));
    });
  });
}

for (const workers of [0, 1]) {
  test(`qbipc serve --workers ${workers}: a libqb C client echoes and receives events; SIGTERM stops it cleanly`, async (t) => {
    const name = uniqueName('cli');
    const serve = await startServe([name, '--workers', String(workers)]);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${name} 12328`);
      const { n } = await ok(t, client, 'echo 1000');
      t.is(Number(n), 24 + 1000);
      await ok(t, client, 'rounds 500 64');
      const { count } = await ok(t, client, 'events 1000 32');
      t.is(Number(count), 1000);
      await ok(t, client, 'disconnect');
    } finally {
      await client.close();
      const kill = setTimeout(() => process.kill(serve.pid, 'SIGKILL'), 10_000);
      process.kill(serve.pid, 'SIGTERM');
      const code = await serve.exited;
      clearTimeout(kill);
      t.is(code, 0, serve.stderr());
    }
    t.deepEqual(shmEntries(serve.pid), [], 'no connection directories left behind');
  });
}

test('qbipc serve on a name already served: exit 1 and says so', async (t) => {
  const name = uniqueName('cli-dup');
  const first = await startServe([name]);
  try {
    const r = await run('serve', name);
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, /another server already serves this name/);
  } finally {
    process.kill(first.pid, 'SIGTERM');
    await first.exited;
  }
});
