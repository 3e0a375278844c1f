// A qbipc echo service for the fd-exhaustion tests, run by a test under
// `prlimit --nofile=N` so only this process is short of descriptors:
// `node fd-limited-server.js NAME shm|socket WORKERS HANDSHAKE_TIMEOUT_MS`.
// Prints "ready pid=P" once it listens; SIGTERM destroys the service and exits.
import { fileURLToPath } from 'node:url';
import { createService, IpcType } from '../../src/index.js';
import { echoHandlers } from '../../src/cli/echo-app.js';

const [name, transport, workersArg, timeoutArg] = process.argv.slice(2);
const workers = Number(workersArg ?? 0);
const workerModule = fileURLToPath(new URL('../../src/cli/echo-app.js', import.meta.url));
const service = createService(name!, 0, transport === 'socket' ? IpcType.SOCKET : IpcType.SHM, workers > 0 ? {} : echoHandlers(), {
  workers,
  handshakeTimeoutMs: Number(timeoutArg ?? 5000),
  ...(workers > 0 ? { workerModule } : {}),
});
service.on('error', (error) => process.stderr.write(`${String(error)}\n`));
await service.run();
process.stdout.write(`ready pid=${process.pid}\n`);
process.on('SIGTERM', () => void service.destroy().then(() => process.exit(0)));
