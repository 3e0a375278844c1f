// The SOCKET transport of the server, against real libqb 2.0.6 C clients and
// raw datagrams, in every server mode. Checklist items (docs/wire.md
// §18) 7, 8, 20, 21, 22, 23, 25, 26, 28, 29, 30, 31; §11.9 (foreign senders); §14 (forged control words).
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync, truncateSync } from 'node:fs';
import {
  connect,
  EAGAIN,
  ECONNREFUSED,
  ENOTCONN,
  IpcType,
  makeResponse,
  RateLimit,
  writeRequestHeader,
  type Client,
  type ServiceConnection,
} from '../src/index.js';
import { native } from '../src/native.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService, type EchoOptions } from './helpers/echo-service.js';
import { fails, ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

const socket = (options: EchoOptions = {}): EchoOptions => ({ ...options, type: IpcType.SOCKET, tag: options.tag ?? 'sock' });

function dirOf(conn: ServiceConnection): string {
  return conn.description.slice(0, -3);
}

function control(conn: ServiceConnection, name: string): Int32Array {
  const bytes = readFileSync(`${dirOf(conn)}/qb-control-${name}`);
  return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** Abstract AF_UNIX names bound right now (from /proc/net/unix). */
function abstractNames(): Set<string> {
  const names = new Set<string>();
  for (const line of readFileSync('/proc/net/unix', 'latin1').split('\n').slice(1)) {
    const path = line.trim().split(/\s+/)[7];
    if (path?.startsWith('@')) names.add(path.slice(1).replace(/@+$/, ''));
  }
  return names;
}

const nativeModule = new URL('../src/native.js', import.meta.url).href;

/** Sends one datagram to the abstract `name` from another process (a stranger): resolves with its send result. */
function strangerSends(name: string, bytes: number): Promise<number> {
  const script = `
    const { native } = await import(${JSON.stringify(nativeModule)});
    const fd = native.dgramOpen('qbt-stranger-' + process.pid, 4096, false);
    const rc = native.dgramConnect(fd, ${JSON.stringify(name)}, 4096);
    const data = new Uint8Array(${bytes});
    if (data.byteLength >= 16) {
      new DataView(data.buffer).setInt32(0, 1, true);
      new DataView(data.buffer).setInt32(8, ${bytes}, true);
    }
    process.stdout.write(String(rc < 0 ? rc : native.sendv(fd, [data])));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message} ${stderr}`));
      else resolve(Number(stdout));
    });
  });
}

for (const mode of MODES) {
  test.serial(`${mode.name}: item 29: control file, socket names, and a C client's round trips and events`, async (t) => {
    const echo = await startEchoService({}, socket(mode.options));
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      const conn = echo.service.connectionFirstGet()!;
      const dir = dirOf(conn);
      const file = `${dir}/qb-control-${echo.name}`;
      t.is(statSync(file).size, 24);
      t.is(statSync(file).mode & 0o777, 0o600);
      t.is(statSync(file).uid, process.getuid!());
      const base = `${dir}/qb-${echo.name}`;
      const bound = abstractNames();
      for (const suffix of ['request', 'event-tx', 'response', 'event'])
        t.true(bound.has(`${base}-${suffix}`), `@${base}-${suffix} is bound`);
      t.false(existsSync(`${dir}/qb-request-${echo.name}-header`), 'no SHM rings');
      await ok(t, client, 'rounds 500 100');
      await ok(t, client, 'events 300 50');
      t.deepEqual([...control(conn, echo.name)], [0, 0, 0, 0, 0, 0], 'balanced traffic leaves every counter at 0');
      t.is(Number((await ok(t, client, 'auth'))['pid']), process.pid);
      t.is(conn.stats().requests, 501);
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: items 7, 8: rejection errno, and authSet sets the control file's owner and mode`, async (t) => {
    const denied = await startEchoService({ connectionAccept: () => -13 }, socket(mode.options));
    const owned = await startEchoService({ connectionAccept: (conn) => conn.authSet(65534, 65534, 0o640) }, socket(mode.options));
    const client = await QbClient.start();
    try {
      await fails(t, client, `connect ${denied.name} 12328`, 13);
      await ok(t, client, `connect ${owned.name} 12328`);
      const s = statSync(`${dirOf(owned.service.connectionFirstGet()!)}/qb-control-${owned.name}`);
      t.is(s.mode & 0o777, 0o640);
      t.is(s.uid, 65534);
      await ok(t, client, 'echo 100');
    } finally {
      await client.close();
      await denied.stop();
      await owned.stop();
    }
  });

  test.serial(`${mode.name}: items 23, 30: the flow-control word at offset 4; C clients get EAGAIN while it is on`, async (t) => {
    const echo = await startEchoService({}, socket(mode.options));
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      await ok(t, client, 'echo 10');
      const conn = echo.service.connectionFirstGet()!;
      await echo.service.requestRateLimit(RateLimit.OFF);
      t.is(control(conn, echo.name)[1], 1);
      await fails(t, client, 'send 1 10', EAGAIN);
      await echo.service.requestRateLimit(RateLimit.OFF_2);
      t.is(control(conn, echo.name)[1], 2);
      await ok(t, client, 'send 1 10');
      await fails(t, client, 'recv 300', 110 /* ETIMEDOUT: not read while fc is on */);
      await echo.service.requestRateLimit(RateLimit.NORMAL);
      t.is(control(conn, echo.name)[1], 0);
      t.is(Number((await ok(t, client, 'recv 5000'))['n']), 24 + 10);
      const stats = conn.stats();
      t.is(stats.flowControlState, 0);
      t.is(stats.flowControlCount, 3);
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: items 20, 30, 31: events queue in the socket; the event counter and stats follow`, async (t) => {
    const echo = await startEchoService({}, socket(mode.options));
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      await ok(t, client, 'rounds 100 100');
      const conn = echo.service.connectionFirstGet()!;
      let queued = 0;
      while ((await conn.eventSend(makeResponse(3, queued, new Uint8Array(100)))) === 124) queued++;
      t.true(queued > 10, `${queued} events fit before the socket was full`);
      t.is(control(conn, echo.name)[4], queued, 'event sent counter = events not yet read');
      t.is(conn.stats().eventQLength, queued, 'read from the control file, in every mode');
      t.is((await ok(t, client, 'fdpoll 0'))['revents'], '1', 'the event socket is readable');
      for (let i = 0; i < queued; i++) t.is(Number((await ok(t, client, 'eventrecv 5000'))['error']), i, 'in order');
      t.is(control(conn, echo.name)[4], 0);
      const s = conn.stats();
      t.is(s.requests, 100);
      t.is(s.responses, 100);
      t.is(s.events, queued);
      t.is(s.sendRetries, 1, 'the refused event counts as a retry');
      t.is(await conn.eventSend(new Uint8Array(12329)), -90 /* EMSGSIZE */);
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: items 25, 26: hang-up cleans up; disconnect() makes the C client see ENOTCONN`, async (t) => {
    const echo = await startEchoService({}, socket(mode.options));
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      const dir = dirOf(echo.service.connectionFirstGet()!);
      await ok(t, client, 'disconnect');
      await echo.when('destroyed');
      t.false(existsSync(dir));
      t.deepEqual(
        echo.log.map((e) => e.callback),
        ['accept', 'created', 'closed', 'destroyed'],
      );
      await ok(t, client, `connect ${echo.name} 12328`);
      await ok(t, client, 'echo 10');
      echo.service.connectionFirstGet()!.disconnect();
      await echo.when('destroyed', 2);
      // libqb's SOCKET client reports the closed peer as ECONNREFUSED (its SHM client as ENOTCONN), as against a libqb server.
      const reply = await client.cmd('echo 10');
      t.regex(reply, new RegExp(`^err errno=(${ENOTCONN}|${ECONNREFUSED})$`));
      t.is((await ok(t, client, 'connected'))['connected'], '0');
      t.deepEqual(echo.service.stats(), { activeConnections: 0, closedConnections: 2 });
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(
    `${mode.name}: item 30 / §11.9: datagrams from another process are dropped; the first one makes the server connect, then the kernel refuses them`,
    async (t) => {
      const echo = await startEchoService({}, socket({ ...mode.options, behaviour: { reportRequests: true } }));
      const client = await QbClient.start();
      try {
        await ok(t, client, `connect ${echo.name} 12328`);
        const request = `${dirOf(echo.service.connectionFirstGet()!)}/qb-${echo.name}-request`;
        t.is(await strangerSends(request, 32), 32, 'before the server connected, the socket accepts anyone');
        // That datagram woke the server, which connected the sockets to the client's (already bound).
        let rc = 0;
        for (let i = 0; i < 20 && rc >= 0; i++) rc = await strangerSends(request, 0);
        t.true(rc < 0, 'then the connected socket refuses strangers, before the client spoke');
        await ok(t, client, 'echo 10');
        t.is(echo.count('request'), 1, "only the client's request reached msgProcess");
        t.true((await strangerSends(request, 32)) < 0, 'the connected socket refuses strangers');
        await ok(t, client, 'rounds 10 10');
        t.is(echo.count('destroyed'), 0);
      } finally {
        await client.close();
        await echo.stop();
      }
    },
  );

  const HOSTILE: Array<[what: string, send: (c: Client) => number]> = [
    ['a 0-byte datagram', (c) => c.send(new Uint8Array(0))],
    ['a datagram shorter than the request header', (c) => c.send(new Uint8Array(8))],
    ['hdr.size smaller than the datagram', (c) => c.send(writeRequestHeader(new Uint8Array(64), { id: 1, size: 40 }))],
    ['hdr.size larger than the datagram', (c) => c.send(writeRequestHeader(new Uint8Array(64), { id: 1, size: 100 }))],
    ['id -3 (disconnect)', (c) => c.send(writeRequestHeader(new Uint8Array(16), { id: -3, size: 16 }))],
    [
      'a datagram larger than the buffer size',
      (c) => {
        const { requestFd } = (c as unknown as { channel: { requestFd: number } }).channel;
        return native.sendv(requestFd, [writeRequestHeader(new Uint8Array(12329), { id: 1, size: 12329 })]);
      },
    ],
    [
      "item 28 / §14.8: the control file truncated to 0 bytes, then a valid request (the server's access faults)",
      (c) => {
        const { requestFd, controlPath } = (c as unknown as { channel: { requestFd: number; controlPath: string } }).channel;
        truncateSync(controlPath, 0);
        return native.sendv(requestFd, [writeRequestHeader(new Uint8Array(20), { id: 1, size: 20 })]);
      },
    ],
  ];

  for (const [what, send] of HOSTILE) {
    test.serial(`${mode.name}: item 22: ${what} disconnects that client; the others are served on`, async (t) => {
      const echo = await startEchoService({}, socket(mode.options));
      const bystander = await QbClient.start();
      let client: Client | undefined;
      try {
        await ok(t, bystander, `connect ${echo.name} 12328`);
        client = await connect(echo.name, 12328);
        t.is((await client.sendRecv(writeRequestHeader(new Uint8Array(20), { id: 1, size: 20 }), 5000)).byteLength, 28);
        t.true(send(client) >= 0);
        await echo.when('destroyed');
        await t.throwsAsync(client.recv(5000), { code: 'ENOTCONN' });
        await ok(t, bystander, 'rounds 20 100');
      } finally {
        client?.disconnect();
        await bystander.close();
        await echo.stop();
      }
    });
  }

  test.serial(
    `${mode.name}: §14 items 6, 7: forged control words (request count, event count, flow control) are never trusted`,
    async (t) => {
      const echo = await startEchoService({}, socket(mode.options));
      let client: Client | undefined;
      try {
        client = await connect(echo.name, 12328);
        const request = writeRequestHeader(new Uint8Array(20), { id: 1, size: 20 });
        const forged = (client as unknown as { channel: { control: Int32Array } }).channel.control;
        const conn = echo.service.connectionFirstGet()!;
        Atomics.store(forged, 0, 0x7fffffff); // "this many requests are queued"
        Atomics.store(forged, 4, -1000); // a negative event queue
        t.is((await client.sendRecv(request, 5000)).byteLength, 28, 'served one request, not a storm of empty reads');
        t.is(conn.stats().eventQLength, 0, 'clamped at 0');
        Atomics.store(forged, 0, -5);
        t.is((await client.sendRecv(request, 5000)).byteLength, 28, 'a negative count does not stop the reads');
        await echo.service.requestRateLimit(RateLimit.OFF);
        Atomics.store(forged, 1, 0); // the client clears its flow-control word and sends anyway
        t.true(client.send(request) > 0);
        await t.throwsAsync(client.recv(300), { code: 'ETIMEDOUT' }, 'not read while flow control is on');
        await echo.service.requestRateLimit(RateLimit.NORMAL);
        t.is((await client.recv(5000)).byteLength, 28);
        t.is(echo.count('closed'), 0);
      } finally {
        client?.disconnect();
        await echo.stop();
      }
    },
  );

  test.serial(
    `${mode.name}: a service name whose socket names would collide once cut to 106 bytes is refused (ENAMETOOLONG)`,
    async (t) => {
      const echo = await startEchoService({}, socket({ ...mode.options, tag: 'x'.repeat(70) }));
      const client = await QbClient.start();
      try {
        await fails(t, client, `connect ${echo.name} 12328`, 36 /* ENAMETOOLONG */);
        await echo.when('destroyed'); // refused clients get connectionDestroyed in every mode, as in libqb
        t.deepEqual(
          echo.log.map((e) => e.callback),
          ['accept', 'destroyed'],
        );
      } finally {
        await client.close();
        await echo.stop();
      }
    },
  );
}
