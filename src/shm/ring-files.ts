// Creates one ring as libqb's server does: header file (8252 bytes) and data
// file (D bytes) in the connection directory, owned by the client, mapped
// (the data twice, back to back), initialised (docs/wire.md §6.3).
import type { ConnectionDirectory, FileOwner } from '../connection-dir.js';
import { native } from '../native.js';
import { HEADER_FILE_SIZE, ringDataSize } from './layout.js';
import { ShmRing } from './ring.js';

export function createRing(dir: ConnectionDirectory, base: string, maxMsgSize: number, owner: FileOwner): ShmRing {
  const dataSize = ringDataSize(maxMsgSize);
  const headerFd = dir.createFile(`${base}-header`, HEADER_FILE_SIZE, owner);
  let header: SharedArrayBuffer;
  try {
    header = native.mapShared(headerFd, HEADER_FILE_SIZE);
  } finally {
    native.close(headerFd);
  }
  const dataFd = dir.createFile(`${base}-data`, dataSize, owner);
  let data: SharedArrayBuffer;
  try {
    data = native.mapRing(dataFd, dataSize);
  } finally {
    native.close(dataFd);
  }
  const ring = new ShmRing(header, data, dataSize);
  ring.initialise(`${dir.path}/${base}-header`, `${dir.path}/${base}-data`);
  return ring;
}
