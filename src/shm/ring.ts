// One libqb ring buffer over mapped memory: the producer side (responses,
// events) and the consumer side (requests). Every index that drives a memory
// access is a private copy or validated first: the client can write all of it.
import { EAGAIN, EBADMSG, EINVAL } from '../errno.js';
import {
  CHUNK_HEADER_WORDS,
  DATA_PATH_OFFSET,
  FRESH_DATA_WORD,
  HDR_PATH_OFFSET,
  HeaderWord,
  Magic,
  PATH_FIELD_SIZE,
  SPACE_MARGIN_BYTES,
} from './layout.js';
import { native } from '../native.js';
import { copyBytes } from './copy.js';
import { semAddress, semInit, semPost, semRelease, semTakeUpTo, semValue, semWake } from './semaphore.js';

// The magic words as int32: Atomics on an Int32Array with int32 values stay
// Smis, where Uint32Array values >= 2^31 box a HeapNumber per call.
const VALID = Magic.VALID | 0;
const ALLOCATED = Magic.ALLOCATED | 0;
const DEAD = Magic.DEAD | 0;

const encoder = new TextEncoder();

export class ShmRing {
  /** Header words (write_pt, read_pt, sem_t, flow control …). */
  readonly header: Int32Array;
  /** Data words over the double mapping: 2 × wordSize, word i + wordSize aliases word i. */
  private readonly words: Int32Array;
  /** Data bytes over the double mapping, so any chunk reads as one contiguous span. */
  readonly bytes: Uint8Array;
  /** The buffer under `bytes` (the .buffer getter is a slow builtin). */
  readonly data: SharedArrayBuffer;
  private readonly semAddress: number;
  readonly wordSize: number;
  readonly dataSize: number;
  /** At most this many chunks fit: bounds the semaphore tokens we take on trust. */
  private readonly maxChunks: number;
  private writePt = 0;
  private readPt = 0;
  private heldTokens = 0;
  /** Posts made by write(…, holdWake) that have not woken the client yet. */
  private heldWakes = 0;
  /** The chunk returned by nextChunk(): payload byte offset and length. */
  chunkOffset = 0;
  chunkLength = 0;

  constructor(header: SharedArrayBuffer, data: SharedArrayBuffer, dataSize: number) {
    this.header = new Int32Array(header);
    this.words = new Int32Array(data, 0, (2 * dataSize) / 4);
    this.bytes = new Uint8Array(data, 0, 2 * dataSize);
    this.data = data;
    this.semAddress = semAddress(this.header);
    this.dataSize = dataSize;
    this.wordSize = dataSize / 4;
    this.maxChunks = Math.floor(this.wordSize / CHUNK_HEADER_WORDS);
  }

  /** Writes a fresh ring exactly as libqb's server does (docs/wire.md §6.3). */
  initialise(headerPath: string, dataPath: string): void {
    const h = this.header;
    h[HeaderWord.WRITE_PT] = 0;
    h[HeaderWord.READ_PT] = 0;
    h[HeaderWord.WORD_SIZE] = this.wordSize;
    const headerBytes = new Uint8Array(h.buffer, 0, HeaderWord.FLOW_CONTROL * 4 + 4);
    writePath(headerBytes, HDR_PATH_OFFSET, headerPath);
    writePath(headerBytes, DATA_PATH_OFFSET, dataPath);
    semInit(h);
    this.bytes.fill(0, 0, this.dataSize);
    this.words[this.wordSize] = FRESH_DATA_WORD; // lands on word 0 through the double mapping
    Atomics.store(h, HeaderWord.REF_COUNT, 1);
  }

  // ---- producer (server → client rings) ----

  /**
   * Writes one message made of `parts` (total `length` bytes) as a chunk and posts
   * the semaphore. With `holdWake` the post does not wake a sleeping client:
   * wakeHeld() wakes once for every message held, so a batch of responses costs
   * the client one wake-up (and us one syscall), and the woken client does not
   * preempt the batch after its first response. Returns `length`, -EAGAIN when
   * it does not fit now, or -EBADMSG when the client corrupted its read pointer.
   */
  write(parts: readonly Uint8Array[], length: number, holdWake: boolean): number {
    const n = this.wordSize;
    const w = this.writePt;
    const r = Atomics.load(this.header, HeaderWord.READ_PT) >>> 0;
    if (r >= n) return -EBADMSG;
    const freeWords = w > r ? r - w + n - 1 : w < r ? r - w - 1 : n;
    if (freeWords * 4 < length + SPACE_MARGIN_BYTES) return -EAGAIN;
    // Plain stores below: the client reads this chunk, its magic and write_pt only after it
    // takes the semaphore token, and the Atomics.add that posts the token orders every store
    // before it (a release). An Atomics.store is a builtin call and a locked instruction each.
    const words = this.words;
    words[w] = 0;
    words[w + 1] = ALLOCATED;
    let offset = (w + CHUNK_HEADER_WORDS) * 4;
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      copyBytes(this.bytes, offset, part);
      offset += part.byteLength;
    }
    words[w] = length;
    let next = w + CHUNK_HEADER_WORDS + ((length + 3) >>> 2);
    if (next >= n) next -= n;
    this.writePt = next;
    this.header[HeaderWord.WRITE_PT] = next;
    words[w + 1] = VALID;
    if (!holdWake) semPost(this.header, this.semAddress);
    else if (semRelease(this.header) === 0) this.heldWakes++;
    return length;
  }

  /** Wakes the client for every message held so far: true when there were any. */
  wakeHeld(): boolean {
    if (this.heldWakes === 0) return false;
    const posts = this.heldWakes;
    this.heldWakes = 0;
    semWake(this.header, this.semAddress, posts);
    return true;
  }

  /** True when the client has taken every chunk we wrote: its read_pt has reached our write_pt. */
  get drained(): boolean {
    return Atomics.load(this.header, HeaderWord.READ_PT) >>> 0 === this.writePt;
  }

  /** Chunks posted and not yet taken by the client (event_q_length for SHM). */
  get pending(): number {
    return semValue(this.header);
  }

  // ---- consumer (client → server ring) ----

  /**
   * Finds the next committed chunk: 1 (chunkOffset/chunkLength set), 0 when
   * none is committed, or -EBADMSG when the ring contradicts itself (bad
   * magic, a size that overruns what the client wrote, a pointer out of range).
   */
  nextChunk(): number {
    if (this.heldTokens === 0) {
      this.heldTokens = semTakeUpTo(this.header, this.maxChunks);
      if (this.heldTokens === 0) return 0;
    }
    // Plain loads: the token's compare-exchange (an acquire) ordered the client's writes of
    // this chunk before them; and any value read here is validated.
    const n = this.wordSize;
    const r = this.readPt;
    if (this.words[r + 1] !== VALID) return -EBADMSG;
    const length = this.words[r]! >>> 0;
    const w = this.header[HeaderWord.WRITE_PT]! >>> 0;
    if (w >= n) return -EBADMSG;
    const usedWords = w >= r ? w - r : w - r + n;
    if (length > this.dataSize - SPACE_MARGIN_BYTES || CHUNK_HEADER_WORDS + Math.ceil(length / 4) > usedWords) return -EBADMSG;
    this.heldTokens--;
    this.chunkOffset = (r + CHUNK_HEADER_WORDS) * 4;
    this.chunkLength = length;
    return 1;
  }

  /** Releases the chunk nextChunk() returned: size 0, DEAD, then read_pt. */
  reclaim(): number {
    const r = this.readPt;
    if (this.words[r + 1] !== VALID) return -EINVAL;
    let next = r + CHUNK_HEADER_WORDS + ((this.chunkLength + 3) >>> 2);
    if (next >= this.wordSize) next -= this.wordSize;
    this.words[r] = 0;
    this.words[r + 1] = DEAD;
    this.readPt = next;
    // A release: the client may reuse the chunk's space once it sees read_pt move.
    Atomics.store(this.header, HeaderWord.READ_PT, next);
    return 0;
  }

  /** True while requests are committed that we have not taken yet. */
  get hasWork(): boolean {
    return this.heldTokens > 0 || semValue(this.header) > 0;
  }

  // ---- both ----

  /** The request ring's flow-control word (clients stop sending while it is on). */
  setFlowControl(value: number): void {
    Atomics.store(this.header, HeaderWord.FLOW_CONTROL, value);
  }

  /**
   * Marks the ring closed from our side (ref_count 1, then atomically 0) and
   * wakes the client for messages whose wake was held (a round that ends in a
   * disconnect would otherwise wake it through zero pages). Before the memory
   * is released, for every ring that shares its mapping.
   */
  markClosed(): void {
    Atomics.store(this.header, HeaderWord.REF_COUNT, 1);
    Atomics.sub(this.header, HeaderWord.REF_COUNT, 1);
    this.wakeHeld();
  }

  /**
   * markClosed(), then gives the memory back at once, not when V8 collects the
   * buffers: the views read zeros from then on (a closed ring looks empty, with
   * ref_count 0). Header and data may be mapped apart (the client's) or in one
   * range (then the second release finds it released). Rings opened together by
   * openRings share one range: close them with closeRings instead.
   */
  close(): void {
    this.markClosed();
    native.releaseMapping(this.header.buffer as SharedArrayBuffer);
    native.releaseMapping(this.data);
  }
}

function writePath(into: Uint8Array, offset: number, path: string): void {
  const encoded = encoder.encode(path);
  if (encoded.byteLength >= PATH_FIELD_SIZE) throw new RangeError(`ring path longer than ${PATH_FIELD_SIZE - 1} bytes: ${path}`);
  into.fill(0, offset, offset + PATH_FIELD_SIZE);
  into.set(encoded, offset);
}
