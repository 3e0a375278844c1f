// Statistics, shaped like qbipcs.h's structs with camelCase fields.

/** struct qb_ipcs_stats. */
export interface ServiceStats {
  activeConnections: number;
  closedConnections: number;
}

/** struct qb_ipcs_connection_stats. */
export interface ConnectionStats {
  clientPid: number;
  requests: number;
  responses: number;
  events: number;
  sendRetries: number;
  recvRetries: number;
  flowControlState: number;
  flowControlCount: number;
}

/** struct qb_ipcs_connection_stats_2: adds the events posted but not yet read. */
export interface ConnectionStats2 extends ConnectionStats {
  eventQLength: number;
}
