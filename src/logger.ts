// The logger option: a Console-like object the service reports its log points
// to (libqb's: a client accepted, refused, disconnected, a protocol fault, a
// worker that died). Without one, they go to util.debuglog('qbipc'), shown with
// NODE_DEBUG=qbipc. In worker mode a shard's log points cross to the main thread.
import { debuglog } from 'node:util';
import { invalidArgType } from './errors.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** Console-like: any of the four levels; a missing one is not logged. `console` itself fits. */
export interface Logger {
  debug?(message: string, fields?: object): void;
  info?(message: string, fields?: object): void;
  warn?(message: string, fields?: object): void;
  error?(message: string, fields?: object): void;
}

/** What a log point is about; always the `event` field of its fields. */
export type LogEvent = 'accept' | 'reject' | 'disconnect' | 'fault' | 'worker-exit' | 'scheduling';

/**
 * The fields beside a log message: `event`, and what applies of `pid`, `uid`,
 * `gid` (the client's), `connection` (its id), `errno`/`code` (a refusal's),
 * `reason`. Plain data, so it crosses threads.
 */
export interface LogFields {
  event: LogEvent;
  pid?: number;
  uid?: number;
  gid?: number;
  connection?: number;
  errno?: number;
  code?: string;
  reason?: string;
  [field: string]: unknown;
}

/** Where the runtime sends a log point: a function, so a level nobody wants costs one call and a check. */
export type LogSink = (level: LogLevel, message: string, fields: LogFields) => void;

const qbipcDebug = debuglog('qbipc');

/** The default: NODE_DEBUG=qbipc prints every level through util.debuglog. */
const debugLogger: Logger = Object.fromEntries(
  LOG_LEVELS.map((level) => [level, (message: string, fields?: object) => qbipcDebug('%s %s %j', level, message, fields ?? {})]),
);

/** The levels `logger` has (for the default: all of them, when NODE_DEBUG names qbipc; none otherwise). */
export function loggedLevels(logger: Logger | undefined): LogLevel[] {
  if (logger === undefined) return qbipcDebug.enabled ? [...LOG_LEVELS] : [];
  return LOG_LEVELS.filter((level) => typeof logger[level] === 'function');
}

/** A sink that calls `logger` (the default when undefined). A logger that throws must not break serving: `failed` is told. */
export function loggerSink(logger: Logger | undefined, failed: (error: unknown) => void): LogSink {
  const target = logger ?? debugLogger;
  const levels = new Set(loggedLevels(logger));
  return (level, message, fields) => {
    if (!levels.has(level)) return;
    try {
      target[level]!(message, fields);
    } catch (error) {
      failed(error);
    }
  };
}

/** Checks options.logger: an object whose present levels are functions. */
export function validateLogger(logger: unknown): Logger | undefined {
  if (logger === undefined) return undefined;
  if (typeof logger !== 'object' || logger === null)
    throw invalidArgType('options.logger', 'an object with debug/info/warn/error functions', logger);
  for (const level of LOG_LEVELS) {
    const fn = (logger as Record<string, unknown>)[level];
    if (fn !== undefined && typeof fn !== 'function') throw new TypeError(`options.logger.${level} must be a function, got ${typeof fn}`);
  }
  return logger;
}
