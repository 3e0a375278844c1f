// The native SIGBUS guard at scale, and shared memory released with its
// connection (issue 17, findings 1 and 5):
// - a closed connection's mappings go back to the system at once (their pages
//   become private zero pages), not when V8 collects the buffers;
// - the guard has no fixed capacity: with more connections open than its old
//   16,384-slot table held, a client that truncates its ring files is dropped
//   and the server lives; a mapping the guard cannot take refuses its
//   connection instead of being served unguarded.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buildCPrograms, parseKeyValues, QbClient, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';
import { mappedShm, shmUsedBytes } from './helpers/shm-usage.js';

const MiB = 1024 * 1024;
const GUARD_MODES = MODES.filter((m) => m.workers !== 1);
/** More connections than the old 16,384-slot table guarded: 6 mappings each in-thread (2,730), 8 with workers (2,048). */
const MANY = 3100;
const TRUNCATED = 50;
const serverChild = fileURLToPath(new URL('./helpers/guard-server-child.js', import.meta.url));

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

/** Resolves true as soon as `condition` holds, false when `ms` passed first (checked every 10 ms: /proc has no event). */
async function holdsWithin(ms: number, condition: () => boolean): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (condition()) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

for (const mode of GUARD_MODES) {
  test.serial(
    `${mode.name}: 25 sequential 64 MiB connections: each one's shared memory is back within 1 s of the last close, not held until garbage collection`,
    async (t) => {
      const echo = await startEchoService({}, { ...mode.options, tag: 'release' });
      const client = await QbClient.start();
      try {
        const usedAtStart = shmUsedBytes();
        let usedPeak = usedAtStart;
        let mappedPeak = 0;
        for (let i = 0; i < 25; i++) {
          const { buffer_size: size } = await ok(t, client, `connect ${echo.name} ${64 * MiB}`);
          t.is(Number(size), 64 * MiB);
          await ok(t, client, 'echo 1000');
          mappedPeak = Math.max(mappedPeak, mappedShm().bytes);
          usedPeak = Math.max(usedPeak, shmUsedBytes());
          await ok(t, client, 'disconnect');
          await echo.when('destroyed', i + 1);
        }
        const released = await holdsWithin(1000, () => mappedShm().mappings === 0);
        const held = mappedShm();
        const usedAtEnd = shmUsedBytes();
        t.log(
          `server's mappings of its connections' files: ${(mappedPeak / MiB).toFixed(0)} MiB while one was open, ` +
            `${(held.bytes / MiB).toFixed(0)} MiB in ${held.mappings} mappings 1 s after the last close`,
        );
        t.log(
          `/dev/shm in use (every process): ${(usedAtStart / MiB).toFixed(0)} MiB at start, peak ${(usedPeak / MiB).toFixed(0)} MiB, ` +
            `${(usedAtEnd / MiB).toFixed(0)} MiB after`,
        );
        t.true(mappedPeak >= 3 * 64 * MiB, 'an open connection maps its three 64 MiB rings (the measure sees them)');
        t.true(
          released,
          `1 s after the last close the server still maps ${held.mappings} files of closed connections (${(held.bytes / MiB).toFixed(0)} MiB)`,
        );
      } finally {
        await client.close();
        await echo.stop();
      }
    },
  );
}

/** The echo service in a process of its own (guard-server-child.ts): a SIGBUS the guard misses kills it, not the test. */
class GuardServer {
  readonly name: string;
  readonly pid: number;
  private readonly replies: string[] = [];
  private readonly waiting: Array<(line: string) => void> = [];
  readonly exited: Promise<string>;
  private exitedWith: string | undefined;

  private constructor(
    private readonly child: ChildProcess,
    ready: string,
  ) {
    const fields = parseKeyValues(ready);
    this.name = fields['name']!;
    this.pid = Number(fields['pid']);
    this.exited = once(child, 'close').then(([code, signal]) => (this.exitedWith = `code ${String(code)}, signal ${String(signal)}`));
  }

  /** Starts it with `nofile` file descriptors allowed (prlimit execs node: the pid is the server's). */
  static async start(workers: number, nofile: number): Promise<GuardServer> {
    const child = spawn('prlimit', [`--nofile=${nofile}:${nofile}`, '--', process.execPath, serverChild, String(workers)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout });
    const [ready] = (await Promise.race([once(lines, 'line'), once(child, 'close').then(() => ['exited'])])) as [string];
    if (!ready.startsWith('ready')) throw new Error(`the guard server did not start: ${ready}`);
    const server = new GuardServer(child, ready);
    lines.on('line', (line) => {
      const waiter = server.waiting.shift();
      if (waiter === undefined) server.replies.push(line);
      else waiter(line);
    });
    return server;
  }

  get hasExited(): string | undefined {
    return this.exitedWith;
  }

  /** One command, its reply line (or why there is none). */
  cmd(line: string): Promise<string> {
    if (this.exitedWith !== undefined) return Promise.resolve(`exited (${this.exitedWith})`);
    const reply = new Promise<string>((resolve) => this.waiting.push(resolve));
    this.child.stdin!.write(`${line}\n`);
    return Promise.race([reply, this.exited.then((how) => `exited (${how})`)]);
  }

  async stop(): Promise<void> {
    if (this.exitedWith !== undefined) return;
    this.child.stdin!.end('quit\n');
    const timer = setTimeout(() => process.kill(this.pid, 'SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Runs manyconn (allowed enough fds for `count` connections): the fields of its "opened" and "result" lines. */
async function manyConnections(
  name: string,
  count: number,
  truncate: number,
): Promise<{
  opened: Record<string, string>;
  result: Record<string, string>;
  output: string;
}> {
  const { manyconn } = await buildCPrograms();
  const nofile = 2 * count + 256;
  const run = await runProgram('prlimit', [`--nofile=${nofile}:${nofile}`, '--', manyconn, name, String(count), String(truncate)], {
    timeoutMs: 50_000,
  });
  const output = `exit ${run.code}${run.timedOut ? ' (timed out)' : ''}\n${run.stdout}${run.stderr}`;
  const opened = /^opened .*$/m.exec(run.stdout)?.[0] ?? '';
  const result = /^result .*$/m.exec(run.stdout)?.[0] ?? '';
  return { opened: parseKeyValues(opened), result: parseKeyValues(result), output };
}

for (const mode of GUARD_MODES) {
  test.serial(
    `${mode.name}: ${MANY} SHM connections open (beyond the old 16,384-mapping table), ${TRUNCATED} truncating their event ring are dropped; the others, a bystander and the server live on`,
    async (t) => {
      const server = await GuardServer.start(mode.workers, 2 * MANY + 256);
      const bystander = await QbClient.start();
      try {
        await ok(t, bystander, `connect ${server.name} 12328`);
        const { result, output } = await manyConnections(server.name, MANY, TRUNCATED);
        t.log(`manyconn: ${output.trim().split('\n').slice(1).join(' | ')}`);
        t.is(server.hasExited, undefined, 'the server died');
        t.is(result['opened'], String(MANY), output);
        t.is(result['truncated'], String(TRUNCATED), output);
        t.is(result['unanswered'], '0', `the truncated ones too get the response sent before their fault: ${output}`);
        t.is(result['dropped'], String(TRUNCATED), output);
        t.is(result['served'], String(MANY - TRUNCATED), output);
        t.is(result['failed'], '0', output);
        await ok(t, bystander, 'rounds 20 100');
      } finally {
        await bystander.close();
        await server.stop();
      }
      t.deepEqual(removeLeftovers(server.pid), [], 'the server removed every directory');
    },
  );

  test.serial(
    `${mode.name}: a mapping the guard cannot take refuses its connection (ENOMEM) instead of serving it unguarded; nothing is left mapped; service resumes`,
    async (t) => {
      const server = await GuardServer.start(mode.workers, 1024);
      try {
        const before = parseKeyValues(await server.cmd('stats'));
        // Room for two connections' rings and part of a third's (6 per connection, and 2 probes in the main thread with workers).
        const perConnection = mode.workers > 0 ? 8 : 6;
        t.is(await server.cmd(`limit ${2 * perConnection + 3}`), 'ok');
        const limited = await manyConnections(server.name, 5, 0);
        t.is(limited.opened['n'], '2', limited.output);
        t.is(limited.opened['refused_errno'], '12', `the third connection is refused with ENOMEM: ${limited.output}`);
        t.is(limited.result['served'], '2', limited.output);
        t.is(server.hasExited, undefined);
        t.is(await server.cmd('unlimit'), 'ok');
        // Every connection, the refused one included, has been destroyed: the guard holds what it held before.
        const settled = await holdsWithinAsync(
          5000,
          async () => parseKeyValues(await server.cmd('stats'))['guarded'] === before['guarded'],
        );
        t.true(settled, `the guard holds ${await server.cmd('stats')} (before: ${before['guarded']})`);
        const again = await manyConnections(server.name, 5, 0);
        t.is(again.result['opened'], '5', again.output);
        t.is(again.result['served'], '5', again.output);
      } finally {
        await server.stop();
      }
      t.deepEqual(removeLeftovers(server.pid), [], 'the server removed every directory');
    },
  );
}

/** The directories a server process left in /dev/shm (a server that crashed leaves them all), removed. */
function removeLeftovers(pid: number): string[] {
  const left = shmEntries(pid);
  for (const entry of left) rmSync(`/dev/shm/${entry}`, { recursive: true, force: true });
  return left;
}

/** holdsWithin for a condition that has to ask another process. */
async function holdsWithinAsync(ms: number, condition: () => Promise<boolean>): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await condition()) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
