// Issue 17: at start-up a service removes the connection directories that a
// dead server of the same name left in /dev/shm, and nothing else: not a live
// server's, not another service's, not a link, not a directory holding a file
// it would not have made or one owned by someone else.
import test from 'ava';
import { spawn } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { echoHandlers } from '../src/cli/echo-app.js';
import { createService, IpcType } from '../src/index.js';
import { buildCPrograms, QbClient } from './helpers/c-programs.js';
import { uniqueName } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { connectionDirs, startQbipcServerChild } from './helpers/peers.js';

const NOBODY = 65534;
let serial = 0;

/** The pid of a process that has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

/** A directory named as ConnectionDirectory.create() names them, with the given entries. */
function plant(
  serverPid: number,
  files: Record<string, string | { link: string } | { dir: true } | { uid: number }>,
  suffix?: string,
): string {
  const path = `/dev/shm/qb-${serverPid}-4242-${serial++}-${suffix ?? 'Tst' + String(serial).padStart(3, '0')}`;
  mkdirSync(path, { mode: 0o770 });
  for (const [name, what] of Object.entries(files)) {
    const file = join(path, name);
    if (typeof what === 'string') writeFileSync(file, what);
    else if ('link' in what) symlinkSync(what.link, file);
    else if ('dir' in what) mkdirSync(file);
    else {
      writeFileSync(file, 'x');
      chownSync(file, what.uid, what.uid);
    }
  }
  return path;
}

function ringFiles(service: string, rings = ['request', 'response', 'event']): Record<string, string> {
  const files: Record<string, string> = {};
  for (const ring of rings) {
    files[`qb-${ring}-${service}-header`] = 'h';
    files[`qb-${ring}-${service}-data`] = 'd';
  }
  return files;
}

/** Starts and stops a service called `name`: what a restarted server does first. */
async function startOnce(name: string, type = IpcType.SHM): Promise<void> {
  const service = createService(name, 0, type, echoHandlers());
  await service.run();
  await service.destroy();
}

const exists = (path: string) => {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
};

test.before(async () => {
  await buildCPrograms();
});

test.serial("a starting service removes its dead servers' directories and leaves everything else", async (t) => {
  const name = uniqueName('sweep');
  const dead = await deadPid();
  const live = spawn('cat', { stdio: ['pipe', 'ignore', 'ignore'] });
  const linkTarget = mkdtempSync(join(tmpdir(), 'qbipc-sweep-'));
  writeFileSync(join(linkTarget, `qb-control-${name}`), 'keep');
  const victim = join(linkTarget, 'victim');
  writeFileSync(victim, 'keep');
  const planted: string[] = [];
  try {
    const swept = {
      'all three rings': plant(dead, ringFiles(name)),
      'a partial ring': plant(dead, { [`qb-request-${name}-header`]: 'h' }),
      'a SOCKET control file': plant(dead, { [`qb-control-${name}`]: 'c' }),
      'an empty directory': plant(dead, {}),
      'a client of another uid': plant(dead, { [`qb-control-${name}`]: 'c' }),
    };
    chownSync(swept['a client of another uid'], NOBODY, NOBODY);
    chownSync(join(swept['a client of another uid'], `qb-control-${name}`), NOBODY, NOBODY);
    const kept = {
      'a live server': plant(live.pid!, ringFiles(name)),
      'this process': plant(process.pid, { [`qb-control-${name}`]: 'c' }),
      'another service': plant(dead, ringFiles(`${name}-other`)),
      'a file it never makes': plant(dead, { ...ringFiles(name), 'notes.txt': 'n' }),
      'a link among the files': plant(dead, { [`qb-control-${name}`]: { link: victim } }),
      'a directory among the files': plant(dead, { [`qb-control-${name}`]: { dir: true } }),
      'a file of another owner': plant(dead, { [`qb-control-${name}`]: { uid: NOBODY } }),
      'a name it never makes': plant(dead, ringFiles(name), 'Tst12'),
    };
    const link = `/dev/shm/qb-${dead}-4242-${serial++}-Lnk001`;
    symlinkSync(linkTarget, link);
    planted.push(...Object.values(swept), ...Object.values(kept), link);

    await startOnce(`${name}-another`);
    for (const [what, path] of Object.entries(swept)) {
      if (what !== 'an empty directory') t.true(existsSync(path), `the start of another service removed ${what}`);
    }

    await startOnce(name);
    for (const [what, path] of Object.entries(swept)) t.false(exists(path), `${what}: ${path} was removed`);
    for (const [what, path] of Object.entries(kept)) {
      t.true(exists(path), `${what}: ${path} was left`);
      t.true(readdirSync(path).length > 0, `${what}: its files were left`);
    }
    t.true(lstatSync(link).isSymbolicLink(), 'a link named as a connection directory was left');
    t.deepEqual(readdirSync(linkTarget).sort(), [`qb-control-${name}`, 'victim'], 'nothing behind a link was touched');
  } finally {
    live.stdin.end();
    for (const path of planted) rmSync(path, { recursive: true, force: true });
    rmSync(linkTarget, { recursive: true, force: true });
  }
});

for (const transport of ['shm', 'socket'] as const) {
  test.serial(
    `${transport}: the files of a SIGKILLed server (and its SIGKILLed client) are removed when the service starts again`,
    async (t) => {
      const name = uniqueName(`killed-${transport}`);
      const server = await startQbipcServerChild(name, transport);
      const client = await QbClient.start();
      let left: string[] = [];
      try {
        await ok(t, client, `connect ${name} 12328`);
        await ok(t, client, 'echo 100');
        server.kill('SIGKILL');
        await server.exited;
        client.kill('SIGKILL');
        await client.waitExit();
        left = connectionDirs(server.pid);
        t.is(left.length, 1, 'the killed pair left its connection directory');
        t.true(readdirSync(`/dev/shm/${left[0]}`).length > 0, 'with its files');

        await startOnce(name, transport === 'socket' ? IpcType.SOCKET : IpcType.SHM);
        t.deepEqual(connectionDirs(server.pid), [], "the dead server's directory was swept");
      } finally {
        await client.close();
        await server.stop();
        for (const entry of left) rmSync(`/dev/shm/${entry}`, { recursive: true, force: true });
      }
    },
  );
}
