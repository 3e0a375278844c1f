// Byte layout of libqb's SHM ring buffer (struct qb_ringbuffer_shared_s and
// the chunk format), as observed on libqb 2.0.6. See docs/wire.md §6.

/** Size of the shared header struct; the client truncates response/event headers to it. */
export const HEADER_STRUCT_SIZE = 8248;
/** The header file as the server creates it: the struct plus 4 bytes of user data. */
export const HEADER_FILE_SIZE = 8252;
export const PATH_FIELD_SIZE = 4096;

/** Offsets into the header, in 32-bit words (Int32Array indexes). */
export const HeaderWord = {
  WRITE_PT: 0,
  READ_PT: 1,
  WORD_SIZE: 2,
  REF_COUNT: 8204 / 4,
  /** glibc sem_t: low half of the 64-bit `data` word is the value (and futex word). */
  SEM_VALUE: 8208 / 4,
  /** High half of `data`: the number of registered waiters. */
  SEM_WAITERS: 8212 / 4,
  /** 128 marks a process-shared semaphore. */
  SEM_PRIVATE: 8216 / 4,
  /** Request ring only: the flow-control value the client obeys. */
  FLOW_CONTROL: 8240 / 4,
} as const;

export const HDR_PATH_OFFSET = 12;
export const DATA_PATH_OFFSET = 4108;
export const SEM_PSHARED = 128;

export const Magic = {
  VALID: 0xa1a1a1a1,
  ALLOCATED: 0xa110ced0,
  DEAD: 0xd0d0d0d0,
} as const;

/** Word 0 of a fresh data file holds 5, as libqb writes it. */
export const FRESH_DATA_WORD = 5;
/** A chunk may be written only if free bytes >= payload + this margin. */
export const SPACE_MARGIN_BYTES = 12;
/** Size word + magic word in front of every payload. */
export const CHUNK_HEADER_WORDS = 2;

const PAGE = 4096;

/** D: the data file size libqb derives from a negotiated max_msg_size. */
export function ringDataSize(maxMsgSize: number): number {
  return Math.ceil((maxMsgSize + 13) / PAGE) * PAGE;
}

/** The longest message a ring made for `maxMsgSize` can ever hold, even empty (its data size less the space margin). */
export function largestMessage(maxMsgSize: number): number {
  return ringDataSize(maxMsgSize) - SPACE_MARGIN_BYTES;
}

/** Words a chunk of `length` payload bytes occupies. */
export function chunkWords(length: number): number {
  return CHUNK_HEADER_WORDS + Math.ceil(length / 4);
}
