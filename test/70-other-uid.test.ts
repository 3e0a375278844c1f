// A client running as another user (nobody, 65534): accept sees its uid, it can
// use its files, and no third user can read them.
import test from 'ava';
import { statSync } from 'node:fs';
import { buildCPrograms, QbClient, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';

const NOBODY = 65534;

test.before(async () => {
  await buildCPrograms();
});

test.after.always('no connection directories left behind', (t) => {
  t.deepEqual(shmEntries(), []);
});

for (const mode of MODES) {
  test.serial(`${mode.name}: a client of uid 65534 is seen as such, uses its rings, and only it can read them`, async (t) => {
    let accepted: number[] = [];
    const echo = await startEchoService({ connectionAccept: (_c, uid, gid) => void (accepted = [uid, gid]) }, mode.options);
    const client = await QbClient.start({ uid: NOBODY, gid: NOBODY });
    try {
      await ok(t, client, `connect ${echo.name} 12328`);
      t.deepEqual(accepted, [NOBODY, NOBODY]);
      await ok(t, client, 'sweep 1 2000 7');
      await ok(t, client, 'events 1000 64');
      const dir = echo.service.connectionFirstGet()!.description.slice(0, -3);
      t.is(statSync(dir).uid, NOBODY);
      const file = `${dir}/qb-request-${echo.name}-data`;
      t.is(statSync(file).uid, NOBODY);
      t.is(statSync(file).mode & 0o777, 0o600);
      const other = await runProgram('setpriv', ['--reuid=65533', '--regid=65533', '--clear-groups', 'cat', file], { timeoutMs: 10_000 });
      t.not(other.code, 0, 'a third user cannot read the ring');
      t.regex(other.stderr, /Permission denied/);
    } finally {
      await client.close();
      await echo.stop();
    }
  });
}
