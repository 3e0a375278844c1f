// Nothing outlives a connection: no file under /dev/shm, no file descriptor.
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { fdCount, shmEntries, startEchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

for (const mode of MODES) {
  test.serial(`${mode.name}: 1,000 connect/disconnect cycles leave no file and no fd behind`, async (t) => {
    const echo = await startEchoService({}, mode.options);
    const client = await QbClient.start();
    try {
      const fds = fdCount();
      for (let i = 0; i < 1000; i++) {
        await ok(t, client, `connect ${echo.name} 12328`);
        if (i % 100 === 0) await ok(t, client, 'echo 64');
        await ok(t, client, 'disconnect');
      }
      await echo.when('destroyed', 1000);
      t.deepEqual(shmEntries(), []);
      t.is(fdCount(), fds, 'fd count back to where it started');
      t.deepEqual(echo.service.stats(), { activeConnections: 0, closedConnections: 1000 });
    } finally {
      await client.close();
      await echo.stop();
    }
  });

  test.serial(`${mode.name}: SIGKILL of 50 clients mid-stream leaves no file and no fd behind`, async (t) => {
    const { qbclient } = await buildCPrograms();
    const echo = await startEchoService({}, { ...mode.options, behaviour: { reportRequests: 'first' } });
    const busy = echo.until((log) => new Set(log.filter((e) => e.callback === 'request').map((e) => e.pid)).size === 50);
    const fds = fdCount();
    const children = Array.from({ length: 50 }, () =>
      spawn(qbclient, ['-n', echo.name, '-k', '100000000', '-s', '256'], { stdio: 'ignore' }),
    );
    const exited = children.map((c) => once(c, 'exit'));
    try {
      await busy; // every client is in the middle of its stream
      for (const child of children) process.kill(child.pid!, 'SIGKILL');
      await Promise.all(exited);
      await echo.when('destroyed', 50);
      t.deepEqual(shmEntries(), []);
      t.is(fdCount(), fds, 'fd count back to where it started');
      t.is(echo.service.stats().activeConnections, 0);
    } finally {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await echo.stop();
    }
  });
}
