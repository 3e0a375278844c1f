// The SHM ring at the memory level, read back from the files in /dev/shm.
// Checklist items (docs/wire.md §18) 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 27.
import test from 'ava';
import { readFileSync, statSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { ConnectionDirectory } from '../src/connection-dir.js';
import { EAGAIN, EBADMSG } from '../src/errno.js';
import { HeaderWord, Magic, ringDataSize } from '../src/shm/layout.js';
import { createRing } from '../src/shm/ring-files.js';
import { ShmRing } from '../src/shm/ring.js';
import { copyBytes, copyOut, NATIVE_COPY_MIN } from '../src/shm/copy.js';
import { LoopPriority, PollEvent } from '../src/constants.js';
import type { DispatchFn } from '../src/poll.js';
import { Channel } from '../src/transport/transport.js';
import { native } from '../src/native.js';
import { createShmFiles, ShmTransport } from '../src/transport/shm.js';
import { DoorbellDeferral, MISSES_ALLOWED, RETRY_EVERY, UNREAD_MAX } from '../src/transport/doorbell-deferral.js';
import { shmEntries } from './helpers/echo-service.js';
import { sleepsInFutex } from './helpers/futex-sleep.js';

const owner = { uid: process.getuid!(), gid: process.getgid!(), mode: 0o600 };

function withRing(maxMsgSize: number, body: (ring: ShmRing, base: string, dir: ConnectionDirectory) => void): void {
  const dir = ConnectionDirectory.create(process.pid, 0, 0);
  try {
    const ring = createRing(dir, 'qb-request-unit', maxMsgSize, owner);
    body(ring, `${dir.path}/qb-request-unit`, dir);
  } finally {
    dir.remove();
  }
}

/** A second view of the same memory acting as the peer (what a client does). */
function peerOf(ring: ShmRing): ShmRing {
  return new ShmRing(ring.header.buffer as SharedArrayBuffer, ring.bytes.buffer as SharedArrayBuffer, ring.dataSize);
}

function u32(bytes: Buffer, offset: number): number {
  return bytes.readUInt32LE(offset);
}

test.after.always('no ring files left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

test('item 10: D = roundup(max_msg_size + 13, 4096)', (t) => {
  t.is(ringDataSize(12328), 16384);
  t.is(ringDataSize(65536), 69632);
  t.is(ringDataSize(1048576), 1052672);
  t.is(ringDataSize(4194304), 4198400);
});

test('items 9, 10, 11, 12: files, sizes, paths and the fresh ring', (t) => {
  withRing(12328, (_ring, base) => {
    t.is(statSync(`${base}-header`).size, 8252);
    t.is(statSync(`${base}-data`).size, 16384);
    t.is(statSync(`${base}-header`).mode & 0o777, 0o600);
    const header = readFileSync(`${base}-header`);
    t.is(u32(header, 0), 0, 'write_pt');
    t.is(u32(header, 4), 0, 'read_pt');
    t.is(u32(header, 8), 4096, 'word_size = D / 4');
    t.is(header.toString('latin1', 12, 12 + `${base}-header`.length + 1), `${base}-header\0`);
    t.is(header.toString('latin1', 4108, 4108 + `${base}-data`.length + 1), `${base}-data\0`);
    t.is(header.readInt32LE(8204), 1, 'ref_count');
    t.deepEqual([...header.subarray(8208, 8224)], [0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0], 'sem_init(pshared)');
    const data = readFileSync(`${base}-data`);
    t.is(u32(data, 0), 5, 'word 0 = 5');
    t.true(
      data.subarray(4).every((b) => b === 0),
      'the rest is zero',
    );
  });
});

test('items 13, 14, 17: a chunk is size, VALID magic, payload; write_pt advances; the semaphore counts it', (t) => {
  withRing(12328, (ring, base) => {
    const payload = Uint8Array.from([0x41, 0x42, 0x43, 0x44, 0x45]);
    t.is(ring.write([payload], 5, false), 5);
    const data = readFileSync(`${base}-data`);
    t.is(u32(data, 0), 5, 'size word');
    t.is(u32(data, 4), Magic.VALID);
    t.deepEqual([...data.subarray(8, 13)], [...payload]);
    const header = readFileSync(`${base}-header`);
    t.is(u32(header, 0), 2 + 2, 'write_pt = step(0, 5) = 2 + ceil(5/4)');
    t.is(u32(header, 8208), 1, 'semaphore value');
  });
});

test('item 13: a chunk that runs past the end wraps to the start of the file', (t) => {
  withRing(12328, (ring, base) => {
    const peer = peerOf(ring);
    const n = ring.wordSize;
    // Advance both sides to 3 words before the end, then write 100 bytes.
    const filler = new Uint8Array((n - 3 - 2) * 4);
    t.is(ring.write([filler], filler.byteLength, false), filler.byteLength);
    t.is(peer.nextChunk(), 1);
    t.is(peer.reclaim(), 0);
    t.is(Atomics.load(ring.header, HeaderWord.WRITE_PT), n - 3);
    const payload = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
    t.is(ring.write([payload], 100, false), 100);
    const data = readFileSync(`${base}-data`);
    const at = (n - 3) * 4;
    t.is(u32(data, at), 100);
    t.is(u32(data, at + 4), Magic.VALID);
    t.deepEqual([...data.subarray(at + 8, at + 12)], [1, 2, 3, 4], 'the first 4 bytes fit before the end');
    t.deepEqual([...data.subarray(0, 96)], [...payload.subarray(4)], 'the rest continues at byte 0');
    t.is(Atomics.load(ring.header, HeaderWord.WRITE_PT), (n - 3 + 2 + 25) % n, 'step wraps modulo word_size');
    t.is(peer.nextChunk(), 1);
    t.deepEqual([...peer.bytes.subarray(peer.chunkOffset, peer.chunkOffset + 100)], [...payload], 'the consumer reads it whole');
  });
});

test('item 15: the consumer takes a token, checks magic, then size 0, DEAD, read_pt', (t) => {
  withRing(12328, (ring, base) => {
    const peer = peerOf(ring);
    t.is(ring.write([new Uint8Array(24)], 24, false), 24);
    t.is(ring.write([new Uint8Array(8)], 8, false), 8);
    t.is(peer.nextChunk(), 1);
    t.is(peer.chunkLength, 24);
    t.is(Atomics.load(ring.header, HeaderWord.SEM_VALUE), 0, 'tokens were taken (both, in one CAS)');
    t.is(peer.reclaim(), 0);
    const data = readFileSync(`${base}-data`);
    t.is(u32(data, 0), 0, 'size := 0');
    t.is(u32(data, 4), Magic.DEAD);
    t.is(Atomics.load(ring.header, HeaderWord.READ_PT), 8, 'read_pt = step(0, 24)');
    t.is(peer.nextChunk(), 1);
    t.is(peer.chunkLength, 8);
    t.is(peer.reclaim(), 0);
    t.is(peer.nextChunk(), 0, 'nothing left');
  });
});

test('item 15: a token without a VALID chunk is EBADMSG', (t) => {
  withRing(12328, (ring) => {
    const peer = peerOf(ring);
    Atomics.add(ring.header, HeaderWord.SEM_VALUE, 1); // a post with nothing committed
    t.is(peer.nextChunk(), -EBADMSG);
  });
});

test('item 16: a write needs free >= len + 12; write_pt never catches up with read_pt', (t) => {
  withRing(12328, (ring) => {
    const n = ring.wordSize;
    const big = new Uint8Array(ring.dataSize - 12);
    t.is(ring.write([big], big.byteLength, false), big.byteLength, 'an empty ring takes D - 12 bytes');
    t.not(Atomics.load(ring.header, HeaderWord.WRITE_PT), 0, 'write_pt did not land on read_pt');
    t.is(Atomics.load(ring.header, HeaderWord.WRITE_PT), n - 1);
    t.is(ring.write([new Uint8Array(0)], 0, false), -EAGAIN, 'free = 0 words: even an empty chunk waits');
  });
  withRing(12328, (ring) => {
    let written = 0;
    while (ring.write([new Uint8Array(100)], 100, false) === 100) written++;
    const w = Atomics.load(ring.header, HeaderWord.WRITE_PT);
    const r = Atomics.load(ring.header, HeaderWord.READ_PT);
    const free = (w > r ? r - w + ring.wordSize - 1 : w < r ? r - w - 1 : ring.wordSize) * 4;
    t.true(free < 112, `stopped with ${free} bytes free after ${written} chunks`);
    t.not(w, r);
  });
});

test('item 17: a post adds one token and keeps the semaphore process-shared (the wake itself: item 18 in 20-connection-messages)', (t) => {
  withRing(12328, (ring) => {
    // The waiter count lives in the high half; the post must read it after adding.
    Atomics.store(ring.header, HeaderWord.SEM_WAITERS, 0);
    t.is(ring.write([new Uint8Array(4)], 4, false), 4);
    t.is(Atomics.load(ring.header, HeaderWord.SEM_VALUE), 1);
    Atomics.store(ring.header, HeaderWord.SEM_WAITERS, 1);
    t.is(ring.write([new Uint8Array(4)], 4, false), 4);
    t.is(Atomics.load(ring.header, HeaderWord.SEM_VALUE), 2);
    t.is(Atomics.load(ring.header, HeaderWord.SEM_PRIVATE), 128, 'never the private flag');
  });
});

/** An SHM transport whose poll handlers are this test: dispatch(POLLIN) runs `round` as the connection's round. */
/** A connection directory and a connected setup-socket pair; `release` closes the transport, the fds and the directory. */
function socketPair(tag: string): { dir: ConnectionDirectory; client: number; server: number; release: (transport: ShmTransport) => void } {
  const dir = ConnectionDirectory.create(process.pid, 0, 0);
  const name = `qbt-${tag}-${process.pid}`;
  const listener = native.listenStream(name, true);
  const client = native.connectStream(name, true);
  const server = native.acceptStream(listener);
  const release = (transport: ShmTransport) => {
    transport.close();
    for (const fd of [client, server, listener]) native.close(fd);
    dir.remove();
  };
  return { dir, client, server, release };
}

function unitTransport(
  dir: ConnectionDirectory,
  server: number,
  round: () => number,
  hangUps: string[],
): { transport: ShmTransport; dispatch: () => void } {
  let dispatchFn: DispatchFn | undefined;
  const capture = (_p: LoopPriority, _fd: number, _events: number, fn: DispatchFn) => ((dispatchFn = fn), 0);
  const host = {
    poll: { jobAdd: () => 0, dispatchAdd: capture, dispatchMod: capture, dispatchDel: () => 0 },
    priority: LoopPriority.MED,
    yieldToClients: false,
    serveRound: round,
    hangUp: (reason: string) => void hangUps.push(reason),
  };
  const transport = new ShmTransport(host, server, createShmFiles(dir, 'unit', 12328, owner));
  t0(transport.watch());
  return { transport, dispatch: () => void dispatchFn!(server, PollEvent.IN) };
}

function t0(rc: number): void {
  if (rc !== 0) throw new Error(`watch() returned ${rc}`);
}

test('item 18: wakes held during a round are issued when the ring fills (the client must read to make room)', async (t) => {
  const { dir, server, release } = socketPair('fullring');
  const hangUps: string[] = [];
  let written = 0;
  let wokenInRound = false;
  // The waiter reports into shared memory: [done, futexWait's rc]. The round is synchronous, so it waits with Atomics.wait.
  const report = new Int32Array(new SharedArrayBuffer(8));
  const { transport, dispatch } = unitTransport(
    dir,
    server,
    () => {
      while (transport.send(Channel.RESPONSE, [new Uint8Array(100)], 100) === 100) written++;
      Atomics.wait(report, 0, 0, 5000);
      wokenInRound = Atomics.load(report, 0) === 1;
      return 0;
    },
    hangUps,
  );
  try {
    const header = (transport as unknown as { responses: ShmRing }).responses.header;
    // A thread of ours plays the client blocked in sem_wait on the response ring.
    const waiter = new Worker(
      `
      const { workerData, parentPort } = require('node:worker_threads');
      const { readlinkSync } = require('node:fs');
      import(workerData.nativeUrl).then(({ native }) => {
        const header = new Int32Array(workerData.header);
        const report = new Int32Array(workerData.report);
        parentPort.postMessage({ tid: Number(readlinkSync('/proc/thread-self').split('/').pop()) });
        report[1] = native.futexWait(header, workerData.index, 0, 10000);
        Atomics.store(report, 0, 1);
        Atomics.notify(report, 0);
      });`,
      {
        eval: true,
        workerData: {
          header: header.buffer,
          report: report.buffer,
          index: HeaderWord.SEM_VALUE,
          nativeUrl: new URL('../src/native.js', import.meta.url).href,
        },
      },
    );
    try {
      const tid = await new Promise<number>((resolve) => waiter.once('message', (m: { tid: number }) => resolve(m.tid)));
      t.true(await sleepsInFutex(`/proc/self/task/${tid}`), 'the waiter went to sleep on the semaphore word');
      Atomics.store(header, HeaderWord.SEM_WAITERS, 1); // as glibc's sem_wait registers itself
      dispatch();
      t.true(written > 10);
      t.true(wokenInRound, 'woken inside the round, by the full ring (not: the wakes stayed held)');
      t.is(report[1], 0);
    } finally {
      await waiter.terminate();
    }
  } finally {
    release(transport);
  }
});

test('item 20: event doorbells sent inside a round wait for its wake point and go out in one send; outside a round, one each at once', (t) => {
  const { dir, client, server, release } = socketPair('doorbells');
  const hangUps: string[] = [];
  const received = new Uint8Array(64);
  const doorbells = () => Math.max(0, native.recv(client, received)); // -EAGAIN: none
  const event = new Uint8Array(32);
  const { transport, dispatch } = unitTransport(
    dir,
    server,
    () => {
      // Inside a round: held until the dry-ring wake point (a peek that finds nothing), then one send for all.
      for (let i = 0; i < 3; i++) t.is(transport.send(Channel.EVENT, [event], 32), 32);
      t.is(doorbells(), 0, 'nothing sent while the round runs');
      t.is(transport.peek(), 0);
      t.is(doorbells(), 3, 'the three doorbells arrive together at the dry ring');
      t.is(transport.peek(), 0);
      t.is(doorbells(), 0, 'nothing more was owed');
      // ... and at the round's end.
      for (let i = 0; i < 2; i++) transport.send(Channel.EVENT, [event], 32);
      return 0;
    },
    hangUps,
  );
  try {
    // Outside a round (a timer, another connection's handler): each event rings at once.
    t.is(transport.send(Channel.EVENT, [event], 32), 32);
    t.is(doorbells(), 1);
    dispatch();
    t.is(doorbells(), 2, 'the round end rings the rest');
    t.is(transport.send(Channel.EVENT, [event], 32), 32);
    t.is(doorbells(), 1, 'after the round: at once again');
    t.is(transport.eventQueueLength, 7, 'every event is in the ring, posted');
    t.deepEqual(hangUps, []);
  } finally {
    release(transport);
  }
});

test('item 27: a read pointer out of range is reported, never used', (t) => {
  withRing(12328, (ring) => {
    Atomics.store(ring.header, HeaderWord.READ_PT, 0x7fffff00);
    t.is(ring.write([new Uint8Array(4)], 4, false), -EBADMSG);
    Atomics.store(ring.header, HeaderWord.WORD_SIZE, 0x7fffffff); // ignored: we keep our own copy
    Atomics.store(ring.header, HeaderWord.READ_PT, 0);
    t.is(ring.write([new Uint8Array(4)], 4, false), 4);
  });
});

test("item 19: a served request's doorbell may stay unread until a round finds the ring dry, never more than 32, and never once the thread could sleep", (t) => {
  const { dir, client, server, release } = socketPair('deferred');
  const hangUps: string[] = [];
  let served = 0;
  const { transport, dispatch } = unitTransport(
    dir,
    server,
    () => {
      let handled = 0;
      while (transport.peek() === 1) {
        t.is(transport.reclaim(), 0);
        handled++;
      }
      served += handled;
      return handled;
    },
    hangUps,
  );
  const requests = (transport as unknown as { requests: ShmRing }).requests;
  const producer = new ShmRing(requests.header.buffer as SharedArrayBuffer, requests.data, requests.dataSize);
  const owed = () => (transport as unknown as { owedDoorbells: number }).owedDoorbells;
  const request = new Uint8Array(16);
  new DataView(request.buffer).setInt32(8, 16, true);
  const send = () => {
    t.is(producer.write([request], 16, false), 16);
    t.is(native.send(client, new Uint8Array(1)), 1);
  };
  const unread = () => {
    const into = new Uint8Array(64);
    const n = native.recv(server, into); // takes them: only where the test ends a scenario
    return n === -EAGAIN ? 0 : n;
  };
  try {
    // Deferring: a served request leaves its byte; a dry round reads it.
    send();
    dispatch();
    t.is(served, 1);
    t.is(owed(), 1, 'the served request’s doorbell is left unread');
    send();
    dispatch();
    t.is(served, 2);
    t.is(owed(), 2, 'the next request came before a dry round: still unread');
    dispatch();
    t.is(owed(), 0, 'a dry round reads every doorbell owed');
    t.is(unread(), 0, 'nothing left on the socket: the thread can sleep');
    // A burst: read at once when UNREAD_MAX are owed.
    for (let i = 0; i < UNREAD_MAX - 1; i++) {
      send();
      dispatch();
      t.true(owed() < UNREAD_MAX);
    }
    t.is(owed(), UNREAD_MAX - 1);
    send();
    dispatch();
    t.is(owed(), 0, `${UNREAD_MAX} owed: read at the end of that round`);
    // A client that never has its next request ready: after MISSES_ALLOWED wasted looks, read at once.
    for (let i = 0; i < MISSES_ALLOWED; i++) {
      send();
      dispatch();
      t.is(owed(), 1, `deferral ${i + 1}`);
      dispatch();
      t.is(owed(), 0);
    }
    send();
    dispatch();
    t.is(owed(), 0, 'no more deferring: the round reads its doorbell');
    t.is(unread(), 0);
    t.deepEqual(hangUps, []);
  } finally {
    release(transport);
  }
});

test('doorbell deferral: defers while deferring finds requests, stops after 4 misses in a row, then tries once every 64 rounds', (t) => {
  const deferral = new DoorbellDeferral();
  for (let i = 0; i < 100; i++) {
    t.true(deferral.defer(1));
    deferral.roundAfter(1);
  }
  t.false(deferral.defer(UNREAD_MAX), 'never with UNREAD_MAX owed');
  deferral.roundAfter(1); // not after a deferral: counts nothing
  for (let i = 0; i < MISSES_ALLOWED; i++) {
    t.true(deferral.defer(1));
    deferral.roundAfter(0);
  }
  for (let i = 0; i < RETRY_EVERY - 1; i++) t.false(deferral.defer(1));
  t.true(deferral.defer(1), 'the trial');
  deferral.roundAfter(0);
  for (let i = 0; i < RETRY_EVERY - 1; i++) t.false(deferral.defer(1));
  t.true(deferral.defer(1));
  deferral.roundAfter(2);
  for (let i = 0; i < MISSES_ALLOWED; i++) {
    t.true(deferral.defer(1), 'a hit gives back every allowed miss');
    deferral.roundAfter(0);
  }
  t.false(deferral.defer(1));
});

test('message bytes are copied the same by either route, around the native threshold, overlapping or not, out into memory of their own', (t) => {
  const shared = new Uint8Array(new SharedArrayBuffer(1 << 19));
  for (let i = 0; i < shared.length; i++) shared[i] = (i * 7 + 3) & 0xff;
  for (const size of [0, 1, NATIVE_COPY_MIN - 1, NATIVE_COPY_MIN, 16384, 262144]) {
    const source = shared.subarray(13, 13 + size);
    const expected = new Uint8Array(size + 100);
    expected.set(source, 50);
    const target = new Uint8Array(new SharedArrayBuffer(size + 100));
    copyBytes(target, 50, source);
    t.deepEqual(new Uint8Array(target), expected, `${size} bytes`);
    const out = copyOut(shared, 13, 13 + size);
    t.false(out.buffer instanceof SharedArrayBuffer);
    t.deepEqual(out, source.slice(), `${size} bytes out`);
  }
  // Overlapping views of one buffer: memmove semantics, as TypedArray.prototype.set has.
  const expected = shared.slice();
  expected.set(expected.slice(0, 8192), 100);
  copyBytes(shared, 100, shared.subarray(0, 8192));
  t.deepEqual(shared.slice(), expected);
});
