// qbipc: libqb's server IPC (qbipcs.h) for Node.js. Public exports only.
export {
  createService,
  Service,
  DEFAULT_CLOSE_GRACE_MS,
  type ServiceHandlers,
  type ServiceConnection,
  type CloseOptions,
} from './service.js';
export type { ServiceEvents, ServiceListener } from './service-events.js';
export type { Logger, LogLevel, LogEvent, LogFields } from './logger.js';
export { RemoteConnection } from './remote-connection.js';
export { Connection, type ConnectionHandlers } from './connection.js';
export { IpcType, RateLimit, LoopPriority, ConnectionState, PollEvent } from './constants.js';
export type { ServiceOptions } from './options.js';
export type { Placement } from './cpu-placement.js';
export type { PollHandlers, DispatchFn, JobFn } from './poll.js';
export type { ServiceStats, ConnectionStats, ConnectionStats2 } from './stats.js';
export {
  REQUEST_HEADER_SIZE,
  RESPONSE_HEADER_SIZE,
  MessageId,
  readRequestHeader,
  readResponseHeader,
  requestId,
  writeRequestHeader,
  writeResponseHeader,
  makeResponse,
  type RequestHeader,
  type ResponseHeader,
} from './headers.js';
export * from './errno.js';
export { QbError, HandlerError, AbortError, type HandlerName } from './errors.js';
export { connect, Client, type ConnectOptions, type ReceiveOptions, type ServerCredentials } from './client/client.js';
