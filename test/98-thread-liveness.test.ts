// While traffic flows the poller keeps the serving thread (native/poller.cc:
// it looks for the next batch of ready fds itself instead of returning to
// libuv first). These tests would fail if it held the thread: the handlers'
// microtasks, immediates, timers and awaits, and the thread's own timers, must
// keep running under sustained load from stock libqb clients.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { createService, IpcType, makeResponse, readRequestHeader, type Connection } from '../src/index.js';
import { buildCPrograms, runProgram } from './helpers/c-programs.js';
import { shmEntries, uniqueName } from './helpers/echo-service.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

const CLIENTS = 4;
const ROUND_TRIPS = 50_000;
/** Every this many requests the handler also schedules an immediate and a timer, and awaits a timer. */
const EVERY = 64;

for (const type of [IpcType.SHM, IpcType.SOCKET]) {
  const label = type === IpcType.SHM ? 'SHM' : 'SOCKET';
  test.serial(
    `${label}: under sustained load the handlers' microtasks, immediates, timers and awaits run, and so do the thread's own timers`,
    async (t) => {
      let requests = 0;
      let microtasks = 0;
      let immediates = 0;
      let timers = 0;
      let awaited = 0;
      const answer = (conn: Connection, request: Uint8Array) => {
        const { id } = readRequestHeader(request);
        conn.responseSend(makeResponse(id, 0, request.subarray(16)));
      };
      const name = uniqueName('live');
      const service = createService(name, 0, type, {
        msgProcess(conn, request) {
          const n = ++requests;
          answer(conn, request); // the clients pipeline: answered at once, the traffic never pauses for the checks below
          queueMicrotask(() => microtasks++);
          if (n % EVERY !== 0) return;
          setImmediate(() => immediates++);
          setTimeout(() => timers++, 1);
          return (async () => {
            await sleep(1);
            awaited++;
          })();
        },
      });
      // The thread's own timer: the longest gap between its ticks while the load runs.
      let last = performance.now();
      let longestGap = 0;
      const ticker = setInterval(() => {
        const now = performance.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
      }, 5);
      try {
        await service.run();
        const { qbclient } = await buildCPrograms();
        last = performance.now();
        const runs = await Promise.all(
          Array.from({ length: CLIENTS }, () =>
            runProgram(qbclient, ['-n', name, '-k', String(ROUND_TRIPS), '-s', '64', '-d', '16'], { timeoutMs: 90_000 }),
          ),
        );
        for (const run of runs) {
          t.is(run.code, 0, run.stdout + run.stderr);
          t.regex(run.stdout, /^ok count=50000 .*errors=0/m);
        }
        await sleep(50); // the last timers and awaits

        t.is(requests, CLIENTS * ROUND_TRIPS);
        t.is(microtasks, requests, 'a microtask per request');
        const scheduled = Math.floor(requests / EVERY);
        t.is(awaited, scheduled, 'every await resumed');
        t.is(immediates, scheduled);
        t.is(timers, scheduled);
        t.true(longestGap < 500, `the thread's 5 ms interval timer went ${longestGap.toFixed(0)} ms without a tick`);
      } finally {
        clearInterval(ticker);
        await service.destroy();
      }
    },
  );
}
