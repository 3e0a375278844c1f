// The failing handlers as a workerModule: observations go to the main thread, which prints them.
import { BroadcastChannel } from 'node:worker_threads';
import { failingHandlers, type FailSpec } from './failing-handlers.js';

export default function failingWorker(data: { channel: string; spec: FailSpec }) {
  const channel = new BroadcastChannel(data.channel);
  channel.unref();
  return failingHandlers(data.spec, (observation) => {
    if (observation.ev === 'destroyed')
      queueMicrotask(() => channel.postMessage(observation)); // once its files are gone
    else channel.postMessage(observation);
  });
}
