// The per-connection directory /dev/shm/qb-<server pid>-<client pid>-<fd>-XXXXXX
// and the files in it. The directory ends up owned by the client, so we remove
// only names we created, through a directory we verify is still ours.
import { QbError } from './errors.js';
import { native } from './native.js';

const AT_FDCWD = -100;
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
}

export class ConnectionDirectory {
  readonly path: string;
  private readonly identity: string;
  private dirFd: number;
  private readonly created: string[] = [];
  private removed = false;

  private constructor(path: string, dirFd: number, identity?: string) {
    this.path = path;
    this.dirFd = dirFd;
    this.identity = identity ?? native.fileIdentity(dirFd);
  }

  /** For the thread that will remove it (worker mode); creation must be finished. */
  get state(): DirectoryState {
    return { path: this.path, identity: this.identity, created: [...this.created] };
  }

  /** The same directory in another thread, for remove() only. */
  static restore(state: DirectoryState): ConnectionDirectory {
    const dir = new ConnectionDirectory(state.path, -1, state.identity);
    dir.created.push(...state.created);
    return dir;
  }

  static create(serverPid: number, clientPid: number, setupFd: number): ConnectionDirectory {
    const path = native.makeTempDir(`${SHM_ROOT}/qb-${serverPid}-${clientPid}-${setupFd}-XXXXXX`);
    const fd = native.openDirectory(path);
    if (fd < 0) {
      native.unlinkAt(AT_FDCWD, path, true);
      throw new QbError(fd, `cannot open the connection directory ${path}`);
    }
    native.fchmod(fd, 0o770);
    return new ConnectionDirectory(path, fd);
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

  /**
   * Unlinks the files we created and removes the directory. If the client
   * replaced the directory (it owns it), nothing inside is touched.
   */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    this.seal();
    const fd = native.openDirectory(this.path);
    if (fd >= 0) {
      if (native.fileIdentity(fd) === this.identity) {
        for (const name of this.created) native.unlinkAt(fd, name, false);
      }
      native.close(fd);
    }
    this.created.length = 0;
    native.unlinkAt(AT_FDCWD, this.path, true);
  }
}
