// Messages between the main thread and the shards (worker threads), over one
// MessagePort per shard. Connections cross as numbers and strings (fds, paths):
// the main thread accepts and creates files, the shard maps and serves them.
import type { MessagePort } from 'node:worker_threads';
import type { DirectoryState } from './connection-dir.js';
import type { HandlerName } from './errors.js';
import type { LogFields, LogLevel } from './logger.js';
import type { RateSettings } from './shard.js';
import type { TransportFiles } from './transport/files.js';

export interface ShardInit {
  index: number;
  port: MessagePort;
  /** file: URL of the module whose default export is the handlers (or a function returning them). */
  workerModule: string;
  workerData: unknown;
  serviceId: number;
  /** The service's counters (src/service-counters.ts), shared by every shard and the main thread. */
  serviceCounters: SharedArrayBuffer;
  rate: RateSettings;
  /** options.yieldToClients. */
  yieldToClients: boolean;
  /** options.spinMicros: the worker's loop spins on its rings (src/ring-spin.ts). */
  spinMicros: number;
  /** options.realtimePriority: the worker's thread runs at SCHED_RR with it (0: left alone). */
  realtimePriority: number;
  /** The CPU the worker's thread keeps to ('client-cpu' placement), or -1: left alone. */
  cpu: number;
  /** The levels the main thread's logger has: the shard sends only these. */
  logLevels: LogLevel[];
}

/** A connection as it crosses to its shard. */
export interface ConnectionTicket {
  id: number;
  setupFd: number;
  pid: number;
  uid: number;
  gid: number;
  directory: DirectoryState | undefined;
  cells: Float64Array;
}

/** An error as it crosses back (a thrown value need not be an Error). */
export interface ErrorRecord {
  name?: string;
  message: string;
  stack?: string;
  code?: unknown;
}

export type ToShard =
  | ({ type: 'adopt'; bufferSize: number; files: TransportFiles } & ConnectionTicket)
  /** Refused on the main thread (answered, socket closed): connectionDestroyed runs here, as in libqb. */
  | ({ type: 'rejected' } & ConnectionTicket)
  | { type: 'disconnect'; id: number }
  | { type: 'event'; id: number; seq: number; parts: Uint8Array[] }
  | { type: 'rate'; rate: RateSettings; seq: number }
  | { type: 'shutdown' };

export type FromShard =
  | { type: 'ready' }
  | { type: 'gone'; id: number }
  /** A directory the shard could not remove (no descriptor): the main thread's DeferredRemovals takes it. */
  | { type: 'directory-left'; directory: DirectoryState }
  | { type: 'event-result'; seq: number; rc: number }
  | { type: 'rate-applied'; seq: number }
  | { type: 'handler-error'; id: number; handler: HandlerName; error: ErrorRecord }
  | { type: 'log'; level: LogLevel; message: string; fields: LogFields };

export function errorRecord(value: unknown): ErrorRecord {
  if (value instanceof Error)
    return { name: value.name, message: value.message, stack: value.stack, code: (value as { code?: unknown }).code };
  return { message: String(value) };
}

/** The worker's error, rebuilt on this side (the cause of a HandlerError). */
export function errorFromRecord(record: ErrorRecord): Error {
  const error = new Error(record.message);
  if (record.name !== undefined) error.name = record.name;
  if (record.stack !== undefined) error.stack = record.stack;
  if (record.code !== undefined) Object.assign(error, { code: record.code });
  return error;
}
