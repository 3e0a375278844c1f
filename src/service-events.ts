// The events a Service emits, typed: the service's on/once/off/emit take only
// these names, each with its listener's arguments (src/service.ts).
import type { HandlerError } from './errors.js';
import type { ServiceConnection } from './service.js';

export interface ServiceEvents {
  /**
   * A handler failed (a HandlerError: that connection was closed or refused), a
   * worker died, a client could not be admitted, or the logger threw (an Error).
   */
  error: [error: HandlerError<ServiceConnection> | Error];
  /** run() has succeeded: the service listens. */
  listening: [];
  /** destroy() or close() has finished: nothing listens, every client is disconnected. */
  close: [];
}

export type ServiceListener<E extends keyof ServiceEvents> = (...args: ServiceEvents[E]) => void;
