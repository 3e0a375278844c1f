// Every qbipcs.h call whose effect a real libqb client can observe.
// Checklist items 7, 8, 23, 24, 25, 26, 31 (docs/wire.md §18).
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Connection, EACCES, EAGAIN, EMSGSIZE, ENOTCONN, ETIMEDOUT, IpcType, RateLimit, type ServiceConnection } from '../src/index.js';
import { makeResponse } from '../src/headers.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { fails, ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

function flowControlWord(conn: ServiceConnection, name: string): number {
  return readFileSync(`${conn.description.slice(0, -3)}/qb-request-${name}-header`).readInt32LE(8240);
}

for (const mode of MODES) {
  test.serial(`${mode.name}: item 7: connectionAccept returning -EACCES makes qb_ipcc_connect fail with EACCES`, async (t) => {
    const echo = await startEchoService({ connectionAccept: async () => -EACCES }, mode.options);
    const client = await QbClient.start();
    try {
      await fails(t, client, `connect ${echo.name} 12328`, EACCES);
      // libqb calls connection_destroyed (never created) for a rejected client; in worker mode a shard does.
      await echo.when('destroyed');
      t.deepEqual(
        echo.log.map((e) => e.callback),
        ['accept', 'destroyed'],
      );
      t.deepEqual(echo.service.stats(), { activeConnections: 0, closedConnections: 0 });
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: accept sees the client's credentials; the connection reports them`, async (t) => {
    let seen: number[] = [];
    const echo = await startEchoService({ connectionAccept: (c, uid, gid) => void (seen = [c.pid, uid, gid]) }, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 20000`);
      const conn = echo.service.connectionFirstGet()!;
      t.deepEqual(seen, [client.pid, process.getuid!(), process.getgid!()]);
      t.deepEqual([conn.pid, conn.uid, conn.gid], seen);
      t.is(conn.bufferSize, 20000);
      t.is(conn.serviceId, 0);
      t.regex(conn.description, new RegExp(`^/dev/shm/qb-${process.pid}-${client.pid}-\\d+-[A-Za-z0-9]{6}/qb$`));
      const { pid, uid } = await ok(t, client, 'auth');
      t.is(Number(pid), process.pid, 'the client got our credentials from the response');
      t.is(Number(uid), process.getuid!());
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 8: directory 0770 and files 0600, owned by the client; authSet changes owner and mode`, async (t) => {
    const echo = await startEchoService(
      {
        connectionAccept: (conn) => conn.authSet(65534, 65534, 0o640),
      },
      mode.options,
    );
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      const dir = echo.service.connectionFirstGet()!.description.slice(0, -3);
      const d = statSync(dir);
      t.is(d.mode & 0o777, 0o770);
      t.is(d.uid, 65534, "SHM: authSet's owner gets the directory too (as libqb; SOCKET: only the control file, test 85)");
      for (const kind of ['request', 'response', 'event']) {
        for (const part of ['header', 'data']) {
          const s = statSync(`${dir}/qb-${kind}-${echo.name}-${part}`);
          t.is(s.mode & 0o777, 0o640, `${kind}-${part} mode`);
          t.is(s.uid, 65534);
          t.is(s.gid, 65534);
        }
      }
      await ok(t, client, 'echo 100');
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 8: without authSet the files are 0600 and belong to the client's uid`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      const dir = echo.service.connectionFirstGet()!.description.slice(0, -3);
      const s = statSync(`${dir}/qb-request-${echo.name}-header`);
      t.is(s.mode & 0o777, 0o600);
      t.is(s.uid, process.getuid!());
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 6: enforceBufferSize raises the size the client negotiates`, async (t) => {
    const echo = await startEchoService({}, { ...mode.options, beforeRun: (s) => s.enforceBufferSize(100000) });
    const client = await QbClient.start();
    try {
      t.is((await ok(t, client, `connect ${echo.name} 12328`))['buffer_size'], '100000');
      await ok(t, client, 'echo 99000');
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(
    `${mode.name}: item 23: rate limit OFF writes 1 at offset 8240 and clients get EAGAIN; OFF_2 writes 2; NORMAL restores`,
    async (t) => {
      const echo = await startEchoService({}, mode.options);
      const client = await QbClient.start();
      try {
        await ok(t, client, `connect ${echo.name} 12328`);
        await ok(t, client, 'echo 10');
        const conn = echo.service.connectionFirstGet()!;
        await echo.service.requestRateLimit(RateLimit.OFF);
        t.is(flowControlWord(conn, echo.name), 1);
        await fails(t, client, 'send 1 10', EAGAIN);
        await echo.service.requestRateLimit(RateLimit.NORMAL);
        t.is(flowControlWord(conn, echo.name), 0);
        await ok(t, client, 'echo 10');
        await echo.service.requestRateLimit(RateLimit.OFF_2);
        t.is(flowControlWord(conn, echo.name), 2);
        await ok(t, client, 'send 1 10'); // fc 2 only stops clients that set fc_enable_max 2 …
        await fails(t, client, 'recv 300', ETIMEDOUT); // … but the server does not read while fc is on
        await ok(t, client, 'fcmax 2');
        await fails(t, client, 'send 1 10', EAGAIN);
        await echo.service.requestRateLimit(RateLimit.NORMAL);
        t.is(Number((await ok(t, client, 'recv 5000'))['n']), 24 + 10, 'the queued request is served once fc is off');
        const stats = conn.stats();
        t.is(stats.flowControlState, 0);
        t.is(stats.flowControlCount, 4);
      } finally {
        await client.close();
        await echo.stop();
      }
    },
  );

  // With 2 workers the two clients are served by different threads, in parallel: the
  // budget is a per-thread rule, so this test runs where both share one thread.
  if (mode.workers <= 1)
    test.serial(`${mode.name}: item 24: per-dispatch budget 50/5/1 shares the server between busy clients`, async (t) => {
      const echo = await startEchoService({}, { ...mode.options, behaviour: { reportRequests: true } });
      const order = () => echo.log.filter((e) => e.callback === 'request').map((e) => e.pid);
      const clients = [await QbClient.start(), await QbClient.start()];
      try {
        const runWith = async (limit: RateLimit) => {
          const before = order().length;
          await echo.service.requestRateLimit(RateLimit.OFF);
          for (const c of clients) {
            await ok(t, c, 'fcmax 0'); // these clients ignore flow control, so requests queue up
            for (let i = 0; i < 12; i++) await ok(t, c, 'send 1 8');
          }
          const all = echo.when('request', echo.count('request') + 24);
          await echo.service.requestRateLimit(limit);
          await all;
          for (const c of clients) for (let i = 0; i < 12; i++) await ok(t, c, 'recv 5000');
          return order().slice(before);
        };
        for (const c of clients) await ok(t, c, `connect ${echo.name} 12328`);
        const [a, b] = clients.map((c) => c.pid);
        const interleaved = (seq: number[]) => seq.lastIndexOf(a!) > seq.indexOf(b!) && seq.lastIndexOf(b!) > seq.indexOf(a!);
        t.true(interleaved(await runWith(RateLimit.SLOW)), 'SLOW: 1 per dispatch');
        t.true(interleaved(await runWith(RateLimit.NORMAL)), 'NORMAL: 5 per dispatch');
        const fast = await runWith(RateLimit.FAST);
        t.false(interleaved(fast), `FAST: 50 per dispatch takes each client's 12 in one go (${fast.join(',')})`);
      } finally {
        for (const c of clients) await c.close();
        await echo.stop();
      }
    });

  test.serial(`${mode.name}: item 25: client hang-up → closed, destroyed, files and directory removed`, async (t) => {
    const echo = await startEchoService({}, { ...mode.options, behaviour: { reportRequests: true } });
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      await ok(t, client, 'echo 10');
      const dir = echo.service.connectionFirstGet()!.description.slice(0, -3);
      await ok(t, client, 'disconnect');
      await echo.when('destroyed');
      t.deepEqual(
        echo.log.map((e) => e.callback),
        ['accept', 'created', 'request', 'closed', 'destroyed'],
      );
      t.throws(() => statSync(dir), { code: 'ENOENT' });
      t.deepEqual(echo.service.stats(), { activeConnections: 0, closedConnections: 1 });
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 25: connectionClosed returning non-zero is called again until it returns 0`, async (t) => {
    const echo = await startEchoService({}, { ...mode.options, behaviour: { closedRetries: 3 } });
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      await ok(t, client, 'disconnect');
      await echo.when('destroyed');
      t.is(echo.count('closed'), 4, 'three times non-zero, then 0');
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 26: disconnect() makes the client see ENOTCONN`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      await ok(t, client, 'echo 10');
      echo.service.connectionFirstGet()!.disconnect();
      await echo.when('destroyed');
      await fails(t, client, 'send 1 10', ENOTCONN);
      t.is((await ok(t, client, 'connected'))['connected'], '0');
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: destroy() with clients connected disconnects them all and removes their files`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const clients = await Promise.all([1, 2, 3].map(() => QbClient.start()));
    try {
      for (const c of clients) await ok(t, c, `connect ${echo.name} 12328`);
      const dirs = [...echo.service.connections()].map((c) => c.description.slice(0, -3));
      await echo.service.destroy();
      await echo.when('destroyed', 3); // in worker mode the reports cross threads
      t.is(echo.count('destroyed'), 3);
      for (const dir of dirs) t.false(existsSync(dir), `${dir} removed`);
      for (const c of clients) await fails(t, c, 'send 1 10', ENOTCONN);
    } finally {
      for (const c of clients) await c.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 31: stats count requests, responses, events, retries and the event queue`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      await ok(t, client, 'rounds 1000 100');
      await ok(t, client, 'events 2000 200');
      const conn = echo.service.connectionFirstGet()!;
      let s = conn.stats();
      t.is(s.clientPid, client.pid);
      t.is(s.requests, 1001);
      t.is(s.responses, 1001);
      t.is(s.events, 2000);
      t.is(s.eventQLength, 0, 'the client took every event');
      const retriesBefore = s.sendRetries;
      let queued = 0;
      while ((await conn.eventSend(makeResponse(3, queued, new Uint8Array(100)))) === 124) queued++;
      s = conn.stats();
      t.true(queued > 10, `the 16 KiB event ring took ${queued} events before it was full`);
      t.is(s.sendRetries, retriesBefore + 1, 'the refused send counts as a retry');
      t.is(s.eventQLength, queued, 'posted, not yet read');
      for (let i = 0; i < queued; i++) await ok(t, client, 'eventrecv 5000');
      s = conn.stats(true);
      t.is(s.eventQLength, 0);
      t.is(s.events, 2000 + queued);
      const cleared = conn.statsGet();
      t.deepEqual(cleared, {
        clientPid: client.pid,
        requests: 0,
        responses: 0,
        events: 0,
        sendRetries: 0,
        recvRetries: 0,
        flowControlState: 0,
        flowControlCount: 0,
      });
      t.is(await conn.eventSend(new Uint8Array(12329)), -90 /* EMSGSIZE */);
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 31: stats(true) on the main thread, under traffic, loses no count`, async (t) => {
    const { qbclient } = await buildCPrograms();
    const echo = await startEchoService({}, mode.options);
    const rounds = 20_000;
    const child = spawn(qbclient, ['-n', echo.name, '-k', String(rounds), '-s', '64'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    try {
      await echo.when('created');
      const conn = echo.service.connectionFirstGet()!;
      let finished = false;
      void exited.then(() => (finished = true));
      let requests = 0;
      let responses = 0;
      let clears = 0;
      while (!finished) {
        const s = conn.statsGet(true);
        requests += s.requests;
        responses += s.responses;
        clears++;
        await new Promise((resolve) => setImmediate(resolve));
      }
      t.deepEqual(await exited, [0, null]);
      const rest = conn.statsGet(true);
      t.true(clears > 10, `${clears} clears while the client ran`);
      t.is(requests + rest.requests, rounds, 'every request counted once');
      t.is(responses + rest.responses, rounds, 'every response counted once');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: connections(), connectionFirstGet/NextGet and contexts`, async (t) => {
    const echo = await startEchoService({ connectionAccept: (c) => void (c.context = { pid: c.pid }) }, mode.options);
    echo.service.context = 'service data';
    const clients = await Promise.all([1, 2, 3].map(() => QbClient.start()));
    try {
      for (const c of clients) await ok(t, c, `connect ${echo.name} 12328`);
      const viaIterator = [...echo.service.connections()].map((c) => c.pid);
      const viaGet: number[] = [];
      for (let c = echo.service.connectionFirstGet(); c; c = echo.service.connectionNextGet(c)) viaGet.push(c.pid);
      t.deepEqual(viaIterator, clients.map((c) => c.pid).reverse(), "newest first, as libqb's list");
      t.deepEqual(viaGet, viaIterator);
      for (const c of echo.service.connections()) {
        t.deepEqual(c.context, { pid: c.pid });
        t.is(c.serviceContext, 'service data');
      }
      t.deepEqual(echo.service.stats(true), { activeConnections: 3, closedConnections: 0 });
      t.deepEqual(echo.service.stats(), { activeConnections: 0, closedConnections: 0 });
    } finally {
      for (const c of clients) await c.close();
      await echo.stop();
    }
  });

  // ref()/unref() belong to the thread that serves the connection (in worker mode, the worker).
  if (mode.workers === 0)
    test.serial(`${mode.name}: ref() keeps a disconnected connection until unref()`, async (t) => {
      const echo = await startEchoService({}, { ...mode.options, behaviour: { refInCreated: true } });
      const client = await QbClient.start();
      try {
        await ok(t, client, `connect ${echo.name} 12328`);
        const conn = echo.service.connectionFirstGet() as Connection;
        const dir = conn.description.slice(0, -3);
        await ok(t, client, 'disconnect');
        await echo.when('closed');
        t.is(echo.count('destroyed'), 0, 'our reference keeps it');
        t.true(existsSync(dir), 'and its files');
        conn.unref();
        t.is(echo.count('destroyed'), 1);
        t.false(existsSync(dir));
      } finally {
        await client.close();
        await echo.stop();
      }
    });
}

// responseSend belongs to the thread that serves the connection: in-thread here, over both transports.
for (const type of [IpcType.SHM, IpcType.SOCKET]) {
  test.serial(
    `in-thread ${IpcType[type]}: sends too large for the channel fail alone, as in libqb; the connection serves on`,
    async (t) => {
      const echo = await startEchoService({}, { type });
      const client = await QbClient.start();
      try {
        await ok(t, client, `connect ${echo.name} 12328`);
        await ok(t, client, 'echo 10');
        const conn = echo.service.connectionFirstGet() as Connection;
        const before = conn.stats();
        const oversized = makeResponse(1, 0, new Uint8Array(conn.bufferSize)); // header + buffer size
        t.is(conn.eventSend(oversized), -EMSGSIZE, 'qb_ipcs_event_send checks the buffer size itself');
        const huge = makeResponse(1, 0, new Uint8Array(4 * conn.bufferSize)); // beyond any ring or socket buffer of this size
        const rc = conn.responseSend(huge);
        const after = conn.stats();
        t.is(after.events, before.events, 'the event was not counted');
        if (type === IpcType.SHM) {
          t.is(rc, -EAGAIN, 'the ring has no room: EAGAIN, as libqb');
          t.is(after.responses, before.responses, 'not counted as sent');
          t.is(after.sendRetries, before.sendRetries + 1, 'and a send retry');
        } else {
          t.is(rc, huge.byteLength, "a datagram socket takes what its buffer holds, as libqb's writev");
          await ok(t, client, 'recv 5000'); // the client takes it
        }
        await ok(t, client, 'rounds 20 100');
        t.is(echo.count('closed'), 0, 'not a disconnect-class error');
      } finally {
        await client.close();
        await echo.stop();
      }
    },
  );
}
