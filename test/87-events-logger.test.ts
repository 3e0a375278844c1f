// Issue 16, "Types and events" and the logger option: the service's events are
// typed (a misspelled name or a wrong listener does not compile: tsc checks
// the expected errors in typeChecks below), 'listening' follows run()
// and 'close' follows destroy() and close(); an 'error' nobody listens for ends
// the process without dumping the connection; options.logger receives libqb's
// log points — a refused client's reject (errno and why), accept, disconnect
// (reason), protocol faults — in-thread and from worker threads.
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connect,
  createService,
  EACCES,
  HandlerError,
  IpcType,
  QbError,
  type LogFields,
  type Logger,
  type Service,
  type ServiceConnection,
} from '../src/index.js';
import { shmEntries, startEchoService, uniqueName } from './helpers/echo-service.js';
import { MODES } from './helpers/modes.js';
import { LineChild } from './helpers/peers.js';

const here = dirname(fileURLToPath(import.meta.url));
const MODES_TESTED = MODES.filter((m) => m.workers !== 1);

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

/** Compiled, never run: what tsc must accept and refuse. */
export function typeChecks(service: Service): void {
  // @ts-expect-error a misspelled event name does not compile
  service.on('eror', () => undefined);
  // @ts-expect-error nor does one on once()
  service.once('listen', () => undefined);
  // @ts-expect-error 'listening' passes no argument
  service.on('listening', (_port: number) => undefined);
  // @ts-expect-error emit() checks its arguments too
  service.emit('close', 1);
  service.on('error', (error) => {
    const conn: ServiceConnection | undefined = error instanceof HandlerError ? error.connection : undefined;
    const code: string | undefined = error instanceof HandlerError ? error.code : undefined;
    void conn;
    void code;
  });
  service.on('close', () => undefined).once('listening', () => undefined);
}

/** A logger that keeps what it is given. */
function recordingLogger(): {
  logger: Logger;
  entries: Array<{ level: string; message: string; fields: LogFields }>;
  waitFor(p: (f: LogFields) => boolean): Promise<LogFields>;
} {
  const entries: Array<{ level: string; message: string; fields: LogFields }> = [];
  const waiters: Array<{ p: (f: LogFields) => boolean; resolve: (f: LogFields) => void }> = [];
  const record = (level: string) => (message: string, fields?: object) => {
    const f = fields as LogFields;
    entries.push({ level, message, fields: f });
    for (const w of [...waiters]) {
      if (w.p(f)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(f);
      }
    }
  };
  return {
    logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') },
    entries,
    waitFor(p) {
      const seen = entries.find((e) => p(e.fields));
      if (seen !== undefined) return Promise.resolve(seen.fields);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such log entry within 10 s; got ${JSON.stringify(entries)}`)), 10_000);
        waiters.push({ p, resolve: (f) => (clearTimeout(timer), resolve(f)) });
      });
    },
  };
}

for (const { name: mode, options } of MODES_TESTED) {
  test.serial(`${mode}: 'listening' follows run(), 'close' follows destroy() and close()`, async (t) => {
    for (const how of ['destroy', 'close'] as const) {
      const echo = await startEchoService(
        {},
        {
          ...options,
          beforeRun: (s) => {
            const seen: string[] = [];
            s.on('listening', () => seen.push('listening'));
            s.on('close', () => seen.push('close'));
            (s as Service & { seen?: string[] }).seen = seen;
          },
        },
      );
      const seen = (echo.service as Service & { seen: string[] }).seen;
      await once(echo.service, 'listening');
      t.deepEqual(seen, ['listening']);
      const closed = once(echo.service, 'close');
      await (how === 'destroy' ? echo.service.destroy() : echo.service.close({ graceMs: 1000 }));
      await closed;
      t.deepEqual(seen, ['listening', 'close'], how);
      await echo.stop();
      t.deepEqual(seen, ['listening', 'close'], `${how}: 'close' once`);
    }
  });

  test.serial(`${mode}: options.logger receives a refused client's reject (errno, why), and accept and disconnect`, async (t) => {
    const { logger, entries, waitFor } = recordingLogger();
    const echo = await startEchoService({ connectionAccept: (conn) => (conn.pid === process.pid ? -EACCES : 0) }, { ...options, logger });
    try {
      const refused = await t.throwsAsync(connect(echo.name, 12328), { instanceOf: QbError });
      t.is(refused?.code, 'EACCES');
      const reject = await waitFor((f) => f.event === 'reject');
      t.like(reject, { event: 'reject', pid: process.pid, errno: -EACCES, code: 'EACCES', reason: 'connectionAccept said no' });
      const entry = entries.find((e) => e.fields.event === 'reject')!;
      t.is(entry.level, 'info');
      t.regex(entry.message, /refused the client with pid \d+ \(EACCES\): connectionAccept said no/);

      // Accepted clients are logged where they are served: in worker mode, from the worker.
      const child = new LineChild(process.execPath, [join(here, 'helpers', 'qbipc-client-child.js'), echo.name]);
      try {
        await child.waitFor(/^ready pid=/);
        const accepted = await waitFor((f) => f.event === 'accept' && f.pid === child.pid);
        t.like(accepted, { uid: process.getuid!(), connection: accepted.connection });
        if ((options.workers ?? 0) > 0) t.is(typeof accepted['shard'], 'number', 'a worker log point names its shard');
      } finally {
        await child.stop();
      }
      const gone = await waitFor((f) => f.event === 'disconnect' && f.pid === child.pid);
      t.is(gone.reason, 'client closed the connection');
    } finally {
      await echo.stop();
    }
  });

  test.serial(`${mode}: an 'error' with no listener ends the process with a short report: no connection, no internal state`, async (t) => {
    const name = uniqueName('unhandled');
    const server = spawn(process.execPath, [join(here, 'helpers', 'unhandled-error-server.js'), name, String(options.workers ?? 0)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => server.once('close', (code) => resolve(code)));
    let stderr = '';
    server.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const killer = setTimeout(() => server.kill('SIGKILL'), 30_000);
    try {
      let stdout = '';
      await new Promise<void>((resolve, reject) => {
        server.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          if (stdout.includes('ready pid=')) resolve();
        });
        void exited.then(() => reject(new Error(`the server exited before it was ready: ${stderr}`)));
      });
      const client = await connect(name, 12328);
      try {
        const request = new Uint8Array(16);
        new DataView(request.buffer).setInt32(0, 66, true);
        new DataView(request.buffer).setInt32(8, 16, true);
        t.is(client.send(request), 16);
        t.not(await exited, 0);
      } finally {
        client.disconnect();
      }
      t.regex(stderr, /HandlerError: qbipc: msgProcess failed for the client with pid \d+/);
      t.regex(stderr, /code: 'ERR_QBIPC_HANDLER'/);
      t.notRegex(stderr, /cells|Float64Array|Connection \{|RemoteConnection|setupFd|directory/);
      t.true(stderr.length < 3000, `${stderr.length} bytes of stderr:\n${stderr}`);
      t.log(`stderr: ${stderr.length} bytes`);
    } finally {
      server.kill('SIGKILL');
      await exited;
      clearTimeout(killer);
      for (const dir of shmEntries(server.pid)) {
        rmSync(`/dev/shm/${dir}`, { recursive: true, force: true }); // a process that died leaves its clients' directories
      }
    }
  });
}

test('options.logger must be Console-like', (t) => {
  t.throws(() => createService('ok', 0, IpcType.SHM, { msgProcess: () => 0 }, { logger: 'console' as unknown as Logger }), {
    instanceOf: TypeError,
    code: 'ERR_INVALID_ARG_TYPE',
  } as never);
  t.throws(() => createService('ok', 0, IpcType.SHM, { msgProcess: () => 0 }, { logger: { info: 1 } as unknown as Logger }), {
    instanceOf: TypeError,
    message: /options\.logger\.info must be a function/,
  });
  t.notThrows(() => createService('ok', 0, IpcType.SHM, { msgProcess: () => 0 }, { logger: console }));
});

test.serial("a logger that throws is reported as an 'error', and the service serves on", async (t) => {
  const echo = await startEchoService(
    {},
    {
      logger: {
        debug: () => {
          throw new Error('logger broke');
        },
      },
    },
  );
  try {
    const reported = once(echo.service, 'error');
    const client = await connect(echo.name, 12328);
    try {
      const error = (await reported)[0] as Error;
      t.regex(error.message, /options\.logger threw/);
      t.is((error.cause as Error).message, 'logger broke');
      const request = new Uint8Array(20);
      new DataView(request.buffer).setInt32(0, 1, true);
      new DataView(request.buffer).setInt32(8, 20, true);
      const response = await client.sendRecv(request, 5000);
      t.is(response.byteLength, 28);
    } finally {
      client.disconnect();
    }
  } finally {
    await echo.stop();
  }
});
