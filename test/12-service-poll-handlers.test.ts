// qb_ipcs_poll_handlers_set: every fd the service watches, and every deferred
// job, goes through the application's handlers. Here they wrap the built-in
// loop (level-triggered: the application's loop knows no edge triggering).
import test from 'ava';
import { LoopPriority, PollEvent, type PollHandlers } from '../src/index.js';
import { NativeLoop } from '../src/poll.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

function recordingHandlers(): { handlers: PollHandlers; calls: string[]; watched: Set<number>; close(): void } {
  const inner = new NativeLoop();
  const calls: string[] = [];
  const watched = new Set<number>();
  const handlers: PollHandlers = {
    jobAdd(priority, fn) {
      calls.push(`job ${LoopPriority[priority]}`);
      return inner.jobAdd(priority, fn);
    },
    dispatchAdd(priority, fd, events, fn) {
      calls.push(`add ${fd}`);
      watched.add(fd);
      return inner.dispatchAdd(priority, fd, events, fn);
    },
    dispatchMod(priority, fd, events, fn) {
      calls.push(`mod ${fd} ${events & PollEvent.IN ? 'IN' : '-'}`);
      return inner.dispatchMod(priority, fd, events, fn);
    },
    dispatchDel(fd) {
      calls.push(`del ${fd}`);
      watched.delete(fd);
      return inner.dispatchDel(fd);
    },
  };
  return { handlers, calls, watched, close: () => inner.close() };
}

for (const mode of MODES) {
  test.serial(`${mode.name}: custom poll handlers carry the listener, handshakes and connections`, async (t) => {
    const loop = recordingHandlers();
    const echo = await startEchoService(
      {},
      {
        ...mode.options,
        behaviour: { closedRetries: 1 },
        beforeRun: (s) => s.pollHandlersSet(loop.handlers),
      },
    );
    // In worker mode the application's loop carries the main thread's fds (listener,
    // handshakes); each worker watches its connections with its own loop.
    const served = mode.workers === 0 ? 1 : 0;
    const client = await QbClient.start();
    try {
      t.is(loop.watched.size, 1, 'the listening socket');
      await ok(t, client, `connect ${echo.name} 12328`);
      t.is(loop.watched.size, 1 + served, 'the listener (and the connection in-thread); the handshake fd came and went');
      await ok(t, client, 'rounds 2000 100');
      await ok(t, client, 'events 2000 500');
      await ok(t, client, 'disconnect');
      await echo.when('destroyed');
      if (served) t.true(loop.calls.includes('job LOW'), 'the connectionClosed retry ran as a LOW job');
      t.is(echo.count('closed'), 2, 'connectionClosed was called again after returning 1');
      t.is(loop.watched.size, 1);
      t.throws(() => echo.service.pollHandlersSet(loop.handlers), { message: /before run/ });
      await echo.stop();
      t.is(loop.watched.size, 0, 'destroy() stops watching everything');
    } finally {
      await client.close();
      await echo.stop();
      loop.close();
    }
  });
}

test('pollHandlersSet validates the handlers', async (t) => {
  const echo = await startEchoService(
    {},
    { beforeRun: (s) => t.throws(() => s.pollHandlersSet({} as PollHandlers), { message: /jobAdd/ }) },
  );
  await echo.stop();
});

test('service ref()/unref(): as libqb, dropping the last reference never stops a running service; destroy() does', async (t) => {
  const echo = await startEchoService();
  const old = await QbClient.start();
  const newcomer = await QbClient.start();
  try {
    await ok(t, old, `connect ${echo.name} 12328`);
    echo.service.ref();
    echo.service.unref();
    echo.service.unref();
    t.is(echo.count('destroyed'), 0);
    await ok(t, old, 'echo 100');
    await ok(t, newcomer, `connect ${echo.name} 12328`);
    await ok(t, newcomer, 'echo 100');
    await echo.service.destroy();
    t.is(echo.count('destroyed'), 2, 'destroy() disconnected both');
  } finally {
    await old.close();
    await newcomer.close();
    await echo.stop();
  }
});
