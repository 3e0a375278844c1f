// Issue 16, "Conventions", the client: an AbortSignal on connect(), recv() and
// eventRecv() — an abort rejects with an AbortError (name 'AbortError', code
// 'ABORT_ERR', cause the signal's reason, as Node's own) and the client stays
// usable: the message the aborted call would have had goes to the next call —
// and client.events(), an async iterator of the events, which ends when the
// client is disconnected and throws an AbortError when its signal fires.
// SHM and SOCKET, against an in-thread qbipc service.
import test from 'ava';
import { readdirSync } from 'node:fs';
import { AbortError, connect, EACCES, IpcType, QbError, readResponseHeader, writeRequestHeader, type Client } from '../src/index.js';
import { ID_EVENT, ID_EVENTS, shmEntries, startEchoService } from './helpers/echo-service.js';

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

function echoRequest(word: number): Uint8Array {
  const request = writeRequestHeader(new Uint8Array(20), { id: 1, size: 20 });
  new DataView(request.buffer).setUint32(16, word, true);
  return request;
}

function eventsRequest(count: number, length: number): Uint8Array {
  const request = writeRequestHeader(new Uint8Array(24), { id: ID_EVENTS, size: 24 });
  const view = new DataView(request.buffer);
  view.setUint32(16, count, true);
  view.setUint32(20, length, true);
  return request;
}

const wordOf = (response: Uint8Array) => new DataView(response.buffer, response.byteOffset).getUint32(24, true);

function isAbortError(
  t: { like: (v: unknown, s: object) => void; true: (v: boolean, m?: string) => void },
  error: unknown,
  reason: unknown,
): void {
  t.true(error instanceof AbortError, `an AbortError, got ${String(error)}`);
  t.like(error, { name: 'AbortError', code: 'ABORT_ERR', cause: reason });
}

for (const type of [IpcType.SHM, IpcType.SOCKET]) {
  const T = IpcType[type];

  test.serial(
    `${T}: an aborted recv() rejects with an AbortError; the client stays usable and the next recv gets the response`,
    async (t) => {
      const echo = await startEchoService({}, { type, behaviour: { deferEcho: true } });
      const client = await connect(echo.name, 12328);
      try {
        const controller = new AbortController();
        const reason = new Error('no longer needed');
        const aborted = client.recv(-1, { signal: controller.signal });
        const queuedBehind = client.recv(10_000); // a second call, waiting behind the first
        controller.abort(reason);
        isAbortError(t, await aborted.catch((e: unknown) => e), reason);
        // The response to a request sent after the abort goes to the call still waiting.
        t.is(client.send(echoRequest(41)), 20);
        t.is(wordOf(await queuedBehind), 41);
        // And the client goes on as before: a request, its response.
        t.is(wordOf(await client.sendRecv(echoRequest(42), 10_000)), 42);
        t.true(client.isConnected);
      } finally {
        client.disconnect();
        await echo.stop();
      }
    },
  );

  test.serial(`${T}: a recv() aborted while its response is on the way loses nothing: the next recv() gets it`, async (t) => {
    const echo = await startEchoService({}, { type, behaviour: { deferEcho: true } }); // answered 10 ms later, from a timer
    const client = await connect(echo.name, 12328);
    try {
      const controller = new AbortController();
      t.is(client.send(echoRequest(7)), 20);
      const aborted = client.recv(-1, { signal: controller.signal });
      controller.abort();
      await t.throwsAsync(aborted, { instanceOf: AbortError });
      t.is(wordOf(await client.recv(10_000)), 7);
    } finally {
      client.disconnect();
      await echo.stop();
    }
  });

  test.serial(`${T}: a signal aborted already rejects at once, even when a message is there`, async (t) => {
    const echo = await startEchoService({}, { type });
    const client = await connect(echo.name, 12328);
    try {
      t.is(wordOf(await client.sendRecv(echoRequest(1), 10_000)), 1);
      t.is(client.send(echoRequest(2)), 20);
      const reason = 'gone';
      isAbortError(t, await client.recv(10_000, { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e), reason);
      isAbortError(t, await client.eventRecv(-1, { signal: AbortSignal.abort(reason) }).catch((e: unknown) => e), reason);
      t.is(wordOf(await client.recv(10_000)), 2);
    } finally {
      client.disconnect();
      await echo.stop();
    }
  });

  test.serial(`${T}: an aborted eventRecv() rejects with an AbortError; later events are received`, async (t) => {
    const echo = await startEchoService({}, { type });
    const client = await connect(echo.name, 12328);
    try {
      const controller = new AbortController();
      const aborted = client.eventRecv(-1, { signal: controller.signal });
      controller.abort();
      await t.throwsAsync(aborted, { instanceOf: AbortError, code: 'ABORT_ERR' } as never);
      const bare = await client.sendRecv(eventsRequest(3, 8), 10_000);
      t.is(readResponseHeader(bare).id, ID_EVENTS);
      for (let k = 0; k < 3; k++) {
        const event = readResponseHeader(await client.eventRecv(10_000));
        t.like(event, { id: ID_EVENT, error: k, size: 32 });
      }
    } finally {
      client.disconnect();
      await echo.stop();
    }
  });

  test.serial(
    `${T}: for await (const event of client.events()) gets every event in order; its signal throws an AbortError; it ends at disconnect()`,
    async (t) => {
      const echo = await startEchoService({}, { type });
      const client = await connect(echo.name, 12328);
      try {
        await client.sendRecv(eventsRequest(50, 4), 10_000);
        const seen: number[] = [];
        for await (const event of client.events()) {
          seen.push(readResponseHeader(event).error);
          if (seen.length === 50) break;
        }
        t.deepEqual(
          seen,
          Array.from({ length: 50 }, (_, k) => k),
        );

        // An abort while the iterator waits throws out of the loop; the client is still usable.
        const controller = new AbortController();
        const looping = (async () => {
          for await (const _event of client.events({ signal: controller.signal })) t.fail('no event was sent');
        })();
        setImmediate(() => controller.abort());
        await t.throwsAsync(looping, { instanceOf: AbortError });
        t.is(wordOf(await client.sendRecv(echoRequest(9), 10_000)), 9);

        // The iterator ends (no throw) once the client is disconnected.
        const ending = (async () => {
          let n = 0;
          for await (const _event of client.events()) n++;
          return n;
        })();
        setImmediate(() => client.disconnect());
        t.is(await ending, 0);
      } finally {
        client.disconnect();
        await echo.stop();
      }
    },
  );

  test.serial(
    `${T}: connect() with an AbortSignal: aborting a handshake the server has not answered rejects with an AbortError, leaves nothing open`,
    async (t) => {
      let decide: ((verdict: number) => void) | undefined;
      let echoAccept: () => Promise<number> = () => Promise.resolve(0);
      const accepted = new Promise<void>((resolveAccepted) => {
        echoAccept = () => {
          resolveAccepted();
          return new Promise<number>((resolve) => (decide = resolve));
        };
      });
      const echo = await startEchoService({ connectionAccept: () => echoAccept() }, { type });
      try {
        const fds = fdCount();
        const controller = new AbortController();
        const connecting = connect(echo.name, 12328, { signal: controller.signal });
        await accepted; // the server holds the handshake in connectionAccept
        controller.abort('changed my mind');
        isAbortError(t, await connecting.catch((e: unknown) => e), 'changed my mind');
        decide!(-EACCES); // let the server finish with it
        await echo.when('destroyed');
        t.is(fdCount(), fds, "the client's setup socket is closed (and the server's side of it)");

        // Aborted before it starts: no connection is attempted.
        const before = echo.count('accept');
        await t.throwsAsync(connect(echo.name, 12328, { signal: AbortSignal.abort() }), { instanceOf: AbortError });
        t.is(echo.count('accept'), before);
        // A signal that never fires changes nothing.
        echoAccept = () => Promise.resolve(0);
        const client: Client = await connect(echo.name, 12328, { signal: new AbortController().signal });
        t.is(wordOf(await client.sendRecv(echoRequest(3), 10_000)), 3);
        client.disconnect();
        await t.throwsAsync(connect(echo.name, 12328, { signal: 'no' as unknown as AbortSignal }), { instanceOf: TypeError });
      } finally {
        decide?.(-EACCES);
        await echo.stop();
      }
    },
  );
}

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

test("AbortError is exported with Node's shape", (t) => {
  const error = new AbortError();
  t.like(error, { name: 'AbortError', code: 'ABORT_ERR', message: 'The operation was aborted' });
  t.true(error instanceof Error);
  t.true(QbError !== (AbortError as unknown));
});
