// Handlers and arguments (issue 14, point 3): an async handler is supported and
// a rejected promise is a handler failure, as a throw is ('error' with code
// ERR_QBIPC_HANDLER, cause, connection and handler name; that client dropped;
// the process alive; the others served); sends given something that is not
// bytes throw a TypeError with a code; a connectionAccept result that is neither
// 0 nor a negative errno is a handler failure. In-thread and in worker mode.
import test, { type ExecutionContext } from 'ava';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connect,
  createService,
  EPERM,
  IpcType,
  makeResponse,
  writeRequestHeader,
  type Client,
  type Connection,
  type ServiceConnection,
} from '../src/index.js';
import { buildCPrograms, parseReply, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService, uniqueName } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { FAIL_BUFFER_SIZE, FAIL_REQUEST_ID, FAILING, FAILURE_MARK, type FailHow } from './helpers/failing-handlers.js';
import { JsonLineServer } from './helpers/json-line-server.js';
import { MODES } from './helpers/modes.js';

const here = dirname(fileURLToPath(import.meta.url));
const MODES_TESTED = MODES.filter((m) => m.workers !== 1);

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

// ---- handler failures: throw, or an async handler's rejection ----

function startFailingServer(handler: string, how: FailHow, workers: number): Promise<JsonLineServer> {
  const name = uniqueName('failing');
  return JsonLineServer.start('failing server', name, process.execPath, [
    join(here, 'helpers', 'failing-server.js'),
    '--name',
    name,
    '--handler',
    handler,
    '--how',
    how,
    '--workers',
    String(workers),
  ]);
}

for (const { name: mode, workers } of MODES_TESTED) {
  for (const handler of FAILING) {
    for (const how of ['throw', 'reject'] as const) {
      const what = how === 'throw' ? `a ${handler} that throws` : `an async ${handler} whose promise rejects`;
      test.serial(
        `${mode}: ${what} is a handler failure: 'error' (ERR_QBIPC_HANDLER, cause, connection), that client dropped, the rest served`,
        async (t) => {
          const server = await startFailingServer(handler, how, workers);
          const clients: QbClient[] = [];
          const client = async () => {
            const c = await QbClient.start();
            clients.push(c);
            return c;
          };
          try {
            const bystander = await client();
            await ok(t, bystander, `connect ${server.name} 12328`);
            await ok(t, bystander, 'echo 10');

            const victim = await client();
            const from = server.mark;
            let connected = true;
            if (handler === 'msgProcess') {
              await ok(t, victim, `connect ${server.name} 12328`);
              await ok(t, victim, 'echo 10', 5000); // an async msgProcess answers too
              await ok(t, victim, `send ${FAIL_REQUEST_ID} 0`);
            } else {
              connected = parseReply(await victim.cmd(`connect ${server.name} ${FAIL_BUFFER_SIZE}`)).ok;
              if (handler === 'connectionClosed') {
                t.true(connected);
                await ok(t, victim, 'echo 10', 5000);
                await ok(t, victim, 'disconnect');
                connected = false;
              }
            }

            const error = await server.next((o) => o.ev === 'error', from, 10_000);
            if (error === undefined) {
              return t.fail(`no 'error' event; the server ${server.running ? 'runs' : 'has exited'}; stderr: ${server.stderr}`);
            }
            t.like(error, {
              isError: true,
              code: 'ERR_QBIPC_HANDLER',
              handler,
              causeIsError: true,
              connectionPid: victim.pid,
              sameConnection: true,
            });
            t.true(String(error['causeMessage']).includes(FAILURE_MARK), `cause: ${String(error['causeMessage'])}`);

            // That connection is dropped: the client cannot use it, the server destroys it and its files.
            if (connected) {
              const reply = await victim.cmd(handler === 'msgProcess' ? 'recv 2000' : 'echo 10');
              t.is(reply, 'err errno=107', 'ENOTCONN');
            }
            t.truthy(await server.next((o) => o.ev === 'destroyed' && o['pid'] === victim.pid, from, 5000), 'connectionDestroyed ran');
            t.deepEqual(server.directoriesOf(victim.pid), []);

            // The process is alive and serves the others, old and new.
            await ok(t, bystander, 'echo 100');
            const newcomer = await client();
            await ok(t, newcomer, `connect ${server.name} 12328`);
            await ok(t, newcomer, 'echo 10');
            await server.command('ping');
            t.true(server.running);
            t.is(server.since(from).filter((o) => o.ev === 'error').length, 1, 'one error event');
          } finally {
            await Promise.all(clients.map((c) => c.close()));
            await server.stop();
          }
        },
      );
    }
  }
}

// ---- sends given something that is not bytes ----

/** How a call ended: 'TypeError ERR_INVALID_ARG_TYPE', 'returned 24', 'threw TypeError -', 'resolved 24'… */
async function outcome(call: () => unknown): Promise<string> {
  const describe = (e: unknown) =>
    e instanceof TypeError && (e as { code?: unknown }).code === 'ERR_INVALID_ARG_TYPE'
      ? 'TypeError ERR_INVALID_ARG_TYPE'
      : `threw ${(e as Error)?.constructor?.name ?? typeof e} ${String((e as { code?: string })?.code ?? '-')}`;
  let result: unknown;
  try {
    result = call();
  } catch (e) {
    return describe(e);
  }
  if (result instanceof Promise) {
    // A Promise-returning API may reject instead of throwing.
    try {
      return `resolved ${String(await result)}`;
    } catch (e) {
      return describe(e);
    }
  }
  return `returned ${String(result)}`;
}

const NOT_BYTES = 'TypeError ERR_INVALID_ARG_TYPE';

/** Bad arguments for the server's sends (called through `any`: what JavaScript callers can pass). */
function serverSendProbes(
  conn: {
    responseSend?: (d: unknown) => unknown;
    responseSendv?: (d: unknown) => unknown;
    eventSend: (d: unknown) => unknown;
    eventSendv: (d: unknown) => unknown;
  },
  withResponses: boolean,
): Array<[string, () => unknown]> {
  const probes: Array<[string, () => unknown]> = [];
  if (withResponses) {
    probes.push(
      ["responseSend('abc')", () => conn.responseSend!('abc')],
      ['responseSend(null)', () => conn.responseSend!(null)],
      ['responseSend(undefined)', () => conn.responseSend!(undefined)],
      ["responseSendv(['x'])", () => conn.responseSendv!(['x'])],
      ['responseSendv(null)', () => conn.responseSendv!(null)],
      ["responseSendv([bytes, 'x'])", () => conn.responseSendv!([new Uint8Array(24), 'x'])],
    );
  }
  probes.push(
    ['eventSend(123)', () => conn.eventSend(123)],
    ["eventSend('abc')", () => conn.eventSend('abc')],
    ['eventSendv([{}])', () => conn.eventSendv([{}])],
    ['eventSendv(null)', () => conn.eventSendv(null)],
  );
  return probes;
}

/** Views that are bytes: each a whole 24-byte event. */
function eventViews(): Array<[string, Uint8Array | DataView | Uint16Array | Array<Buffer | Uint32Array>]> {
  const event = makeResponse(3, 0);
  return [
    ['eventSend(Buffer)', Buffer.from(event)],
    ['eventSend(Uint16Array)', new Uint16Array(event.buffer.slice(event.byteOffset, event.byteOffset + 24))],
    ['eventSend(DataView)', new DataView(event.buffer, event.byteOffset, 24)],
    [
      'eventSendv([Buffer, Uint32Array])',
      [Buffer.from(event.subarray(0, 8)), new Uint32Array(event.buffer.slice(event.byteOffset + 8, event.byteOffset + 24))],
    ],
  ];
}

test.serial(
  'in-thread: responseSend*/eventSend* throw a TypeError (ERR_INVALID_ARG_TYPE) for what is not bytes; any ArrayBufferView is bytes',
  async (t) => {
    const seen: Record<string, string> = {};
    let probed: () => void;
    const done = new Promise<void>((resolve) => (probed = resolve));
    const name = uniqueName('args');
    const service = createService(name, 0, IpcType.SHM, {
      async msgProcess(conn: Connection) {
        for (const [label, call] of serverSendProbes(conn as never, true)) seen[label] = await outcome(call);
        for (const [label, view] of eventViews()) {
          seen[label] = await outcome(() => (Array.isArray(view) ? conn.eventSendv(view as never) : conn.eventSend(view as never)));
        }
        // The answer itself goes out as a Buffer and a DataView.
        const head = makeResponse(1, 0);
        seen['responseSendv([Buffer, DataView])'] = await outcome(() =>
          conn.responseSendv([Buffer.from(head.subarray(0, 8)), new DataView(head.buffer, head.byteOffset + 8, 16)] as never),
        );
        probed();
        return 0;
      },
    });
    service.on('error', () => undefined);
    await service.run();
    const client = await QbClient.start();
    try {
      await client.cmd(`connect ${name} 12328`);
      await client.cmd('send 1 0');
      await done;
      t.deepEqual(seen, {
        "responseSend('abc')": NOT_BYTES,
        'responseSend(null)': NOT_BYTES,
        'responseSend(undefined)': NOT_BYTES,
        "responseSendv(['x'])": NOT_BYTES,
        'responseSendv(null)': NOT_BYTES,
        "responseSendv([bytes, 'x'])": NOT_BYTES,
        'eventSend(123)': NOT_BYTES,
        "eventSend('abc')": NOT_BYTES,
        'eventSendv([{}])': NOT_BYTES,
        'eventSendv(null)': NOT_BYTES,
        'eventSend(Buffer)': 'returned 24',
        'eventSend(Uint16Array)': 'returned 24',
        'eventSend(DataView)': 'returned 24',
        'eventSendv([Buffer, Uint32Array])': 'returned 24',
        'responseSendv([Buffer, DataView])': 'returned 24',
      });
      // Nothing but the answer reached the client: a refused send sends nothing.
      t.regex(await client.cmd('recv 2000'), /^ok n=24 id=1 size=24 error=0\b/);
    } finally {
      await client.close();
      await service.destroy();
    }
  },
);

test.serial(
  "workers 2: the main thread's eventSend/eventSendv throw (or reject with) a TypeError (ERR_INVALID_ARG_TYPE) for what is not bytes",
  async (t) => {
    let accepted: ServiceConnection | undefined;
    const echo = await startEchoService({ connectionAccept: (conn) => void (accepted = conn) }, { workers: 2 });
    const client = await QbClient.start();
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      await echo.when('created');
      const conn = accepted!;
      const seen: Record<string, string> = {};
      for (const [label, call] of serverSendProbes(conn as never, false)) seen[label] = await outcome(call);
      for (const [label, view] of eventViews()) {
        seen[label] = await outcome(() => (Array.isArray(view) ? conn.eventSendv(view as never) : conn.eventSend(view as never)));
      }
      t.deepEqual(seen, {
        'eventSend(123)': NOT_BYTES,
        "eventSend('abc')": NOT_BYTES,
        'eventSendv([{}])': NOT_BYTES,
        'eventSendv(null)': NOT_BYTES,
        'eventSend(Buffer)': 'resolved 24',
        'eventSend(Uint16Array)': 'resolved 24',
        'eventSend(DataView)': 'resolved 24',
        'eventSendv([Buffer, Uint32Array])': 'resolved 24',
      });
    } finally {
      await client.close();
      await echo.stop();
    }
  },
);

test.serial(
  "the client's sends throw (or reject with) a TypeError (ERR_INVALID_ARG_TYPE) for what is not bytes; any ArrayBufferView is bytes",
  async (t) => {
    const echo = await startEchoService();
    let client: Client | undefined;
    try {
      client = await connect(echo.name, 12328);
      const c = client as unknown as Record<string, (...args: unknown[]) => unknown>;
      const seen: Record<string, string> = {};
      const bad: Array<[string, () => unknown]> = [
        ["send('abc')", () => c['send']!('abc')],
        ['send(null)', () => c['send']!(null)],
        ["sendv(['x'])", () => c['sendv']!(['x'])],
        ['sendv(null)', () => c['sendv']!(null)],
        ["sendRecv('abc')", () => c['sendRecv']!('abc', 1000)],
        ['sendvRecv([{}])', () => c['sendvRecv']!([{}], 1000)],
        ["sendRecvSync('abc')", () => c['sendRecvSync']!('abc', 1000)],
        ['sendvRecvSync(null)', () => c['sendvRecvSync']!(null, 1000)],
      ];
      for (const [label, call] of bad) seen[label] = await outcome(call);
      // Byte views: an echo request as a Buffer, then as a header Buffer and a DataView payload.
      const request = writeRequestHeader(new Uint8Array(24), { id: 1, size: 24 });
      seen['sendRecv(Buffer)'] = await outcome(async () => (await client!.sendRecv(Buffer.from(request), 5000)).byteLength);
      seen['sendvRecv([Buffer, DataView])'] = await outcome(
        async () =>
          (
            await client!.sendvRecv(
              [Buffer.from(request.subarray(0, 16)), new DataView(request.buffer, request.byteOffset + 16, 8)] as never,
              5000,
            )
          ).byteLength,
      );
      t.deepEqual(seen, {
        "send('abc')": NOT_BYTES,
        'send(null)': NOT_BYTES,
        "sendv(['x'])": NOT_BYTES,
        'sendv(null)': NOT_BYTES,
        "sendRecv('abc')": NOT_BYTES,
        'sendvRecv([{}])': NOT_BYTES,
        "sendRecvSync('abc')": NOT_BYTES,
        'sendvRecvSync(null)': NOT_BYTES,
        'sendRecv(Buffer)': 'resolved 32',
        'sendvRecv([Buffer, DataView])': 'resolved 32',
      });
    } finally {
      client?.disconnect();
      await echo.stop();
    }
  },
);

// ---- what connectionAccept may return ----

/** Each result of connectionAccept: what the client's connect says, and the service's 'error' codes. */
async function acceptResults(t: ExecutionContext, workers: number, verdicts: Array<[string, unknown]>): Promise<Record<string, string>> {
  let verdict: unknown;
  const echo = await startEchoService({ connectionAccept: () => verdict as number }, { workers });
  const errors: string[] = [];
  echo.service.on('error', (e: Error & { code?: string }) => errors.push(e.code ?? 'no code'));
  const seen: Record<string, string> = {};
  try {
    for (const [label, value] of verdicts) {
      verdict = value;
      const before = echo.count('destroyed');
      const client = await QbClient.start();
      try {
        const reply = await client.cmd(`connect ${echo.name} 12328`);
        if (parseReply(reply).ok) await client.cmd('disconnect');
        // connectionDestroyed follows a rejection (or the disconnect); then one more turn for the error event.
        await echo.when('destroyed', before + 1);
        await new Promise((resolve) => setImmediate(resolve));
        seen[label] = `${reply}; errors: ${errors.splice(0).join(',') || 'none'}`;
      } finally {
        await client.close();
      }
    }
  } finally {
    await echo.stop();
  }
  t.pass();
  return seen;
}

for (const { name: mode, workers } of MODES_TESTED) {
  test.serial(
    `${mode}: connectionAccept returning neither 0/undefined nor a negative errno is a handler failure (EACCES, 'error')`,
    async (t) => {
      const failure = 'err errno=13; errors: ERR_QBIPC_HANDLER';
      const seen = await acceptResults(t, workers, [
        ['"no"', 'no'],
        ['42', 42],
        ['-1.5', -1.5],
        ['{}', {}],
        ['async "no"', Promise.resolve('no')],
        ['-EPERM', -EPERM],
        ['0', 0],
        ['undefined', undefined],
      ]);
      t.deepEqual(seen, {
        '"no"': failure,
        '42': failure,
        '-1.5': failure,
        '{}': failure,
        'async "no"': failure,
        '-EPERM': 'err errno=1; errors: none',
        '0': 'ok buffer_size=12328; errors: none',
        undefined: 'ok buffer_size=12328; errors: none',
      });
    },
  );
}
