// The qbipc client inside worker threads, in a process whose main thread never
// loads the native addon (as the benchmark's load client): `node
// qbipc-client-in-worker.js NAME ROUNDS`. One worker does ROUNDS checked echo
// round trips, disconnects and ends; a second is terminated while its recv()
// waits (SHM: on the native semaphore thread). Prints "ok ROUNDS" and exits 0
// when both went as planned; a crash in the worker's teardown kills the process.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

interface Job {
  name: string;
  rounds: number;
  terminate: boolean;
}

async function inWorker(job: Job): Promise<void> {
  // Loaded here only: the main thread must not hold the addon.
  const { connect, writeRequestHeader } = await import('../../src/index.js');
  const client = await connect(job.name, 12328);
  const request = writeRequestHeader(new Uint8Array(16 + 64), { id: 1, size: 16 + 64 });
  for (let i = 0; i < job.rounds; i++) {
    request[16] = i & 0xff;
    const response = await client.sendRecv(request, 10_000);
    if (response.byteLength !== 24 + 64 || response[24] !== (i & 0xff)) throw new Error(`round trip ${i}: wrong response`);
  }
  if (job.terminate) {
    client.recv(-1).catch(() => undefined); // never answered: the worker is terminated while it waits
    parentPort!.postMessage('waiting');
    return;
  }
  client.disconnect();
  parentPort!.postMessage('done');
}

function run(job: Job): Promise<void> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    worker.on('error', reject);
    worker.on('message', (m) => {
      if (m === 'waiting') void worker.terminate();
    });
    worker.on('exit', (code) => (code === 0 || job.terminate ? resolve() : reject(new Error(`worker exited ${code}`))));
  });
}

if (isMainThread) {
  const [name, rounds] = [process.argv[2]!, Number(process.argv[3])];
  await run({ name, rounds, terminate: false });
  await run({ name, rounds: 10, terminate: true });
  process.stdout.write(`ok ${rounds}\n`);
} else {
  await inWorker(workerData as Job);
}
