// A qbipc service with no 'error' listener, in a child process, whose
// msgProcess throws on request id 66: the unhandled 'error' ends the process
// and Node prints the error. `node unhandled-error-server.js NAME WORKERS`;
// prints "ready pid=P" once it listens.
import { createService, IpcType } from '../../src/index.js';
import { failingHandlers } from './failing-handlers.js';

const [name, workers] = process.argv.slice(2);
const spec = { handler: 'msgProcess', how: 'throw' } as const;
const count = Number(workers ?? 0);
const service =
  count > 0
    ? createService(
        name!,
        0,
        IpcType.SHM,
        {},
        {
          workers: count,
          workerModule: new URL('./failing-worker.js', import.meta.url),
          workerData: { channel: `qbipc-unhandled-${name}`, spec },
        },
      )
    : createService(
        name!,
        0,
        IpcType.SHM,
        failingHandlers(spec, () => undefined),
      );
await service.run();
process.stdout.write(`ready pid=${process.pid}\n`);
