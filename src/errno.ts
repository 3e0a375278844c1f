// errno values (Linux x86_64) and the Error type every rejection carries.
import { constants } from 'node:os';

const E = constants.errno;

export const EPERM = E.EPERM;
export const ENOENT = E.ENOENT;
export const EINTR = E.EINTR;
export const EBADF = E.EBADF;
export const EAGAIN = E.EAGAIN;
export const EWOULDBLOCK = E.EWOULDBLOCK;
export const ENOMEM = E.ENOMEM;
export const EACCES = E.EACCES;
export const EBUSY = E.EBUSY;
export const EEXIST = E.EEXIST;
export const EINVAL = E.EINVAL;
export const EMFILE = E.EMFILE;
export const EPIPE = E.EPIPE;
export const ENOMSG = E.ENOMSG;
export const EBADMSG = E.EBADMSG;
export const EOVERFLOW = E.EOVERFLOW;
export const EMSGSIZE = E.EMSGSIZE;
export const ENOTSUP = E.ENOTSUP;
export const ECONNREFUSED = E.ECONNREFUSED;
export const ECONNRESET = E.ECONNRESET;
export const ENOBUFS = E.ENOBUFS;
export const ENOTCONN = E.ENOTCONN;
export const ESHUTDOWN = 108; // not in os.constants (Linux value)
export const ETIMEDOUT = E.ETIMEDOUT;
export const EALREADY = E.EALREADY;
export const EINPROGRESS = E.EINPROGRESS;

// First name wins: EAGAIN over EWOULDBLOCK, ENOTSUP over EOPNOTSUPP.
const names = new Map<number, string>();
for (const [name, value] of Object.entries(E)) if (!names.has(value)) names.set(value, name);
names.set(ESHUTDOWN, 'ESHUTDOWN');

/** 'EAGAIN' for 11 or -11. */
export function errnoName(errno: number): string {
  return names.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`;
}

/**
 * libqb treats every negative errno as fatal for the connection except these,
 * which mean "try again" or "this message only".
 */
export function isDisconnectError(negErrno: number): boolean {
  const e = -negErrno;
  return (
    negErrno < 0 && e !== EAGAIN && e !== ETIMEDOUT && e !== EINTR && e !== EWOULDBLOCK && e !== EMSGSIZE && e !== ENOMSG && e !== EINVAL
  );
}
