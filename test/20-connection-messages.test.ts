// Messages between real libqb 2.0.6 C clients and a qbipc SHM service.
// Checklist items 13, 18, 19, 20, 21 (docs/wire.md §18).
import test from 'ava';
import { buildCPrograms, QbClient, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

for (const mode of MODES) {
  test.serial(`${mode.name}: item 13: round trips of every size from 1 byte to the buffer size, payload checked`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      const { buffer_size } = await ok(t, client, `connect ${echo.name} 12328`);
      t.is(Number(buffer_size), 12328);
      // Request = 16-byte header + payload, so the largest payload is buffer size - 16.
      const { count } = await ok(t, client, `sweep 1 ${12328 - 16}`, 120_000);
      t.is(Number(count), 12328 - 16);
      t.is(echo.service.connectionFirstGet()?.stats().requests, 12328 - 16);
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: 8 concurrent clients x 3000 round trips, 0 errors`, async (t) => {
    const echo = await startEchoService({}, { ...mode.options, behaviour: { reportRequests: true } });
    try {
      const { qbclient } = await buildCPrograms();
      const runs = await Promise.all(
        Array.from({ length: 8 }, () => runProgram(qbclient, ['-n', echo.name, '-k', '3000', '-s', '64'], { timeoutMs: 60_000 })),
      );
      for (const run of runs) {
        t.is(run.code, 0, run.stdout + run.stderr);
        t.regex(run.stdout, /^ok count=3000 .*errors=0/m);
      }
      await echo.when('destroyed', 8);
      t.is(echo.count('request'), 8 * 3000);
    } finally {
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: items 20, 21: 100,000 events reach one client in order, none lost`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      const { count } = await ok(t, client, 'events 100000 16', 120_000);
      t.is(Number(count), 100000);
      const stats = echo.service.connectionFirstGet()!.stats();
      t.is(stats.events, 100000);
      t.is(stats.eventQLength, 0, 'the client took every event');
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: a client sends several requests before reading any response`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 65536`);
      const { count } = await ok(t, client, 'pipeline 16 100 200', 60_000);
      t.is(Number(count), 16 * 200);
      const { qbclient } = await buildCPrograms();
      const run = await runProgram(qbclient, ['-n', echo.name, '-k', '5000', '-s', '64', '-d', '16'], { timeoutMs: 60_000 });
      t.is(run.code, 0, run.stdout + run.stderr);
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: item 18: a client blocked in qb_ipcc_recv(-1) is woken by the response`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      for (let i = 0; i < 200; i++) {
        await ok(t, client, 'send 1 32');
        const reply = await ok(t, client, 'recv -1', 10_000); // no timeout: only a futex wake returns it
        t.is(Number(reply['n']), 24 + 32);
      }
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(
    `${mode.name}: item 18: a response sent after msgProcess returned (from a timer) wakes a client blocked in qb_ipcc_recv(-1)`,
    async (t) => {
      // Responses sent inside a dispatch round wake the client once, at the round's end;
      // one sent outside any round must wake it by itself.
      const echo = await startEchoService({}, { ...mode.options, behaviour: { deferEcho: true } });
      const client = await QbClient.start();
      try {
        await ok(t, client, `connect ${echo.name} 12328`);
        for (let i = 0; i < 40; i++) {
          await ok(t, client, 'send 1 32');
          const reply = await ok(t, client, 'recv -1', 10_000);
          t.is(Number(reply['n']), 24 + 32);
        }
      } finally {
        await client.close();
        await echo.stop();
      }
    },
  );

  test.serial(`${mode.name}: items 19, 20: events interleave with round trips; doorbells do not pile up`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      for (let i = 0; i < 50; i++) {
        await ok(t, client, 'rounds 100 200');
        await ok(t, client, 'events 50 100');
        t.is((await ok(t, client, 'fdpoll 0'))['revents'], '0', 'no event doorbell left unread');
      }
      const stats = echo.service.connectionFirstGet()!.stats();
      t.is(stats.requests, 50 * 101);
      t.is(stats.events, 50 * 50);
    } finally {
      await client.close();
      await echo.stop();
    }
  });
}
