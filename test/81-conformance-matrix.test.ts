// One conformance suite, parameterised (iceoryx2 style) over
// {SHM, SOCKET} × {libqb C client → qbipc server, qbipc client → libqb C server,
// qbipc client → qbipc server}: every size from 1 byte to the buffer size,
// events, rate limiting, the server gone mid-call, the client gone mid-call.
// Checklist items (docs/wire.md §18) 13, 21, 23, 25, 26, 29, 30, 32.
import test, { type ExecutionContext } from 'ava';
import { existsSync, watch } from 'node:fs';
import { connect, EAGAIN, ENOTCONN, IpcType, RateLimit, readResponseHeader, writeRequestHeader, type Client } from '../src/index.js';
import { buildCPrograms, parseReply, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService, uniqueName, type EchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import {
  connectionDirs,
  removeEmptyDirs,
  startCServer,
  startQbipcClientChild,
  startQbipcServerChild,
  type LineChild,
} from './helpers/peers.js';

type Transport = 'shm' | 'socket';
type Pair = 'libqb client → qbipc server' | 'qbipc client → libqb server' | 'qbipc client → qbipc server';
const TRANSPORTS: Transport[] = ['shm', 'socket'];
const PAIRS: Pair[] = ['libqb client → qbipc server', 'qbipc client → libqb server', 'qbipc client → qbipc server'];
const BOUND_MS = 15_000;

test.before(async () => {
  await buildCPrograms();
});

test.after.always('nothing left under /dev/shm', (t) => {
  t.deepEqual(shmEntries(), []);
});

// ---- the client side of a pair ----

interface ClientDriver {
  connect(name: string): Promise<number>;
  /** Verified echo round trips of every payload size from..to; resolves with the count. */
  sweep(from: number, to: number): Promise<number>;
  /** Asks for `count` events of `len` bytes and verifies each; resolves with the count. */
  events(count: number, len: number): Promise<number>;
  /** One send of an echo request, no wait: 0 or the errno. */
  sendOnce(size: number): Promise<number>;
  echo(size: number): Promise<void>;
  close(): Promise<void>;
}

function pattern(seed: number, size: number, j: number): number {
  return (seed * 31 + size * 7 + j * 13) & 0xff;
}

function echoRequest(size: number, seed: number): Uint8Array {
  const request = writeRequestHeader(new Uint8Array(16 + size), { id: 1, size: 16 + size });
  for (let j = 0; j < size; j++) request[16 + j] = pattern(seed, size, j);
  return request;
}

function verifyEcho(reply: Uint8Array, size: number, seed: number): string | undefined {
  const h = readResponseHeader(reply);
  if (reply.byteLength !== 24 + size || h.id !== 1 || h.size !== 24 + size || h.error !== 0) {
    return `size ${size}: reply of ${reply.byteLength} bytes, id ${h.id}, size ${h.size}, error ${h.error}`;
  }
  for (let j = 0; j < size; j++) if (reply[24 + j] !== pattern(seed, size, j)) return `size ${size}: payload differs at ${j}`;
  return undefined;
}

class QbipcDriver implements ClientDriver {
  client!: Client;
  async connect(name: string): Promise<number> {
    this.client = await connect(name, 12328, { timeoutMs: BOUND_MS });
    return this.client.bufferSize;
  }

  /**
   * sendRecv, retrying EAGAIN as libqb's contract asks: a libqb server reclaims
   * a request after its response is sent, so the next large request can find
   * the ring still full for a moment (docs/wire.md §6.8).
   */
  async roundTrip(request: Uint8Array): Promise<Uint8Array> {
    const deadline = Date.now() + BOUND_MS;
    for (;;) {
      try {
        return await this.client.sendRecv(request, BOUND_MS);
      } catch (error) {
        if ((error as { code?: string }).code !== 'EAGAIN' || Date.now() > deadline) throw error;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  }

  async sweep(from: number, to: number): Promise<number> {
    let count = 0;
    for (let size = from; size <= to; size++) {
      const reply = await this.roundTrip(echoRequest(size, size));
      const problem = verifyEcho(reply, size, size);
      if (problem !== undefined) throw new Error(problem);
      count++;
    }
    return count;
  }

  async events(count: number, len: number): Promise<number> {
    const request = writeRequestHeader(new Uint8Array(24), { id: 2, size: 24 });
    new DataView(request.buffer).setUint32(16, count, true);
    new DataView(request.buffer).setUint32(20, len, true);
    const answer = await this.client.sendRecv(request, BOUND_MS);
    if (readResponseHeader(answer).id !== 2) throw new Error('no answer to the events request');
    for (let k = 0; k < count; k++) {
      const event = await this.client.eventRecv(BOUND_MS);
      const h = readResponseHeader(event);
      if (h.id !== 3 || h.error !== k || event.byteLength !== 24 + len)
        throw new Error(`event ${k}: id ${h.id} error ${h.error} ${event.byteLength} bytes`);
      for (let j = 0; j < len; j++) if (event[24 + j] !== ((k + j) & 0xff)) throw new Error(`event ${k}: payload differs at ${j}`);
    }
    return count;
  }

  async sendOnce(size: number): Promise<number> {
    const rc = this.client.send(echoRequest(size, 1));
    return rc < 0 ? -rc : 0;
  }

  async echo(size: number): Promise<void> {
    const problem = verifyEcho(await this.roundTrip(echoRequest(size, 7)), size, 7);
    if (problem !== undefined) throw new Error(problem);
  }

  async close(): Promise<void> {
    this.client?.disconnect();
  }
}

class CDriver implements ClientDriver {
  constructor(
    private readonly t: ExecutionContext,
    readonly c: QbClient,
  ) {}
  async connect(name: string): Promise<number> {
    return Number((await ok(this.t, this.c, `connect ${name} 12328`))['buffer_size']);
  }

  async sweep(from: number, to: number): Promise<number> {
    return Number((await ok(this.t, this.c, `sweep ${from} ${to}`, 120_000))['count']);
  }

  async events(count: number, len: number): Promise<number> {
    return Number((await ok(this.t, this.c, `events ${count} ${len}`, 60_000))['count']);
  }

  async sendOnce(size: number): Promise<number> {
    const reply = parseReply(await this.c.cmd(`send 1 ${size}`));
    return reply.ok ? 0 : Number(reply.fields['errno']);
  }

  async echo(size: number): Promise<void> {
    await ok(this.t, this.c, `echo ${size}`);
  }

  async close(): Promise<void> {
    await this.c.close();
  }
}

// ---- the server side of a pair ----

interface ServerDriver {
  name: string;
  rateOff(): Promise<void>;
  rateNormal(): Promise<void>;
  stop(): Promise<void>;
}

function qbipcServer(echo: EchoService): ServerDriver {
  return {
    name: echo.name,
    rateOff: async () => echo.service.requestRateLimit(RateLimit.OFF),
    rateNormal: async () => echo.service.requestRateLimit(RateLimit.NORMAL),
    stop: () => echo.stop(),
  };
}

/** The flow-control C server prints its line once the rate limit is applied to every connection. */
async function signalApplied(server: LineChild, signal: NodeJS.Signals, line: RegExp): Promise<void> {
  const seen = server.waitFor(line, BOUND_MS, false);
  server.kill(signal);
  await seen;
}

function cServer(server: LineChild, name: string): ServerDriver {
  return {
    name,
    rateOff: () => signalApplied(server, 'SIGUSR1', /^rate limit OFF$/),
    rateNormal: () => signalApplied(server, 'SIGUSR2', /^rate limit NORMAL$/),
    async stop() {
      await server.stop();
      assertNoDirs(server.pid);
    },
  };
}

function assertNoDirs(pid: number): void {
  const left = connectionDirs(pid);
  if (left.length > 0) throw new Error(`the C server ${pid} left ${left.join(', ')}`);
}

/** Sets up one pair (the C server switches its rate limit on SIGUSR1/SIGUSR2). */
async function pairUp(t: ExecutionContext, pair: Pair, transport: Transport): Promise<{ client: ClientDriver; server: ServerDriver }> {
  const type = transport === 'socket' ? IpcType.SOCKET : IpcType.SHM;
  if (pair === 'qbipc client → libqb server') {
    const name = uniqueName(`c-${transport}`);
    const child = await startCServer(name, transport);
    return { client: new QbipcDriver(), server: cServer(child, name) };
  }
  const echo = await startEchoService({}, { type, tag: transport });
  const client = pair === 'qbipc client → qbipc server' ? new QbipcDriver() : new CDriver(t, await QbClient.start());
  return { client, server: qbipcServer(echo) };
}

/** Resolves once `done()` holds, re-checked on every change in `dir`; rejects after timeoutMs. */
function whenDirChanges(dir: string, done: () => boolean, timeoutMs = BOUND_MS): Promise<void> {
  if (done()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const watcher = watch(dir, () => {
      if (!done()) return;
      watcher.close();
      clearTimeout(timer);
      resolve();
    });
    const timer = setTimeout(() => {
      watcher.close();
      if (done()) resolve();
      else reject(new Error(`${dir}: the condition did not hold within ${timeoutMs} ms`));
    }, timeoutMs);
  });
}

/** A promise that rejects when `promise` has not settled within ms: "no hang". */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms))),
  ]);
}

for (const transport of TRANSPORTS) {
  for (const pair of PAIRS) {
    const title = `${transport.toUpperCase()}, ${pair}`;

    test.serial(`${title}: item 13: every size from 1 byte to the buffer size, payload checked`, async (t) => {
      const { client, server } = await pairUp(t, pair, transport);
      try {
        const size = await client.connect(server.name);
        t.is(size, 12328);
        t.is(await client.sweep(1, size - 16), size - 16);
      } finally {
        await client.close();
        await server.stop();
      }
    });

    test.serial(`${title}: item 21: 2,000 events arrive in order with their payloads`, async (t) => {
      const { client, server } = await pairUp(t, pair, transport);
      try {
        await client.connect(server.name);
        t.is(await client.events(2000, 64), 2000);
        await client.echo(100); // and round trips still work after them
      } finally {
        await client.close();
        await server.stop();
      }
    });

    test.serial(`${title}: items 23, 30: rate limit OFF makes sends fail with EAGAIN; NORMAL lets them through`, async (t) => {
      const { client, server } = await pairUp(t, pair, transport);
      try {
        await client.connect(server.name);
        await client.echo(10);
        await server.rateOff();
        t.is(await client.sendOnce(10), EAGAIN);
        await server.rateNormal();
        await client.echo(10);
        if (client instanceof QbipcDriver) {
          // A client with fcEnableMaxSet(0) ignores flow control; the server still does not read while it is on.
          await server.rateOff();
          t.is(client.client.fcEnableMaxSet(0), 0);
          t.is(await client.sendOnce(10), 0);
          await t.throwsAsync(client.client.recv(300), { code: 'ETIMEDOUT' });
          await server.rateNormal();
          t.is((await client.client.recv(BOUND_MS)).byteLength, 24 + 10, 'served once flow control is off');
          t.is(client.client.fcEnableMaxSet(3), -22, 'fc_enable_max above 2 is EINVAL');
        }
      } finally {
        await client.close();
        await server.stop();
      }
    });

    test.serial(`${title}: items 25, 26: the server killed mid-call → the client gets ENOTCONN, no hang, no files left`, async (t) => {
      const name = uniqueName(`gone-${transport}`);
      const server =
        pair === 'qbipc client → libqb server' ? await startCServer(name, transport) : await startQbipcServerChild(name, transport);
      try {
        if (pair === 'libqb client → qbipc server') {
          const c = await QbClient.start();
          try {
            await ok(t, c, `connect ${name} 12328`);
            const stream = c.cmd('rounds 100000000 64', BOUND_MS);
            await server.waitFor(new RegExp(`^busy pid=${c.pid}$`));
            server.kill('SIGKILL');
            const reply = parseReply(await stream);
            t.false(reply.ok);
            t.is(Number(reply.fields['errno']), ENOTCONN, `the libqb client reported ${JSON.stringify(reply.fields)}`);
            await server.exited;
          } finally {
            await c.close(); // qb_ipcc_disconnect: the server is dead, so the client removes its files
          }
        } else {
          const client = await connect(name, 12328, { timeoutMs: BOUND_MS });
          let error: unknown;
          try {
            for (let i = 1; error === undefined; i++) {
              const call = client.sendRecv(echoRequest(64, i), -1); // no timeout: only the hang-up can end it
              if (i === 100) server.kill('SIGKILL');
              await bounded(call, BOUND_MS, 'a call to a dead server').catch((e: unknown) => void (error = e));
            }
            t.is((error as { code?: string }).code, 'ENOTCONN', String(error as Error));
            t.false(client.isConnected);
            t.is(client.send(echoRequest(8, 1)), -ENOTCONN);
            await t.throwsAsync(client.recv(100), { code: 'ENOTCONN' });
            await server.exited;
          } finally {
            client.disconnect();
          }
        }
        t.deepEqual(removeEmptyDirs(server.pid), [], 'every file of the dead server was removed by its client');
      } finally {
        await server.stop();
        removeEmptyDirs(server.pid);
      }
    });

    test.serial(`${title}: item 25: the client killed mid-call → the server cleans up and serves on`, async (t) => {
      if (pair === 'qbipc client → libqb server') {
        const name = uniqueName(`cgone-${transport}`);
        const server = await startCServer(name, transport);
        try {
          const child = await startQbipcClientChild(name);
          await child.waitFor(/^busy$/);
          t.is(connectionDirs(server.pid).length, 1);
          child.kill('SIGKILL');
          await child.exited;
          await whenDirChanges('/dev/shm', () => connectionDirs(server.pid).length === 0);
          const probe = new QbipcDriver();
          await probe.connect(name);
          await probe.echo(32);
          await probe.close();
        } finally {
          await server.stop();
        }
        t.deepEqual(connectionDirs(server.pid), []);
        return;
      }
      const echo = await startEchoService(
        {},
        { type: transport === 'socket' ? IpcType.SOCKET : IpcType.SHM, tag: transport, behaviour: { reportRequests: true } },
      );
      try {
        let pid: number;
        let done: Promise<unknown>;
        let kill: () => void;
        if (pair === 'libqb client → qbipc server') {
          const c = await QbClient.start();
          await ok(t, c, `connect ${echo.name} 12328`);
          pid = c.pid;
          done = c.cmd('rounds 100000000 64', 60_000).catch(() => undefined);
          await echo.until((log) => log.filter((e) => e.callback === 'request' && e.pid === pid).length >= 100);
          kill = () => c.kill('SIGKILL');
        } else {
          const child = await startQbipcClientChild(echo.name);
          pid = child.pid;
          await child.waitFor(/^busy$/);
          kill = () => child.kill('SIGKILL');
          done = child.exited;
        }
        const dir = echo.service.connectionFirstGet()!.description.slice(0, -3);
        t.true(existsSync(dir));
        kill();
        await done;
        await echo.when('destroyed');
        t.false(existsSync(dir), 'its directory was removed');
        t.deepEqual(
          echo.log.filter((e) => e.callback !== 'request').map((e) => e.callback),
          ['accept', 'created', 'closed', 'destroyed'],
        );
        t.true(echo.log.every((e) => e.pid === pid));
        t.is(echo.service.stats().activeConnections, 0);
        const probe = new QbipcDriver();
        await probe.connect(echo.name);
        await probe.echo(32);
        await probe.close();
      } finally {
        await echo.stop();
      }
    });
  }
}
