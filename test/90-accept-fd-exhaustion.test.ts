// Finding 2 of issue 17: a server whose fd table is full must not spin on its
// listening socket. A qbipc server runs under `prlimit --nofile=256`; idle
// connections (which never send a handshake) fill its table, more wait in the
// listen queue. It must stay nearly idle, refuse a client beyond the limit at
// once (EMFILE in the handshake response), and serve again when fds free up.
import test from 'ava';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds } from '../bench/drivers/cpu.js';
import { native } from '../src/native.js';
import { buildCPrograms, parseReply, QbClient } from './helpers/c-programs.js';
import { uniqueName } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { connectionDirs, LineChild } from './helpers/peers.js';
import { waitUntil } from './helpers/wait-until.js';

const FD_LIMIT = 256;
/** Idle connections: the table's worth, and 64 more left in the listen queue (backlog 128). */
const IDLE = FD_LIMIT + 64;
const PRESSURE_MS = 2000;
/** CPU the server may use over the pressure window (a spinning accept uses all of it). */
const CPU_BUDGET_S = 0.4;
const EMFILE = 24;
const EPIPE = 32;
const ECONNRESET = 104;
const here = dirname(fileURLToPath(import.meta.url));

const serverFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Connects `count` sockets that never speak; a full listen queue (EAGAIN) is retried as the server drains it. */
async function idleConnections(name: string, count: number): Promise<number[]> {
  const fds: number[] = [];
  try {
    await waitUntil(
      () => {
        for (;;) {
          if (fds.length === count) return true;
          const fd = native.connectStream(name, true);
          if (fd < 0) return false;
          fds.push(fd);
        }
      },
      10_000,
      `${count} idle connections to ${name}`,
    );
  } catch (error) {
    for (const fd of fds) native.close(fd);
    throw error;
  }
  return fds;
}

test.before(async () => {
  await buildCPrograms();
});

for (const { mode, workers, transport } of [
  { mode: 'in-thread', workers: 0, transport: 'shm' },
  { mode: 'workers 2', workers: 2, transport: 'socket' },
] as const) {
  test.serial(`${mode}, ${transport}: a full fd table does not spin, refuses the next client at once, and recovers`, async (t) => {
    const name = uniqueName('fdlimit');
    // A handshake timeout longer than the test: the idle connections hold their fds until the test closes them.
    const server = new LineChild('prlimit', [
      `--nofile=${FD_LIMIT}:${FD_LIMIT}`,
      process.execPath,
      join(here, 'helpers', 'fd-limited-server.js'),
      name,
      transport,
      String(workers),
      '60000',
    ]);
    let idle: number[] = [];
    const client = await QbClient.start();
    try {
      await server.waitFor(/^ready pid=/);
      const startFds = serverFds(server.pid);
      idle = await idleConnections(name, IDLE);
      await waitUntil(() => serverFds(server.pid) >= FD_LIMIT, 10_000, 'the server to fill its fd table');

      const cpuBefore = cpuSeconds(server.pid);
      await new Promise((resolve) => setTimeout(resolve, PRESSURE_MS)); // the measurement window, not a synchronisation
      const cpu = cpuSeconds(server.pid) - cpuBefore;
      t.log(`server CPU over ${PRESSURE_MS} ms with a full fd table: ${cpu.toFixed(2)} s`);
      t.true(cpu < CPU_BUDGET_S, `the server used ${cpu.toFixed(2)} s of CPU in ${PRESSURE_MS} ms: it spins on accept`);

      const started = Date.now();
      const refusal = await client.cmd(`connect ${name} 12328`, 3000).catch((error: Error) => `hung: ${error.message}`);
      const refusedMs = Date.now() - started;
      t.log(`a client beyond the limit: "${refusal}" after ${refusedMs} ms`);
      const reply = parseReply(refusal);
      t.false(reply.ok, 'a client beyond the limit is not served');
      // The refusal is sent and the socket closed at once (the reserve fd goes back): a client still writing
      // its request then sees EPIPE or ECONNRESET instead of reading EMFILE. Either way it is told at once.
      t.true([EMFILE, EPIPE, ECONNRESET].map(String).includes(String(reply.fields['errno'])), `refused: ${refusal}`);
      t.true(refusedMs < 1000, `refused within 1 s (took ${refusedMs} ms)`);

      for (const fd of idle.splice(0)) native.close(fd);
      await waitUntil(() => serverFds(server.pid) <= startFds + 1, 10_000, 'the server to close the idle connections');
      await ok(t, client, `connect ${name} 12328`);
      await ok(t, client, 'sweep 1 4000 97');
      await ok(t, client, 'disconnect');
    } finally {
      for (const fd of idle) native.close(fd);
      await client.close();
      await server.stop();
    }
    t.deepEqual(connectionDirs(server.pid), [], 'no connection directory left in /dev/shm');
  });
}
