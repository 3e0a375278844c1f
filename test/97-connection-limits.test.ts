// options.maxConnections and options.maxConnectionsPerUid: a client beyond a
// limit is refused with EAGAIN before anything is made for it, refused clients
// take no place, and a place that frees up serves the next client. Per uid with
// clients running as uid 65534 beside root's (setpriv).
import test from 'ava';
import { createService, IpcType } from '../src/index.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService, type EchoService } from './helpers/echo-service.js';
import { fails, ok } from './helpers/expect.js';
import { waitUntil } from './helpers/wait-until.js';

const EAGAIN = 11;
const NOBODY = 65534;
const MODES = [
  { name: 'in-thread', options: { workers: 0 } },
  { name: 'workers 2', options: { workers: 2 } },
];

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

/** Connected clients, closed at the end of each test. */
async function connected(
  t: Parameters<typeof ok>[0],
  echo: EchoService,
  clients: QbClient[],
  as: { uid?: number; gid?: number } = {},
): Promise<QbClient> {
  const client = await QbClient.start(as);
  clients.push(client);
  await ok(t, client, `connect ${echo.name} 12328`);
  await ok(t, client, 'echo 100');
  return client;
}

async function refused(
  t: Parameters<typeof ok>[0],
  echo: EchoService,
  clients: QbClient[],
  as: { uid?: number; gid?: number } = {},
): Promise<void> {
  const client = await QbClient.start(as);
  clients.push(client);
  await fails(t, client, `connect ${echo.name} 12328`, EAGAIN);
}

/** The service's connections (what the limits count once placed) come down to `n`. */
function settled(echo: EchoService, n: number): Promise<void> {
  return waitUntil(() => [...echo.service.connections()].length === n, 5000, `the service to hold ${n} connections`);
}

for (const mode of MODES) {
  test.serial(`${mode.name}: maxConnections 3 refuses the fourth client with EAGAIN and serves one once a place is free`, async (t) => {
    const echo = await startEchoService({}, { ...mode.options, maxConnections: 3 });
    const clients: QbClient[] = [];
    try {
      const first = [await connected(t, echo, clients), await connected(t, echo, clients), await connected(t, echo, clients)];
      await refused(t, echo, clients);
      await refused(t, echo, clients, { uid: NOBODY, gid: NOBODY }); // the total counts every uid
      t.is(echo.count('accept'), 3, 'a client beyond the limit never reaches connectionAccept');
      await ok(t, first[1]!, 'disconnect');
      await settled(echo, 2);
      await connected(t, echo, clients);
      await refused(t, echo, clients);
      await ok(t, first[0]!, 'echo 1000', 5000); // those served go on being served
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: maxConnectionsPerUid 2 counts each uid on its own`, async (t) => {
    const echo = await startEchoService({}, { ...mode.options, maxConnectionsPerUid: 2 });
    const clients: QbClient[] = [];
    const nobody = { uid: NOBODY, gid: NOBODY };
    try {
      const root = [await connected(t, echo, clients), await connected(t, echo, clients)];
      await refused(t, echo, clients);
      await connected(t, echo, clients, nobody);
      await connected(t, echo, clients, nobody);
      await refused(t, echo, clients, nobody);
      await ok(t, root[0]!, 'disconnect');
      await settled(echo, 3);
      await connected(t, echo, clients);
      await refused(t, echo, clients);
      await refused(t, echo, clients, nobody);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await echo.stop();
    }
  });
}

test('maxConnections and maxConnectionsPerUid must be positive integers when given', (t) => {
  const handlers = { msgProcess: () => 0 };
  for (const option of ['maxConnections', 'maxConnectionsPerUid']) {
    for (const bad of [0, -1, 1.5, Number.NaN, '3', null]) {
      t.throws(() => createService('qbt-limits', 0, IpcType.SHM, handlers, { [option]: bad }), {
        instanceOf: RangeError,
        message: new RegExp(`options.${option} must be a positive integer`),
      });
    }
    t.notThrows(() => createService('qbt-limits', 0, IpcType.SHM, handlers, { [option]: 1 }));
    t.notThrows(() => createService('qbt-limits', 0, IpcType.SHM, handlers, { [option]: undefined }));
  }
});
