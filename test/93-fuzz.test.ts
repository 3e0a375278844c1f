// Issue 17: a bounded fuzz run over every byte a client can write (test/c/fuzz.c:
// connection requests, ring headers, chunk headers and sizes, semaphores,
// doorbells, SOCKET datagrams and control words) against `qbipc serve`, in
// both transports, in-thread and with 2 workers. A libqb client is served
// alongside the whole time; afterwards the server is alive, holds no more fds
// or directories than before, and leaves /dev/shm clean when it stops.
// Seeds are fixed (QBIPC_FUZZ_SEED=N explores others); bench/fuzz.sh runs longer.
import test from 'ava';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCPrograms, parseKeyValues, QbClient, runProgram } from './helpers/c-programs.js';
import { uniqueName } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { buildLibqbProgram, connectionDirs, LineChild } from './helpers/peers.js';
import { waitUntil } from './helpers/wait-until.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..');
const SECONDS = 4;
const BASE_SEED = Number(process.env['QBIPC_FUZZ_SEED'] ?? 17);

const serverFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

let fuzz: string;
test.before(async () => {
  await buildCPrograms();
  fuzz = await buildLibqbProgram(join(ROOT, 'test', 'c', 'fuzz.c'), 'fuzz');
});

const CONFIGS = [
  { type: 'shm', workers: 0 },
  { type: 'socket', workers: 0 },
  { type: 'shm', workers: 2 },
  { type: 'socket', workers: 2 },
] as const;

for (const [index, { type, workers }] of CONFIGS.entries()) {
  const seed = BASE_SEED * 16 + index;
  test.serial(`${type}, workers ${workers}: ${SECONDS} s of fuzzed clients (seed ${seed}) while a libqb client is served`, async (t) => {
    const name = uniqueName(`fuzz-${type}-${workers}`);
    const server = new LineChild(process.execPath, [
      join(ROOT, 'dist', 'src', 'cli', 'main.js'),
      'serve',
      name,
      '--type',
      type,
      '--workers',
      String(workers),
      '--max-buffer',
      String(1 << 20),
    ]);
    const healthy = await QbClient.start();
    try {
      await server.waitFor(/^ready pid=/);
      await ok(t, healthy, `connect ${name} 12328`);
      const fdsBefore = serverFds(server.pid);

      let fuzzing = true;
      const run = runProgram(fuzz, [name, String(seed), '-t', String(SECONDS)], { timeoutMs: (SECONDS + 20) * 1000 }).finally(
        () => void (fuzzing = false),
      );
      let rounds = 0;
      while (fuzzing) {
        await ok(t, healthy, 'sweep 1 3000 211');
        await ok(t, healthy, 'events 20 100');
        rounds++;
      }
      const result = await run;
      const fields = parseKeyValues(result.stdout);
      t.log(
        `fuzz: ${result.stdout
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('progress'))
          .join(' | ')}; healthy client rounds: ${rounds}`,
      );
      t.is(result.code, 0, `the fuzzer ended with ${result.code}: ${result.stdout.slice(-300)} ${result.stderr.slice(-300)}`);
      t.is(fields['result'], 'done');
      t.true(Number(fields['cases']) > 100, 'the fuzzer ran its cases');
      t.true(server.running, 'the server is alive');

      // Every fuzzed connection ends: the server goes back to what it held before.
      await waitUntil(() => connectionDirs(server.pid).length === 1, 10_000, "only the healthy client's directory to be left");
      await waitUntil(() => serverFds(server.pid) <= fdsBefore, 10_000, `the server's fds to return to ${fdsBefore}`);
      await ok(t, healthy, 'sweep 1 12000 997');
      await ok(t, healthy, 'disconnect');
      await ok(t, healthy, `connect ${name} 12328`);
      await ok(t, healthy, 'rounds 100 1000');
      const stderr = server.lines.filter((l) => !l.startsWith('ready'));
      t.deepEqual(stderr, [], 'the server reported no error');
    } finally {
      await healthy.close();
      await server.stop();
    }
    const exit = await server.exited;
    t.is(exit.code, 0, 'the server stopped cleanly');
    t.deepEqual(connectionDirs(server.pid), [], '/dev/shm is clean');
  });
}
