// Worker mode's own promises: placement, and faults that cost only the
// connections they touch. (The conformance suite itself runs in every mode.)
import test from 'ava';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { clientCpu, defaultPlacement, processorField, workerCpuOf, workerFor } from '../src/cpu-placement.js';
import { ENOTCONN, HandlerError, RemoteConnection } from '../src/index.js';
import { native } from '../src/native.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { fails, ok } from './helpers/expect.js';
import { sleepsInFutex } from './helpers/futex-sleep.js';
import { countThreads } from './helpers/threads.js';
import { waitUntil } from './helpers/wait-until.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

async function connected(name: string, count: number): Promise<QbClient[]> {
  const clients: QbClient[] = [];
  for (let i = 0; i < count; i++) {
    const c = await QbClient.start();
    clients.push(c);
    const reply = await c.cmd(`connect ${name} 12328`);
    if (!reply.startsWith('ok')) throw new Error(`connect: ${reply}`);
  }
  return clients;
}

test.serial('least-loaded placement spreads connections evenly over the workers', async (t) => {
  const echo = await startEchoService({}, { workers: 2, placement: 'least-loaded' });
  const clients = await connected(echo.name, 4);
  try {
    const shards = [...echo.service.connections()].map((c) => (c as RemoteConnection).shard);
    t.deepEqual(shards.sort(), [0, 0, 1, 1]);
    for (const c of clients) await ok(t, c, 'rounds 100 64');
  } finally {
    for (const c of clients) await c.close();
    await echo.stop();
  }
});

/** How many threads of this process may run on one CPU only (/proc/self/task/N/status). */
function threadsKeptToOneCpu(): number {
  return countThreads('status', (status) => /^Cpus_allowed_list:\s*\d+\s*$/m.test(status));
}

test.serial("client-cpu placement: each worker keeps to a CPU, and a client is served by its CPU's worker", async (t) => {
  const cpus = native.cpuAffinity().slice(0, 4);
  const before = threadsKeptToOneCpu();
  const echo = await startEchoService({}, { workers: cpus.length, placement: 'client-cpu' });
  const clients: QbClient[] = [];
  try {
    if (cpus.length > 1) t.is(threadsKeptToOneCpu() - before, cpus.length, 'one thread per worker keeps to one CPU');
    // Two rounds over the CPUs, in turn: least-loaded placement would spread them the same way only by chance of order.
    for (const cpu of [...cpus].reverse().concat(cpus)) {
      const c = await QbClient.start({ cpu });
      clients.push(c);
      t.regex(await c.cmd(`connect ${echo.name} 12328`), /^ok/);
    }
    const shardOf = new Map([...echo.service.connections()].map((c) => [c.pid, (c as RemoteConnection).shard]));
    t.deepEqual(
      clients.map((c) => shardOf.get(c.pid)),
      [...cpus]
        .reverse()
        .concat(cpus)
        .map((cpu) => cpus.indexOf(cpu)),
      'worker i keeps to the i-th CPU and serves the clients that run there',
    );
    for (const c of clients) await ok(t, c, 'rounds 200 64');
  } finally {
    for (const c of clients) await c.close();
    await echo.stop();
  }
  await waitUntil(() => threadsKeptToOneCpu() === before, 10_000, 'the workers ended');
});

test('client-cpu placement is the default with a worker per CPU, unless the workers run real-time', (t) => {
  t.is(defaultPlacement(2, 0, 2), 'client-cpu');
  t.is(defaultPlacement(4, 0, 2), 'client-cpu');
  t.is(defaultPlacement(1, 0, 2), 'least-loaded');
  t.is(defaultPlacement(2, 1, 2), 'least-loaded');
  t.is(defaultPlacement(0, 0, 1), 'least-loaded');
});

test("client-cpu placement: the worker of the client's CPU, unless it has 2 connections more than the least loaded", (t) => {
  const cpus = [0, 1, 0, 1]; // 4 workers on 2 CPUs
  t.is(workerFor(1, cpus, [0, 0, 0, 0]), 1, 'the first worker of CPU 1');
  t.is(workerFor(1, cpus, [1, 3, 1, 2]), 3, 'the least loaded worker of CPU 1');
  t.is(workerFor(1, cpus, [1, 2, 1, 2]), 1, 'one more than the least loaded: still its CPU');
  t.is(workerFor(1, cpus, [1, 3, 2, 3]), 0, 'two more: the least loaded of all');
  t.is(workerFor(-1, cpus, [2, 1, 1, 3]), 1, 'CPU not known: the least loaded (the first of equals)');
  t.is(workerFor(5, cpus, [2, 2, 1, 3]), 2, 'no worker on that CPU: the least loaded');
  t.is(workerFor(-1, [-1, -1], [4, 4]), 0, 'least-loaded placement: workers keep to no CPU');
});

test('client-cpu placement reads the CPU a process last ran on, or -1', (t) => {
  t.true(native.cpuAffinity().includes(clientCpu(process.pid)));
  for (const pid of [0, -1, 1.5, 2 ** 31]) t.is(clientCpu(pid), -1);
  // The command name may hold spaces and parentheses; field 39 counts from the last ')'.
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[39 - 3] = '7';
  t.is(processorField(`42 (a) b (c)) ${fields.join(' ')}`), 7);
  t.is(processorField('42 (truncated'), -1);
  t.is(processorField('42 (short) S 1 2'), -1);
  t.deepEqual(
    [0, 1, 2, 3, 4].map((i) => workerCpuOf(i, [2, 5])),
    [2, 5, 2, 5, 2],
  );
  t.is(workerCpuOf(0, []), -1);
});

test('setCpuAffinity keeps this thread to the CPUs given, and refuses CPUs it may not use', (t) => {
  const cpus = native.cpuAffinity();
  try {
    t.is(native.setCpuAffinity(Int32Array.of(cpus[0]!)), 0);
    t.deepEqual(native.cpuAffinity(), [cpus[0]]);
    const absent = [...Array(1024).keys()].find((cpu) => !cpus.includes(cpu))!;
    t.is(native.setCpuAffinity(Int32Array.of(absent)), -22, 'EINVAL: no CPU of the set is allowed');
  } finally {
    t.is(native.setCpuAffinity(Int32Array.from(cpus)), 0);
  }
  t.deepEqual(native.cpuAffinity(), cpus);
  t.throws(() => native.setCpuAffinity(Int32Array.of(1024)), { instanceOf: RangeError, message: /CPU numbers from 0 to 1023/ });
  t.throws(() => native.setCpuAffinity(new Int32Array(0)), { instanceOf: RangeError });
});

test.serial('a worker that dies costs only its own connections; new clients are served', async (t) => {
  const echo = await startEchoService({}, { workers: 2, placement: 'round-robin', behaviour: { exitOnId: 99 } });
  const [victim, bystander] = await connected(echo.name, 2);
  try {
    const victimConn = [...echo.service.connections()].at(-1); // the oldest: connections() is newest first
    const victimDir = victimConn!.description.slice(0, -3);
    await ok(t, bystander!, 'rounds 500 64');
    const died = once(echo.service, 'error');
    await ok(t, victim!, 'send 99 0'); // the worker serving it exits while handling this
    const [error] = (await died) as [Error];
    t.regex(error.message, /worker shard 0 ended/);
    await fails(t, victim!, 'send 1 10', ENOTCONN);
    t.false(existsSync(victimDir), 'its files were removed by the main thread');
    await ok(t, bystander!, 'rounds 500 64'); // the other worker never noticed
    const [newcomer] = await connected(echo.name, 1);
    await ok(t, newcomer!, 'rounds 500 64'); // served by the replacement worker
    t.deepEqual([...echo.service.connections()].map((c) => (c as RemoteConnection).shard).sort(), [0, 1]);
    t.is(echo.service.stats().activeConnections, 2);
    await newcomer!.close();
  } finally {
    await victim!.close();
    await bystander!.close();
    await echo.stop();
  }
});

test.serial('a worker that dies inside a round still delivers the response it posted: the main thread issues the held wake', async (t) => {
  // Wakes are held until a round ends; this round never ends. The client sleeps in
  // qb_ipcc_recv(-1), which in libqb is a bare sem_wait with no liveness check.
  const gate = new SharedArrayBuffer(4);
  const echo = await startEchoService({}, { workers: 1, behaviour: { respondThenExitOnId: 97, gate } });
  const [client] = await connected(echo.name, 1);
  try {
    const died = once(echo.service, 'error');
    await ok(t, client!, 'send 97 0');
    const answer = client!.cmd('recv -1', 15_000);
    t.true(await sleepsInFutex(`/proc/${client!.pid}`), 'the client sleeps in sem_wait');
    Atomics.store(new Int32Array(gate), 0, 1);
    Atomics.notify(new Int32Array(gate), 0);
    t.regex(await answer, /^ok n=24 id=97 /);
    await died;
  } finally {
    await client!.close();
    await echo.stop();
  }
});

test.serial('a handler that throws in a worker disconnects only that client', async (t) => {
  const echo = await startEchoService({}, { workers: 1, behaviour: { throwOnId: 98 } });
  const [thrower, other] = await connected(echo.name, 2);
  try {
    const reported = once(echo.service, 'error');
    await ok(t, thrower!, 'send 98 0');
    const [error] = (await reported) as [HandlerError<RemoteConnection>];
    t.regex(error.message, /msgProcess failed for the client with pid \d+; that connection was closed \(worker shard 0\)/);
    t.is(error.code, 'ERR_QBIPC_HANDLER');
    t.is(error.handler, 'msgProcess');
    t.is(error.connection.pid, thrower!.pid, "the main thread's view of the connection");
    t.true(error.cause instanceof Error, "the worker's error, rebuilt");
    await echo.when('destroyed');
    await fails(t, thrower!, 'send 1 10', ENOTCONN);
    await ok(t, other!, 'rounds 200 64');
  } finally {
    await thrower!.close();
    await other!.close();
    await echo.stop();
  }
});

test.serial('a worker module that cannot load makes run() reject, and nothing keeps running', async (t) => {
  const { createService, IpcType } = await import('../src/index.js');
  const service = createService(
    `qbt-${process.pid}-badmodule`,
    0,
    IpcType.SHM,
    {},
    {
      workers: 1,
      workerModule: new URL('./helpers/does-not-exist.js', import.meta.url),
    },
  );
  await t.throwsAsync(service.run(), { message: /worker module could not be started/ });
});
