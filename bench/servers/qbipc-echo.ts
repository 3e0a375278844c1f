// The qbipc echo server the benchmark measures: the reference application
// protocol (id 1 echo, zero-copy from request ring to response ring).
// Usage: node qbipc-echo.js NAME [workers]. Prints "ready pid=P"; on SIGTERM
// prints "rusage user_us=U sys_us=S maxrss_kb=M" and exits.
import { createService, IpcType, requestId, writeResponseHeader, makeResponse, EINVAL } from '../../src/index.js';

const name = process.argv[2];
if (name === undefined) {
  console.error('usage: qbipc-echo NAME [workers]');
  process.exit(2);
}
const workers = Number(process.argv[3] ?? 0);
const header = new Uint8Array(24);
const parts: Uint8Array[] = [header, header];

const service = createService(name, 0, IpcType.SHM, {
  msgProcess(conn, request) {
    const id = requestId(request);
    if (id !== 1) return void conn.responseSend(makeResponse(id, -EINVAL));
    const payload = request.subarray(16);
    writeResponseHeader(header, { id: 1, size: 24 + payload.byteLength, error: 0 });
    parts[1] = payload;
    conn.responseSendv(parts);
    return 0;
  },
}, { workers });

await service.run();
console.log(`ready pid=${process.pid}`);
process.on('SIGTERM', () => {
  void service.destroy().then(() => {
    const u = process.resourceUsage();
    console.log(`rusage user_us=${u.userCPUTime} sys_us=${u.systemCPUTime} maxrss_kb=${u.maxRSS}`);
    process.exit(0);
  });
});
