/**
 * TCP and UDP conversations whose flow ended for idleness or was evicted,
 * remembered so that the same addresses and ports resuming later keep their
 * tcp.stream / udp.stream number: Wireshark never expires a conversation, the
 * sensor must (its flow table is bounded), so the identity outlives the flow
 * here, in fixed memory.
 *
 * Set-associative on the flow table's 32-bit key hash: WAYS entries per set,
 * the full key stored beside the hash and compared, the least recently
 * remembered entry of a full set overwritten and counted in `forgotten`. A set
 * is a short run of adjacent rows, so a lookup reads one or two cache lines and
 * never probes further; nothing is allocated after construction.
 */

/** Entries per set: a lookup compares at most this many hashes. */
const WAYS = 4;

/*
 * One 16-word row per entry (word offsets; the key words are the flow table's):
 * hash, version << 8 | proto, portA << 16 | portB, side A and B addresses,
 * the sides' Wireshark base_seq, and the flags below.
 */
const ROW = 16;
const R_HASH = 0;
const R_VP = 1;
const R_PORTS = 2;
const R_A = 3; // u32 x 4
const R_B = 7; // u32 x 4
const R_BASE_A = 11; // u32: side A's base_seq when F_BASE_A
const R_BASE_B = 12; // u32
const R_FLAGS = 13;

const F_USED = 1;
const F_BASE_A = 2;
const F_BASE_B = 4;
const F_CLIENT_IS_A = 8;

/** Smallest table: one set. */
export const MIN_ENDED_CONVERSATIONS = WAYS;

export class EndedConversations {
  /** Entries (a multiple of WAYS, at least the configured size rounded up to a power-of-two number of sets). */
  readonly capacity: number;
  private readonly setMask: number;
  private readonly rowI32: Int32Array;
  private readonly rowU32: Uint32Array;
  /** Per entry: its stream index (tcp.stream / udp.stream). */
  private readonly stream: Float64Array;
  /** Per entry: when it was remembered (a running count), for choosing the victim of a full set. */
  private readonly stamp: Float64Array;
  private clock = 0;
  /** Bytes held, all allocated by the constructor. */
  readonly bytes: number;

  /** Entries in use. */
  size = 0;
  /** Entries overwritten while still remembered: those conversations get a new stream number if they resume. */
  forgotten = 0;

  constructor(entries: number) {
    let sets = 1;
    while (sets * WAYS < entries) sets <<= 1;
    this.capacity = sets * WAYS;
    this.setMask = sets - 1;
    const rows = new ArrayBuffer(this.capacity * ROW * 4);
    this.rowI32 = new Int32Array(rows);
    this.rowU32 = new Uint32Array(rows);
    this.stream = new Float64Array(this.capacity);
    this.stamp = new Float64Array(this.capacity);
    this.bytes = rows.byteLength + this.stream.byteLength + this.stamp.byteLength;
  }

  /**
   * Remembers a conversation (the flow table's canonical key and hash; its
   * addresses are the 4 words at `addrOff` of `a` and `b`). A base_seq below 0
   * is unknown. The key must not be remembered already: the flow table looks
   * every new flow up and releases its entry, so an ending flow's key never is
   * (a second search per ended flow cost a cache miss for nothing).
   */
  remember(h: number, vp: number, ports: number, a: Uint32Array, b: Uint32Array, addrOff: number, streamIndex: number,
    baseA: number, baseB: number, clientIsA: boolean): void {
    const first = (h & this.setMask) * WAYS;
    let e = first;
    for (let i = first; i < first + WAYS; i++) {
      if (!(this.rowI32[i * ROW + R_FLAGS]! & F_USED)) { e = i; break; }
      if (this.stamp[i]! < this.stamp[e]!) e = i;
    }
    if (this.rowI32[e * ROW + R_FLAGS]! & F_USED) this.forgotten++; else this.size++;
    const o = e * ROW;
    const row = this.rowU32;
    this.rowI32[o + R_HASH] = h;
    this.rowI32[o + R_VP] = vp;
    this.rowI32[o + R_PORTS] = ports;
    for (let k = 0; k < 4; k++) { row[o + R_A + k] = a[addrOff + k]!; row[o + R_B + k] = b[addrOff + k]!; }
    row[o + R_BASE_A] = baseA < 0 ? 0 : baseA;
    row[o + R_BASE_B] = baseB < 0 ? 0 : baseB;
    this.rowI32[o + R_FLAGS] = F_USED | (baseA >= 0 ? F_BASE_A : 0) | (baseB >= 0 ? F_BASE_B : 0) | (clientIsA ? F_CLIENT_IS_A : 0);
    this.stream[e] = streamIndex;
    this.stamp[e] = this.clock++;
  }

  /** The entry remembered for this key, or -1. Read it with the accessors below, then `release` it. */
  find(h: number, vp: number, ports: number, a: Uint32Array, b: Uint32Array): number {
    const first = (h & this.setMask) * WAYS;
    const row = this.rowU32;
    for (let i = first; i < first + WAYS; i++) {
      const o = i * ROW;
      if (this.rowI32[o + R_HASH] !== h || !(this.rowI32[o + R_FLAGS]! & F_USED)) continue;
      if (this.rowI32[o + R_VP] !== vp || this.rowI32[o + R_PORTS] !== ports) continue;
      let same = true;
      for (let k = 0; k < 4; k++) if (row[o + R_A + k] !== a[k] || row[o + R_B + k] !== b[k]) same = false;
      if (same) return i;
    }
    return -1;
  }

  streamIndex(entry: number): number { return this.stream[entry]!; }
  /** Side A's (side 0) or B's (side 1) base_seq, -1 when it was not known. */
  baseSeq(entry: number, side: number): number {
    const o = entry * ROW;
    return this.rowI32[o + R_FLAGS]! & (side === 0 ? F_BASE_A : F_BASE_B) ? this.rowU32[o + (side === 0 ? R_BASE_A : R_BASE_B)]! : -1;
  }
  clientIsA(entry: number): boolean { return (this.rowI32[entry * ROW + R_FLAGS]! & F_CLIENT_IS_A) !== 0; }

  /** Forgets an entry: its conversation is live again (or was replaced by a new one). */
  release(entry: number): void {
    this.rowI32[entry * ROW + R_FLAGS] = 0;
    this.size--;
  }
}
