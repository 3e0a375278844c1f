// Finding 6 of issue 17: a SOCKET connection's request socket is bound (an
// abstract name anyone can read in /proc/net/unix) before the client attaches,
// and until the server connects it to the client, another user can fill its
// queue (net.unix.max_dgram_qlen) so that the client's sends fail with EAGAIN.
// The server must connect it as soon as the client has attached: then the
// kernel refuses every other sender (EPERM) and no queue limit applies to the
// client. A stranger's datagrams are never taken as the client's requests.
//
// The stranger is test/c/dgram-flood.c running as uid 65534; the client here
// is made by hand so that the test decides when it attaches.
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { handshake } from '../src/client/handshake.js';
import { clientLoop, hold, release } from '../src/client/loop.js';
import { IpcType, LoopPriority, PollEvent } from '../src/constants.js';
import { EAGAIN } from '../src/errno.js';
import { native } from '../src/native.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';
import { buildLibqbProgram, LineChild } from './helpers/peers.js';
import { waitUntil } from './helpers/wait-until.js';

const NOBODY = 65534;
const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const BUFFER = 12328;
const BURST = 40;

function stranger(flood: string, serviceName: string): LineChild {
  return new LineChild('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', flood, serviceName, 'valid']);
}

function echoRequest(k: number): Uint8Array {
  const bytes = new Uint8Array(16 + 8);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, 1, true);
  view.setInt32(8, bytes.byteLength, true);
  view.setUint32(16, 0x51b10000 + k, true);
  return bytes;
}

/**
 * The next datagram on `fd`, waited for in this thread's loop (an in-thread
 * server shares the thread, so nothing may block): its length, or -EAGAIN
 * when none came within timeoutMs.
 */
function receive(fd: number, into: Uint8Array, timeoutMs: number): Promise<number> {
  const first = native.dgramRecv(fd, into);
  if (first !== -EAGAIN) return Promise.resolve(first);
  const loop = clientLoop();
  return new Promise((done) => {
    const finish = (n: number) => {
      clearTimeout(timer);
      loop.dispatchDel(fd);
      release();
      done(n);
    };
    const timer = setTimeout(() => finish(-EAGAIN), timeoutMs);
    hold();
    loop.dispatchAdd(LoopPriority.HIGH, fd, PollEvent.IN, () => {
      const n = native.dgramRecv(fd, into);
      if (n !== -EAGAIN) finish(n);
    });
  });
}

let flood: string;
test.before(async () => {
  await buildCPrograms();
  flood = await buildLibqbProgram(join(ROOT, 'test', 'c', 'dgram-flood.c'), 'dgram-flood');
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

for (const mode of MODES.filter((m) => m.workers !== 1)) {
  test.serial(
    `${mode.name}: once the client has attached, another uid's datagrams are refused and the client's burst is not limited`,
    async (t) => {
      const echo = await startEchoService({}, { ...mode.options, type: IpcType.SOCKET, tag: 'foreign' });
      const attacker = stranger(flood, echo.name);
      const fds: number[] = [];
      try {
        await attacker.waitFor(/^ready$/);
        const h = await handshake(echo.name, BUFFER, { timeoutMs: 10_000 });
        fds.push(h.setupFd);
        const base = h.response;
        await attacker.waitFor(new RegExp(`^full ${base}-request$`), 10_000);

        // What a libqb client does after the handshake: bind its two sockets and connect them to the server's.
        const response = native.dgramOpen(`${base}-response`, h.bufferSize, false);
        fds.push(response);
        t.is(native.dgramConnect(response, `${base}-request`, h.bufferSize), 0);
        const event = native.dgramOpen(`${base}-event`, h.bufferSize, false);
        fds.push(event);
        t.is(native.dgramConnect(event, `${base}-event-tx`, h.bufferSize), 0);

        // The server connects its request socket to the client without waiting for a request: the stranger is refused.
        await attacker.waitFor(new RegExp(`^refused ${base}-request$`), 5000);

        // More requests than the queue limit, none read yet: a connected peer is not held to max_dgram_qlen.
        let eagain = 0;
        for (let k = 0; k < BURST; k++) {
          const rc = native.sendv(response, [echoRequest(k)]);
          if (rc === -EAGAIN) eagain++;
          else t.is(rc, 24, `request ${k} sent`);
        }
        t.is(eagain, 0, `${eagain} of ${BURST} sends failed with EAGAIN`);

        const into = new Uint8Array(BUFFER + 64);
        const view = new DataView(into.buffer);
        for (let k = 0; k < BURST - eagain; k++) {
          const n = await receive(response, into, 5000);
          t.is(n, 32, `response ${k}`);
          if (n !== 32) break;
          t.is(view.getInt32(16, true), 0, 'no error');
          t.is(view.getUint32(24, true), 0x51b10000 + k, `response ${k} answers our request ${k}, not a stranger's`);
        }
      } finally {
        for (const fd of fds) native.close(fd);
        await attacker.stop();
        await echo.stop();
      }
    },
  );

  test.serial(
    `${mode.name}: libqb clients under a stranger's flood of well-formed requests are served only their own answers`,
    async (t) => {
      const echo = await startEchoService({}, { ...mode.options, type: IpcType.SOCKET, tag: 'flooded' });
      const attacker = stranger(flood, echo.name);
      const client = await QbClient.start();
      try {
        await attacker.waitFor(/^ready$/);
        for (let i = 0; i < 20; i++) {
          await ok(t, client, `connect ${echo.name} ${BUFFER}`);
          await ok(t, client, 'sweep 1 600 61'); // every response verified: length, id, bytes
          await ok(t, client, 'disconnect');
        }
        t.is(echo.count('created'), 20, 'no connection was dropped');
      } finally {
        await client.close();
        await attacker.stop();
        await echo.stop();
      }
      t.regex(attacker.lines.at(-1) ?? '', /^sent=\d+ /);
      t.log(attacker.lines.at(-1));
    },
  );
}

test('the stranger stops by itself once the process that started it is gone (a test runner killed mid-test)', async (t) => {
  // A shell starts it, waits until it is running, and exits when told: the flood is then
  // orphaned as it would be if this test's process died.
  const shell = spawn('sh', ['-c', `"${flood}" qbt-orphan-no-such-service & echo "pid $!"; read _`], { stdio: ['pipe', 'pipe', 'ignore'] });
  const lines = createInterface({ input: shell.stdout });
  let pid = 0;
  let ready = false;
  await new Promise<void>((resolve) =>
    lines.on('line', (line) => {
      if (line.startsWith('pid ')) pid = Number(line.slice(4));
      if (line === 'ready') ready = true;
      if (pid > 0 && ready) resolve();
    }),
  );
  const running = () => {
    try {
      return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); // a zombie has exited
    } catch {
      return false; // gone
    }
  };
  try {
    shell.stdin.end(); // the shell's read returns: it exits
    await once(shell, 'exit');
    await waitUntil(() => !running(), 10_000, `the orphaned dgram-flood (pid ${pid}) to exit`);
    t.pass();
  } finally {
    lines.close();
    if (running()) process.kill(pid, 'SIGKILL');
  }
});
