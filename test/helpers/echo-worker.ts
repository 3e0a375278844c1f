// The test application as a workerModule: the same handlers, reporting each
// callback to the test over a BroadcastChannel.
import { BroadcastChannel } from 'node:worker_threads';
import { echoHandlers, type Behaviour } from './echo-handlers.js';

export default function echoWorker(data: { channel: string; behaviour: Behaviour }) {
  const channel = new BroadcastChannel(data.channel);
  channel.unref();
  return echoHandlers((callback, pid) => {
    // 'destroyed' is reported once the connection is fully gone (its files are
    // removed right after the callback, in the same job), as in-thread tests see it.
    if (callback === 'destroyed') queueMicrotask(() => channel.postMessage({ callback, pid }));
    else channel.postMessage({ callback, pid });
  }, data.behaviour);
}
