// Attaching to a file the server created, as libqb's client does: open it
// (never through a symlink), size it (ftruncate + posix_fallocate), map it,
// close the fd — the mapping keeps the memory.
import { native } from '../native.js';

export function mapExisting(
  path: string,
  size: number,
  map: (fd: number, size: number) => SharedArrayBuffer = native.mapShared,
): SharedArrayBuffer {
  const fd = native.openExisting(path, size);
  try {
    return map(fd, size);
  } finally {
    native.close(fd);
  }
}
