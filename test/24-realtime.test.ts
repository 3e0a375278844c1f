// options.realtimePriority: the serving threads run at SCHED_RR while the service
// runs (src/realtime.ts); refused, the service warns and serves at normal priority.
import test from 'ava';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { createService, IpcType } from '../src/index.js';
import { native } from '../src/native.js';
import { realtimePriorityOf } from '../src/realtime.js';
import { buildCPrograms, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService, uniqueName } from './helpers/echo-service.js';
import { MODES } from './helpers/modes.js';
import { LineChild } from './helpers/peers.js';
import { countThreads } from './helpers/threads.js';
import { waitUntil } from './helpers/wait-until.js';

const ROUND_ROBIN = 2;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

/** Whether this process may set SCHED_RR (root, CAP_SYS_NICE or RLIMIT_RTPRIO): tried on this thread, then undone. */
function mayBeRealtime(): boolean {
  const [policy, priority] = native.scheduling();
  if (native.setScheduling(ROUND_ROBIN, 1) < 0) return false;
  native.setScheduling(policy, priority);
  return true;
}

/** Threads of this process at SCHED_RR with `priority` (/proc/self/task/N/stat: rt_priority is field 40, policy 41). */
function roundRobinThreads(priority: number): number {
  return countThreads('stat', (stat) => {
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 on
    return Number(fields[40 - 3]) === priority && Number(fields[41 - 3]) === ROUND_ROBIN;
  });
}

test('options.realtimePriority must be an integer from 0 to 99', (t) => {
  for (const bad of [-1, 100, 1.5, '1']) {
    t.throws(() => createService(uniqueName('rt'), 0, IpcType.SHM, { msgProcess: () => 0 }, { realtimePriority: bad as number }), {
      instanceOf: RangeError,
      message: /options\.realtimePriority must be an integer from 0 \(normal scheduling\) to 99 \(SCHED_RR priority\)/,
    });
  }
});

test('all CPUs but one, at most, get a real-time serving thread: the first shards, none on 1 CPU', (t) => {
  t.deepEqual(
    [0, 1, 2, 3].map((index) => realtimePriorityOf(index, 5, 4)),
    [5, 5, 5, 0],
  );
  t.deepEqual(
    [0, 1].map((index) => realtimePriorityOf(index, 5, 2)),
    [5, 0],
  );
  t.is(realtimePriorityOf(0, 5, 1), 0);
});

test('setScheduling takes priority 0 with the normal policy and 1 to 99 with a real-time one', (t) => {
  for (const [policy, priority] of [
    [0, 1],
    [ROUND_ROBIN, 0],
    [ROUND_ROBIN, 100],
    [3, 1],
  ]) {
    t.throws(() => native.setScheduling(policy!, priority!), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' });
  }
});

for (const mode of MODES) {
  test.serial(
    `${mode.name}: the serving threads, all CPUs but one at most, run at SCHED_RR while the service runs, and serve`,
    async (t) => {
      const permitted = mayBeRealtime();
      const realtimeThreads = Math.min(Math.max(1, mode.workers), availableParallelism() - 1);
      const warnings: Array<{ message: string; fields?: object }> = [];
      const echo = await startEchoService(
        {},
        {
          ...mode.options,
          realtimePriority: 7,
          tag: 'rt',
          logger: { warn: (message, fields) => warnings.push({ message, fields }) },
        },
      );
      try {
        if (realtimeThreads === 0) {
          t.regex(warnings[0]?.message ?? '', /realtimePriority 7 is not applied on a machine with 1 CPU/);
        } else if (permitted) {
          if (mode.workers === 0) t.deepEqual(native.scheduling(), [ROUND_ROBIN, 7], 'in-thread: this thread serves');
          await waitUntil(() => roundRobinThreads(7) === realtimeThreads, 10_000, `${realtimeThreads} serving thread(s) at SCHED_RR 7`);
          t.deepEqual(warnings, []);
        } else {
          await waitUntil(() => warnings.length >= realtimeThreads, 10_000, 'a warning per real-time serving thread');
          t.regex(warnings[0]!.message, /could not run at SCHED_RR priority 7 \(EPERM\): that needs CAP_SYS_NICE/);
          t.like(warnings[0]!.fields, { event: 'scheduling', errno: -1 });
        }
        const { qbclient } = await buildCPrograms();
        const run = await runProgram(qbclient, ['-n', echo.name, '-k', '2000', '-s', '64'], { timeoutMs: 60_000 });
        t.regex(run.stdout, /^ok count=2000 .*errors=0/m, run.stdout + run.stderr);
        t.is(roundRobinThreads(7), permitted ? realtimeThreads : 0, 'still so after serving');
      } finally {
        await echo.stop();
      }
      t.deepEqual(native.scheduling(), [0, 0], 'this thread is back to normal scheduling');
      await waitUntil(() => roundRobinThreads(7) === 0, 10_000, 'no thread left at SCHED_RR 7');
    },
  );
}

for (const workers of [0, 1]) {
  test(`qbipc serve --rt-priority without CAP_SYS_NICE (workers ${workers}): says why and serves at normal priority`, async (t) => {
    if (process.getuid?.() !== 0) {
      // setpriv can drop a capability only for root; the refusal path is covered above for others.
      t.false(mayBeRealtime(), 'not root: the mode tests above took the refusal path');
      return;
    }
    const name = uniqueName('rt-cli');
    const serve = new LineChild('setpriv', [
      '--bounding-set=-sys_nice',
      '--inh-caps=-sys_nice',
      process.execPath,
      CLI,
      'serve',
      name,
      '--workers',
      String(workers),
      '--rt-priority',
      '3',
    ]);
    try {
      await serve.waitFor(/^ready pid=/, 30_000);
      await serve.waitFor(
        /could not run at SCHED_RR priority 3 \(EPERM\): that needs CAP_SYS_NICE or an RLIMIT_RTPRIO of at least 3 \(systemd: LimitRTPRIO=3\); it serves at its normal priority/,
        30_000,
      );
      const { qbclient } = await buildCPrograms();
      const run = await runProgram(qbclient, ['-n', name, '-k', '200', '-s', '64'], { timeoutMs: 60_000 });
      t.regex(run.stdout, /^ok count=200 .*errors=0/m, run.stdout + run.stderr);
    } finally {
      await serve.stop();
    }
  });
}
