// A qbipc client in its own process, so a test can kill it mid-call:
// `node qbipc-client-child.js NAME`. Prints "ready pid=P type=T", then streams
// echo round trips, printing "busy" after 100; "err errno=E" if one fails.
import { connect, IpcType, writeRequestHeader } from '../../src/index.js';

const client = await connect(process.argv[2]!, 12328);
process.stdout.write(`ready pid=${process.pid} type=${IpcType[client.type]}\n`);
const request = writeRequestHeader(new Uint8Array(16 + 64), { id: 1, size: 16 + 64 });
for (let i = 1; ; i++) {
  try {
    await client.sendRecv(request, 10_000);
  } catch (error) {
    process.stdout.write(`err errno=${(error as { errno?: number }).errno}\n`);
    process.exit(1);
  }
  if (i === 100) process.stdout.write('busy\n');
}
