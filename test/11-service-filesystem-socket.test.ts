// libqb's filesystem-socket mode: SOCKETDIR/<name>, addrlen 2 + strlen, mode 0777.
// Checklist item 2. The libqb client decides by /etc/libqb/force-filesystem-sockets,
// so it runs in a private mount namespace where that file exists; nothing else sees it.
import test from 'ava';
import { existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { buildCPrograms, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

for (const mode of MODES) {
  // Serial: the tests share the /etc/libqb mount point this file may create.
  test.serial(`${mode.name}: item 2: a libqb client in filesystem-socket mode connects to /tmp/<name>`, async (t) => {
    const { qbclient } = await buildCPrograms();
    const createdEtc = !existsSync('/etc/libqb');
    if (createdEtc) mkdirSync('/etc/libqb'); // an empty mount point, removed below
    const echo = await startEchoService({}, { ...mode.options, filesystemSockets: true, socketDir: '/tmp' });
    try {
      const path = `/tmp/${echo.name}`;
      const s = statSync(path);
      t.true(s.isSocket());
      t.is(s.mode & 0o777, 0o777);
      const script = [
        'mount -t tmpfs qbipc-test /etc/libqb',
        'touch /etc/libqb/force-filesystem-sockets',
        `exec ${qbclient} -n ${echo.name} -k 500 -s 100`,
      ].join(' && ');
      const run = await runProgram('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script], { timeoutMs: 30_000 });
      t.is(run.code, 0, run.stdout + run.stderr);
      t.regex(run.stdout, /^ok count=500/m);
      await echo.stop();
      t.false(existsSync(path), 'the socket file is removed with the service');
    } finally {
      await echo.stop();
      if (createdEtc) rmdirSync('/etc/libqb');
    }
  });
}
