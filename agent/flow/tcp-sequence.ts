/**
 * TCP sequence analysis with Wireshark 4.0's definitions (packet-tcp.c,
 * tcp_analyze_sequence_number and tcp_analyze_get_acked_struct): retransmission,
 * fast and spurious retransmission, out-of-order, duplicate ACK, previous
 * segment not captured, ACKed unseen segment, keep-alive (ACK), window update,
 * zero window, zero-window probe (ACK), window full, and tcp.analysis.ack_rtt.
 * The check order, exclusions and state updates follow Wireshark's exactly,
 * quirks included, so the counters equal tshark's on the same packets. All
 * arithmetic is on raw 32-bit sequence numbers, modulo 2^32.
 *
 * State lives in typed arrays indexed by flow slot and direction; the segments
 * awaiting an ACK are nodes of one bounded pool (analyzers.tcp.maxUnackedSegments)
 * with Wireshark's cap of 10,000 per direction.
 *
 * It runs in the flow stage, before any analyzer, for every TCP segment of
 * a flow; its result for the packet (`result`) travels with the TCP segment
 * event, so no analyzer depends on another's order.
 */
import { TcpFlag } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { TcpSynEvent } from './flow-table.js';
import { ANY_RETRANSMISSION, TcpAnalysisFlag as F, TcpPacketResult } from './tcp-result.js';

const { SYN, ACK, FIN, RST } = TcpFlag;
const SYN_FIN_RST = SYN | FIN | RST;
/** Wireshark's dup-ACK counter is unsigned; its "-1" marker reads as 0xFFFFFFFF (>= 2). */
const DUPACK_MARK = 0xffffffff;
const MAX_SEGMENTS_PER_DIRECTION = 10000;
const FAST_RETRANSMISSION_WINDOW = 0.020;
const OUT_OF_ORDER_DEFAULT = 0.003;
const NS_PER_S = 1e9;
const NIL = -1;
/** Bytes of one direction's record (see the fields), and each field's index in the view of its width. */
const RECORD_BYTES = 64;
const F_WINDOW = 0; // f64, stride 8
const F_LASTACKTIME = 1;
const F_DUPACKNUM = 2;
const F_NEXTSEQTIME = 3;
/** Per flow, in the last f64 of the flow's two records: the latest SYN's time (NaN: none yet), the first RTT. */
const F_FLOW_SYN = 7; // of slot * 16
const F_FLOW_FIRST_RTT = 15;
const W_LASTACK = 8; // u32 / i32, stride 16
const W_NEXTSEQ = 9;
const W_MAXSEQTOBEACKED = 10;
const W_SEGHEAD = 11;
const W_SEGCOUNT = 12;
const H_LASTSEGFLAGS = 26; // u16, stride 32
const B_WINSCALE = 54; // i8 / u8, stride 64
const B_ISFIRSTACK = 55;

/*
 * Arithmetic modulo 2^32, written out in `analyze` and `matchAck` rather than
 * as helpers: `analyze` is larger than TurboFan's inlining budget, so the
 * helpers stayed calls there, each boxing its sequence-number arguments and
 * results (heap numbers above 2^30): about 12 MB of garbage per million
 * packets. The forms (Wireshark's macros, noted beside each use):
 *   x mod 2^32     x >>> 0  (ToUint32: exact below 2^53, where `%` on doubles divides)
 *   GT_SEQ(a, b)   ((b - a) | 0) < 0
 *   LT_SEQ(a, b)   ((a - b) | 0) < 0
 *   LE_SEQ(a, b)   ((a - b) | 0) <= 0
 */
/**
 * Wireshark compares time deltas in whole nanoseconds, as unsigned 64-bit
 * integers: a delta equal to the limit is not within it (in seconds as doubles,
 * 1.772265 - 1.771812 < 0.000453), a negative delta (time going backwards) is
 * never within, and a negative limit (a first RTT measured backwards) reads as
 * about 2^64, so every other delta is. Packet times are seconds from a base, so
 * deltas in doubles are exact to far below a nanosecond: rounding recovers the
 * integers.
 */
const within = (delta: number, limit: number): boolean => {
  const deltaNs = Math.round(delta * NS_PER_S);
  const limitNs = Math.round(limit * NS_PER_S);
  return deltaNs >= 0 && (limitNs < 0 || deltaNs < limitNs);
};
/*
 * WARM_UP. The flag tests in `analyze` read and compare all their operands
 * on every segment, then only combine the results (a flag is or-ed in as
 * `test ? FLAG : 0`), and a rare rewrite is a store of the value already
 * there unless the case applies. `analyze` is optimized after a few thousand
 * segments; a property load, arithmetic or comparison it has not run by then
 * has no type feedback, so the first segment that reaches it throws the
 * optimized code away and the function (the largest on the per-packet path)
 * is compiled again. Written with ordinary branches, the bench's capture
 * compiled it five times (a retransmitted SYN, a window update, an
 * out-of-order segment, a SYN without window scaling, zero windows); written
 * so, once.
 */
const {
  RETRANSMISSION, LOST_PACKET, ACK_LOST_PACKET, KEEP_ALIVE, DUPLICATE_ACK, ZERO_WINDOW, ZERO_WINDOW_PROBE, ZERO_WINDOW_PROBE_ACK,
  KEEP_ALIVE_ACK, OUT_OF_ORDER, FAST_RETRANSMISSION, WINDOW_UPDATE, WINDOW_FULL, SPURIOUS_RETRANSMISSION,
} = F;

export class TcpSequenceAnalysis {
  /** The analysis of the last segment passed to `analyze`. */
  readonly result = new TcpPacketResult();
  /** Segments not tracked because the pool was exhausted. */
  poolExhausted = 0;
  /**
   * Per direction (d = slot * 2 + dir), one 64-byte record, so a segment's
   * analysis touches two adjacent cache lines (its direction and the reverse)
   * instead of one line in each of a dozen arrays. Byte offsets in a record:
   *   0 window (raw, or 0xFFFFFFFF before the first packet), 8 lastacktime,
   *   16 dupacknum, 24 nextseqtime (f64); 32 lastack, 36 nextseq,
   *   40 maxseqtobeacked (u32); 44 segHead, 48 segCount (i32);
   *   52 lastSegFlags (u16); 54 winScale (i8); 55 isFirstAck (u8);
   *   56 per flow (f64): the time of the latest SYN in the flow's dir-0
   *   record (NaN: none yet), the first RTT in its dir-1 record.
   */
  private readonly f64: Float64Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly u16: Uint16Array;
  private readonly i8: Int8Array;
  private readonly u8: Uint8Array;
  // unacked segment pool
  private readonly segSeq: Uint32Array;
  private readonly segEnd: Uint32Array;
  private readonly segTs: Float64Array;
  private readonly segRetransmitted: Uint8Array;
  private readonly segNext: Int32Array;
  private freeSeg: number;

  /** `flowCapacity`: the flow table's; `maxUnackedSegments`: the shared pool of segments awaiting an ACK. */
  constructor(flowCapacity: number, maxUnackedSegments: number) {
    const records = new ArrayBuffer(flowCapacity * 2 * RECORD_BYTES);
    this.f64 = new Float64Array(records);
    this.u32 = new Uint32Array(records);
    this.i32 = new Int32Array(records);
    this.u16 = new Uint16Array(records);
    this.i8 = new Int8Array(records);
    this.u8 = new Uint8Array(records);
    for (let d = 0; d < flowCapacity * 2; d++) this.i32[d * 16 + W_SEGHEAD] = NIL;
    const pool = maxUnackedSegments;
    this.segSeq = new Uint32Array(pool);
    this.segEnd = new Uint32Array(pool);
    this.segTs = new Float64Array(pool);
    this.segRetransmitted = new Uint8Array(pool);
    this.segNext = new Int32Array(pool);
    for (let i = 0; i < pool; i++) this.segNext[i] = i + 1 < pool ? i + 1 : NIL;
    this.freeSeg = pool > 0 ? 0 : NIL;
  }

  flowStarted(slot: number): void {
    // Both records zeroed but for the segment list head (kept: flowEnded emptied the list).
    const head0 = this.i32[slot * 32 + W_SEGHEAD]!;
    const head1 = this.i32[slot * 32 + 16 + W_SEGHEAD]!;
    this.u8.fill(0, slot * 2 * RECORD_BYTES, (slot + 1) * 2 * RECORD_BYTES);
    this.i32[slot * 32 + W_SEGHEAD] = head0;
    this.i32[slot * 32 + 16 + W_SEGHEAD] = head1;
    for (let d = slot * 2; d < slot * 2 + 2; d++) {
      this.f64[d * 8 + F_WINDOW] = 0xffffffff;
      this.i8[d * 64 + B_WINSCALE] = -1;
    }
    this.f64[slot * 16 + F_FLOW_SYN] = NaN; // packet times count from a base and can be 0: NaN means no SYN yet
  }

  flowEnded(slot: number): void {
    this.freeSegments(slot * 2);
    this.freeSegments(slot * 2 + 1);
  }

  private freeSegments(d: number): void {
    let u = this.i32[d * 16 + W_SEGHEAD]!;
    while (u !== NIL) {
      const next = this.segNext[u]!;
      this.segNext[u] = this.freeSeg;
      this.freeSeg = u;
      u = next;
    }
    this.i32[d * 16 + W_SEGHEAD] = NIL;
    this.i32[d * 16 + W_SEGCOUNT] = 0;
  }

  /** One TCP segment of flow `slot` in direction `dir` (the flow table has just counted it); fills `result`. */
  analyze(v: PacketView, slot: number, dir: number, synEvent: number): void {
    const res = this.result;
    res.reset();
    res.analyzed = true;
    const f = slot * 2 + dir;
    const r = slot * 2 + (dir ^ 1);
    const tf = v.tcpFlags;
    const seq = v.seq;
    const ack = v.ack;
    const win = v.window;
    const seglen = v.payloadLen;
    const now = v.ts;
    res.seglen = seglen;

    let flags = 0;
    if (synEvent === TcpSynEvent.PORT_REUSE || synEvent === TcpSynEvent.SYN_ACK_NEW_ISN) flags |= F.REUSED_PORTS;
    // A retransmitted SYN (same ISN) rewinds nextseq to maxseqtobeacked. Written without a branch of its own (the
    // store happens on every segment, of the value already there unless rewound): see WARM_UP.
    this.u32[f * 16 + W_NEXTSEQ] = this.u32[f * 16 + (synEvent === TcpSynEvent.SAME_ISN_SYN ? W_MAXSEQTOBEACKED : W_NEXTSEQ)]!;

    // Displayed window (tcp.window_size) uses the scale known before this packet's options.
    // A known scale is 0..14 (capped where it is stored): `1 << scale` is 2 ** scale exactly, without a call to pow.
    const scaleF = this.i8[f * 64 + B_WINSCALE]!;
    res.windowBytes = tf & SYN || scaleF < 0 ? win : win * (1 << scaleF);

    const nextseqF = this.u32[f * 16 + W_NEXTSEQ]!;
    // Every operand of the flag tests below is read or computed here, on every segment (see WARM_UP); the
    // tests then only combine these values, and a flag is or-ed in as `test ? FLAG : 0`.
    const noSynFinRst = !(tf & SYN_FIN_RST);
    const noRst = !(tf & RST);
    const atNextSeq = seq === nextseqF;
    const beforeNextSeq = seq === (nextseqF - 1) >>> 0;
    const gapBefore = nextseqF !== 0 && ((nextseqF - seq) | 0) < 0; // GT(seq, nextseqF)
    const windowF = this.f64[f * 8 + F_WINDOW]!;
    const windowR = this.f64[r * 8 + F_WINDOW]!;
    const windowFZero = windowF === 0;
    const windowRZero = windowR === 0;
    const lastackF = this.u32[f * 16 + W_LASTACK]!;
    const lastackR = this.u32[r * 16 + W_LASTACK]!;
    const scaleR = this.i8[r * 64 + B_WINSCALE]!;
    const shiftR = this.u8[r * 64 + B_ISFIRSTACK] || scaleR < 0 ? 0 : scaleR; // 0..14
    const fillsWindowR = (seq + seglen) >>> 0 === (lastackR + windowR * (1 << shiftR)) >>> 0;
    const lastSegFlagsR = this.u16[r * 32 + H_LASTSEGFLAGS]!;
    const keepAliveR = (lastSegFlagsR & KEEP_ALIVE) !== 0;
    const probeR = (lastSegFlagsR & ZERO_WINDOW_PROBE) !== 0;
    // Zero-window probe: one byte at the next expected sequence number while the peer's window is 0.
    const probe = seglen === 1 && atNextSeq && windowRZero;
    flags |= probe ? ZERO_WINDOW_PROBE : 0;
    if (!probe) {
      flags |= win === 0 && noSynFinRst ? ZERO_WINDOW : 0;
      flags |= gapBefore && noRst ? LOST_PACKET : 0;
      flags |= (seglen === 0 || seglen === 1) && beforeNextSeq && noSynFinRst ? KEEP_ALIVE : 0;
      const plainAck = seglen === 0 && atNextSeq && ack === lastackF && noSynFinRst;
      flags |= plainAck && win !== 0 && win !== windowF ? WINDOW_UPDATE : 0;
      flags |= seglen > 0 && scaleR !== -1 && noSynFinRst && fillsWindowR ? WINDOW_FULL : 0;
      // At most one of keep-alive ACK, zero-window-probe ACK, duplicate ACK.
      const sameWindow = win !== 0 && win === windowF;
      flags |= plainAck && sameWindow && keepAliveR ? KEEP_ALIVE_ACK : plainAck && win === 0 && windowFZero && probeR ? ZERO_WINDOW_PROBE_ACK : 0;
      if (plainAck && sameWindow && !keepAliveR) {
        this.f64[f * 8 + F_DUPACKNUM] = this.f64[f * 8 + F_DUPACKNUM] === DUPACK_MARK ? 1 : this.f64[f * 8 + F_DUPACKNUM]! + 1;
        flags |= DUPLICATE_ACK;
      }
    }
    if (ack !== lastackF) this.f64[f * 8 + F_DUPACKNUM] = 0;

    // ACKed segment that was not captured.
    const maxR = this.u32[r * 16 + W_MAXSEQTOBEACKED]!;
    if (maxR !== 0 && ((maxR - ack) | 0) < 0 && tf & ACK) { // GT(ack, maxR)
      if (((maxR - this.u32[r * 16 + W_NEXTSEQ]!) | 0) < 0) { // LT(maxR, nextseq of r)
        this.u32[r * 16 + W_MAXSEQTOBEACKED] = this.u32[r * 16 + W_NEXTSEQ]!;
        flags |= ACK_LOST_PACKET;
      } else {
        if (this.f64[r * 8 + F_DUPACKNUM] === 0) flags |= ACK_LOST_PACKET;
        this.f64[r * 8 + F_DUPACKNUM] = DUPACK_MARK;
      }
    }

    // Retransmission family: at most one of spurious, fast, out-of-order, plain.
    const synOrFin = tf & (SYN | FIN) ? 1 : 0;
    if ((seglen > 0 || synOrFin) && !(flags & KEEP_ALIVE)) {
      const notAdvanced = nextseqF !== 0 && ((seq - nextseqF) | 0) < 0 && !(seglen > 1 && beforeNextSeq); // LT(seq, nextseqF)
      const firstRtt = this.f64[slot * 16 + F_FLOW_FIRST_RTT]!;
      const spurious = seglen > 0 && lastackR !== 0 && ((((seq + seglen) >>> 0) - lastackR) | 0) <= 0; // LE(seq + seglen, lastackR)
      const manyDupAcks = this.f64[r * 8 + F_DUPACKNUM]! >= 2;
      const ackedAtSeq = lastackR === seq;
      const soonAfterAck = within(now - this.f64[r * 8 + F_LASTACKTIME]!, FAST_RETRANSMISSION_WINDOW);
      const fast = manyDupAcks && ackedAtSeq && soonAfterAck;
      const recent = within(now - this.f64[f * 8 + F_NEXTSEQTIME]!, firstRtt === 0 ? OUT_OF_ORDER_DEFAULT : firstRtt);
      const fillsGap = nextseqF !== (seq + seglen + synOrFin) >>> 0;
      flags |= spurious ? SPURIOUS_RETRANSMISSION : !notAdvanced ? 0 : fast ? FAST_RETRANSMISSION : recent && fillsGap ? OUT_OF_ORDER : RETRANSMISSION;
    }

    // Remember the segment until it is acknowledged.
    let segEnd = (seq + seglen) >>> 0;
    if ((seglen > 0 || synOrFin) && this.i32[f * 16 + W_SEGCOUNT]! < MAX_SEGMENTS_PER_DIRECTION) {
      if (this.freeSeg === NIL) {
        this.poolExhausted++;
      } else {
        if (synOrFin) segEnd = (segEnd + 1) >>> 0;
        const u = this.freeSeg;
        this.freeSeg = this.segNext[u]!;
        this.segSeq[u] = seq;
        this.segEnd[u] = segEnd;
        this.segTs[u] = now;
        this.segRetransmitted[u] = flags & (ANY_RETRANSMISSION | F.OUT_OF_ORDER) ? 1 : 0;
        this.segNext[u] = this.i32[f * 16 + W_SEGHEAD]!;
        this.i32[f * 16 + W_SEGHEAD] = u;
        this.i32[f * 16 + W_SEGCOUNT]!++;
      }
    }

    if ((((nextseqF - segEnd) | 0) < 0 || nextseqF === 0) && !(flags & F.ZERO_WINDOW_PROBE)) { // GT(segEnd, nextseqF)
      this.u32[f * 16 + W_NEXTSEQ] = segEnd;
      this.f64[f * 8 + F_NEXTSEQTIME] = now;
    }
    if ((seq === this.u32[f * 16 + W_MAXSEQTOBEACKED] || this.u32[f * 16 + W_MAXSEQTOBEACKED] === 0) && !(flags & F.ZERO_WINDOW_PROBE)) {
      this.u32[f * 16 + W_MAXSEQTOBEACKED] = this.u32[f * 16 + W_NEXTSEQ]!;
    }
    this.f64[f * 8 + F_WINDOW] = win;
    this.u32[f * 16 + W_LASTACK] = ack;
    this.f64[f * 8 + F_LASTACKTIME] = now;
    this.u16[f * 32 + H_LASTSEGFLAGS] = flags;

    this.matchAck(r, ack, v);

    // Handshake bookkeeping, after the analysis as in Wireshark.
    if (tf & SYN) {
      if (!(tf & ACK)) this.f64[slot * 16 + F_FLOW_SYN] = now;
      this.u8[f * 64 + B_ISFIRSTACK] = 1;
    }
    if ((tf & (SYN | ACK)) === ACK) {
      if (!Number.isNaN(this.f64[slot * 16 + F_FLOW_SYN]!) && this.f64[slot * 16 + F_FLOW_FIRST_RTT] === 0) this.f64[slot * 16 + F_FLOW_FIRST_RTT] = now - this.f64[slot * 16 + F_FLOW_SYN]!;
      this.u8[f * 64 + B_ISFIRSTACK] = 0;
    }
    if (v.wscale >= 0) this.i8[f * 64 + B_WINSCALE] = Math.min(v.wscale, 14);
    if (tf & SYN) {
      // A SYN without the option: neither side scales. A SYN/ACK after such a SYN: this side does not either.
      // (Otherwise stores of the values already there: see WARM_UP.)
      const scale = this.i8[f * 64 + B_WINSCALE]!;
      const peer = this.i8[r * 64 + B_WINSCALE]!;
      this.i8[f * 64 + B_WINSCALE] = scale === -1 || (tf & ACK && peer === -2) ? -2 : scale;
      this.i8[r * 64 + B_WINSCALE] = scale === -1 ? -2 : peer;
    }

    res.flags = flags;
  }

  /**
   * A TCP header quoted in an ICMP error (its flags known) of flow `slot`: no
   * analysis, but Wireshark's dissector keeps the error's time as the most
   * recent SYN's when the quote is a SYN, and takes the first RTT from a
   * quoted pure ACK, as for a segment of the flow; so the out-of-order
   * threshold can come from an ICMP frame.
   */
  quotedHeader(slot: number, tcpFlags: number, now: number): void {
    const synAck = tcpFlags & (SYN | ACK);
    if (synAck === SYN) this.f64[slot * 16 + F_FLOW_SYN] = now;
    if (synAck === ACK && !Number.isNaN(this.f64[slot * 16 + F_FLOW_SYN]!) && this.f64[slot * 16 + F_FLOW_FIRST_RTT] === 0) {
      this.f64[slot * 16 + F_FLOW_FIRST_RTT] = now - this.f64[slot * 16 + F_FLOW_SYN]!;
    }
  }

  /**
   * Walks the peer's unacked segments, newest first: an exact match of the ack
   * gives the RTT (the oldest match wins, so a retransmitted segment's ACK
   * measures from the original), a partial ACK trims, fully acked ones go.
   * Takes the view, not its time: a double passed to a call that is not
   * inlined is boxed, an allocation per segment.
   */
  private matchAck(r: number, ack: number, v: PacketView): void {
    const res = this.result;
    let prev = NIL;
    let u = this.i32[r * 16 + W_SEGHEAD]!;
    let matches = 0;
    let retransmitted = 0;
    let rtt = 0;
    while (u !== NIL) {
      const next = this.segNext[u]!;
      const end = this.segEnd[u]!;
      if (ack !== end) {
        if (((this.segSeq[u]! - ack) | 0) < 0 && ((ack - end) | 0) <= 0) this.segSeq[u] = ack; // GT(ack, seq) && LE(ack, end)
        if (((ack - end) | 0) < 0) { prev = u; u = next; continue; } // GT(end, ack)
      } else {
        rtt = v.ts - this.segTs[u]!;
        matches++;
        retransmitted |= this.segRetransmitted[u]!;
      }
      if (prev === NIL) this.i32[r * 16 + W_SEGHEAD] = next; else this.segNext[prev] = next;
      this.segNext[u] = this.freeSeg;
      this.freeSeg = u;
      this.i32[r * 16 + W_SEGCOUNT]!--;
      u = next;
    }
    // Wireshark hides an RTT of exactly 0; negative ones (timestamps going backwards) it shows.
    if (matches > 0 && rtt !== 0) {
      res.hasAckRtt = true;
      res.ackRtt = rtt;
      // Karn's rule: no sample from a segment that was sent more than once.
      if (rtt > 0 && matches === 1 && !retransmitted) res.karnRtt = rtt;
    }
  }
}
