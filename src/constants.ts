// Public enums, numbered exactly as libqb's (qbipc_common.h, qbipcs.h, qbloop.h).

/** enum qb_ipc_type. NATIVE resolves to SHM, as in libqb on Linux. */
export enum IpcType {
  SOCKET = 0,
  SHM = 1,
  POSIX_MQ = 2,
  SYSV_MQ = 3,
  NATIVE = 4,
}

/** enum qb_ipcs_rate_limit. */
export enum RateLimit {
  FAST = 0,
  NORMAL = 1,
  SLOW = 2,
  OFF = 3,
  OFF_2 = 4,
}

/** enum qb_loop_priority, as passed to custom poll handlers. */
export enum LoopPriority {
  LOW = 0,
  MED = 1,
  HIGH = 2,
}

/** enum qb_ipcs_connection_state. */
export enum ConnectionState {
  INACTIVE = 0,
  ACTIVE = 1,
  ESTABLISHED = 2,
  SHUTTING_DOWN = 3,
}

/** poll(2) event bits, as used by qb_ipcs_poll_handlers (equal to EPOLL* bits). */
export const PollEvent = {
  IN: 0x001,
  PRI: 0x002,
  OUT: 0x004,
  ERR: 0x008,
  HUP: 0x010,
  NVAL: 0x020,
} as const;
