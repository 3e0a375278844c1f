// libqb's application framing on a byte stream, for the node `net` rows: the
// same 16-byte request header {id@0, size@8} and 24-byte response header
// {id@0, size@8, error@16}, `size` counting the header. What a Node user who
// replaces libqb IPC with a unix socket would write.
export const ID_ECHO = 1;
export const ID_EVENTS = 2;
export const ID_EVENT = 3;
export const REQ_HDR = 16;
export const RES_HDR = 24;

/** Splits a stream into frames by the size field at offset 8. */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes needed before the next frame can be cut (12: enough to read its size). */
  private need = 12;

  constructor(
    private readonly minSize: number,
    private readonly maxSize: number,
    private readonly onFrame: (frame: Buffer) => void,
  ) {}

  /** Feeds a chunk; calls onFrame for every complete frame. Throws on a bad size field. */
  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.need) return;
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    let off = 0;
    this.need = 12;
    while (buf.length - off >= 12) {
      const size = buf.readInt32LE(off + 8);
      if (size < this.minSize || size > this.maxSize) throw new Error(`bad frame: size field ${size}`);
      if (buf.length - off < size) {
        this.need = size;
        break;
      }
      this.onFrame(buf.subarray(off, off + size));
      off += size;
    }
    if (off < buf.length) {
      this.pending.push(buf.subarray(off));
      this.pendingBytes = buf.length - off;
    }
  }
}

export function responseHeader(id: number, size: number, error: number): Buffer {
  const h = Buffer.allocUnsafe(RES_HDR).fill(0);
  h.writeInt32LE(id, 0);
  h.writeInt32LE(size, 8);
  h.writeInt32LE(error, 16);
  return h;
}

/** Byte i = i & 0xff: event k's payload is pattern[k & 0xff …] (as the C server). */
export function eventPattern(length: number): Buffer {
  const p = Buffer.allocUnsafe(length + 256);
  for (let i = 0; i < p.length; i++) p[i] = i & 0xff;
  return p;
}

/** "@name" is an abstract unix socket (as libqb's), anything else a path. */
export function socketPath(address: string): string {
  return address.startsWith('@') ? `\0${address.slice(1)}` : address;
}
