// Every error qbipc throws or emits, in one place: system errors with a
// negative errno (QbError), handler failures (HandlerError) and argument
// errors (TypeError with Node's ERR_INVALID_ARG_TYPE).
import { errnoName } from './errno.js';
import type { ServiceConnection } from './service.js';

/** An Error with Node's system-error shape: errno is negative, code is the name. */
export class QbError extends Error {
  readonly errno: number;
  readonly code: string;

  constructor(negErrno: number, message: string, options?: { cause?: unknown }) {
    const errno = -Math.abs(negErrno);
    super(`${message} (${errnoName(errno)})`, options);
    this.name = 'QbError';
    this.errno = errno;
    this.code = errnoName(errno);
  }
}

/** The handlers a service calls; a HandlerError names the one that failed. */
export type HandlerName = 'connectionAccept' | 'connectionCreated' | 'msgProcess' | 'connectionClosed' | 'connectionDestroyed' | 'onDrain';

/**
 * A handler threw, rejected, or returned what libqb could not mean. That
 * connection was closed (or refused); the service serves on. Emitted as
 * 'error' on the service.
 */
export class HandlerError<C = unknown> extends Error {
  readonly code = 'ERR_QBIPC_HANDLER';
  readonly handler: HandlerName;
  /** The connection it happened on (not enumerable: logging the error does not dump it). */
  declare readonly connection: C;

  constructor(handler: HandlerName, connection: C, message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'HandlerError';
    this.handler = handler;
    Object.defineProperty(this, 'connection', { value: connection, enumerable: false });
  }

  /** The usual instanceof, typed: `error instanceof HandlerError` gives `error.connection` its type. */
  static override [Symbol.hasInstance](value: unknown): value is HandlerError<ServiceConnection> {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** An operation given an AbortSignal was aborted: Node's AbortError shape (name 'AbortError', code 'ABORT_ERR', cause the signal's reason). */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';

  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** The AbortError for `signal`, which has fired. */
export function abortError(signal: AbortSignal, what: string): AbortError {
  return new AbortError(`${what} was aborted`, { cause: signal.reason });
}

/** Checks an optional `signal` option. */
export function validateSignal(signal: unknown, what: string): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw invalidArgType(what, 'an AbortSignal', signal);
}

/** A TypeError as Node's own APIs throw for an argument of the wrong type. */
export function invalidArgType(what: string, expected: string, got: unknown): TypeError {
  return Object.assign(new TypeError(`${what} must be ${expected}; got ${describe(got)}`), { code: 'ERR_INVALID_ARG_TYPE' });
}

/** What a wrong argument was, in a few words. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'object':
      return `an instance of ${value.constructor?.name ?? 'Object'}`;
    case 'string':
      return `the string ${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value)}`;
    case 'number':
    case 'boolean':
    case 'bigint':
      return `${typeof value} ${value}`;
    default:
      return typeof value;
  }
}

/** The bytes of a send: Uint8Array (Buffer) as is, any other ArrayBufferView as a byte view of it. */
export function asBytes(data: unknown, what: string): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw invalidArgType(what, 'a Uint8Array, Buffer or other ArrayBufferView', data);
}

/** An iovec: an array of byte views; other views are re-viewed as bytes (rare, so copied into a new array). */
export function asByteParts(iov: unknown, what: string): readonly Uint8Array[] {
  if (!Array.isArray(iov)) throw invalidArgType(what, 'an array of Uint8Array', iov);
  for (let i = 0; i < iov.length; i++) {
    if (!(iov[i] instanceof Uint8Array)) return iov.map((part, j) => asBytes(part, `${what}[${j}]`));
  }
  return iov as readonly Uint8Array[];
}
