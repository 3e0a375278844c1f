// A qbipc echo service whose process exits without destroying it, as an
// application that calls process.exit() (or dies of an uncaught exception) does:
// `node exit-without-destroy-server.js NAME shm|socket WORKERS`. Prints
// "ready pid=P" once it listens; SIGTERM calls process.exit(0) at once.
import { fileURLToPath } from 'node:url';
import { createService, IpcType } from '../../src/index.js';
import { echoHandlers } from '../../src/cli/echo-app.js';

const [name, transport, workersArg] = process.argv.slice(2);
const workers = Number(workersArg ?? 0);
const workerModule = fileURLToPath(new URL('../../src/cli/echo-app.js', import.meta.url));
const service = createService(name!, 0, transport === 'socket' ? IpcType.SOCKET : IpcType.SHM, workers > 0 ? {} : echoHandlers(), {
  workers,
  ...(workers > 0 ? { workerModule } : {}),
});
service.on('error', (error) => process.stderr.write(`${String(error)}\n`));
await service.run();
process.stdout.write(`ready pid=${process.pid}\n`);
process.on('SIGTERM', () => process.exit(0));
