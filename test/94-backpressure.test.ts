// Issue 17 finding 4 and issue 16's back-pressure convention.
// The API: a response refused with -EAGAIN → conn.pause() stops reading that
// client's requests (flow control on the wire: its sends fail with EAGAIN) and
// conn.onDrain() fires once it has read what was queued (SHM: the ring is
// empty; SOCKET: POLLOUT) — in the thread that sends, worker or not; resume()
// serves it again. The flow-control statistics stay libqb's (they follow the
// rate limit only). Then the echo app of `qbipc serve`: 8 clients that send
// requests and never read a response run against it (a child process) for a
// few seconds while a libqb C client keeps making verified round trips: the
// server's RSS stays under RSS_BOUND_MB, the C client is served throughout, and
// the slow clients are pushed back (their sends fail with EAGAIN).
import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import {
  connect,
  createService,
  EAGAIN,
  HandlerError,
  IpcType,
  RateLimit,
  readResponseHeader,
  writeRequestHeader,
  type Client,
  type Service,
  type ServiceConnection,
  type ServiceOptions,
} from '../src/index.js';
import { ROOM_POLL_MAX_MS } from '../src/transport/room-poll.js';
import { backpressureHandlers, ID_SIZED, ID_THROWING_DRAIN, type BackpressureReport } from './helpers/backpressure-handlers.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { shmEntries, uniqueName } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES as SERVICE_MODES } from './helpers/modes.js';
import { connectionDirs, LineChild } from './helpers/peers.js';
import { waitUntil } from './helpers/wait-until.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const RSS_BOUND_MB = 300;
const SLOW_CLIENTS = 8;
const REQUEST_SIZE = 256 * 1024;
const BUFFER_SIZE = 1024 * 1024;
const DURATION_MS = 4000;

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

interface BackpressureService {
  service: Service;
  name: string;
  reports: BackpressureReport[];
  next(ev: BackpressureReport['ev'], from?: number): Promise<BackpressureReport>;
  stop(): Promise<void>;
}

async function startBackpressureService(options: ServiceOptions, type: IpcType): Promise<BackpressureService> {
  const name = uniqueName('bp');
  const reports: BackpressureReport[] = [];
  const waiters: Array<{ ev: string; from: number; resolve: (r: BackpressureReport) => void }> = [];
  const report = (r: BackpressureReport) => {
    reports.push(r);
    for (const w of [...waiters]) {
      if (w.ev === r.ev && reports.length > w.from) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(r);
      }
    }
  };
  let channel: BroadcastChannel | undefined;
  let service: Service;
  if ((options.workers ?? 0) > 0) {
    channel = new BroadcastChannel(`qbipc-bp-${name}`);
    channel.onmessage = (event) => report((event as { data: BackpressureReport }).data);
    service = createService(
      name,
      0,
      type,
      {},
      {
        ...options,
        workerModule: new URL('./helpers/backpressure-handlers.js', import.meta.url),
        workerData: { channel: `qbipc-bp-${name}` },
      },
    );
  } else {
    service = createService(name, 0, type, backpressureHandlers(report), options);
  }
  service.on('error', () => undefined);
  await service.run();
  return {
    service,
    name,
    reports,
    next(ev, from = 0) {
      const seen = reports.slice(from).find((r) => r.ev === ev);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no '${ev}' report within 10 s; got ${JSON.stringify(reports)}`)), 10_000);
        waiters.push({ ev, from, resolve: (r) => (clearTimeout(timer), resolve(r)) });
      });
    },
    async stop() {
      await service.destroy();
      channel?.close();
    },
  };
}

function sizedRequest(responseSize: number): Uint8Array {
  const request = writeRequestHeader(new Uint8Array(20), { id: ID_SIZED, size: 20 });
  new DataView(request.buffer).setUint32(16, responseSize, true);
  return request;
}

/** Sends until the send is taken (EAGAIN while the service pushes back), looking again each turn of the loop. */
async function sendWhenAllowed(client: Client, request: Uint8Array): Promise<void> {
  let rc = client.send(request);
  await waitUntil(() => rc !== -EAGAIN || (rc = client.send(request)) !== -EAGAIN, 10_000, 'the service to take requests again');
  if (rc < 0) throw new Error(`send failed: ${rc}`);
}

const BP_BUFFER = 64 * 1024;
const BP_RESPONSE = 16 * 1024;
/** Responses asked for at once: more than an SHM ring of BP_BUFFER holds (4) and than a SOCKET client's queue takes (max_dgram_qlen 10). */
const BURST = 16;
/** 16 KiB responses an SHM response ring of 64 KiB holds. */
const SHM_RING_HOLDS = 4;

async function receiveAll(t: ExecutionContext, client: Client, count: number): Promise<number> {
  let lastAt = 0;
  for (let i = 0; i < count; i++) {
    const response = await client.recv(10_000);
    t.like(readResponseHeader(response), { id: ID_SIZED, size: BP_RESPONSE, error: 0 });
    lastAt = Date.now();
  }
  return lastAt;
}

for (const { name: mode, options } of SERVICE_MODES.filter((m) => m.workers !== 1)) {
  for (const type of [IpcType.SHM, IpcType.SOCKET]) {
    test.serial(
      `${mode}, ${IpcType[type]}: pause() on EAGAIN pushes the client back, onDrain fires once it has read, resume() serves it again; flow-control stats untouched`,
      async (t) => {
        const bp = await startBackpressureService(options, type);
        const client = await connect(bp.name, BP_BUFFER);
        try {
          const request = sizedRequest(BP_RESPONSE);
          // One request at a time, each handled before the next is sent (a request queue takes only so many),
          // until the service pushes back.
          const conn = bp.service.connectionFirstGet()!;
          let pushedBack = false;
          void bp.next('eagain').then(() => (pushedBack = true));
          let sent = 0;
          while (!pushedBack && sent < BURST) {
            const rc = client.send(request);
            if (rc === -EAGAIN) {
              await bp.next('eagain'); // paused between our look at its counters and this send
              break;
            }
            t.is(rc, 20);
            sent++;
            await waitUntil(() => pushedBack || conn.stats().requests === sent, 10_000, `request ${sent} to be handled`);
          }
          t.true(pushedBack, `the service answered ${sent} requests without running out of room`);
          t.is(client.send(request), -EAGAIN, 'paused: flow control on the request channel');
          t.like(
            conn.stats(),
            { flowControlState: 0, flowControlCount: 0 },
            "pause() is not the rate limit: libqb's stats do not count it",
          );

          // Reading makes room: the service is told, sends what it kept, resumes; everything arrives, in order.
          await receiveAll(t, client, sent);
          await bp.next('sent-after-drain'); // the drain came, what was kept went out, the connection resumed
          await sendWhenAllowed(client, request);
          await receiveAll(t, client, 1);
          t.like(conn.stats(), { flowControlState: 0, flowControlCount: 0 });
        } finally {
          client.disconnect();
          await bp.stop();
        }
      },
    );
  }
}

test.serial('SHM: onDrain is noticed within the polling bound once the client empties the ring', async (t) => {
  const bp = await startBackpressureService({}, IpcType.SHM);
  const client = await connect(bp.name, BP_BUFFER);
  try {
    for (let i = 0; i < SHM_RING_HOLDS + 1; i++) t.is(client.send(sizedRequest(BP_RESPONSE)), 20);
    await bp.next('eagain');
    // Let the poll back off to its longest period (a measurement's set-up, not a synchronisation), then empty the ring.
    await new Promise((resolve) => setTimeout(resolve, 10 * ROOM_POLL_MAX_MS));
    const lastRead = await receiveAll(t, client, SHM_RING_HOLDS);
    const drain = await bp.next('drain');
    const lateMs = drain.at - lastRead;
    t.log(`drain noticed ${lateMs} ms after the ring was emptied (bound ${ROOM_POLL_MAX_MS} ms + a loop turn)`);
    t.true(lateMs <= ROOM_POLL_MAX_MS + 50, `${lateMs} ms`);
    await receiveAll(t, client, 1);
  } finally {
    client.disconnect();
    await bp.stop();
  }
});

test.serial(
  'in-thread, SHM: pause() and the rate limit together: the stats count only the rate limit; resume() leaves its flow control on',
  async (t) => {
    const bp = await startBackpressureService({}, IpcType.SHM);
    const client = await connect(bp.name, BP_BUFFER);
    try {
      const request = sizedRequest(BP_RESPONSE);
      for (let i = 0; i < BURST; i++) t.is(client.send(request), 20);
      await bp.next('eagain');
      await bp.service.requestRateLimit(RateLimit.OFF);
      const conn = bp.service.connectionFirstGet()!;
      t.like(conn.stats(), { flowControlState: 1, flowControlCount: 1 });
      // The client reads what was answered; the drain resumes the connection, but the rate limit's flow control stays.
      await receiveAll(t, client, SHM_RING_HOLDS);
      await bp.next('sent-after-drain');
      t.is(client.send(request), -EAGAIN, "still under the rate limit's flow control");
      t.false((conn as { isPaused?: boolean }).isPaused ?? true);
      await bp.service.requestRateLimit(RateLimit.NORMAL);
      t.like(conn.stats(), { flowControlState: 0, flowControlCount: 2 });
      await receiveAll(t, client, BURST - SHM_RING_HOLDS); // the kept one, then the requests left in the ring, served now
      t.is(client.send(request), 20);
      await receiveAll(t, client, 1);
    } finally {
      client.disconnect();
      await bp.stop();
    }
  },
);

test.serial("in-thread: an onDrain callback that throws is a handler failure ('onDrain'): that client is dropped", async (t) => {
  const bp = await startBackpressureService({}, IpcType.SHM);
  const client = await connect(bp.name, BP_BUFFER);
  try {
    const failed = new Promise<HandlerError<ServiceConnection>>((resolve) =>
      bp.service.on('error', (e) => e instanceof HandlerError && resolve(e)),
    );
    t.is(client.send(writeRequestHeader(new Uint8Array(16), { id: ID_THROWING_DRAIN, size: 16 })), 16);
    const error = await failed;
    t.is(error.handler, 'onDrain');
    t.is(error.connection.pid, process.pid);
    await waitUntil(() => !client.isConnected, 10_000, 'the client to be dropped');
  } finally {
    client.disconnect();
    await bp.stop();
  }
});

/** A /proc/PID/status field in kB (VmRSS, VmHWM), or undefined once the process is gone. */
function statusKb(pid: number, field: string): number | undefined {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

for (const type of ['shm', 'socket']) {
  test.serial(
    `qbipc serve --type ${type}: a libqb C client that reads events gets 20000 of them, in order, promptly (the event channel fills and drains over and over)`,
    async (t) => {
      const name = uniqueName('events');
      const server = new LineChild(process.execPath, [CLI, 'serve', name, '--type', type]);
      const client = await QbClient.start();
      try {
        await server.waitFor(/^ready pid=/);
        await ok(t, client, `connect ${name} 12328`);
        const { count, usec } = await ok(t, client, 'events 20000 32', 60_000); // each event within qbclient's 5 s
        t.is(Number(count), 20000);
        t.log(`20000 events in ${Math.round(Number(usec) / 1000)} ms`);
        const echoed = await ok(t, client, 'rounds 100 64');
        t.is(Number(echoed['count']), 100);
      } finally {
        await client.close();
        await server.stop();
        t.deepEqual(connectionDirs(server.pid), []);
      }
    },
  );
}

const SERVE_MODES = [
  { label: 'in-thread, SHM', args: ['--type', 'shm'] },
  { label: 'workers 2, SHM', args: ['--type', 'shm', '--workers', '2'] },
  { label: 'in-thread, SOCKET', args: ['--type', 'socket'] },
];

for (const { label, args } of SERVE_MODES) {
  test.serial(
    `${label}: ${SLOW_CLIENTS} clients that never read keep \`qbipc serve\` under ${RSS_BOUND_MB} MB RSS; a C client is served throughout`,
    async (t) => {
      const name = uniqueName('slowpoke');
      const server = new LineChild(process.execPath, [CLI, 'serve', name, ...args]);
      let slow: LineChild | undefined;
      let healthy: QbClient | undefined;
      let sampler: NodeJS.Timeout | undefined;
      try {
        await server.waitFor(/^ready pid=/);
        const startKb = statusKb(server.pid, 'VmRSS')!;
        healthy = await QbClient.start();
        await ok(t, healthy, `connect ${name} 12328`);

        let peakKb = startKb;
        let overBound = false;
        slow = new LineChild(process.execPath, [
          join(here, 'helpers', 'never-reading-clients.js'),
          name,
          String(SLOW_CLIENTS),
          String(REQUEST_SIZE),
          String(BUFFER_SIZE),
          String(DURATION_MS),
        ]);
        // A measurement, not a synchronisation: RSS is sampled while the load runs; past the bound the load is stopped.
        sampler = setInterval(() => {
          const kb = statusKb(server.pid, 'VmRSS');
          if (kb === undefined) return;
          peakKb = Math.max(peakKb, kb);
          if (kb > RSS_BOUND_MB * 1024 && !overBound) {
            overBound = true;
            slow?.kill('SIGKILL');
          }
        }, 50);
        await slow.waitFor(/^ready pid=/);

        // The C client's verified round trips while the slow clients push.
        let roundTrips = 0;
        while (slow.running && !overBound) {
          const fields = await ok(t, healthy, 'rounds 200 1024', 20_000);
          roundTrips += Number(fields['count']);
        }
        const { code } = await slow.exited;
        clearInterval(sampler);
        const hwmKb = statusKb(server.pid, 'VmHWM') ?? peakKb;
        peakKb = Math.max(peakKb, hwmKb);
        t.log(
          `server RSS: ${Math.round(startKb / 1024)} MB at start, peak ${Math.round(peakKb / 1024)} MB (VmHWM); ` +
            `C client: ${roundTrips} verified round trips during the load; slow clients: ${slow.lines.find((l) => l.startsWith('done')) ?? `killed (exit ${code})`}`,
        );
        t.false(overBound, `the server passed ${RSS_BOUND_MB} MB RSS (peak ${Math.round(peakKb / 1024)} MB)`);
        t.true(peakKb < RSS_BOUND_MB * 1024);
        t.is(code, 0);
        const done = (await slow.waitFor(/^done sent=(\d+) eagain=(\d+)/)).slice(1).map(Number);
        t.true(done[1]! > 0, 'the slow clients were pushed back (EAGAIN)');
        t.true(roundTrips >= 200, 'the C client was served while they pushed');
        // And after they left, as before.
        await ok(t, healthy, 'rounds 100 4096', 20_000);
      } finally {
        clearInterval(sampler);
        await healthy?.close();
        slow?.kill('SIGKILL');
        await slow?.exited;
        await server.stop();
        t.deepEqual(connectionDirs(server.pid), []);
      }
    },
  );
}
