// options.spinMicros: after a batch the serving thread looks at its request rings
// for a while before it sleeps, and answers requests whose doorbells have not
// arrived (src/ring-spin.ts, docs/threading.md "Spinning on the rings").
import test from 'ava';
import { ACTIVE_TURNS, LOOKS_PER_CHECK, MISSES_ALLOWED, RETRY_EVERY, RingSpinner, type RingSource } from '../src/ring-spin.js';
import { buildCPrograms, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

/** A ring with `queued` requests; each round takes up to `perRound` (0: the handler backs off). */
class FakeRing implements RingSource {
  rounds = 0;
  looks = 0;
  lastServedTurn = -Infinity;
  constructor(
    public queued = 0,
    private readonly perRound = Infinity,
  ) {}
  hasRequests(): boolean {
    this.looks++;
    return this.queued > 0;
  }
  serveNow(): number {
    this.rounds++;
    const n = Math.min(this.queued, this.perRound);
    this.queued -= n;
    return n;
  }
}

/** A spinner on a fake clock that advances 10 µs at each yield. */
function spinner(windowMicros = 50) {
  const clock = { now: 0, yields: 0 };
  const spin = new RingSpinner(
    windowMicros,
    () => clock.now,
    () => {
      clock.yields++;
      clock.now += 0.01;
    },
  );
  return { spin, clock };
}

test('a spin serves the rings that hold requests and asks to be called again; it ends when the window passes with nothing found', (t) => {
  const { spin, clock } = spinner(50);
  const a = new FakeRing(2);
  const b = new FakeRing(0);
  spin.add(a);
  spin.add(b);
  t.true(spin.spin(), 'requests served: call again (their microtasks run in between)');
  t.is(a.queued, 0);
  t.is(a.rounds, 1);
  t.is(b.rounds, 0, 'a ring without requests is not served');
  b.queued = 1;
  t.true(spin.spin(), 'the same spin goes on');
  t.is(b.rounds, 1);
  t.false(spin.spin(), 'nothing more: the spin ends');
  t.is(clock.yields, 5, 'a 50 µs window at 10 µs per yield');
  // One look per ring per pass; the clock is read every LOOKS_PER_CHECK passes, and the sixth reading finds 50 µs gone.
  t.is(a.looks, 2 + 6 * LOOKS_PER_CHECK);
});

test('without rings, or with the window 0 µs (spinMicros: 0), a spin does not look', (t) => {
  const { spin, clock } = spinner(0);
  t.false(spin.spin());
  const a = new FakeRing(1);
  spin.add(a);
  t.false(spin.spin());
  t.is(a.looks, 0);
  t.is(a.rounds, 0);
  t.is(clock.yields, 0);
});

test(`another ring is active while it holds requests and for ${ACTIVE_TURNS} turns after it was served`, (t) => {
  const { spin } = spinner(0); // activity is tracked whether or not the thread spins
  const a = new FakeRing(0);
  const b = new FakeRing(0);
  spin.add(a);
  spin.add(b);
  t.false(spin.othersActive(a), 'neither ring has had requests');
  b.queued = 1;
  t.true(spin.othersActive(a), 'b holds a request');
  t.false(spin.othersActive(b), 'a ring is not its own other');
  b.queued = 0;
  spin.nextTurn();
  spin.markServed(b);
  for (let i = 0; i < ACTIVE_TURNS; i++) {
    spin.nextTurn();
    t.true(spin.othersActive(a), `served ${i + 1} turns ago`);
  }
  spin.nextTurn();
  t.false(spin.othersActive(a), `served ${ACTIVE_TURNS + 1} turns ago: idle`);
  spin.remove(b);
  spin.markServed(b);
  t.false(spin.othersActive(a), 'a removed ring does not count');
});

test(`spins that find nothing stop after ${MISSES_ALLOWED} in a row; one trial every ${RETRY_EVERY} batches; a hit restores them`, (t) => {
  const { spin } = spinner(50);
  const a = new FakeRing(0);
  spin.add(a);
  for (let i = 0; i < MISSES_ALLOWED; i++) t.false(spin.spin());
  const looks = a.looks;
  for (let i = 0; i < RETRY_EVERY - 1; i++) t.false(spin.spin());
  t.is(a.looks, looks, 'stopped: no look at all');
  a.queued = 1;
  t.true(spin.spin(), 'the trial spin finds the request');
  t.false(spin.spin(), 'and ends as a hit');
  for (let i = 0; i < MISSES_ALLOWED; i++) t.false(spin.spin());
  t.true(a.looks > looks + LOOKS_PER_CHECK * MISSES_ALLOWED, 'spinning again after the hit');
});

test('a ring whose round handles nothing (the handler backs off) is not served again in the same spin', (t) => {
  const { spin } = spinner(50);
  const stuck = new FakeRing(3, 0);
  const other = new FakeRing(1);
  spin.add(stuck);
  spin.add(other);
  t.true(spin.spin());
  t.false(spin.spin());
  t.is(stuck.rounds, 1, 'one round, as one doorbell would give it');
  t.is(stuck.queued, 3);
  stuck.rounds = 0;
  other.queued = 1;
  t.true(spin.spin(), 'a new spin');
  t.is(stuck.rounds, 1, 'tried again in the next spin');
});

test('a ring removed by its own round (the connection ended) does not disturb the others', (t) => {
  const { spin } = spinner(50);
  const a = new FakeRing(1);
  const b = new FakeRing(1);
  const ending: RingSource = {
    lastServedTurn: 0,
    hasRequests: () => true,
    serveNow: () => (spin.remove(ending), 1),
  };
  spin.add(a);
  spin.add(ending);
  spin.add(b);
  t.true(spin.spin());
  t.is(a.rounds + b.rounds, 2);
  t.false(spin.spin());
});

test('a round that ends other connections too (a handler that disconnects several) does not break the pass', (t) => {
  const { spin } = spinner(50);
  const rings = [new FakeRing(1), new FakeRing(1), new FakeRing(1)];
  const ender: RingSource = {
    lastServedTurn: 0,
    hasRequests: () => true,
    serveNow: () => {
      for (const r of [...rings, ender]) spin.remove(r);
      return 1;
    },
  };
  for (const r of rings) spin.add(r);
  spin.add(ender); // looked at first: the pass walks the list backwards
  t.true(spin.spin());
  t.false(spin.spin(), 'nothing left to look at: the spin ends');
});

// A raw client (test/c/hostile.c, "silent") sends a request, pauses 20 ms, then
// writes a request and posts its semaphore but holds its doorbell back 50 ms.
// A spinning thread answers it from the ring; a sleeping one only after the doorbell.
for (const mode of MODES) {
  test.serial(`${mode.name}: a spinning thread answers a request before its doorbell; without spinning, only after it`, async (t) => {
    const { hostile } = await buildCPrograms();
    const silentAnswers = async (spinMicros: number) => {
      const echo = await startEchoService({}, { ...mode.options, spinMicros, tag: 'spin' });
      try {
        const run = await runProgram(hostile, [echo.name, 'silent', '20'], { timeoutMs: 30_000 });
        t.regex(run.stdout, /^result=alive .*rounds=20/m, run.stdout + run.stderr);
        return Number(/silent=(\d+)/.exec(run.stdout)?.[1] ?? -1);
      } finally {
        await echo.stop();
      }
    };
    // A 100 ms window: the client's 20 ms pause, even stretched by a loaded VM, falls inside it.
    // Without spinning, the thread has read the round trip's doorbell and sleeps long before
    // the pause ends (a doorbell it left unread would bring it back to the ring).
    const spinning = await silentAnswers(100_000);
    const sleeping = await silentAnswers(0);
    t.true(spinning >= 18, `spinning: ${spinning} of 20 answered before their doorbell`);
    t.true(sleeping <= 2, `not spinning: ${sleeping} of 20 answered before their doorbell`);
  });
}
