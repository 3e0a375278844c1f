// A raw attacker (test/c/hostile.c, no libqb) against the service, while a
// real libqb client keeps using it. Checklist items 4, 22, 27, 28 (docs/wire.md §18, hardening rules §14);
// truncation (28) is done by a qbipc client, which maps the rings as libqb's does.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { connect, writeRequestHeader } from '../src/index.js';
import { buildCPrograms, QbClient, runProgram } from './helpers/c-programs.js';
import { shmEntries, startEchoService, type EchoService } from './helpers/echo-service.js';
import { ok } from './helpers/expect.js';
import { MODES } from './helpers/modes.js';

test.before(async () => {
  await buildCPrograms();
});

async function attack(name: string, kind: string, arg?: string): Promise<{ result: string; dir: string; output: string }> {
  const { hostile } = await buildCPrograms();
  const run = await runProgram(hostile, [name, kind, ...(arg === undefined ? [] : [arg])], { timeoutMs: 30_000 });
  const output = run.stdout + run.stderr;
  return {
    result: /^result=(\S+)/m.exec(run.stdout)?.[1] ?? `none (exit ${run.code})`,
    dir: /^dir=(\S+)/m.exec(run.stdout)?.[1] ?? '',
    output,
  };
}

const EXPECTED: Array<[attack: string, result: string, items: string]> = [
  ['ok', 'alive', 'the raw client itself is correct'],
  ['bad-magic', 'disconnected', 'item 22'],
  ['huge-size', 'disconnected', 'items 22, 27'],
  ['size-beyond-write', 'disconnected', 'item 27'],
  ['write-pt-oob', 'disconnected', 'item 27'],
  ['read-pt-oob', 'disconnected', 'item 27'],
  ['word-size', 'alive', 'item 27: word_size is never read back'],
  ['hdr-size-lies', 'disconnected', 'item 22 (oversize)'],
  ['hdr-size-small', 'disconnected', 'item 22'],
  ['zero-length', 'disconnected', 'item 22'],
  ['disconnect-msg', 'disconnected', 'item 22 (id -3)'],
  ['garbage-handshake', 'disconnected', 'item 4'],
  ['split-handshake', 'alive', 'item 3'],
  ['flood-doorbells', 'alive', 'item 19'],
];

const running: Array<{ echo?: EchoService; bystander?: QbClient }> = [];

test.after.always('no connection directories left behind', async (t) => {
  for (const r of running) {
    await r.bystander?.close();
    await r.echo?.stop();
  }
  t.deepEqual(shmEntries(), []);
});

for (const mode of MODES) {
  let echo: EchoService;
  let bystander: QbClient;

  test.serial.before(async (t) => {
    const entry: (typeof running)[number] = {};
    running.push(entry);
    // 2 s: far above split-handshake's 100 ms even when this VM's host freezes one side for
    // ~0.6 s (docs/benchmark.md, Machine), and well below stall-handshake's 5 s wait.
    echo = entry.echo = await startEchoService({}, { ...mode.options, handshakeTimeoutMs: 2000 });
    bystander = entry.bystander = await QbClient.start();
    await ok(t, bystander, `connect ${echo.name} 12328`);
  });

  for (const [kind, expected, items] of EXPECTED) {
    test.serial(`${mode.name}: ${items}: ${kind} → ${expected}; other clients keep being served`, async (t) => {
      const before = echo.count('destroyed');
      const { result, dir, output } = await attack(echo.name, kind);
      t.is(result, expected, output);
      if (dir !== '') {
        await echo.when('destroyed', before + 1);
        t.false(existsSync(dir), `the attacker's directory ${dir} was removed`);
      }
      await ok(t, bystander, 'rounds 20 100');
    });
  }

  test.serial(`${mode.name}: item 27: tampered hdr_path/data_path never choose what is unlinked`, async (t) => {
    const victims = mkdtempSync('/tmp/qbvictim-');
    try {
      writeFileSync(`${victims}/victim-header`, 'keep me');
      writeFileSync(`${victims}/victim-data`, 'keep me too');
      const before = echo.count('destroyed');
      const { dir, output } = await attack(echo.name, 'paths', victims);
      t.not(dir, '', output);
      await echo.when('destroyed', before + 1);
      t.is(readFileSync(`${victims}/victim-header`, 'utf8'), 'keep me');
      t.is(readFileSync(`${victims}/victim-data`, 'utf8'), 'keep me too');
      t.false(existsSync(dir), 'the real ring files and directory are gone');
      await ok(t, bystander, 'rounds 20 100');
    } finally {
      rmSync(victims, { recursive: true, force: true });
    }
  });

  for (const ring of ['request', 'response'] as const) {
    test.serial(
      `${mode.name}: item 28 / §14.8: the ${ring} ring's data file truncated → disconnected (the server's access faults), not a crash`,
      async (t) => {
        const before = echo.count('destroyed');
        const client = await connect(echo.name, 12328);
        try {
          const { rings } = (client as unknown as { channel: { rings: Array<{ dataPath: string }> } }).channel;
          const dir = dirname(rings[0]!.dataPath);
          truncateSync(rings[ring === 'request' ? 0 : 1]!.dataPath, 0);
          client.send(writeRequestHeader(new Uint8Array(20), { id: 1, size: 20 }));
          await echo.when('destroyed', before + 1);
          t.false(existsSync(dir), 'its directory was removed');
          await ok(t, bystander, 'rounds 20 100');
        } finally {
          client.disconnect();
        }
      },
    );
  }

  test.serial(`${mode.name}: a stalled handshake is dropped after handshakeTimeoutMs`, async (t) => {
    const { result, output } = await attack(echo.name, 'stall-handshake', '5');
    t.is(result, 'disconnected', output);
    await ok(t, bystander, 'rounds 20 100');
  });
}
