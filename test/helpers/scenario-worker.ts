// The scenario server's callbacks as a workerModule: the same handlers as
// in-thread, each observation sent to the main thread, which prints it.
import { BroadcastChannel } from 'node:worker_threads';
import { scenarioHandlers, type Scenario } from './scenario-handlers.js';

export default function scenarioWorker(data: { channel: string; scenario: Scenario }) {
  const channel = new BroadcastChannel(data.channel);
  channel.unref();
  return scenarioHandlers(data.scenario, (observation) => {
    // 'destroyed' once the connection is fully gone (its files are removed right after the callback).
    if (observation.ev === 'destroyed') queueMicrotask(() => channel.postMessage(observation));
    else channel.postMessage(observation);
  });
}
