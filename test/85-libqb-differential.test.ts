// Differential tests: one scenario, driven by the same stock libqb clients,
// against libqb 2.0.6's own server (test/c/scenario-server.c) and against
// qbipc (test/helpers/scenario-server.ts, in-thread and with workers). What
// the clients and the server's callbacks and statistics see is recorded per
// server, client pids replaced by labels (A, B, C in connection order), and
// qbipc's record must equal libqb's. Each test also checks that libqb's
// record is what we believe libqb does, so a change of libqb shows as such.
import test, { type ExecutionContext } from 'ava';
import { readdirSync, statSync } from 'node:fs';
import { buildCPrograms, parseReply, QbClient } from './helpers/c-programs.js';
import { AUTHSET, type Observation } from './helpers/scenario-handlers.js';
import type { JsonLineServer } from './helpers/json-line-server.js';
import { buildScenarioServer, startScenarioServer, type ServerKind, type ServerSpec, type Transport } from './helpers/scenario-peers.js';

const MAXMSG = 12328;
const TRANSPORTS: Transport[] = ['shm', 'socket'];
const QBIPC_MODES = [
  { mode: 'in-thread', workers: 0 },
  { mode: 'workers 2', workers: 2 },
] as const;

test.before(async () => {
  await Promise.all([buildCPrograms(), buildScenarioServer()]);
});

type Seen = Record<string, unknown>;

/** One server's run of a scenario: its clients, and pid → label. */
class Run {
  private readonly clients: QbClient[] = [];
  private readonly labels = new Map<number, string>();

  constructor(readonly server: JsonLineServer) {}

  /** A new libqb client, labelled A, B, C… in the order they are made. */
  async client(): Promise<QbClient> {
    const client = await QbClient.start();
    this.labels.set(client.pid, String.fromCharCode(65 + this.clients.length));
    this.clients.push(client);
    return client;
  }

  /** Connects `client` to the server under test; its reply. */
  connect(client: QbClient, maxMsg = MAXMSG): Promise<string> {
    return client.cmd(`connect ${this.server.name} ${maxMsg}`);
  }

  label(pid: unknown): string {
    return this.labels.get(pid as number) ?? `pid ${String(pid)}`;
  }

  /** An observation with its pids replaced by labels and its `ev` dropped. */
  labelled(o: Observation | undefined): Seen | undefined {
    if (o === undefined) return undefined;
    const { ev: _ev, ...rest } = o;
    const out: Seen = {};
    for (const [key, value] of Object.entries(rest)) {
      if (key === 'pid') out[key] = this.label(value);
      else if (key === 'pids') out[key] = (value as number[]).map((p) => this.label(p));
      else if (key === 'conns') out[key] = (value as Observation[]).map((c) => this.labelled({ ...c, ev: 'conn' }));
      else out[key] = value;
    }
    return out;
  }

  /** The callbacks from line `from` on, as "created A". */
  callbacks(from = 0): string[] {
    return this.server.since(from, true).map((o) => `${o.ev} ${this.label(o.pid)}`);
  }

  async walk(): Promise<unknown> {
    return this.labelled(await this.server.command('walk'))!['pids'];
  }

  async stats(): Promise<Seen> {
    return this.labelled(await this.server.command('stats'))!;
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}

/** The same scenario against libqb's server, then qbipc's; both records. */
async function differential(spec: ServerSpec, drive: (run: Run) => Promise<Seen>): Promise<Record<ServerKind, Seen>> {
  const seen = {} as Record<ServerKind, Seen>;
  for (const kind of ['libqb', 'qbipc'] as const) {
    const server = await startScenarioServer(kind, spec);
    const run = new Run(server);
    try {
      seen[kind] = await drive(run);
    } finally {
      await run.close();
      await server.stop();
    }
  }
  return seen;
}

function compare(t: ExecutionContext, seen: Record<ServerKind, Seen>): void {
  t.deepEqual(seen.qbipc, seen.libqb, 'qbipc (actual) must see what libqb (expected) sees');
}

/** A reply without the time it took. */
function untimed(reply: string): string {
  return reply.replace(/ usec=\d+/, '');
}

// ---- 1. the order of connectionFirstGet/NextGet, and of destroy() ----

async function walkOrder(run: Run, withDestroy: boolean): Promise<Seen> {
  const replies: string[] = [];
  for (let i = 0; i < 3; i++) {
    const client = await run.client();
    replies.push(await run.connect(client), await client.cmd('echo 10'));
  }
  const seen: Seen = { replies, walk: await run.walk() };
  if (withDestroy) {
    const from = run.server.mark;
    await run.server.command('destroy');
    seen['destroy'] = run.callbacks(from);
  }
  return seen;
}

for (const { mode, workers } of QBIPC_MODES) {
  test.serial(
    `1. ${mode}: connectionFirstGet/NextGet walk newest first${workers === 0 ? '; destroy() disconnects newest first' : ''}`,
    async (t) => {
      // Worker mode: destroy() ends connections on several threads at once, so no order is compared.
      const seen = await differential({ scenario: 'plain', transport: 'shm', workers }, (run) => walkOrder(run, workers === 0));
      t.deepEqual(seen.libqb['walk'], ['C', 'B', 'A'], 'libqb lists connections newest first');
      if (workers === 0) {
        t.deepEqual(seen.libqb['destroy'], ['closed C', 'destroyed C', 'closed B', 'destroyed B', 'closed A', 'destroyed A']);
      }
      compare(t, seen);
    },
  );
}

// ---- 2. service.unref() with clients connected ----

async function unrefWithClients(run: Run): Promise<Seen> {
  const a = await run.client();
  const seen: Seen = { connectA: await run.connect(a), echoA: await a.cmd('echo 10') };
  await run.server.command('unref');
  seen['echoAAfterUnref'] = await a.cmd('echo 10');
  const b = await run.client();
  seen['connectBAfterUnref'] = await run.connect(b);
  seen['echoB'] = parseReply(seen['connectBAfterUnref'] as string).ok ? await b.cmd('echo 10') : 'not connected';
  await run.server.next((o) => o.ev === 'created' && o['pid'] === b.pid, 0, 2000); // worker mode reports it asynchronously
  seen['walk'] = await run.walk();
  seen['stats'] = await run.stats();
  seen['callbacks'] = run.callbacks();
  return seen;
}

for (const { mode, workers } of QBIPC_MODES) {
  test.serial(`2. ${mode}: after service.unref() the service goes on serving its clients and new ones`, async (t) => {
    const seen = await differential({ scenario: 'plain', transport: 'shm', workers }, unrefWithClients);
    t.like(seen.libqb, { echoAAfterUnref: 'ok n=34', connectBAfterUnref: `ok buffer_size=${MAXMSG}`, echoB: 'ok n=34', walk: ['B', 'A'] });
    compare(t, seen);
  });
}

// ---- 3. recvRetries after a plain round-trip workload ----
// (2000 round trips: today's qbipc counts a few dry rounds in most runs of 200, in every run of 2000.)

async function roundTrips(run: Run): Promise<Seen> {
  const a = await run.client();
  const seen: Seen = { connect: await run.connect(a), rounds: untimed(await a.cmd('rounds 2000 100')) };
  seen['stats'] = run.labelled(await run.server.command('connstats'))!['conns'];
  return seen;
}

for (const transport of TRANSPORTS) {
  for (const { mode, workers } of QBIPC_MODES) {
    test.serial(`3. ${transport} ${mode}: 2000 round trips count no recvRetries (only EAGAIN/ETIMEDOUT of a receive would)`, async (t) => {
      const seen = await differential({ scenario: 'plain', transport, workers }, roundTrips);
      t.like((seen.libqb['stats'] as Seen[])[0], { requests: 2000, responses: 2000, recvRetries: 0, sendRetries: 0 });
      compare(t, seen);
    });
  }
}

// ---- 4. custom poll handlers: a failing jobAdd, and jobAdd calls ----

/** Requests a client queues while the server is paused (SOCKET: the datagram queue holds 10, net.unix.max_dgram_qlen). */
function queueDepth(transport: Transport): number {
  return transport === 'shm' ? 12 : 10;
}

/** Client A queues `count` echo requests while the server reads nothing; then how many are answered. */
async function queueAndCount(run: Run, a: QbClient, count: number): Promise<{ sent: string[]; answered: number }> {
  await run.server.pause();
  const sent: string[] = [];
  try {
    for (let i = 0; i < count; i++) sent.push(await a.cmd('send 1 100'));
  } finally {
    await run.server.resume();
  }
  let answered = 0;
  for (; answered < count; answered++) {
    const reply = parseReply(await a.cmd('recv 2000'));
    if (!reply.ok || reply.fields['match'] !== '1') break;
  }
  return { sent, answered };
}

async function failingJobAdd(run: Run, transport: Transport): Promise<Seen> {
  const a = await run.client();
  const b = await run.client();
  const seen: Seen = { connect: [await run.connect(a), await run.connect(b)], echoB: await b.cmd('echo 10') };
  Object.assign(seen, await queueAndCount(run, a, queueDepth(transport)));
  // connectionClosed asks for a retry; the retry's jobAdd fails.
  const from = run.server.mark;
  seen['disconnectA'] = await a.cmd('disconnect');
  await run.server.next((o) => o.ev === 'closed', from, 5000);
  seen['walkAfterClose'] = await run.walk();
  seen['directoriesOfA'] = run.server.directoriesOf(a.pid).length;
  seen['echoBAfter'] = await b.cmd('echo 100');
  const c = await run.client();
  seen['connectC'] = await run.connect(c);
  seen['echoC'] = await c.cmd('echo 10');
  seen['jobAddCalls'] = (await run.server.command('jobs'))['count'];
  seen['callbacks'] = run.callbacks();
  return seen;
}

async function backingOff(run: Run, transport: Transport): Promise<Seen> {
  const a = await run.client();
  const seen: Seen = { connect: await run.connect(a) };
  Object.assign(seen, await queueAndCount(run, a, queueDepth(transport)));
  seen['jobAddCalls'] = (await run.server.command('jobs'))['count'];
  seen['stats'] = run.labelled(await run.server.command('connstats'))!['conns'];
  return seen;
}

// In-thread only: in worker mode the application's poll handlers carry only the main thread's fds.
for (const transport of TRANSPORTS) {
  test.serial(`4. ${transport}: a failing jobAdd drops the connection at once (closed retry) and stops nothing else`, async (t) => {
    const seen = await differential({ scenario: 'jobfail', transport }, (run) => failingJobAdd(run, transport));
    const queued = queueDepth(transport);
    t.like(seen.libqb, {
      answered: queued,
      walkAfterClose: ['B'],
      directoriesOfA: 0,
      echoBAfter: 'ok n=124',
      echoC: 'ok n=34',
      jobAddCalls: 1, // the closed retry only: libqb's request dispatch never uses jobAdd
    });
    t.deepEqual(
      (seen.libqb['callbacks'] as string[]).filter((c) => c.endsWith(' A')),
      ['accept A', 'created A', 'closed A', 'destroyed A'],
    );
    compare(t, seen);
  });

  test.serial(`4. ${transport}: msgProcess backing off (-1) with queued requests: all answered, jobAdd never called`, async (t) => {
    const seen = await differential({ scenario: 'backoff', transport }, (run) => backingOff(run, transport));
    t.like(seen.libqb, { answered: queueDepth(transport), jobAddCalls: 0 });
    compare(t, seen);
  });
}

// ---- 5. oversized sends ----

const APIS = ['responseSend', 'responseSendv', 'eventSend', 'eventSendv'] as const;

/** The largest chunk an empty libqb SHM ring made for `bufferSize` holds (its data size less 12 bytes of margin). */
function largestShmChunk(bufferSize: number): number {
  return Math.ceil((bufferSize + 13) / 4096) * 4096 - 12;
}

async function oversizedSends(run: Run): Promise<Seen> {
  const a = await run.client();
  const connect = await run.connect(a);
  const bufferSize = Number(parseReply(connect).fields['buffer_size']);
  const ring = largestShmChunk(bufferSize);
  const sizes = [bufferSize, bufferSize + 1, ring, ring + 1, 2 * bufferSize];
  const probes: string[] = [];
  const counted = { responses: 0, events: 0, sendRetries: 0 };
  for (let api = 0; api < APIS.length; api++) {
    for (const size of sizes) {
      const from = run.server.mark;
      await a.cmd(`request 10 ${api} ${size}`);
      const sent = await run.server.next((o) => o.ev === 'send', from);
      // A message the server says it sent must arrive (qbipc may wake the client only when the
      // round ends); one it says it did not send must not be there already.
      const wait = typeof sent?.['rc'] === 'number' && sent['rc'] > 0 ? 2000 : 0;
      const got = await a.cmd(`${api < 2 ? 'recv' : 'eventrecv'} ${wait}`);
      let s = 'no send line';
      if (sent !== undefined) {
        // What this send added to each counter.
        const added = (Object.keys(counted) as Array<keyof typeof counted>).map((k) => `${k}+${(sent[k] as number) - counted[k]}`);
        for (const k of Object.keys(counted) as Array<keyof typeof counted>) counted[k] = sent[k] as number;
        s = `rc=${String(sent['rc'])} ${added.join(' ')}`;
      }
      probes.push(`${APIS[api]} ${size}: ${s} | client: ${got}`);
    }
  }
  return { connect, probes };
}

/**
 * What libqb answers for each probe. SHM: a send that an empty ring cannot hold (its data size
 * less 12 bytes) fails with -EAGAIN and counts a send retry; SOCKET: any datagram the socket
 * takes is sent (up to net.core.wmem_default - 32 bytes, 212960 here; then -EMSGSIZE, no retry).
 * Only qb_ipcs_event_send checks the buffer size (-EMSGSIZE); event_sendv and the responses do not.
 */
function libqbOversized(transport: Transport): RegExp[] {
  const ring = largestShmChunk(MAXMSG);
  const sent = (api: string, size: number) => new RegExp(`^${api} ${size}: rc=${size} .*\\| client: ok n=${size} `);
  const again = (api: string, size: number) => new RegExp(`^${api} ${size}: rc=-11 .*\\| client: err errno=(110|11)$`);
  const tooBig = (size: number) => new RegExp(`^eventSend ${size}: rc=-90 .*\\| client: err errno=11$`);
  const fits = (size: number) => transport === 'socket' || size <= ring;
  const out: RegExp[] = [];
  for (const api of APIS) {
    for (const size of [MAXMSG, MAXMSG + 1, ring, ring + 1, 2 * MAXMSG]) {
      if (api === 'eventSend' && size > MAXMSG)
        out.push(tooBig(size)); // qb_ipcs_event_send checks the buffer size; sendv does not
      else out.push(fits(size) ? sent(api, size) : again(api, size));
    }
  }
  return out;
}

for (const transport of TRANSPORTS) {
  for (const { mode, workers } of QBIPC_MODES) {
    test.serial(`5. ${transport} ${mode}: sends over the buffer size: libqb's return codes, retries and deliveries`, async (t) => {
      const seen = await differential({ scenario: 'plain', transport, workers }, oversizedSends);
      const probes = seen.libqb['probes'] as string[];
      libqbOversized(transport).forEach((re, i) => t.regex(probes[i] ?? '', re));
      compare(t, seen);
    });
  }
}

// ---- 6. authSet in connectionAccept: which files change owner ----

function ownership(path: string): Seen {
  const st = statSync(path);
  return { uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) };
}

async function authSetFiles(run: Run): Promise<Seen> {
  const a = await run.client();
  const seen: Seen = { connect: await run.connect(a), echo: await a.cmd('echo 10') };
  const dirs = run.server.directoriesOf(a.pid);
  seen['directories'] = dirs.length;
  if (dirs.length === 1) {
    const dir = `/dev/shm/${dirs[0]}`;
    seen['directory'] = ownership(dir);
    seen['files'] = readdirSync(dir)
      .sort()
      .map((file) => ({ file: file.replaceAll(run.server.name, 'NAME'), ...ownership(`${dir}/${file}`) }));
  }
  return seen;
}

for (const transport of TRANSPORTS) {
  for (const { mode, workers } of QBIPC_MODES) {
    test.serial(
      `6. ${transport} ${mode}: authSet in connectionAccept changes the owner of ${transport === 'socket' ? 'the control file only' : 'the directory and the rings'}`,
      async (t) => {
        if (process.getuid?.() !== 0) return t.pass('needs root to give files away (chown)');
        const seen = await differential({ scenario: 'authset', transport, workers }, authSetFiles);
        const given = { uid: AUTHSET.uid, gid: AUTHSET.gid, mode: AUTHSET.mode.toString(8) };
        const files = seen.libqb['files'] as Seen[];
        t.true(files.length > 0);
        for (const file of files) t.like(file, given);
        t.like(
          seen.libqb['directory'],
          transport === 'socket' ? { uid: 0, gid: 0, mode: '770' } : { uid: AUTHSET.uid, gid: AUTHSET.gid, mode: '770' },
        );
        compare(t, seen);
      },
    );
  }
}

// ---- 7. disconnect() inside connectionCreated ----

async function disconnectInCreated(run: Run): Promise<Seen> {
  const a = await run.client();
  const connect = await run.connect(a);
  // libqb sends the handshake response before connectionCreated: its client either finds the
  // files (SHM) or sockets (SOCKET) already gone (connect fails: ENOENT, or ECONNREFUSED on
  // SOCKET) or connects and is then told ENOTCONN (or ECONNREFUSED on SOCKET).
  const echo = parseReply(connect).ok ? await a.cmd('echo 10') : undefined;
  await run.server.next((o) => o.ev === 'destroyed', 0, 5000);
  return {
    outcome: echo === undefined ? `connect: ${connect}` : `connect ok, then echo: ${echo}`,
    usable: echo !== undefined && parseReply(echo).ok,
    callbacks: run.callbacks(),
    stats: await run.stats(),
    walk: await run.walk(),
    directoriesOfA: run.server.directoriesOf(a.pid).length,
  };
}

for (const transport of TRANSPORTS) {
  for (const { mode, workers } of QBIPC_MODES) {
    test.serial(
      `7. ${transport} ${mode}: disconnect() in connectionCreated: the client gets no connection, active=1 closed=1`,
      async (t) => {
        const seen = await differential({ scenario: 'created-disconnect', transport, workers }, disconnectInCreated);
        t.log(`libqb's client: ${String(seen.libqb['outcome'])}; qbipc's: ${String(seen.qbipc['outcome'])}`);
        t.regex(seen.libqb['outcome'] as string, /^connect: err errno=(2|111)$|^connect ok, then echo: err errno=(107|111)$/);
        t.like(seen.libqb, {
          usable: false,
          stats: { active: 1, closed: 1 },
          walk: [],
          callbacks: ['accept A', 'created A', 'destroyed A'],
        });
        // Which of the two a libqb client sees is a race in libqb itself: only "no usable connection" is compared.
        const { outcome: _l, ...libqb } = seen.libqb;
        const { outcome: _q, ...qbipc } = seen.qbipc;
        compare(t, { libqb, qbipc });
      },
    );
  }
}
