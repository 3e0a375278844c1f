// libqb's application framing: every request begins with a 16-byte request
// header {id@0, size@8}; every response and event with a 24-byte response
// header {id@0, size@8, error@16}. Little-endian, padding not interpreted.

export const REQUEST_HEADER_SIZE = 16;
export const RESPONSE_HEADER_SIZE = 24;

/** Message ids libqb itself gives a meaning to (qbipc_common.h). */
export const MessageId = {
  USER_START: 0,
  NEW_MESSAGE: 0,
  AUTHENTICATE: -1,
  NEW_EVENT_SOCK: -2,
  DISCONNECT: -3,
} as const;

export interface RequestHeader {
  id: number;
  size: number;
}

export interface ResponseHeader {
  id: number;
  size: number;
  error: number;
}

// Byte-wise little-endian access: no DataView per message on the hot path.
function getInt32(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}

function setInt32(b: Uint8Array, o: number, value: number): void {
  b[o] = value;
  b[o + 1] = value >>> 8;
  b[o + 2] = value >>> 16;
  b[o + 3] = value >>> 24;
}

/** The id of the request in `message` (no allocation). */
export function requestId(message: Uint8Array): number {
  return getInt32(message, 0);
}

/** Reads the request header at the start of `message` (at least 16 bytes). */
export function readRequestHeader(message: Uint8Array): RequestHeader {
  if (message.byteLength < REQUEST_HEADER_SIZE) {
    throw new RangeError(`a request header needs ${REQUEST_HEADER_SIZE} bytes, got ${message.byteLength}`);
  }
  return { id: getInt32(message, 0), size: getInt32(message, 8) };
}

/** Reads the response header at the start of `message` (at least 24 bytes). */
export function readResponseHeader(message: Uint8Array): ResponseHeader {
  if (message.byteLength < RESPONSE_HEADER_SIZE) {
    throw new RangeError(`a response header needs ${RESPONSE_HEADER_SIZE} bytes, got ${message.byteLength}`);
  }
  return { id: getInt32(message, 0), size: getInt32(message, 8), error: getInt32(message, 16) };
}

/** Writes a request header (padding zeroed) at the start of `into`. */
export function writeRequestHeader(into: Uint8Array, header: RequestHeader): Uint8Array {
  if (into.byteLength < REQUEST_HEADER_SIZE) throw new RangeError(`a request header needs ${REQUEST_HEADER_SIZE} bytes`);
  setInt32(into, 0, header.id);
  setInt32(into, 4, 0);
  setInt32(into, 8, header.size);
  setInt32(into, 12, 0);
  return into;
}

/** Writes a response header (padding zeroed) at the start of `into`. */
export function writeResponseHeader(into: Uint8Array, header: ResponseHeader): Uint8Array {
  if (into.byteLength < RESPONSE_HEADER_SIZE) throw new RangeError(`a response header needs ${RESPONSE_HEADER_SIZE} bytes`);
  setInt32(into, 0, header.id);
  setInt32(into, 4, 0);
  setInt32(into, 8, header.size);
  setInt32(into, 12, 0);
  setInt32(into, 16, header.error);
  setInt32(into, 20, 0);
  return into;
}

/** A new buffer holding a response header followed by `payload`. */
export function makeResponse(id: number, error: number, payload?: Uint8Array): Uint8Array {
  const size = RESPONSE_HEADER_SIZE + (payload?.byteLength ?? 0);
  const message = new Uint8Array(size);
  writeResponseHeader(message, { id, size, error });
  if (payload) message.set(payload, RESPONSE_HEADER_SIZE);
  return message;
}
