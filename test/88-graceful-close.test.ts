// Issue 16, "Conventions": service.close({ graceMs }) stops accepting at once
// (a new client gets ECONNREFUSED), lets the established clients go on — a
// client mid-request (an async msgProcess that answers from a timer) gets its
// response — and resolves as soon as the last client has gone, or at graceMs
// disconnects the rest as destroy() does. Symbol.asyncDispose on the service
// (close() with the default grace) and on the client (disconnect()).
// In-thread and with worker threads.
import test from 'ava';
import { once } from 'node:events';
import { BroadcastChannel } from 'node:worker_threads';
import {
  connect,
  createService,
  DEFAULT_CLOSE_GRACE_MS,
  IpcType,
  QbError,
  readResponseHeader,
  writeRequestHeader,
  type Client,
  type Service,
  type ServiceOptions,
} from '../src/index.js';
import { shmEntries, uniqueName } from './helpers/echo-service.js';
import { MODES } from './helpers/modes.js';
import { slowEchoHandlers } from './helpers/slow-echo.js';

const MODES_TESTED = MODES.filter((m) => m.workers !== 1);
const DELAY_MS = 300;

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

interface SlowService {
  service: Service;
  name: string;
  /** Resolves when the service has received a request from `pid`. */
  requestFrom(pid: number): Promise<void>;
  stop(): Promise<void>;
}

async function startSlowService(options: ServiceOptions, type = IpcType.SHM): Promise<SlowService> {
  const name = uniqueName('slow');
  const seen: number[] = [];
  const waiters: Array<{ pid: number; resolve: () => void }> = [];
  const report = (pid: number) => {
    seen.push(pid);
    for (const w of waiters.filter((x) => x.pid === pid)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  let channel: BroadcastChannel | undefined;
  let service: Service;
  if ((options.workers ?? 0) > 0) {
    channel = new BroadcastChannel(`qbipc-slow-${name}`);
    channel.onmessage = (event) => report((event as { data: number }).data);
    service = createService(
      name,
      0,
      type,
      {},
      {
        ...options,
        workerModule: new URL('./helpers/slow-echo.js', import.meta.url),
        workerData: { channel: `qbipc-slow-${name}`, delayMs: DELAY_MS },
      },
    );
  } else {
    service = createService(name, 0, type, slowEchoHandlers(DELAY_MS, report), options);
  }
  service.on('error', () => undefined);
  await service.run();
  return {
    service,
    name,
    requestFrom: (pid) => (seen.includes(pid) ? Promise.resolve() : new Promise((resolve) => waiters.push({ pid, resolve }))),
    async stop() {
      await service.destroy();
      channel?.close();
    },
  };
}

function echoRequest(payload: number): Uint8Array {
  const request = writeRequestHeader(new Uint8Array(20), { id: 1, size: 20 });
  new DataView(request.buffer).setUint32(16, payload, true);
  return request;
}

for (const { name: mode, options } of MODES_TESTED) {
  for (const type of [IpcType.SHM, IpcType.SOCKET]) {
    test.serial(
      `${mode}, ${IpcType[type]}: close({ graceMs }) refuses new clients at once, a client mid-request gets its response, and it resolves when the last client leaves`,
      async (t) => {
        const slow = await startSlowService(options, type);
        let client: Client | undefined;
        try {
          client = await connect(slow.name, 12328);
          t.is(client.send(echoRequest(0xc0ffee)), 20);
          await slow.requestFrom(process.pid); // the request is being processed: its answer comes from a timer
          const closed = once(slow.service, 'close');
          const started = Date.now();
          const closing = slow.service.close({ graceMs: 20_000 });

          const refused = await t.throwsAsync(connect(slow.name, 12328), { instanceOf: QbError });
          t.is(refused?.code, 'ECONNREFUSED', 'nothing listens once close() is called');

          const response = await client.recv(10_000);
          t.like(readResponseHeader(response), { id: 1, size: 28, error: 0 });
          t.is(new DataView(response.buffer, response.byteOffset).getUint32(24, true), 0xc0ffee);
          t.true(client.isConnected, 'served on during the grace');
          // Still served: a second request during the grace is answered too.
          const again = await client.sendRecv(echoRequest(7), 10_000);
          t.is(new DataView(again.buffer, again.byteOffset).getUint32(24, true), 7);

          client.disconnect();
          await closing;
          await closed;
          const took = Date.now() - started;
          t.true(took < 10_000, `close() resolved ${took} ms after it began: when the last client left, not at graceMs`);
          t.is(slow.service.stats().activeConnections, 0);
        } finally {
          client?.disconnect();
          await slow.stop();
        }
      },
    );
  }

  test.serial(`${mode}: at graceMs, close() disconnects the clients still there, as destroy() does`, async (t) => {
    const slow = await startSlowService(options);
    const client = await connect(slow.name, 12328);
    try {
      const started = Date.now();
      await slow.service.close({ graceMs: 200 });
      const took = Date.now() - started;
      t.true(took >= 190, `resolved after ${took} ms`);
      const error = await t.throwsAsync(client.recv(5000), { instanceOf: QbError });
      t.is(error?.code, 'ENOTCONN');
      t.false(client.isConnected);
    } finally {
      client.disconnect();
      await slow.stop();
    }
  });

  test.serial(`${mode}: destroy() during close() ends the grace at once; both resolve`, async (t) => {
    const slow = await startSlowService(options);
    const client = await connect(slow.name, 12328);
    try {
      const closing = slow.service.close({ graceMs: 60_000 });
      const started = Date.now();
      await slow.service.destroy();
      await closing;
      t.true(Date.now() - started < 10_000);
      await t.throwsAsync(client.recv(5000), { instanceOf: QbError, message: /server went away|not connected/ });
    } finally {
      client.disconnect();
      await slow.stop();
    }
  });
}

test.serial(
  'Symbol.asyncDispose: `await using` closes the service (close() with the default grace) and disconnects the client',
  async (t) => {
    t.is(DEFAULT_CLOSE_GRACE_MS, 5000);
    const slow = await startSlowService({});
    let client: Client | undefined;
    const closed = once(slow.service, 'close');
    {
      await using service = slow.service;
      await using c = await connect(slow.name, 12328);
      client = c;
      const response = await c.sendRecv(echoRequest(1), 10_000);
      t.is(response.byteLength, 28);
      t.truthy(service);
    } // the client is disposed first (declared last), so the service's close() resolves at once
    await closed;
    t.false(client.isConnected);
    await t.throwsAsync(connect(slow.name, 12328), { instanceOf: QbError, code: 'ECONNREFUSED' } as never);
    await slow.stop();
  },
);

test('close() validates graceMs', async (t) => {
  const service = createService(uniqueName('grace'), 0, IpcType.SHM, { msgProcess: () => 0 });
  t.throws(() => void service.close({ graceMs: -1 }), { instanceOf: RangeError });
  await service.close(); // never run: as destroy()
});
