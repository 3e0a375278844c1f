// Slow consumers, in their own process: COUNT clients of NAME that send echo
// requests of SIZE bytes as fast as the service takes them, for DURATION_MS,
// and never read a response. Half of them obey flow control as libqb's client
// does (a send under flow control fails with EAGAIN); the other half ignore it
// (fcEnableMaxSet(0)) and stop only when the request channel is full.
//   node never-reading-clients.js NAME COUNT SIZE BUFFER DURATION_MS
// Prints "ready pid=P" once all are connected, then at the end one line
// "done sent=N eagain=E" and exits 0 (disconnecting every client).
import { setTimeout as delay } from 'node:timers/promises';
import { connect, EAGAIN, writeRequestHeader } from '../../src/index.js';

const [name, count, size, buffer, duration] = process.argv.slice(2);
const clients = await Promise.all(Array.from({ length: Number(count) }, () => connect(name!, Number(buffer))));
clients.forEach((client, i) => {
  if (i % 2 === 1) client.fcEnableMaxSet(0);
});
const request = writeRequestHeader(new Uint8Array(Number(size)), { id: 1, size: Number(size) });
process.stdout.write(`ready pid=${process.pid}\n`);

let sent = 0;
let eagain = 0;
const end = Date.now() + Number(duration);
while (Date.now() < end) {
  let progress = false;
  for (const client of clients) {
    const rc = client.send(request);
    if (rc === request.byteLength) {
      sent++;
      progress = true;
    } else if (rc === -EAGAIN) eagain++;
    else throw new Error(`send failed: ${rc}`);
  }
  // Every channel refused: the service pushes back. Look again a little later (a load generator's back-off).
  await (progress ? new Promise((resolve) => setImmediate(resolve)) : delay(1));
}
for (const client of clients) client.disconnect();
process.stdout.write(`done sent=${sent} eagain=${eagain}\n`);
