// Finding 3 of issue 17: no connection directory outlives its connection when
// the server is out of descriptors. `qbipc serve` runs under
// `prlimit --nofile=256`; floods of 1,000 libqb clients (test/c/connect-flood.c)
// fill its table, so file creation, directory removal and accepting all fail
// with EMFILE at random points. Once every client is gone, none of the server's
// directories may remain — while it runs on, and after SIGTERM — in-thread and
// with worker shards, SHM and SOCKET. The exit paths too: SIGTERM in the middle
// of a flood (adopt messages in flight), and a process that exits without
// destroying its service.
import test from 'ava';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sweepStaleDirectories } from '../src/stale-directories.js';
import { buildCPrograms, parseKeyValues, QbClient, runProgram } from './helpers/c-programs.js';
import { uniqueName } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { buildLibqbProgram, connectionDirs, LineChild, removeEmptyDirs, ROOT } from './helpers/peers.js';
import { waitUntil } from './helpers/wait-until.js';

const FD_LIMIT = 256;
const MODES = [
  { mode: 'in-thread', workers: 0, transport: 'shm' },
  { mode: 'workers 2', workers: 2, transport: 'shm' },
  { mode: 'workers 2', workers: 2, transport: 'socket' },
] as const;
const CLIENTS = 1000;
const FLOODS = 3;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const here = dirname(fileURLToPath(import.meta.url));

let flood: string;

test.before(async () => {
  flood = await buildLibqbProgram(join(ROOT, 'test', 'c', 'connect-flood.c'), 'connect-flood');
  await buildCPrograms();
});

function startServer(name: string, transport: string, workers: number): LineChild {
  return new LineChild('prlimit', [
    `--nofile=${FD_LIMIT}:${FD_LIMIT}`,
    process.execPath,
    CLI,
    'serve',
    name,
    '--type',
    transport,
    '--workers',
    String(workers),
  ]);
}

for (const { mode, workers, transport } of MODES) {
  test.serial(`${mode}, ${transport}: floods of ${CLIENTS} clients against a full fd table leave no directory behind`, async (t) => {
    const name = uniqueName('fdflood');
    const server = startServer(name, transport, workers);
    let refused = 0;
    let running: string[];
    let left: string[];
    try {
      await server.waitFor(/^ready pid=/);
      for (let i = 0; i < FLOODS; i++) {
        // The second flood's clients exit without disconnecting, as killed clients would.
        const run = await runProgram(flood, ['-n', name, '-c', String(CLIENTS), ...(i === 1 ? ['-k'] : [])], { timeoutMs: 15_000 });
        t.log(`flood ${i + 1}: ${run.stdout.trim()}`);
        t.is(run.code, 0, `every client reported: ${run.stdout}${run.stderr}`);
        const fields = parseKeyValues(run.stdout);
        t.is(fields['failed'], '0', 'a client that was served got its echo');
        t.not(fields['served'], '0', 'some clients were served');
        refused += Number(fields['refused']);
      }
      // Every client has exited: their directories go while the server runs on.
      await waitUntil(() => connectionDirs(server.pid).length === 0, 10_000, 'the directories of departed clients to go').catch(
        () => undefined,
      );
      running = connectionDirs(server.pid);
    } finally {
      await server.stop();
      left = connectionDirs(server.pid);
      sweepStaleDirectories(name); // what a failing run left: the server is gone, so its directories are stale
    }
    t.true(refused > 0, 'the fd table was full: clients were refused');
    const { code, signal } = await server.exited;
    t.is(code, 0, `qbipc serve exited cleanly on SIGTERM (${code ?? signal})`);
    t.log(`directories left: ${running.length} after the clients, ${left.length} after the server`);
    t.true(
      running.length === 0 && left.length === 0,
      `${running.length} directories outlived their clients, ${left.length} the server, e.g. ${[...running, ...left].slice(0, 3).join(' ')}`,
    );
  });
}

for (const { mode, workers, transport } of MODES) {
  test.serial(`${mode}, ${transport}: SIGTERM in the middle of a flood leaves no directory behind`, async (t) => {
    const name = uniqueName('fdexit');
    const server = startServer(name, transport, workers);
    let run: Promise<unknown> | undefined;
    let left: string[];
    try {
      await server.waitFor(/^ready pid=/);
      run = runProgram(flood, ['-n', name, '-c', String(CLIENTS)], { timeoutMs: 15_000 });
      await waitUntil(() => connectionDirs(server.pid).length > 0, 10_000, 'the flood to reach the server');
    } finally {
      await server.stop();
      left = connectionDirs(server.pid);
      await run;
      sweepStaleDirectories(name);
    }
    const { code, signal } = await server.exited;
    t.is(code, 0, `qbipc serve exited cleanly on SIGTERM (${code ?? signal})`);
    t.deepEqual(left, [], `${left.length} directories left after the server exited`);
  });
}

for (const { mode, workers, transport } of MODES) {
  test.serial(
    `${mode}, ${transport}: a process that exits without destroying its service removes its connections' directories`,
    async (t) => {
      const name = uniqueName('exit');
      const server = new LineChild(process.execPath, [
        join(here, 'helpers', 'exit-without-destroy-server.js'),
        name,
        transport,
        String(workers),
      ]);
      const clients: QbClient[] = [];
      let left: string[];
      try {
        await server.waitFor(/^ready pid=/);
        for (let i = 0; i < 4; i++) {
          const client = await QbClient.start();
          clients.push(client);
          await ok(t, client, `connect ${name} 12328`);
          await ok(t, client, 'echo 100');
        }
        t.is(connectionDirs(server.pid).length, clients.length);
        server.kill('SIGTERM');
        await server.exited;
        left = connectionDirs(server.pid); // before the clients notice: a libqb client unlinks its files when it disconnects
      } finally {
        await server.stop();
        await Promise.all(clients.map((c) => c.close()));
        removeEmptyDirs(server.pid);
        sweepStaleDirectories(name);
      }
      t.deepEqual(left, [], `${left.length} directories left after the process exited`);
    },
  );
}
