// Messages between the main thread and the shards (worker threads), over one
// MessagePort per shard. Connections cross as numbers and strings (fds, paths):
// the main thread accepts and creates files, the shard maps and serves them.
import type { MessagePort } from 'node:worker_threads';
import type { LoopPriority } from './constants.js';
import type { DirectoryState } from './connection-dir.js';
import type { TransportFiles } from './transport/files.js';

export interface ShardInit {
  index: number;
  port: MessagePort;
  /** file: URL of the module whose default export is the handlers (or a function returning them). */
  workerModule: string;
  workerData: unknown;
  serviceId: number;
  /** Int32Array cells: [activeConnections, closedConnections], for every shard and the main thread. */
  serviceCounters: SharedArrayBuffer;
  rate: RateSettings;
  /** options.yieldToClients. */
  yieldToClients: boolean;
}

export interface RateSettings {
  priority: LoopPriority;
  budget: number;
  flowControl: number;
}

export const ServiceCounter = { ACTIVE: 0, CLOSED: 1 } as const;

export type ToShard =
  | {
      type: 'adopt';
      id: number;
      setupFd: number;
      pid: number;
      uid: number;
      gid: number;
      bufferSize: number;
      files: TransportFiles;
      directory: DirectoryState;
      cells: Float64Array;
    }
  | {
      /** Refused on the main thread (handshake answered, socket closed): connectionDestroyed runs here, as in libqb. */
      type: 'rejected';
      id: number;
      pid: number;
      uid: number;
      gid: number;
      directory: DirectoryState | undefined;
      cells: Float64Array;
    }
  | { type: 'disconnect'; id: number }
  | { type: 'event'; id: number; seq: number; parts: Uint8Array[] }
  | { type: 'rate'; rate: RateSettings; seq: number }
  | { type: 'shutdown' };

export type FromShard =
  | { type: 'ready' }
  | { type: 'gone'; id: number }
  | { type: 'event-result'; seq: number; rc: number }
  | { type: 'rate-applied'; seq: number }
  | { type: 'handler-error'; id: number; pid: number; handler: string; message: string; stack?: string };
