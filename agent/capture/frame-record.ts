/**
 * The one record a capture reader fills per packet. `data` is the reader's
 * buffer: bytes `offset .. offset + capLen` are valid until the next call to
 * `next()` or `fill()`; copy them to keep them.
 */
export class FrameRecord {
  data: Uint8Array = new Uint8Array(0);
  offset = 0;
  /** Captured bytes (frame.cap_len). */
  capLen = 0;
  /** Bytes on the wire (frame.len). */
  wireLen = 0;
  /** Whole seconds since the epoch. */
  tsSec = 0;
  /** Nanoseconds within the second, 0..999999999. */
  tsNsec = 0;
  /** LINKTYPE_* of the interface the packet came from. */
  linkType = 0;
  /** pcapng interface id (0 for classic pcap). */
  interfaceId = 0;
  /** 1-based frame number (frame.number). */
  number = 0;
  /** Byte offset of the record in the (decompressed) file. */
  fileOffset = 0;
}
