// A connection's counters and state in a SharedArrayBuffer: the thread that
// serves the connection writes them, any thread reads them without a message
// round trip (the main thread's stats() in worker mode).
import type { ConnectionStats } from './stats.js';

export const Cell = {
  STATE: 0,
  REQUESTS: 1,
  RESPONSES: 2,
  EVENTS: 3,
  SEND_RETRIES: 4,
  RECV_RETRIES: 5,
  FLOW_CONTROL_STATE: 6,
  FLOW_CONTROL_COUNT: 7,
  /** 1 while the setup socket is open; cleared before it is closed. */
  SETUP_OPEN: 8,
} as const;

const CELLS = 9;

export function newCells(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(CELLS * Float64Array.BYTES_PER_ELEMENT));
}

export function readStats(cells: Float64Array, clientPid: number): ConnectionStats {
  return {
    clientPid,
    requests: cells[Cell.REQUESTS]!,
    responses: cells[Cell.RESPONSES]!,
    events: cells[Cell.EVENTS]!,
    sendRetries: cells[Cell.SEND_RETRIES]!,
    recvRetries: cells[Cell.RECV_RETRIES]!,
    flowControlState: cells[Cell.FLOW_CONTROL_STATE]!,
    flowControlCount: cells[Cell.FLOW_CONTROL_COUNT]!,
  };
}

/** Zeroes the counters (not the state). Under traffic from another thread, an increment may be lost. */
export function clearStats(cells: Float64Array): void {
  cells.fill(0, Cell.REQUESTS, Cell.FLOW_CONTROL_COUNT + 1);
}
