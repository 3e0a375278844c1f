// A connection's transport in two halves: the files (and later sockets) made
// where the client is accepted, and the transport opened from them where the
// connection is served, perhaps another thread. Only numbers and strings cross.
import type { ConnectionDirectory, FileOwner } from '../connection-dir.js';
import { TransportType } from '../handshake.js';
import { createShmFiles, discardShmFiles, shmMainThreadProbes, ShmTransport, type ShmFiles } from './shm.js';
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

/**
 * For worker mode's main thread, through its own mapping: eventQueue reads
 * event_q_length of a connection another thread serves; responseWaker wakes the
 * clients waiting on responses if that thread dies (SHM; datagrams need none).
 * release() both when the connection is gone.
 */
export function mainThreadProbes(files: TransportFiles): { eventQueue: MappedProbe<number>; responseWaker: MappedProbe<void> } {
  if (files.kind === 'shm') return shmMainThreadProbes(files);
  return { eventQueue: socketEventQueueProbe(files), responseWaker: Object.assign(() => {}, { release: () => {} }) };
}
