// A ring's two files, created as libqb's server does (docs/wire.md §6.3):
// header (8252 bytes) and data (D bytes) in the connection directory, owned by
// the client. Creation happens where clients are accepted; the open fds then go
// to the thread that serves the connection, which maps and initialises them.
import type { ConnectionDirectory, FileOwner } from '../connection-dir.js';
import { native } from '../native.js';
import { HEADER_FILE_SIZE, ringDataSize } from './layout.js';
import { ShmRing } from './ring.js';

/** Plain numbers and strings: it crosses to worker threads as it is. */
export interface RingFiles {
  headerFd: number;
  dataFd: number;
  dataSize: number;
  headerPath: string;
  dataPath: string;
}

export function createRingFiles(dir: ConnectionDirectory, base: string, maxMsgSize: number, owner: FileOwner): RingFiles {
  const dataSize = ringDataSize(maxMsgSize);
  const headerFd = dir.createFile(`${base}-header`, HEADER_FILE_SIZE, owner);
  let dataFd: number;
  try {
    dataFd = dir.createFile(`${base}-data`, dataSize, owner);
  } catch (error) {
    native.close(headerFd);
    throw error;
  }
  return { headerFd, dataFd, dataSize, headerPath: `${dir.path}/${base}-header`, dataPath: `${dir.path}/${base}-data` };
}

/** Closes the fds of rings that will never be opened (the connection failed first). */
export function closeRingFiles(files: RingFiles): void {
  native.close(files.headerFd);
  native.close(files.dataFd);
}

/**
 * Maps the rings of one connection in one reserved range (native.mapFiles: the
 * data files twice, back to back), closes the fds, writes fresh rings. They share
 * the mapping: closeRings gives it back in one call.
 */
export function openRings(files: readonly RingFiles[]): ShmRing[] {
  try {
    const fds = new Int32Array(files.flatMap((f) => [f.headerFd, f.dataFd]));
    const sizes = new Int32Array(files.flatMap((f) => [HEADER_FILE_SIZE, f.dataSize]));
    let doubled = 0;
    for (let i = 0; i < files.length; i++) doubled |= 2 << (2 * i); // each data file, the odd parts
    const buffers = native.mapFiles(fds, sizes, doubled);
    try {
      return files.map((f, i) => {
        const ring = new ShmRing(buffers[2 * i]!, buffers[2 * i + 1]!, f.dataSize);
        ring.initialise(f.headerPath, f.dataPath);
        return ring;
      });
    } catch (error) {
      native.releaseMapping(buffers[0]!);
      throw error;
    }
  } finally {
    files.forEach(closeRingFiles);
  }
}

/** Closes rings opened together by openRings: each is marked closed (and its held wakes go) before their memory goes back. */
export function closeRings(rings: readonly ShmRing[]): void {
  for (const ring of rings) ring.markClosed();
  if (rings.length > 0) native.releaseMapping(rings[0]!.header.buffer as SharedArrayBuffer);
}

/** Creates and opens one ring on its own (the tests). */
export function createRing(dir: ConnectionDirectory, base: string, maxMsgSize: number, owner: FileOwner): ShmRing {
  return openRings([createRingFiles(dir, base, maxMsgSize, owner)])[0]!;
}
