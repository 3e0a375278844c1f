// The qbipc client (qbipcc.h for Node) against qbipc services, over SHM and
// SOCKET: connect errors, the qbipcc.h accessors, timeouts, the event loop left
// free while a call waits, disconnect, and `qbipc ping`. Against libqb C
// servers: 81-conformance-matrix; against corosync: 82-client-corosync.
// Checklist items (docs/wire.md §18) 6, 7, 17, 18, 21, 26.
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ping } from '../src/cli/ping.js';
import {
  connect,
  EACCES,
  ECONNREFUSED,
  EINVAL,
  EMSGSIZE,
  ENOTCONN,
  IpcType,
  makeResponse,
  readResponseHeader,
  writeRequestHeader,
  type Client,
  type Connection,
} from '../src/index.js';
import { HeaderWord } from '../src/shm/layout.js';
import { shmEntries, startEchoService, uniqueName } from './helpers/echo-service.js';
import { removeEmptyDirs, startQbipcServerChild } from './helpers/peers.js';

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

const TRANSPORTS = [IpcType.SHM, IpcType.SOCKET] as const;

function echoRequest(size: number, fill = 0x5a): Uint8Array {
  const request = writeRequestHeader(new Uint8Array(16 + size), { id: 1, size: 16 + size });
  request.fill(fill, 16);
  return request;
}

/** Resolves after the event loop has turned `turns` times through the timers phase. */
function loopTurns(turns: number): Promise<number> {
  return new Promise((resolve) => {
    let n = 0;
    const tick = () => (++n === turns ? resolve(n) : setTimeout(tick, 1));
    setTimeout(tick, 1);
  });
}

test('connect: nobody serves the name → ECONNREFUSED; bad arguments throw', async (t) => {
  const error = await t.throwsAsync(connect(uniqueName('nobody'), 12328));
  t.is((error as { errno?: number }).errno, -ECONNREFUSED);
  t.is((error as { code?: string }).code, 'ECONNREFUSED');
  await t.throwsAsync(connect('a/b', 12328), { instanceOf: TypeError });
  await t.throwsAsync(connect('ok', -1), { instanceOf: RangeError });
});

for (const type of TRANSPORTS) {
  const T = IpcType[type];

  test(`${T}: item 7: a rejecting connectionAccept fails connect() with its errno`, async (t) => {
    const echo = await startEchoService({ connectionAccept: () => -EACCES }, { type });
    try {
      const error = await t.throwsAsync(connect(echo.name, 12328));
      t.is((error as { errno?: number }).errno, -EACCES);
      await echo.when('destroyed');
    } finally {
      await echo.stop();
    }
  });

  test(`${T}: item 6: bufferSize, authGet, type, context, fd, isConnected`, async (t) => {
    const echo = await startEchoService({}, { type, beforeRun: (s) => s.enforceBufferSize(20000) });
    let client: Client | undefined;
    try {
      client = await connect(echo.name, 5000);
      t.is(client.bufferSize, 20000, 'max(requested raised to 12328, enforced)');
      t.is(client.type, type);
      t.deepEqual(client.authGet(), { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
      client.context = { mine: true };
      t.deepEqual(client.context, { mine: true });
      t.true(Number.isInteger(client.fd) && client.fd > 2);
      t.true(client.isConnected);
      const big = await connect(echo.name, 100000);
      t.is(big.bufferSize, 100000);
      big.disconnect();
      t.false(big.isConnected);
      t.is(big.send(echoRequest(1)), -ENOTCONN);
    } finally {
      client?.disconnect();
      await echo.stop();
    }
  });

  test(`${T}: send returns bytes or -errno; EMSGSIZE above the buffer size; fcEnableMaxSet validates`, async (t) => {
    const echo = await startEchoService({}, { type });
    const client = await connect(echo.name, 12328);
    try {
      t.is(client.send(echoRequest(100)), 116);
      t.is(readResponseHeader(await client.recv(5000)).size, 124);
      t.is(client.sendv([echoRequest(10).subarray(0, 16), new Uint8Array(10)]), 26);
      t.is((await client.recv(5000)).byteLength, 34);
      t.is(client.send(new Uint8Array(12329)), -EMSGSIZE);
      t.is(client.fcEnableMaxSet(2), 0);
      t.is(client.fcEnableMaxSet(3), -EINVAL);
    } finally {
      client.disconnect();
      await echo.stop();
    }
  });

  test(`${T}: recv(0) is EAGAIN, recv(ms) ETIMEDOUT; the event loop keeps turning while a call waits`, async (t) => {
    const echo = await startEchoService({}, { type });
    const client = await connect(echo.name, 12328);
    try {
      await t.throwsAsync(client.recv(0), { code: 'EAGAIN' });
      await t.throwsAsync(client.eventRecv(0), { code: 'EAGAIN' });
      const started = Date.now();
      const waiting = client.recv(400);
      const turns = await loopTurns(20); // resolves only if timers run while recv waits
      t.is(turns, 20);
      await t.throwsAsync(waiting, { code: 'ETIMEDOUT' });
      t.true(Date.now() - started >= 390);
      await t.throwsAsync(client.eventRecv(50), { code: 'ETIMEDOUT' });
      t.is((await client.sendRecv(echoRequest(8), 5000)).byteLength, 32, 'still usable after timeouts');
    } finally {
      client.disconnect();
      await echo.stop();
    }
  });

  test(`${T}: item 21: pipelined requests and events are delivered in order`, async (t) => {
    const echo = await startEchoService({}, { type });
    const client = await connect(echo.name, 65536);
    try {
      for (let i = 0; i < 8; i++) t.is(client.send(echoRequest(100, i)), 116);
      const replies = await Promise.all(Array.from({ length: 8 }, () => client.recv(5000)));
      t.deepEqual(
        replies.map((r) => r[24]),
        [0, 1, 2, 3, 4, 5, 6, 7],
      );
      const conn = echo.service.connectionFirstGet() as Connection;
      const pending = Array.from({ length: 5 }, () => client.eventRecv(5000));
      for (let k = 0; k < 5; k++) t.is(conn.eventSend(makeResponse(3, k, new Uint8Array(k))), 24 + k);
      t.deepEqual(
        (await Promise.all(pending)).map((e) => readResponseHeader(e).error),
        [0, 1, 2, 3, 4],
      );
    } finally {
      client.disconnect();
      await echo.stop();
    }
  });

  test(`${T}: item 26: the server disconnecting fails pending calls with ENOTCONN; disconnect() fails them too`, async (t) => {
    const echo = await startEchoService({}, { type });
    const a = await connect(echo.name, 12328);
    const b = await connect(echo.name, 12328);
    try {
      const waiting = [a.recv(-1), a.eventRecv(-1)];
      ([...echo.service.connections()].at(-1) as Connection).disconnect(); // a, the oldest
      for (const call of waiting) await t.throwsAsync(call, { code: 'ENOTCONN' });
      t.false(a.isConnected);
      t.is(a.send(echoRequest(1)), -ENOTCONN);
      const pending = [b.recv(-1), b.eventRecv(-1)];
      b.disconnect();
      for (const call of pending) await t.throwsAsync(call, { code: 'ENOTCONN' });
      await echo.when('destroyed', 2);
    } finally {
      a.disconnect();
      b.disconnect();
      await echo.stop();
    }
  });
}

for (const type of TRANSPORTS) {
  test(`${IpcType[type]}: sendRecvSync/recvSync block the calling thread instead; same results and errors`, async (t) => {
    // The server must not share this thread: it runs in a child process.
    const server = await startQbipcServerChild(uniqueName('sync'), type === IpcType.SOCKET ? 'socket' : 'shm');
    const name = server.lines[0]!.match(/name=(\S+)/)?.[1];
    let client: Client | undefined;
    try {
      client = await connect(name!, 12328);
      for (let i = 0; i < 100; i++) t.is(client.sendRecvSync(echoRequest(50, i), 5000)[24], i);
      t.throws(() => client!.recvSync(0), { code: 'EAGAIN' });
      t.throws(() => client!.recvSync(50), { code: 'ETIMEDOUT' });
      const pending = client.recv(5000); // nothing sent yet: it waits
      t.throws(() => client!.recvSync(10), { message: /while recv\(\) calls are waiting/ });
      t.is(client.send(echoRequest(10)), 26);
      t.is((await pending).byteLength, 34);
      server.kill('SIGKILL');
      await server.exited;
      t.throws(() => client!.sendRecvSync(echoRequest(1), 5000), { code: 'ENOTCONN' });
    } finally {
      client?.disconnect();
      await server.stop();
      removeEmptyDirs(server.pid);
    }
  });
}

test('SHM, items 17, 18: a waiting recv() registers in the semaphore as glibc does, and a post wakes it', async (t) => {
  const echo = await startEchoService({}, { type: IpcType.SHM });
  const client = await connect(echo.name, 12328);
  try {
    const conn = echo.service.connectionFirstGet() as Connection;
    const header = `${conn.description.slice(0, -3)}/qb-response-${echo.name}-header`;
    const waiters = () => readFileSync(header).readInt32LE(HeaderWord.SEM_WAITERS * 4);
    const reply = client.recv(10_000);
    // The waiter thread registers asynchronously: look until it has (bounded), then answer.
    const deadline = Date.now() + 5000;
    while (waiters() !== 1 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    t.is(waiters(), 1, 'nwaiters (high half of the sem_t word) counts the waiting client');
    t.is(conn.responseSend(makeResponse(9, 0)), 24);
    t.is(readResponseHeader(await reply).id, 9);
    t.is(waiters(), 0, 'deregistered once woken');
  } finally {
    client.disconnect();
    await echo.stop();
  }
});

test('a connected client with no call pending does not keep the process alive', async (t) => {
  const echo = await startEchoService({}, { type: IpcType.SHM });
  try {
    const script = `
      const { connect } = await import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)});
      const client = await connect(${JSON.stringify(echo.name)}, 12328);
      process.stdout.write('connected ' + client.bufferSize);`;
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message} ${stderr}`));
        else resolve(stdout);
      });
    });
    t.is(output, 'connected 12328');
    await echo.when('destroyed'); // it exited by itself; the server saw it go
  } finally {
    await echo.stop();
  }
});

for (const type of TRANSPORTS) {
  test(`${IpcType[type]}: the client inside worker threads: round trips, disconnect, and termination while a call waits`, async (t) => {
    // The child's main thread never loads the addon, so the worker's exit is
    // where the library could be unloaded under live mappings (it crashed once).
    const echo = await startEchoService({}, { type });
    try {
      const child = new URL('./helpers/qbipc-client-in-worker.js', import.meta.url);
      const result = await new Promise<{ code: number | string | null; signal: string | null; stdout: string; stderr: string }>(
        (resolve) => {
          execFile(process.execPath, [fileURLToPath(child), echo.name, '2000'], { timeout: 60_000 }, (error, stdout, stderr) => {
            resolve({ code: error?.code ?? 0, signal: error?.signal ?? null, stdout, stderr });
          });
        },
      );
      t.deepEqual({ code: result.code, signal: result.signal }, { code: 0, signal: null }, result.stderr);
      t.is(result.stdout, 'ok 2000\n');
      await echo.when('destroyed', 2); // the server saw both clients go
    } finally {
      await echo.stop();
    }
  });
}

for (const type of TRANSPORTS) {
  test(`qbipc ping over ${IpcType[type]}: round trips, checked, with latency figures`, async (t) => {
    const echo = await startEchoService({}, { type });
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    try {
      t.is(await ping([echo.name, '--count', '20', '--size', '300'], io), 0, err.join('\n'));
      t.regex(
        out[0]!,
        new RegExp(`^PING ${echo.name} \\(${IpcType[type]}, buffer 12328 bytes, server pid ${process.pid}\\): 300 payload bytes$`),
      );
      t.is(out.filter((l) => /^324 bytes from .* seq=\d+ time=[\d.]+ us$/.test(l)).length, 20);
      t.regex(out.at(-2)!, /^20 sent, 20 ok, 0 failed, \d+ round trips\/s$/);
      t.regex(out.at(-1)!, /^latency us: min [\d.]+ avg [\d.]+ p50 [\d.]+ p99 [\d.]+ max [\d.]+$/);
    } finally {
      await echo.stop();
    }
  });
}

test('qbipc ping: exit 2 when nobody serves the name, 2 on bad usage', async (t) => {
  const err: string[] = [];
  const io = { out: () => undefined, err: (l: string) => err.push(l) };
  t.is(await ping([uniqueName('nobody')], io), 2);
  t.regex(err.join('\n'), /ECONNREFUSED/);
  t.is(await ping([], io), 2);
  t.is(await ping(['x', '--count', '0'], io), 2);
});
