// The per-connection directory /dev/shm/qb-<server pid>-<client pid>-<fd>-XXXXXX
// and the files in it. The directory ends up owned by the client, so we remove
// only names we created, through a directory we verify is still ours.
import { constants } from 'node:os';
import { deferredRemovals } from './deferred-removals.js';
import { EMFILE, ENOMEM } from './errno.js';
import { QbError } from './errors.js';
import { native } from './native.js';

const AT_FDCWD = -100;
const { ENFILE } = constants.errno;
export const SHM_ROOT = '/dev/shm';

/** qb-<server pid>-<client pid>-<fd>-XXXXXX, as made by create() (and by libqb's server). */
const DIRECTORY_NAME = /^qb-(\d+)-(\d+)-(\d+)-[A-Za-z0-9]{6}$/;

/** The server pid in a connection directory's name, or undefined for a name create() never makes. */
export function directoryServerPid(name: string): number | undefined {
  const match = DIRECTORY_NAME.exec(name);
  if (match === null) return undefined;
  const pid = Number(match[1]);
  return pid > 0 && pid <= 0x3fffffff ? pid : undefined;
}

export interface FileOwner {
  uid: number;
  gid: number;
  mode: number;
}

/** What another thread needs to remove a directory: plain data. */
export interface DirectoryState {
  path: string;
  identity: string;
  created: string[];
  /** Removed already (by the thread that made it): the state only names it. */
  removed: boolean;
}

/** Where a directory goes that could not be removed for want of a descriptor. */
export type LeftBehind = (state: DirectoryState) => void;

/**
 * The creating thread's directories that are not removed yet, so that an exiting
 * process can remove them (see removeLiveDirectories). Directories served by a
 * worker leave it when the worker reports the connection gone.
 */
const live = new Set<ConnectionDirectory>();

export class ConnectionDirectory {
  readonly path: string;
  private readonly identity: string;
  private dirFd: number;
  private readonly created: string[] = [];
  private removed = false;

  private constructor(
    path: string,
    dirFd: number,
    identity: string,
    private readonly leftBehind: LeftBehind,
  ) {
    this.path = path;
    this.dirFd = dirFd;
    this.identity = identity;
  }

  /** For the thread that will remove it (worker mode); creation must be finished. */
  get state(): DirectoryState {
    return { path: this.path, identity: this.identity, created: [...this.created], removed: this.removed };
  }

  /**
   * The same directory in another thread, which removes it when the connection
   * ends. What it cannot remove for want of a descriptor goes to `leftBehind`:
   * the creating thread's DeferredRemovals (src/deferred-removals.ts).
   */
  static restore(state: DirectoryState, leftBehind: LeftBehind): ConnectionDirectory {
    const dir = new ConnectionDirectory(state.path, -1, state.identity, leftBehind);
    dir.created.push(...state.created);
    dir.removed = state.removed;
    return dir;
  }

  /** Makes the directory; what cannot be removed later for want of a descriptor goes to `leftBehind` (default: this thread's queue). */
  static create(serverPid: number, clientPid: number, setupFd: number, leftBehind: LeftBehind = deferredRemovals.add): ConnectionDirectory {
    const path = native.makeTempDir(`${SHM_ROOT}/qb-${serverPid}-${clientPid}-${setupFd}-XXXXXX`);
    const fd = native.openDirectory(path);
    if (fd < 0) {
      native.unlinkAt(AT_FDCWD, path, true);
      throw new QbError(fd, `cannot open the connection directory ${path}`);
    }
    let identity: string;
    try {
      identity = native.fileIdentity(fd);
    } catch (error) {
      native.close(fd);
      native.unlinkAt(AT_FDCWD, path, true);
      throw error;
    }
    native.fchmod(fd, 0o770);
    const dir = new ConnectionDirectory(path, fd, identity, leftBehind);
    live.add(dir);
    return dir;
  }

  /** "description" in libqb: the directory + "/qb". */
  get description(): string {
    return `${this.path}/qb`;
  }

  /** chown to the client; EPERM (not root) is ignored, as libqb does. */
  setOwner(uid: number, gid: number): void {
    native.fchown(this.dirFd, uid, gid);
  }

  /** Creates `name` (O_EXCL, 0600, sized), gives it to `owner`; returns its fd. */
  createFile(name: string, size: number, owner: FileOwner): number {
    const fd = native.createFileAt(this.dirFd, name, size, 0o600);
    this.created.push(name);
    native.fchown(fd, owner.uid, owner.gid);
    const rc = native.fchmod(fd, owner.mode);
    if (rc < 0) {
      native.close(fd);
      throw new QbError(rc, `cannot chmod ${this.path}/${name} to ${owner.mode.toString(8)}`);
    }
    return fd;
  }

  /** Done creating files: the directory fd is not kept for the connection's life. */
  seal(): void {
    if (this.dirFd >= 0) native.close(this.dirFd);
    this.dirFd = -1;
  }

  /** Another thread removes it now (it serves the connection and reports what it cannot remove). */
  handedOver(): void {
    live.delete(this);
  }

  /**
   * Unlinks the files we created and removes the directory. If the client
   * replaced the directory (it owns it), nothing inside is touched. Through the
   * directory fd while creation is not sealed (no descriptor needed, as when a
   * client is refused); out of descriptors, the directory goes to leftBehind
   * and remove() returns false.
   */
  remove(): boolean {
    if (this.removed) return true;
    this.removed = true;
    live.delete(this);
    const state = this.state;
    const done = removeDirectory(state, this.dirFd);
    this.seal();
    this.created.length = 0;
    if (!done) this.leftBehind(state);
    return done;
  }
}

/**
 * Removes a connection directory through `heldFd` (a descriptor of it) or one
 * opened here. False when no descriptor could be had (EMFILE, ENFILE, ENOMEM):
 * nothing was done and it must be tried again; true otherwise, also when there
 * was nothing to remove or the directory is not ours any more.
 */
export function removeDirectory(dir: DirectoryState, heldFd = -1): boolean {
  const fd = heldFd >= 0 ? heldFd : native.openDirectory(dir.path);
  if (fd === -EMFILE || fd === -ENFILE || fd === -ENOMEM) return false;
  if (fd >= 0) {
    try {
      if (native.fileIdentity(fd) === dir.identity) {
        for (const name of dir.created) native.unlinkAt(fd, name, false);
      }
    } finally {
      if (fd !== heldFd) native.close(fd);
    }
  }
  native.unlinkAt(AT_FDCWD, dir.path, true);
  return true;
}

/**
 * Removes, at once, every directory this thread made that is not removed yet:
 * for a process that exits without destroying its services (its connections
 * end with it). Returns how many could not be removed.
 */
export function removeLiveDirectories(): number {
  let left = 0;
  for (const dir of [...live]) if (!dir.remove()) left++;
  return left;
}
