// A connection's transport in two halves: the files (and later sockets) made
// where the client is accepted, and the transport opened from them where the
// connection is served, perhaps another thread. Only numbers and strings cross.
import type { ConnectionDirectory, FileOwner } from '../connection-dir.js';
import { TransportType } from '../handshake.js';
import { createShmFiles, discardShmFiles, shmEventQueueProbe, shmResponseWaker, ShmTransport, type ShmFiles } from './shm.js';
import { createSocketFiles, discardSocketFiles, socketEventQueueProbe, SocketTransport, type SocketFiles } from './socket.js';
import type { MappedProbe } from '../shm/probe.js';
import type { Transport, TransportHost } from './transport.js';

export type TransportFiles = ShmFiles | SocketFiles;

export function createTransportFiles(
  type: TransportType,
  dir: ConnectionDirectory,
  serviceName: string,
  maxMsgSize: number,
  owner: FileOwner,
): TransportFiles {
  if (type === TransportType.SOCKET) return createSocketFiles(dir, serviceName, maxMsgSize, owner);
  if (type !== TransportType.SHM) throw new Error(`no transport of type ${TransportType[type]}`);
  return createShmFiles(dir, serviceName, maxMsgSize, owner);
}

export function openTransport(host: TransportHost, setupFd: number, files: TransportFiles): Transport {
  return files.kind === 'socket' ? new SocketTransport(host, setupFd, files) : new ShmTransport(host, setupFd, files);
}

export function discardTransportFiles(files: TransportFiles): void {
  if (files.kind === 'socket') discardSocketFiles(files);
  else discardShmFiles(files);
}

/** event_q_length of a connection served by another thread, read here from shared memory; release() when it is gone. */
export function eventQueueProbe(files: TransportFiles): MappedProbe<number> {
  return files.kind === 'socket' ? socketEventQueueProbe(files) : shmEventQueueProbe(files);
}

/** Wakes the clients waiting on responses of a connection whose serving thread died (SHM; datagrams need none). */
export function responseWaker(files: TransportFiles): MappedProbe<void> {
  return files.kind === 'socket' ? Object.assign(() => {}, { release: () => {} }) : shmResponseWaker(files);
}
