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
const NIL = -1;

/** Modulo 2^32 of an integer (exact below 2^53): ToUint32, one instruction, where `%` on doubles costs a division. */
const u32 = (x: number): number => x >>> 0;
/** Sequence comparisons modulo 2^32 (Wireshark's GT_SEQ, LT_SEQ, LE_SEQ). */
const GT = (a: number, b: number): boolean => ((b - a) | 0) < 0;
const LT = (a: number, b: number): boolean => ((a - b) | 0) < 0;
const LE = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
/** Wireshark compares time deltas as unsigned: a negative delta (time going backwards) is never "within". */
const within = (delta: number, limit: number): boolean => delta >= 0 && delta < limit;

export class TcpSequenceAnalysis {
  /** The analysis of the last segment passed to `analyze`. */
  readonly result = new TcpPacketResult();
  /** Segments not tracked because the pool was exhausted. */
  poolExhausted = 0;
  // per direction (slot * 2 + dir)
  private readonly window: Float64Array; // raw window, or 0xFFFFFFFF before the first packet
  private readonly winScale: Int8Array;
  private readonly isFirstAck: Uint8Array;
  private readonly lastSegFlags: Uint16Array;
  private readonly lastack: Uint32Array;
  private readonly lastacktime: Float64Array;
  private readonly dupacknum: Float64Array;
  private readonly nextseq: Uint32Array;
  private readonly nextseqtime: Float64Array;
  private readonly maxseqtobeacked: Uint32Array;
  private readonly segHead: Int32Array;
  private readonly segCount: Int32Array;
  // per flow
  private readonly tsMruSyn: Float64Array;
  private readonly tsFirstRtt: Float64Array;
  // unacked segment pool
  private readonly segSeq: Uint32Array;
  private readonly segEnd: Uint32Array;
  private readonly segTs: Float64Array;
  private readonly segRetransmitted: Uint8Array;
  private readonly segNext: Int32Array;
  private freeSeg: number;

  /** `flowCapacity`: the flow table's; `maxUnackedSegments`: the shared pool of segments awaiting an ACK. */
  constructor(flowCapacity: number, maxUnackedSegments: number) {
    const n = flowCapacity * 2;
    this.window = new Float64Array(n);
    this.winScale = new Int8Array(n);
    this.isFirstAck = new Uint8Array(n);
    this.lastSegFlags = new Uint16Array(n);
    this.lastack = new Uint32Array(n);
    this.lastacktime = new Float64Array(n);
    this.dupacknum = new Float64Array(n);
    this.nextseq = new Uint32Array(n);
    this.nextseqtime = new Float64Array(n);
    this.maxseqtobeacked = new Uint32Array(n);
    this.segHead = new Int32Array(n).fill(NIL);
    this.segCount = new Int32Array(n);
    this.tsMruSyn = new Float64Array(flowCapacity);
    this.tsFirstRtt = new Float64Array(flowCapacity);
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
    for (let d = slot * 2; d < slot * 2 + 2; d++) {
      this.window[d] = 0xffffffff;
      this.winScale[d] = -1;
      this.isFirstAck[d] = 0;
      this.lastSegFlags[d] = 0;
      this.lastack[d] = 0;
      this.lastacktime[d] = 0;
      this.dupacknum[d] = 0;
      this.nextseq[d] = 0;
      this.nextseqtime[d] = 0;
      this.maxseqtobeacked[d] = 0;
    }
    this.tsMruSyn[slot] = NaN; // packet times count from a base and can be 0: NaN means no SYN yet
    this.tsFirstRtt[slot] = 0;
  }

  flowEnded(slot: number): void {
    this.freeSegments(slot * 2);
    this.freeSegments(slot * 2 + 1);
  }

  private freeSegments(d: number): void {
    let u = this.segHead[d]!;
    while (u !== NIL) {
      const next = this.segNext[u]!;
      this.segNext[u] = this.freeSeg;
      this.freeSeg = u;
      u = next;
    }
    this.segHead[d] = NIL;
    this.segCount[d] = 0;
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
    else if (synEvent === TcpSynEvent.SAME_ISN_SYN) this.nextseq[f] = this.maxseqtobeacked[f]!;

    // Displayed window (tcp.window_size) uses the scale known before this packet's options.
    res.windowBytes = tf & SYN || this.winScale[f]! < 0 ? win : win * 2 ** this.winScale[f]!;

    const nextseqF = this.nextseq[f]!;
    // Zero-window probe: one byte at the next expected sequence number while the peer's window is 0.
    if (seglen === 1 && seq === nextseqF && this.window[r] === 0) {
      flags |= F.ZERO_WINDOW_PROBE;
    } else {
      if (win === 0 && !(tf & SYN_FIN_RST)) flags |= F.ZERO_WINDOW;
      if (nextseqF !== 0 && GT(seq, nextseqF) && !(tf & RST)) flags |= F.LOST_PACKET;
      if ((seglen === 0 || seglen === 1) && seq === u32(nextseqF - 1) && !(tf & SYN_FIN_RST)) flags |= F.KEEP_ALIVE;
      const plainAck = seglen === 0 && seq === nextseqF && ack === this.lastack[f] && !(tf & SYN_FIN_RST);
      if (plainAck && win !== 0 && win !== this.window[f]) flags |= F.WINDOW_UPDATE;
      if (seglen > 0 && this.winScale[r] !== -1 && !(tf & SYN_FIN_RST)) {
        const scale = this.winScale[r]!;
        const shift = this.isFirstAck[r] || scale === -2 ? 0 : scale;
        if (u32(seq + seglen) === u32(this.lastack[r]! + this.window[r]! * 2 ** shift)) flags |= F.WINDOW_FULL;
      }
      if (plainAck && win !== 0 && win === this.window[f] && this.lastSegFlags[r]! & F.KEEP_ALIVE) {
        flags |= F.KEEP_ALIVE_ACK;
      } else if (plainAck && win === 0 && this.window[f] === 0 && this.lastSegFlags[r]! & F.ZERO_WINDOW_PROBE) {
        flags |= F.ZERO_WINDOW_PROBE_ACK;
      } else if (plainAck && win !== 0 && win === this.window[f]) {
        this.dupacknum[f] = this.dupacknum[f] === DUPACK_MARK ? 1 : this.dupacknum[f]! + 1;
        flags |= F.DUPLICATE_ACK;
      }
    }
    if (ack !== this.lastack[f]) this.dupacknum[f] = 0;

    // ACKed segment that was not captured.
    const maxR = this.maxseqtobeacked[r]!;
    if (maxR !== 0 && GT(ack, maxR) && tf & ACK) {
      if (LT(maxR, this.nextseq[r]!)) {
        this.maxseqtobeacked[r] = this.nextseq[r]!;
        flags |= F.ACK_LOST_PACKET;
      } else {
        if (this.dupacknum[r] === 0) flags |= F.ACK_LOST_PACKET;
        this.dupacknum[r] = DUPACK_MARK;
      }
    }

    // Retransmission family: at most one of spurious, fast, out-of-order, plain.
    const synOrFin = tf & (SYN | FIN) ? 1 : 0;
    if ((seglen > 0 || synOrFin) && !(flags & F.KEEP_ALIVE)) {
      let notAdvanced = nextseqF !== 0 && LT(seq, nextseqF);
      if (seglen > 1 && u32(nextseqF - 1) === seq) notAdvanced = false;
      const lastackR = this.lastack[r]!;
      const firstRtt = this.tsFirstRtt[slot]!;
      if (seglen > 0 && lastackR !== 0 && LE(u32(seq + seglen), lastackR)) {
        flags |= F.SPURIOUS_RETRANSMISSION;
      } else if (notAdvanced && this.dupacknum[r]! >= 2 && lastackR === seq && within(now - this.lastacktime[r]!, FAST_RETRANSMISSION_WINDOW)) {
        flags |= F.FAST_RETRANSMISSION;
      } else if (notAdvanced && within(now - this.nextseqtime[f]!, firstRtt === 0 ? OUT_OF_ORDER_DEFAULT : firstRtt)
        && nextseqF !== u32(seq + seglen + synOrFin)) {
        flags |= F.OUT_OF_ORDER;
      } else if (notAdvanced) {
        flags |= F.RETRANSMISSION;
      }
    }

    // Remember the segment until it is acknowledged.
    let segEnd = u32(seq + seglen);
    if ((seglen > 0 || synOrFin) && this.segCount[f]! < MAX_SEGMENTS_PER_DIRECTION) {
      if (this.freeSeg === NIL) {
        this.poolExhausted++;
      } else {
        if (synOrFin) segEnd = u32(segEnd + 1);
        const u = this.freeSeg;
        this.freeSeg = this.segNext[u]!;
        this.segSeq[u] = seq;
        this.segEnd[u] = segEnd;
        this.segTs[u] = now;
        this.segRetransmitted[u] = flags & (ANY_RETRANSMISSION | F.OUT_OF_ORDER) ? 1 : 0;
        this.segNext[u] = this.segHead[f]!;
        this.segHead[f] = u;
        this.segCount[f]!++;
      }
    }

    if ((GT(segEnd, nextseqF) || nextseqF === 0) && !(flags & F.ZERO_WINDOW_PROBE)) {
      this.nextseq[f] = segEnd;
      this.nextseqtime[f] = now;
    }
    if ((seq === this.maxseqtobeacked[f] || this.maxseqtobeacked[f] === 0) && !(flags & F.ZERO_WINDOW_PROBE)) {
      this.maxseqtobeacked[f] = this.nextseq[f]!;
    }
    this.window[f] = win;
    this.lastack[f] = ack;
    this.lastacktime[f] = now;
    this.lastSegFlags[f] = flags;

    this.matchAck(r, ack, now);

    // Handshake bookkeeping, after the analysis as in Wireshark.
    if (tf & SYN) {
      if (!(tf & ACK)) this.tsMruSyn[slot] = now;
      this.isFirstAck[f] = 1;
    }
    if ((tf & (SYN | ACK)) === ACK) {
      if (!Number.isNaN(this.tsMruSyn[slot]!) && this.tsFirstRtt[slot] === 0) this.tsFirstRtt[slot] = now - this.tsMruSyn[slot]!;
      this.isFirstAck[f] = 0;
    }
    if (v.wscale >= 0) this.winScale[f] = Math.min(v.wscale, 14);
    if (tf & SYN) {
      if (this.winScale[f] === -1) { this.winScale[f] = -2; this.winScale[r] = -2; }
      else if (tf & ACK && this.winScale[r] === -2) this.winScale[f] = -2;
    }

    res.flags = flags;
  }

  /**
   * Walks the peer's unacked segments, newest first: an exact match of the ack
   * gives the RTT (the oldest match wins, so a retransmitted segment's ACK
   * measures from the original), a partial ACK trims, fully acked ones go.
   */
  private matchAck(r: number, ack: number, now: number): void {
    const res = this.result;
    let prev = NIL;
    let u = this.segHead[r]!;
    let matches = 0;
    let retransmitted = 0;
    let rtt = 0;
    while (u !== NIL) {
      const next = this.segNext[u]!;
      const end = this.segEnd[u]!;
      if (ack !== end) {
        if (GT(ack, this.segSeq[u]!) && LE(ack, end)) this.segSeq[u] = ack;
        if (GT(end, ack)) { prev = u; u = next; continue; }
      } else {
        rtt = now - this.segTs[u]!;
        matches++;
        retransmitted |= this.segRetransmitted[u]!;
      }
      if (prev === NIL) this.segHead[r] = next; else this.segNext[prev] = next;
      this.segNext[u] = this.freeSeg;
      this.freeSeg = u;
      this.segCount[r]!--;
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
