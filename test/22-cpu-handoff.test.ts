// options.yieldToClients: after a dry round's wake the serving thread yields the
// CPU so that a client woken on it can send its next request before the round
// ends (src/cpu-handoff.ts, docs/threading.md step 5).
import test from 'ava';
import { Connection, type ConnectionOwner } from '../src/connection.js';
import { Cell } from '../src/connection-cells.js';
import { ConnectionState, LoopPriority } from '../src/constants.js';
import { CpuHandoff, MISSES_ALLOWED, RETRY_EVERY, YIELDS_PER_ROUND } from '../src/cpu-handoff.js';
import { createService, IpcType } from '../src/index.js';
import { ShmTransport } from '../src/transport/shm.js';
import { buildCPrograms, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

test('a connection yields while yielding finds requests, stops after 8 misses in a row, then tries once every 64 dry rounds', (t) => {
  let yields = 0;
  const inner = new CpuHandoff(() => yields++);
  // Each look here is a round of its own (the per-round cap has a test below).
  const handoff = {
    yieldToClient: () => (inner.startRound(), inner.yieldToClient()),
    found: (request: boolean) => inner.found(request),
  };
  // Hits keep it yielding.
  for (let i = 0; i < 100; i++) {
    t.true(handoff.yieldToClient());
    handoff.found(true);
  }
  t.is(yields, 100);
  // Misses: MISSES_ALLOWED yields, then none.
  for (let i = 0; i < MISSES_ALLOWED; i++) {
    t.true(handoff.yieldToClient());
    handoff.found(false);
  }
  t.is(yields, 100 + MISSES_ALLOWED);
  for (let i = 0; i < RETRY_EVERY - 1; i++) t.false(handoff.yieldToClient());
  t.is(yields, 100 + MISSES_ALLOWED, 'no yield while stopped');
  // The trial: a miss stops it again for RETRY_EVERY rounds; a hit restarts it.
  t.true(handoff.yieldToClient());
  handoff.found(false);
  for (let i = 0; i < RETRY_EVERY - 1; i++) t.false(handoff.yieldToClient());
  t.true(handoff.yieldToClient());
  handoff.found(true);
  for (let i = 0; i < MISSES_ALLOWED; i++) {
    t.true(handoff.yieldToClient(), 'a hit gives back every allowed miss');
    handoff.found(false);
  }
  t.false(handoff.yieldToClient());
});

test(`a round yields ${YIELDS_PER_ROUND} times at most, hits or not: then the thread's other connections get their turn`, (t) => {
  let yields = 0;
  const handoff = new CpuHandoff(() => yields++);
  handoff.startRound();
  for (let i = 0; i < YIELDS_PER_ROUND; i++) {
    t.true(handoff.yieldToClient());
    handoff.found(true);
  }
  t.false(handoff.yieldToClient(), 'the round is over');
  t.is(yields, YIELDS_PER_ROUND);
  handoff.startRound();
  t.true(handoff.yieldToClient(), 'the next round yields again');
});

/**
 * An SHM transport in a round whose ring answers from a script (1: a request,
 * 0: dry): enough to watch a dispatch round decide when to wake, yield and look
 * again. The connection serves the round; the ring, wake and yield are stubs.
 */
function roundWith(yieldToClients: boolean, script: number[], othersActive = false): { log: string[]; handled: number } {
  const log: string[] = [];
  const owner = {
    serviceId: 0,
    context: undefined,
    priority: LoopPriority.MED,
    budget: 5,
    yieldToClients,
    poll: { jobAdd: () => 0 },
    handlers: { msgProcess: () => 0 },
    connectionActivated: () => undefined,
    connectionClosing: () => undefined,
    connectionGone: () => undefined,
    handlerFailed: (error: unknown) => {
      throw error;
    },
  } as unknown as ConnectionOwner;
  const conn = new Connection(owner, -1, 1, { pid: 1, uid: 0, gid: 0 });
  const transport = Object.create(ShmTransport.prototype) as ShmTransport;
  Object.assign(transport, {
    host: { poll: { othersActive: () => (log.push('others?'), othersActive) } },
    inRound: true,
    handoff: yieldToClients ? new CpuHandoff(() => log.push('yield')) : undefined,
    requestId: 1,
    requestSize: 16,
    requestCapacity: 16,
    nextRequest: () => {
      const rc = script.shift() ?? 0;
      log.push(`next=${rc}`);
      return rc;
    },
    wakeHeldSoFar: () => (log.push('wake'), true),
    requestView: () => new Uint8Array(16),
    reclaim: () => 0,
  });
  Object.assign(conn as unknown as { transport: ShmTransport }, { transport });
  conn.cells[Cell.STATE] = ConnectionState.ESTABLISHED;
  conn.serveRound();
  return { log, handled: conn.cells[Cell.REQUESTS]! };
}

test('a dry ring after a wake: the round yields and looks once more; a request found then is served in the same round', (t) => {
  // request, dry → wake, still dry → yield, a request (hit) → serve, dry → wake, dry → yield, dry (miss) → end.
  const { log, handled } = roundWith(true, [1, 0, 0, 1, 0, 0, 0]);
  const dryThenYield = ['next=0', 'wake', 'next=0', 'others?', 'yield'];
  t.deepEqual(log, ['next=1', ...dryThenYield, 'next=1', ...dryThenYield, 'next=0']);
  t.is(handled, 2);
});

test("while another of the thread's connections is active the round does not yield: it ends, and the others are served", (t) => {
  const { log, handled } = roundWith(true, [1, 0, 0, 1], true);
  t.deepEqual(log, ['next=1', 'next=0', 'wake', 'next=0', 'others?']);
  t.is(handled, 1);
});

test('with yieldToClients off the round never yields: it ends at the look after the wake', (t) => {
  const { log, handled } = roundWith(false, [1, 0, 0, 1]);
  t.deepEqual(log, ['next=1', 'next=0', 'wake', 'next=0']);
  t.is(handled, 1);
});

test('options.yieldToClients must be a boolean', (t) => {
  t.throws(() => createService('ok', 0, IpcType.SHM, { msgProcess: () => 0 }, { yieldToClients: 1 as unknown as boolean }), {
    instanceOf: TypeError,
    message: /options\.yieldToClients must be a boolean, got 1/,
  });
});

for (const mode of MODES) {
  test.serial(`${mode.name}: yieldToClients off: 2 clients x 2000 round trips, 0 errors`, async (t) => {
    const echo = await startEchoService({}, { ...mode.options, yieldToClients: false });
    try {
      const { qbclient } = await buildCPrograms();
      const runs = await Promise.all(
        [0, 1].map(() => runProgram(qbclient, ['-n', echo.name, '-k', '2000', '-s', '64'], { timeoutMs: 60_000 })),
      );
      for (const run of runs) {
        t.is(run.code, 0, run.stdout + run.stderr);
        t.regex(run.stdout, /^ok count=2000 .*errors=0/m);
      }
    } finally {
      await echo.stop();
    }
  });
}
