// The connection handshake: the client's 24-byte request and the server's
// 12328-byte response (docs/wire.md §4).
import { MessageId } from './headers.js';

export const CONNECTION_REQUEST_SIZE = 24;
export const CONNECTION_RESPONSE_SIZE = 12328;
const PATH_FIELD = 4096;
const REQUEST_PATH_OFFSET = 40;
const RESPONSE_PATH_OFFSET = REQUEST_PATH_OFFSET + PATH_FIELD;
const EVENT_PATH_OFFSET = RESPONSE_PATH_OFFSET + PATH_FIELD;

/** What the response's connection_type field says. */
export enum TransportType {
  SOCKET = 0,
  SHM = 1,
}

export interface ConnectionRequest {
  id: number;
  size: number;
  maxMsgSize: number;
}

/** The client's request (what qb_ipcc_connect sends). */
export function buildConnectionRequest(maxMsgSize: number): Uint8Array {
  const bytes = new Uint8Array(CONNECTION_REQUEST_SIZE);
  const v = new DataView(bytes.buffer);
  v.setInt32(0, MessageId.AUTHENTICATE, true);
  v.setInt32(8, CONNECTION_REQUEST_SIZE, true);
  v.setUint32(16, maxMsgSize, true);
  return bytes;
}

export function parseConnectionRequest(bytes: Uint8Array): ConnectionRequest {
  const v = new DataView(bytes.buffer, bytes.byteOffset, CONNECTION_REQUEST_SIZE);
  return { id: v.getInt32(0, true), size: v.getInt32(8, true), maxMsgSize: v.getUint32(16, true) };
}

export interface ConnectionResponse {
  /** 0, or the negative errno the client's qb_ipcc_connect reports. */
  error: number;
  type: TransportType;
  maxMsgSize: number;
  /** Opaque to clients; libqb leaks a heap address here, we send a counter. */
  connectionId: number;
  request: string;
  response: string;
  event: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A complete response, zero-filled like libqb's, to be sent in one write. */
export function buildConnectionResponse(r: ConnectionResponse): Uint8Array {
  const bytes = new Uint8Array(CONNECTION_RESPONSE_SIZE);
  const v = new DataView(bytes.buffer);
  v.setInt32(0, MessageId.AUTHENTICATE, true);
  v.setInt32(8, CONNECTION_RESPONSE_SIZE, true);
  v.setInt32(16, r.error, true);
  if (r.error !== 0) return bytes; // a rejection carries nothing else
  v.setInt32(24, r.type, true);
  v.setUint32(28, r.maxMsgSize, true);
  v.setBigUint64(32, BigInt(r.connectionId), true);
  putString(bytes, REQUEST_PATH_OFFSET, r.request);
  putString(bytes, RESPONSE_PATH_OFFSET, r.response);
  putString(bytes, EVENT_PATH_OFFSET, r.event);
  return bytes;
}

/** A whole response as the client reads it (id is checked by the caller: MessageId.AUTHENTICATE). */
export function parseConnectionResponse(bytes: Uint8Array): ConnectionResponse & { id: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, CONNECTION_RESPONSE_SIZE);
  return {
    id: v.getInt32(0, true),
    error: v.getInt32(16, true),
    type: v.getInt32(24, true),
    maxMsgSize: v.getUint32(28, true),
    connectionId: Number(v.getBigUint64(32, true)),
    request: getString(bytes, REQUEST_PATH_OFFSET),
    response: getString(bytes, RESPONSE_PATH_OFFSET),
    event: getString(bytes, EVENT_PATH_OFFSET),
  };
}

/** The rejection response: error only, every other byte zero. */
export function buildRejection(negErrno: number): Uint8Array {
  return buildConnectionResponse({
    error: negErrno,
    type: TransportType.SOCKET,
    maxMsgSize: 0,
    connectionId: 0,
    request: '',
    response: '',
    event: '',
  });
}

function getString(bytes: Uint8Array, offset: number): string {
  const raw = bytes.subarray(offset, offset + PATH_FIELD);
  const end = raw.indexOf(0);
  return decoder.decode(end < 0 ? raw : raw.subarray(0, end));
}

function putString(into: Uint8Array, offset: number, text: string): void {
  const encoded = encoder.encode(text);
  if (encoded.byteLength >= PATH_FIELD) throw new RangeError(`handshake path longer than ${PATH_FIELD - 1} bytes: ${text}`);
  into.set(encoded, offset);
}
