// The built-in loop enters JS as a proper callback: process.nextTick callbacks
// and microtasks queued by a dispatch function run as soon as its batch
// returns, before the next JS callback of the same poll phase (here the batch
// of a second loop, whose fd became ready at the same time).
import test from 'ava';
import { execFile } from 'node:child_process';
import { LoopPriority, PollEvent } from '../src/index.js';
import { native } from '../src/native.js';
import { NativeLoop } from '../src/poll.js';

test('nextTick and microtasks queued by a dispatch run right after its batch', async (t) => {
  const loops = [new NativeLoop(), new NativeLoop()];
  const names = loops.map((_, i) => `qbipc-ticks-${process.pid}-${i}`);
  const listeners = names.map((name) => native.listenStream(name, true));
  const log: string[] = [];
  let pending = loops.length;
  const done = new Promise<void>((resolve) => {
    loops.forEach((loop, i) => {
      const fd = listeners[i]!;
      loop.dispatchAdd(LoopPriority.HIGH, fd, PollEvent.IN, () => {
        log.push(`dispatch${i}`);
        native.close(native.acceptStream(fd));
        loop.dispatchDel(fd);
        process.nextTick(() => log.push(`tick${i}`));
        queueMicrotask(() => log.push(`micro${i}`));
        if (--pending === 0) setImmediate(resolve);
        return 0;
      });
    });
  });
  // Both listeners become readable before the loop polls: one poll phase, two batches.
  const clients = names.map((name) => native.connectStream(name, true));
  await done;
  for (const fd of [...clients, ...listeners]) native.close(fd);
  for (const loop of loops) loop.close();
  const first = log[0]!.slice(-1);
  const second = first === '0' ? '1' : '0';
  t.deepEqual(
    log,
    [first, second].flatMap((i) => [`dispatch${i}`, `tick${i}`, `micro${i}`]),
  );
});

test('an exception from a dispatch function or a nextTick it queued reaches process uncaughtException, not the void', async (t) => {
  // In a child: with no handler the process must not go on as if nothing happened.
  const dist = new URL('../src/', import.meta.url).href;
  const script = `
    const { NativeLoop } = await import('${dist}poll.js');
    const { native } = await import('${dist}native.js');
    const seen = [];
    process.on('uncaughtException', (e) => { seen.push(e.message); if (seen.length === 2) { console.log(seen.join(',')); process.exit(0); } });
    const loop = new NativeLoop();
    const name = 'qbipc-throw-' + process.pid;
    const fd = native.listenStream(name, true);
    let calls = 0;
    loop.dispatchAdd(2, fd, 1, () => {
      native.close(native.acceptStream(fd));
      if (++calls === 1) { process.nextTick(() => { throw new Error('from a tick'); }); return 0; }
      loop.dispatchDel(fd);
      throw new Error('from the dispatch');
    });
    native.connectStream(name, true);
    native.connectStream(name, true);`;
  const { stdout, code } = await new Promise<{ stdout: string; code: number | null }>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (error, out) =>
      resolve({ stdout: out, code: error === null ? 0 : (error.code as number | null) }),
    );
  });
  t.is(code, 0);
  t.is(stdout.trim(), 'from a tick,from the dispatch');
});

test("a loop that keeps the thread hands it back: with an fd that never stops being ready, the thread's timers and immediates still run", async (t) => {
  // A listener with a connection never accepted stays readable: the loop finds it ready at every look.
  const loop = new NativeLoop(true);
  const name = `qbipc-keep-${process.pid}`;
  const listener = native.listenStream(name, true);
  const client = native.connectStream(name, true);
  const CALLS = 200_000;
  let calls = 0;
  let immediateAt: number | undefined;
  let timerAt: number | undefined;
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  setImmediate(() => (immediateAt = calls));
  setTimeout(() => (timerAt = calls), 5);
  await new Promise<void>((resolve) => {
    loop.dispatchAdd(LoopPriority.HIGH, listener, PollEvent.IN, () => {
      if (++calls === CALLS) {
        loop.dispatchDel(listener);
        resolve();
      }
      return 0;
    });
  });
  clearInterval(ticker);
  native.close(client);
  native.close(listener);
  loop.close();
  t.true(immediateAt !== undefined && immediateAt < 1000, `the immediate ran after ${immediateAt} dispatches`);
  t.true(timerAt !== undefined && timerAt < CALLS, `the 5 ms timer ran after ${timerAt} of ${CALLS} dispatches`);
  t.true(ticks > 1, `a 1 ms interval ticked ${ticks} times while the fd was served`);
});
