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

/**
 * A clear does not write the counters: the serving thread increments them with
 * plain read-modify-writes, and a zero written from another thread in between
 * would be overwritten (a lost clear) or would swallow an increment. The reader
 * records each counter's value at the clear instead, here, and reports the
 * difference; only the serving thread ever writes a counter. Cell c's value at
 * the last clear is at CLEARED_AT + c.
 */
const CLEARED_AT = 9;
const CELLS = CLEARED_AT + Cell.FLOW_CONTROL_COUNT + 1;

export function newCells(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(CELLS * Float64Array.BYTES_PER_ELEMENT));
}

/** The counters since the last clear; with `clear`, the next read starts from these values. */
export function readStats(cells: Float64Array, clientPid: number, clear: boolean): ConnectionStats {
  const since = (cell: number): number => {
    const value = cells[cell]!;
    const base = cells[CLEARED_AT + cell]!;
    if (clear) cells[CLEARED_AT + cell] = value;
    // A send is counted before it is made and taken back if it fails; a clear that lands
    // between the two can leave the value below its base (read as 0) and cost that one count.
    return value > base ? value - base : 0;
  };
  const stats: ConnectionStats = {
    clientPid,
    requests: since(Cell.REQUESTS),
    responses: since(Cell.RESPONSES),
    events: since(Cell.EVENTS),
    sendRetries: since(Cell.SEND_RETRIES),
    recvRetries: since(Cell.RECV_RETRIES),
    flowControlState: cells[Cell.FLOW_CONTROL_STATE]!,
    flowControlCount: since(Cell.FLOW_CONTROL_COUNT),
  };
  if (clear) cells[Cell.FLOW_CONTROL_STATE] = 0; // as libqb's clear; the next change sets it again
  return stats;
}
