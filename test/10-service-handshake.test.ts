// The service socket and the handshake, seen byte by byte from a raw peer.
// Checklist items 1, 3, 4, 5, 6, 7 (docs/wire.md §18).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { EACCES, ENOTSUP, IpcType, createService, type Service } from '../src/index.js';
import { native } from '../src/native.js';
import { CONNECTION_RESPONSE_SIZE } from '../src/handshake.js';
import { shmEntries, startEchoService, uniqueName } from './helpers/echo-service.js';

/** A raw client: connect, send `request` (in pieces if asked), read the whole response. */
async function rawHandshake(
  name: string,
  request: Uint8Array,
  pieces = 1,
): Promise<{ response: Uint8Array; received: number; closed: boolean }> {
  const fd = native.connectStream(name, true);
  if (fd < 0) throw new Error(`connect failed: ${fd}`);
  try {
    const step = Math.ceil(request.byteLength / pieces);
    for (let off = 0; off < request.byteLength; off += step) {
      native.send(fd, request.subarray(off, off + step));
      await new Promise((r) => setImmediate(r)); // let the server see each piece on its own
    }
    const response = new Uint8Array(CONNECTION_RESPONSE_SIZE);
    let received = 0;
    const deadline = Date.now() + 5000;
    while (received < response.byteLength && Date.now() < deadline) {
      const n = native.recv(fd, response.subarray(received));
      if (n === 0) return { response, received, closed: true };
      if (n > 0) received += n;
      else await new Promise((r) => setImmediate(r));
    }
    return { response, received, closed: false };
  } finally {
    native.close(fd);
  }
}

function connectionRequest(maxMsgSize: number, id = -1): Uint8Array {
  const bytes = new Uint8Array(24);
  const v = new DataView(bytes.buffer);
  v.setInt32(0, id, true);
  v.setInt32(8, 24, true);
  v.setUint32(16, maxMsgSize, true);
  return bytes;
}

function cString(bytes: Uint8Array, offset: number): string {
  const end = bytes.indexOf(0, offset);
  return Buffer.from(bytes.subarray(offset, end)).toString();
}

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

test('item 1: the service socket is abstract, NUL + name + NUL padding (107 bytes)', async (t) => {
  const echo = await startEchoService();
  try {
    const lines = readFileSync('/proc/net/unix', 'latin1').split('\n');
    const mine = lines.map((l) => l.trim().split(/\s+/)[7]).filter((p) => p?.startsWith(`@${echo.name}@`));
    t.is(mine.length, 1, 'one listening socket with the padded abstract name');
    t.is(mine[0], `@${echo.name}${'@'.repeat(107 - echo.name.length)}`);
  } finally {
    await echo.stop();
  }
});

test('items 3, 5, 6: a split request is assembled; the response is 12328 bytes, zero-filled, with absolute paths', async (t) => {
  const echo = await startEchoService();
  try {
    const { response, received } = await rawHandshake(echo.name, connectionRequest(5000), 3);
    t.is(received, CONNECTION_RESPONSE_SIZE);
    const v = new DataView(response.buffer);
    t.is(v.getInt32(0, true), -1, 'id');
    t.is(v.getInt32(8, true), CONNECTION_RESPONSE_SIZE, 'size');
    t.is(v.getInt32(16, true), 0, 'error');
    t.is(v.getInt32(24, true), 1, 'connection_type SHM');
    t.is(v.getUint32(28, true), 5000, 'negotiated = max(5000, enforced 0)');
    t.true(v.getBigUint64(32, true) < 1_000_000n, 'the connection field is a counter, not a heap address');
    const paths = [40, 4136, 8232].map((o) => cString(response, o));
    const dir = paths[0]!.slice(0, paths[0]!.lastIndexOf('/'));
    t.regex(dir, new RegExp(`^/dev/shm/qb-${process.pid}-${process.pid}-\\d+-[A-Za-z0-9]{6}$`));
    t.deepEqual(
      paths,
      ['request', 'response', 'event'].map((k) => `${dir}/qb-${k}-${echo.name}`),
    );
    for (const o of [40, 4136, 8232]) {
      const tail = response.subarray(o + paths[0]!.length + 8, o + 4096);
      t.true(
        tail.every((b) => b === 0),
        'zero after each string',
      );
    }
    t.true(response.subarray(12, 16).every((b) => b === 0) && response.subarray(20, 24).every((b) => b === 0), 'zero padding');
    await echo.when('destroyed');
  } finally {
    await echo.stop();
  }
});

test('item 6: enforceBufferSize sets the minimum; options.maxBufferSize the maximum', async (t) => {
  const echo = await startEchoService({}, { maxBufferSize: 300000, beforeRun: (s) => s.enforceBufferSize(100000) });
  try {
    const sizeFor = async (asked: number) =>
      new DataView((await rawHandshake(echo.name, connectionRequest(asked))).response.buffer).getUint32(28, true);
    t.is(await sizeFor(5000), 100000);
    t.is(await sizeFor(200000), 200000);
    t.is(await sizeFor(10_000_000), 300000, 'clamped');
    await echo.when('destroyed', 3);
  } finally {
    await echo.stop();
  }
});

test('item 7: a rejection carries -errno and nothing else; connectionDestroyed still fires', async (t) => {
  const echo = await startEchoService({ connectionAccept: () => -EACCES });
  try {
    const { response, received } = await rawHandshake(echo.name, connectionRequest(12328));
    t.is(received, CONNECTION_RESPONSE_SIZE);
    t.is(new DataView(response.buffer).getInt32(16, true), -EACCES);
    t.true(
      response.subarray(24).every((b) => b === 0),
      'type, size, connection and paths are zero',
    );
    await echo.when('destroyed');
    t.deepEqual(
      echo.log.map((e) => e.callback),
      ['accept', 'destroyed'],
    );
  } finally {
    await echo.stop();
  }
});

test('item 4: a first message with id != -1 is closed without a response', async (t) => {
  const echo = await startEchoService();
  try {
    const { received, closed } = await rawHandshake(echo.name, connectionRequest(12328, 7));
    t.is(received, 0);
    t.true(closed);
    t.is(echo.count('accept'), 0);
  } finally {
    await echo.stop();
  }
});

test('a half-finished handshake is dropped after handshakeTimeoutMs', async (t) => {
  const echo = await startEchoService({}, { handshakeTimeoutMs: 200 });
  const fd = native.connectStream(echo.name, true);
  try {
    native.send(fd, new Uint8Array(10));
    const buf = new Uint8Array(16);
    const deadline = Date.now() + 5000;
    let n = -1;
    while (Date.now() < deadline && (n = native.recv(fd, buf)) < 0) await new Promise((r) => setTimeout(r, 20));
    t.is(n, 0, 'EOF: the server closed it');
  } finally {
    native.close(fd);
    await echo.stop();
  }
});

test('run() rejects unsupported transports with ENOTSUP, and a second server of a name with EADDRINUSE', async (t) => {
  for (const type of [IpcType.POSIX_MQ, IpcType.SYSV_MQ]) {
    const s = createService(uniqueName('mq'), 0, type, { msgProcess: () => 0 });
    const error = await t.throwsAsync(s.run());
    t.is((error as { errno?: number }).errno, -ENOTSUP);
    t.is((error as { code?: string }).code, 'ENOTSUP');
  }
  const echo = await startEchoService();
  let second: Service | undefined;
  try {
    second = createService(echo.name, 0, IpcType.SHM, { msgProcess: () => 0 });
    const error = await t.throwsAsync(second.run(), { message: /another server already serves this name/ });
    t.is((error as { code?: string }).code, 'EADDRINUSE');
  } finally {
    await second?.destroy();
    await echo.stop();
  }
});

test('createService validates its arguments', (t) => {
  t.throws(() => createService('', 0, IpcType.SHM, { msgProcess: () => 0 }), { instanceOf: TypeError });
  t.throws(() => createService('a/b', 0, IpcType.SHM, { msgProcess: () => 0 }), { message: /must not contain/ });
  t.throws(() => createService('x'.repeat(107), 0, IpcType.SHM, { msgProcess: () => 0 }), { instanceOf: RangeError });
  t.throws(() => createService('ok', 0, IpcType.SHM, {}), { message: /msgProcess/ });
  t.throws(() => createService('ok', 0, IpcType.SHM, { msgProcess: () => 0 }, { workers: -1 }), { instanceOf: RangeError });
  t.throws(() => createService('ok', 0, IpcType.SHM, { msgProcess: () => 0 }, { workers: 2 }), { message: /workerModule/ });
  t.throws(() => createService('ok', 0, 9 as IpcType, { msgProcess: () => 0 }), { instanceOf: TypeError });
});

test('destroy() closes the listening socket: a new server can take the name', async (t) => {
  const echo = await startEchoService();
  await echo.stop();
  const again = createService(echo.name, 0, IpcType.SHM, { msgProcess: () => 0 });
  await t.notThrowsAsync(again.run());
  await again.destroy();
});
