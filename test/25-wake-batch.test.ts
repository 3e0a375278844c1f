// Clients' wakes held over a batch of the serving thread and issued together
// (src/shm/wake-batch.ts), and the native call that issues them in one system
// call (native/wake-batch.cc: io_uring's futex wake, else FUTEX_WAKE each).
import test from 'ava';
import { Worker } from 'node:worker_threads';
import { native } from '../src/native.js';
import { WakeBatch, type HeldWakes, type Waker } from '../src/shm/wake-batch.js';
import { sleepsInFutex } from './helpers/futex-sleep.js';

/** A response ring holding `held` posts whose client waits (or not). */
class FakeRing implements HeldWakes {
  wokenNow = 0;
  constructor(
    readonly wakeAddress: number,
    public held = 1,
    private readonly waiting = true,
  ) {}
  get hasHeldWakes(): boolean {
    return this.held > 0;
  }
  takeHeldWakes(): number {
    const posts = this.held;
    this.held = 0;
    return this.waiting ? posts : 0;
  }
  wakeHeld(): boolean {
    const had = this.held > 0;
    this.wokenNow += this.held;
    this.held = 0;
    return had;
  }
}

/** A batch whose system calls are recorded: each call's [address, count] pairs. */
function recordingBatch(othersReady = false) {
  const calls: Array<Array<[number, number]>> = [];
  const waker: Waker = {
    batches: () => true,
    wakeOne: (address, count) => void calls.push([[address, count]]),
    wakeMany: (addresses, counts, n) =>
      void calls.push(Array.from({ length: n }, (_, i) => [addresses[i]!, counts[i]!] as [number, number])),
  };
  const batch = new WakeBatch(waker);
  batch.prepare();
  batch.setOthersReady(() => othersReady);
  return { batch, calls, setOthersReady: (ready: boolean) => batch.setOthersReady(() => ready) };
}

test('outside a batch a round end wakes its client at once, as before', (t) => {
  const { batch, calls } = recordingBatch(true);
  const ring = new FakeRing(100, 2);
  batch.holdOrWake(ring);
  t.is(ring.wokenNow, 2);
  t.deepEqual(calls, []);
});

test('at a dry point with other rings ready the wake waits; with none it goes out with every wake held, in one call', (t) => {
  const { batch, calls, setOthersReady } = recordingBatch(true);
  const a = new FakeRing(100);
  const b = new FakeRing(200, 3);
  const c = new FakeRing(300);
  batch.begin();
  t.true(batch.holdAtDryPoint(a, 'a'), 'held: another ring holds requests');
  batch.holdOrWake(b); // a round that ended on its budget
  t.deepEqual(calls, [], 'nothing woken while other rings are served');
  setOthersReady(false);
  t.false(batch.holdAtDryPoint(c, 'c'), 'nothing else to serve: woken now');
  t.deepEqual(calls, [
    [
      [100, 1],
      [200, 3],
      [300, 1],
    ],
  ]);
  batch.end();
  t.is(calls.length, 1, 'nothing left for the end of the batch');
});

test('the end of a batch wakes what is held; a ring woken meanwhile or nobody waiting costs nothing; one ring is one plain wake', (t) => {
  const { batch, calls } = recordingBatch(true);
  const closed = new FakeRing(100);
  const idle = new FakeRing(200, 1, false); // its client is not asleep: no wake needed
  const last = new FakeRing(300, 4);
  batch.begin();
  for (const ring of [closed, idle, last]) batch.holdOrWake(ring);
  closed.wakeHeld(); // the connection closed inside the batch and woke its client itself
  batch.holdOrWake(new FakeRing(400, 0)); // nothing held: not kept
  batch.end();
  t.deepEqual(calls, [[[300, 4]]]);
  batch.holdOrWake(new FakeRing(500));
  t.is(calls.length, 1, 'the batch is closed: wakes go out at once again');
});

test('where many wakes cannot go out in one call nothing is held: each wakes where it did before', (t) => {
  const calls: number[] = [];
  const batch = new WakeBatch({ batches: () => false, wakeOne: (address) => void calls.push(address), wakeMany: () => t.fail() });
  batch.prepare();
  batch.setOthersReady(() => true);
  const a = new FakeRing(100);
  const b = new FakeRing(200);
  batch.begin();
  t.false(batch.holdAtDryPoint(a, 'a'), 'woken at its dry point although other rings are ready');
  batch.holdOrWake(b);
  t.is(b.wokenNow, 1, 'a round end wakes at once');
  batch.end();
  t.deepEqual(calls, [100]);
});

test('a thread that was not prepared (no SHM shard on it) holds nothing and never asks for a ring', (t) => {
  let asked = 0;
  const batch = new WakeBatch({ batches: () => (asked++, true), wakeOne: () => t.fail(), wakeMany: () => t.fail() });
  batch.setOthersReady(() => true);
  const ring = new FakeRing(100);
  batch.begin();
  batch.holdOrWake(ring);
  t.is(ring.wokenNow, 1, 'woken at once');
  batch.end();
  t.is(asked, 0);
});

test('a batch larger than its first arrays wakes every ring', (t) => {
  const { batch, calls } = recordingBatch(true);
  batch.begin();
  for (let i = 1; i <= 40; i++) batch.holdOrWake(new FakeRing(i * 8));
  batch.end();
  t.is(calls.length, 1);
  t.deepEqual(
    calls[0]!.map(([address]) => address),
    Array.from({ length: 40 }, (_, i) => (i + 1) * 8),
  );
});

test('futexWakeMany wakes every thread asleep on its words, in one call where the kernel has io_uring futex wakes', async (t) => {
  const words = new Int32Array(new SharedArrayBuffer(64));
  const results = new Int32Array(new SharedArrayBuffer(16)).fill(99);
  const waiters: Worker[] = [];
  try {
    const tids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const waiter = new Worker(
        `
        const { workerData, parentPort } = require('node:worker_threads');
        const { readlinkSync } = require('node:fs');
        import(workerData.nativeUrl).then(({ native }) => {
          const words = new Int32Array(workerData.words);
          const results = new Int32Array(workerData.results);
          parentPort.postMessage(Number(readlinkSync('/proc/thread-self').split('/').pop()));
          Atomics.store(results, workerData.index, native.futexWait(words, workerData.index * 4, 0, 10000));
        });`,
        {
          eval: true,
          workerData: {
            words: words.buffer,
            results: results.buffer,
            index: i,
            nativeUrl: new URL('../src/native.js', import.meta.url).href,
          },
        },
      );
      waiters.push(waiter);
      tids.push(await new Promise<number>((resolve) => waiter.once('message', resolve)));
    }
    for (const tid of tids) t.true(await sleepsInFutex(`/proc/self/task/${tid}`), `thread ${tid} sleeps on its word`);
    const addresses = new Float64Array([0, 1, 2].map((i) => native.wordAddress(words, i * 4)));
    const viaRing = native.futexWakeMany(addresses, new Int32Array([1, 1, 1]), 3);
    const batches = native.futexWakeManyBatches();
    t.is(viaRing, batches ? 3 : 0, 'all three in one io_uring call where the kernel has its futex wake, else none');
    if (!batches) t.log('no io_uring futex wake here (kernel < 6.7, or io_uring refused): one FUTEX_WAKE each');
    await Promise.all(waiters.map((w) => new Promise((resolve) => w.once('exit', resolve))));
    t.deepEqual(Array.from(results.subarray(0, 3)), [0, 0, 0], 'woken (0), not timed out (-ETIMEDOUT)');
  } finally {
    await Promise.all(waiters.map((w) => w.terminate()));
  }
});

test('futexWakeMany on an address nothing is mapped at fails that wake alone, and never writes', (t) => {
  const words = new Int32Array(new SharedArrayBuffer(8));
  const addresses = new Float64Array([8, native.wordAddress(words, 0)]); // page 0 is never mapped
  t.notThrows(() => native.futexWakeMany(addresses, new Int32Array([1, 1]), 2));
  t.deepEqual(Array.from(words), [0, 0]);
  t.throws(() => native.futexWakeMany(addresses, new Int32Array([1, 1]), 3), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' } as never);
});
