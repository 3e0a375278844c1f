// A qbipc echo service in its own process, so a test can kill it by pid:
// `node qbipc-server-child.js NAME shm|socket`. Prints "ready pid=P name=N", then
// "busy pid=C" once a client has made 100 requests (it is mid-stream).
import { createService, IpcType } from '../../src/index.js';
import { echoHandlers } from './echo-handlers.js';

const [name, transport] = process.argv.slice(2);
const counts = new Map<number, number>();
const service = createService(
  name!,
  0,
  transport === 'socket' ? IpcType.SOCKET : IpcType.SHM,
  echoHandlers(
    (callback, pid) => {
      if (callback !== 'request') return;
      const n = (counts.get(pid) ?? 0) + 1;
      counts.set(pid, n);
      if (n === 100) process.stdout.write(`busy pid=${pid}\n`);
    },
    { reportRequests: true },
  ),
);
service.on('error', (error) => process.stderr.write(`${String(error)}\n`));
await service.run();
process.stdout.write(`ready pid=${process.pid} name=${name}\n`);
process.on('SIGTERM', () => void service.destroy().then(() => process.exit(0)));
