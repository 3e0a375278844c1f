// An echo service in its own process, for tests whose failure mode is the
// server dying (a SIGBUS the guard missed): `node guard-server-child.js WORKERS`.
// Prints "ready name=N pid=P", then answers one line per stdin command:
//   stats          stats guarded=G destroyed=D      (mappings the guard holds, connections destroyed)
//   limit N        ok    (the guard takes at most N more mappings than it holds now)
//   unlimit        ok
//   quit           bye   (the service destroyed), then exits 0
import { createInterface } from 'node:readline';
import { native } from '../../src/native.js';
import { startEchoService } from './echo-service.js';

const echo = await startEchoService({}, { workers: Number(process.argv[2] ?? 0), tag: 'guard' });
process.stdout.write(`ready name=${echo.name} pid=${process.pid}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const [command, arg] = line.trim().split(/\s+/);
  if (command === 'stats') {
    process.stdout.write(`stats guarded=${native.guardedMappings()} destroyed=${echo.count('destroyed')}\n`);
  } else if (command === 'limit') {
    native.limitGuardedMappings(native.guardedMappings() + Number(arg));
    process.stdout.write('ok\n');
  } else if (command === 'unlimit') {
    native.limitGuardedMappings();
    process.stdout.write('ok\n');
  } else if (command === 'quit') {
    break;
  } else {
    process.stdout.write(`err unknown ${command}\n`);
  }
}
await echo.stop();
process.stdout.write('bye\n');
process.exit(0);
