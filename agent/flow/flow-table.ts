/**
 * Flow table in typed arrays: open addressing on a symmetric hash of the
 * 5-tuple (both directions map to one flow), no per-packet allocation, a hard
 * cap on live flows, idle timeouts per protocol and TCP state measured in
 * packet time, and one LRU list per timeout class so expiry and eviction only
 * look at list heads.
 *
 * TCP streams follow Wireshark's tcp.stream rule for port reuse: a SYN whose
 * sequence number differs from the first one seen from that side starts a new
 * flow. The VLAN and interface are not part of the key, as in Wireshark's
 * conversations. A TCP or UDP flow that ends idle or evicted is remembered in
 * EndedConversations (bounded), so the same key resuming keeps its tcp.stream /
 * udp.stream number as in Wireshark, which never expires a conversation.
 */
import type { FlowTimeouts } from '../../common/config.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { PacketClock } from '../core/packet-clock.js';
import { EndedConversations } from './ended-conversations.js';

export const FlowState = {
  /** Non-TCP flow. */
  OPEN: 0,
  SYN_SENT: 1,
  SYN_RECEIVED: 2,
  ESTABLISHED: 3,
  /** FIN seen from one side. */
  CLOSING: 4,
  /** FIN seen from both sides. */
  CLOSED: 5,
  RESET: 6,
} as const;
export const FLOW_STATE_NAMES = ['open', 'syn_sent', 'syn_received', 'established', 'closing', 'closed', 'reset'] as const;

/** What the last `update` noticed about a TCP SYN, for Wireshark's analysis (packet-tcp.c's port-reuse branches). */
export const TcpSynEvent = {
  NONE: 0,
  /** A SYN with a new ISN started this new flow (tcp.analysis.reused_ports). */
  PORT_REUSE: 1,
  /** A SYN with the ISN already known for this side: a retransmitted SYN. */
  SAME_ISN_SYN: 2,
  /** A SYN/ACK with an ISN other than the one known for this side (reused_ports, same flow). */
  SYN_ACK_NEW_ISN: 3,
} as const;

const SAME_ISN_SYN = TcpSynEvent.SAME_ISN_SYN;

export const EndReason = { IDLE: 0, EVICTED: 1, END_OF_INPUT: 2, PORT_REUSE: 3 } as const;
export type EndReasonCode = (typeof EndReason)[keyof typeof EndReason];

/** Direction of a packet within its flow. */
export const Dir = { CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 1 } as const;

// Timeout classes, one LRU list each.
const L_TCP_HANDSHAKE = 0;
const L_TCP_ESTABLISHED = 1;
const L_TCP_CLOSED = 2;
const L_UDP = 3;
const L_ICMP = 4;
const L_OTHER = 5;
const LISTS = 6;

const NIL = -1;

/*
 * One 64-byte row per flow holds what a lookup and the LRU lists read, so a
 * packet of a known flow touches one line for them instead of one in each of
 * a dozen arrays. Word offsets (the key words as in the public arrays):
 */
const ROW = 16;
const R_HASH = 0; // i32
const R_VP = 1; // version << 8 | proto
const R_PORTS = 2; // portA << 16 | portB (i32)
const R_A = 3; // u32 x 4
const R_B = 7; // u32 x 4
const R_PREV = 11; // i32, LRU neighbours
const R_NEXT = 12;
const R_LIST = 13; // timeout class
const R_SEEN_AT = 7; // f64 index in the row (words 14-15): expiry clock at the flow's last packet
/**
 * Entries of the cache of recently seen flows (direct-mapped on the hash): on
 * the bench's mixed capture 93 % of packets find their flow there, in 32 KB
 * that stays cached, where the index line of a flow is usually a cache miss.
 * Entries are pairs like the index's, so a miss reads no flow row.
 */
const RECENT = 4096;

export interface FlowTableOptions {
  maxFlows: number;
  timeouts: FlowTimeouts;
  /** Ended TCP and UDP conversations remembered for their stream numbers (see EndedConversations). */
  endedConversations: number;
}

/** Hooks for whoever keeps per-flow state indexed by slot (analyzers, the report). */
export interface FlowListener {
  onFlowStart?(slot: number): void;
  onFlowEnd?(slot: number, reason: EndReasonCode): void;
}

export class FlowTable {
  readonly capacity: number;
  // key (canonical order: side A is the lower address/port)
  readonly version: Uint8Array;
  readonly proto: Uint8Array;
  readonly addrA: Uint32Array;
  readonly addrB: Uint32Array;
  readonly portA: Uint16Array;
  readonly portB: Uint16Array;
  /** Per flow, ROW words (see R_*): views of one buffer. */
  private readonly rowI32: Int32Array;
  private readonly rowU32: Uint32Array;
  private readonly rowF64: Float64Array;
  /** 1 when the client is side A. */
  readonly clientIsA: Uint8Array;
  readonly state: Uint8Array;
  readonly firstTs: Float64Array;
  readonly lastTs: Float64Array;
  /** Per direction (slot * 2 + Dir). */
  readonly packets: Float64Array;
  readonly bytes: Float64Array;
  /** Per direction: Wireshark's base_seq (the ISN as far as the capture shows it), -1 until known. */
  private readonly baseSeq: Float64Array;
  private readonly finSeen: Uint8Array;
  /** Index of this flow among flows of its protocol (tcp.stream / udp.stream numbering). */
  readonly streamIndex: Float64Array;
  private readonly inUse: Uint8Array;

  /** Pairs per hash position: flow slot + 1 (0 = empty), and its hash, so probing and deletion read no flow row. */
  private readonly index: Int32Array;
  private readonly mask: number;
  /** Pairs at hash & (RECENT - 1): slot + 1 of a live flow with those hash bits (0: none), and its hash. */
  private readonly recent = new Int32Array(RECENT * 2);
  private readonly heads = new Int32Array(LISTS).fill(NIL);
  private readonly tails = new Int32Array(LISTS).fill(NIL);
  private readonly timeoutOf: Float64Array;
  private freeTop: number;
  private readonly freeSlots: Int32Array;
  private lastSweep = -Infinity;
  /** Flow of the last packet that was ahead of the clock, refreshed if the next packet confirms the jump. */
  private aheadSlot = NIL;

  /** Live flows. */
  active = 0;
  /** Flows created, by transport. */
  tcpStreams = 0;
  udpStreams = 0;
  otherFlows = 0;
  /** Flows ended by idle timeout, and evicted because the table was full. */
  expired = 0;
  evicted = 0;
  /** TCP and UDP conversations remembered after their flow ended, so a resumption keeps its stream number. */
  readonly ended: EndedConversations;
  /** Flows that resumed a remembered conversation (its stream number kept). */
  resumed = 0;
  /** Set by `create`: the flow's remembered conversation had another ISN for the SYN's side (Wireshark's port reuse). */
  private resumedWithNewIsn = false;
  /** Direction of the last packet passed to `update`. */
  dir = 0;
  /** TcpSynEvent of the last packet passed to `update`. */
  synEvent = 0;
  /** Flow slot returned by the last `update` (-1 when the packet had no flow). */
  lastSlot = -1;

  private listener: FlowListener | undefined;

  /** The caller (the pipeline) advances `clock` and calls `advance()` for every packet, then `update` for IP ones. */
  constructor(options: FlowTableOptions, private readonly clock: PacketClock) {
    const n = options.maxFlows;
    this.capacity = n;
    this.version = new Uint8Array(n);
    this.proto = new Uint8Array(n);
    this.addrA = new Uint32Array(n * 4);
    this.addrB = new Uint32Array(n * 4);
    this.portA = new Uint16Array(n);
    this.portB = new Uint16Array(n);
    const rows = new ArrayBuffer(n * ROW * 4);
    this.rowI32 = new Int32Array(rows);
    this.rowU32 = new Uint32Array(rows);
    this.rowF64 = new Float64Array(rows);
    this.clientIsA = new Uint8Array(n);
    this.state = new Uint8Array(n);
    this.firstTs = new Float64Array(n);
    this.lastTs = new Float64Array(n);
    this.packets = new Float64Array(n * 2);
    this.bytes = new Float64Array(n * 2);
    this.baseSeq = new Float64Array(n * 2);
    this.finSeen = new Uint8Array(n);
    this.streamIndex = new Float64Array(n);
    this.inUse = new Uint8Array(n);
    let size = 1;
    while (size < n * 2) size <<= 1;
    this.index = new Int32Array(size * 2);
    this.mask = size - 1;
    this.freeSlots = new Int32Array(n);
    for (let i = 0; i < n; i++) this.freeSlots[i] = n - 1 - i;
    this.freeTop = n;
    const t = options.timeouts;
    this.timeoutOf = Float64Array.of(t.tcpHandshake, t.tcpEstablished, t.tcpClosed, t.udp, t.icmp, t.other);
    this.ended = new EndedConversations(options.endedConversations);
  }

  /** Ended conversations overwritten before they resumed (a resumption then gets a new stream number). */
  get forgotten(): number { return this.ended.forgotten; }

  setListener(listener: FlowListener): void { this.listener = listener; }

  /**
   * Finds or creates the flow of an IP packet and updates it. Returns the flow
   * slot, or -1 for frames without an IP transport. `dir` is set.
   */
  update(v: PacketView): number {
    this.lastSlot = -1;
    if (v.ipVersion === 0 || v.transport === Transport.NONE) return -1;
    const ts = v.ts;
    const proto = v.transport === Transport.OTHER_IP ? v.ipProto : v.transport;
    let sport = v.srcPort;
    let dport = v.dstPort;
    if (proto === Transport.ICMP || proto === Transport.ICMPV6) {
      // Echo request/reply pairs share a flow per identifier; other ICMP is one flow per host pair.
      const echo = proto === Transport.ICMP ? v.icmpType === 8 || v.icmpType === 0 : v.icmpType === 128 || v.icmpType === 129;
      sport = dport = echo ? v.icmpId : 0;
    }
    const srcIsA = compareEndpoints(v.src, sport, v.dst, dport) <= 0;
    const a = srcIsA ? v.src : v.dst;
    const b = srcIsA ? v.dst : v.src;
    const pa = srcIsA ? sport : dport;
    const pb = srcIsA ? dport : sport;
    const vp = v.ipVersion << 8 | proto;
    const ports = pa << 16 | pb;
    const h = hashKey(vp, ports, a, b);
    let slot = this.find(h, vp, ports, a, b);
    this.synEvent = TcpSynEvent.NONE;
    if (slot >= 0 && proto === Transport.TCP && this.isPortReuse(slot, v, srcIsA)) {
      this.end(slot, EndReason.PORT_REUSE);
      this.synEvent = TcpSynEvent.PORT_REUSE;
      slot = -1;
    }
    if (slot < 0) {
      slot = this.create(h, v.ipVersion, proto, a, b, pa, pb, srcIsA, v.ts, this.clientIsSource(v, proto), v.tcpFlags, v.seq);
      if (this.resumedWithNewIsn) this.synEvent = TcpSynEvent.PORT_REUSE;
    }
    const dir = (this.clientIsA[slot] === 1) === srcIsA ? Dir.CLIENT_TO_SERVER : Dir.SERVER_TO_CLIENT;
    this.dir = dir;
    const di = slot * 2 + dir;
    this.packets[di]++;
    this.bytes[di] += v.wireLen;
    if (ts > this.lastTs[slot]!) this.lastTs[slot] = ts;
    this.rowF64[slot * (ROW / 2) + R_SEEN_AT] = this.clock.now;
    this.aheadSlot = this.clock.ahead ? slot : NIL;
    if (proto === Transport.TCP) this.trackTcp(slot, v, dir);
    this.touch(slot);
    this.lastSlot = slot;
    return slot;
  }

  /**
   * A TCP header (16 bytes or more of it) or a whole UDP header quoted in an
   * ICMP error: like Wireshark, it opens a flow (and a tcp.stream or
   * udp.stream) when none exists for its addresses and ports, and a quoted SYN
   * with a new ISN starts a new one; it is not traffic of the flow, so nothing
   * is counted and no state changes. Returns the quoted flow's slot (found or
   * opened), or -1 when the quote names none.
   */
  updateQuoted(v: PacketView): number {
    const tcp = v.innerProto === Transport.TCP && v.innerTcpFlags >= 0;
    if (v.innerIpVersion === 0 || !(tcp || (v.innerProto === Transport.UDP && v.innerUdpHeader))) return -1;
    const proto = tcp ? Transport.TCP : Transport.UDP;
    const sport = v.innerSrcPort;
    const dport = v.innerDstPort;
    const srcIsA = compareEndpoints(v.innerSrc, sport, v.innerDst, dport) <= 0;
    const a = srcIsA ? v.innerSrc : v.innerDst;
    const b = srcIsA ? v.innerDst : v.innerSrc;
    const pa = srcIsA ? sport : dport;
    const pb = srcIsA ? dport : sport;
    const vp = v.innerIpVersion << 8 | proto;
    const h = hashKey(vp, pa << 16 | pb, a, b);
    const flags = tcp ? v.innerTcpFlags : 0;
    const slot = this.find(h, vp, pa << 16 | pb, a, b);
    if (slot >= 0) {
      if (!tcp || (flags & (TcpFlag.SYN | TcpFlag.ACK)) !== TcpFlag.SYN) return slot;
      const base = this.baseSeq[slot * 2 + ((this.clientIsA[slot] === 1) === srcIsA ? 0 : 1)]!;
      if (base < 0 || base === v.innerTcpSeq) return slot;
      this.end(slot, EndReason.PORT_REUSE);
    }
    // As the first packet would: a quoted SYN/ACK's sender is the server, a quoted UDP header's sender the client
    // unless it goes from a well-known port to an ephemeral one.
    const clientIsSource = tcp ? (flags & (TcpFlag.SYN | TcpFlag.ACK)) !== (TcpFlag.SYN | TcpFlag.ACK) : !(sport < 1024 && dport >= 1024);
    return this.create(h, v.innerIpVersion, proto, a, b, pa, pb, srcIsA, v.ts, clientIsSource, flags, v.innerTcpSeq);
  }

  /**
   * Called for every packet after the clock observed it (before `update`):
   * expires idle flows, and on a confirmed clock jump first refreshes the flow
   * of the packet that announced it.
   */
  advance(): void {
    const clock = this.clock;
    if (clock.confirmedJump && this.aheadSlot !== NIL && this.inUse[this.aheadSlot]) {
      this.rowF64[this.aheadSlot * (ROW / 2) + R_SEEN_AT] = clock.now; // the jump's first packet belongs to the new time
      this.touch(this.aheadSlot);
    }
    this.aheadSlot = NIL;
    if (clock.now - this.lastSweep >= 1) { this.expire(clock.now); this.lastSweep = clock.now; }
  }

  /** Wireshark: a SYN (without ACK) whose seq differs from that side's base_seq starts a new conversation. */
  private isPortReuse(slot: number, v: PacketView, srcIsA: boolean): boolean {
    // Every operand is read for every segment, the SYNs among them are rare: a load or comparison first run after
    // `update` was optimized would have no type feedback and throw the optimized code away (see tcp-sequence.ts, WARM_UP).
    const dir = (this.clientIsA[slot] === 1) === srcIsA ? 0 : 1;
    const base = this.baseSeq[slot * 2 + dir]!;
    const otherIsn = base >= 0 && base !== v.seq;
    return (v.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN && otherIsn;
  }

  private trackTcp(slot: number, v: PacketView, dir: number): void {
    const flags = v.tcpFlags;
    const di = slot * 2 + dir;
    // Wireshark's base_seq: from this side's first segment (a SYN's seq, else seq - 1), or from
    // the other side's first ACK (ack - 1); a SYN/ACK with a new ISN replaces it.
    const synAck = (flags & (TcpFlag.SYN | TcpFlag.ACK)) === (TcpFlag.SYN | TcpFlag.ACK);
    const pureSyn = (flags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN;
    const base = this.baseSeq[di]!;
    const sameIsn = base === v.seq;
    if (base < 0) {
      this.baseSeq[di] = flags & TcpFlag.SYN ? v.seq : (v.seq - 1) >>> 0;
    } else if (synAck && !sameIsn) {
      this.baseSeq[di] = v.seq;
      this.synEvent = TcpSynEvent.SYN_ACK_NEW_ISN;
    }
    // A SYN with the ISN known for this side: a retransmitted SYN. Stored on every segment, the value unchanged
    // otherwise: a store first run after `update` was optimized would throw its code away (tcp-sequence.ts, WARM_UP).
    this.synEvent = base >= 0 && pureSyn && sameIsn ? SAME_ISN_SYN : this.synEvent;
    const ri = slot * 2 + (dir ^ 1);
    if (this.baseSeq[ri]! < 0 && flags & TcpFlag.ACK) this.baseSeq[ri] = (v.ack - 1) >>> 0;
    const s = this.state[slot]!;
    if (flags & TcpFlag.RST) {
      this.state[slot] = FlowState.RESET;
    } else if (flags & TcpFlag.SYN) {
      if (flags & TcpFlag.ACK) { if (s === FlowState.SYN_SENT) this.state[slot] = FlowState.SYN_RECEIVED; }
    } else if (flags & TcpFlag.FIN) {
      this.finSeen[slot]! |= 1 << dir;
      if (s !== FlowState.RESET) this.state[slot] = this.finSeen[slot] === 3 ? FlowState.CLOSED : FlowState.CLOSING;
    } else if (s === FlowState.SYN_RECEIVED && dir === Dir.CLIENT_TO_SERVER && flags & TcpFlag.ACK) {
      this.state[slot] = FlowState.ESTABLISHED;
    } else if (s === FlowState.SYN_SENT && dir === Dir.SERVER_TO_CLIENT && !(flags & TcpFlag.SYN)) {
      // Data from the server without a captured SYN/ACK: the handshake happened out of sight.
      this.state[slot] = FlowState.ESTABLISHED;
    }
    // The timeout class follows the state alone: looked up only when the state moved.
    if (this.state[slot] !== s) {
      const list = this.listFor(slot);
      if (list !== this.rowI32[slot * ROW + R_LIST]) { this.unlink(slot); this.rowI32[slot * ROW + R_LIST] = list; this.append(slot); }
    }
  }

  private listFor(slot: number): number {
    switch (this.proto[slot]) {
      case Transport.TCP: {
        const s = this.state[slot];
        return s === FlowState.SYN_SENT || s === FlowState.SYN_RECEIVED ? L_TCP_HANDSHAKE
          : s === FlowState.CLOSED || s === FlowState.RESET ? L_TCP_CLOSED : L_TCP_ESTABLISHED;
      }
      case Transport.UDP: return L_UDP;
      case Transport.ICMP: case Transport.ICMPV6: return L_ICMP;
      default: return L_OTHER;
    }
  }

  private find(h: number, vp: number, ports: number, a: Uint32Array, b: Uint32Array): number {
    const mask = this.mask;
    const index = this.index;
    // The step to the next position runs before the first probe too (from the home position minus one), so it has
    // type feedback when the first collision comes after `update` was optimized (see tcp-sequence.ts, WARM_UP).
    const r = (h & (RECENT - 1)) * 2;
    const known = this.recent[r]! - 1;
    if (known >= 0 && this.recent[r + 1] === h && this.sameKey(known * ROW, vp, ports, a, b)) return known;
    for (let i = (h & mask) - 1; ;) {
      i = (i + 1) & mask;
      const entry = index[i * 2]!;
      if (entry === 0) return -1;
      if (index[i * 2 + 1] === h && this.sameKey((entry - 1) * ROW, vp, ports, a, b)) {
        this.recent[r] = entry;
        this.recent[r + 1] = h;
        return entry - 1;
      }
    }
  }

  private sameKey(o: number, vp: number, ports: number, a: Uint32Array, b: Uint32Array): boolean {
    return this.rowI32[o + R_VP] === vp && this.rowI32[o + R_PORTS] === ports && this.sameAddrs(o, a, b);
  }

  /**
   * Called by find() only for an entry whose 32-bit hash, version, protocol and ports are the key's.
   * hashKey is a bijection in each address word when the rest is fixed, so an entry whose
   * addresses differ from the key's in one word never gets here; one differing in several words
   * gets here only on a hash collision, which no test produces. Hence:
   */
  private sameAddrs(o: number, a: Uint32Array, b: Uint32Array): boolean {
    const row = this.rowU32;
    // Stryker disable next-line ConditionalExpression,LogicalOperator: see above
    return row[o + R_A] === a[0] && row[o + R_B] === b[0] && row[o + R_A + 1] === a[1] && row[o + R_B + 1] === b[1] &&
      // Stryker disable next-line ConditionalExpression,LogicalOperator: see above
      row[o + R_A + 2] === a[2] && row[o + R_B + 2] === b[2] && row[o + R_A + 3] === a[3] && row[o + R_B + 3] === b[3];
  }

  /**
   * A new flow. A TCP or UDP one whose conversation is remembered (it ended idle or evicted) takes back its stream
   * number, client side and (TCP) base_seq, unless it starts with a SYN whose ISN is not the one remembered for its
   * side: then, as Wireshark's port-reuse rule says, it is a new stream (`resumedWithNewIsn`).
   */
  private create(h: number, version: number, proto: number, a: Uint32Array, b: Uint32Array, pa: number, pb: number,
    srcIsA: boolean, ts: number, clientIsSource: boolean, tcpFlags: number, seq: number): number {
    this.resumedWithNewIsn = false;
    let remembered = -1;
    if (proto === Transport.TCP || proto === Transport.UDP) {
      remembered = this.ended.find(h, version << 8 | proto, pa << 16 | pb, a, b);
      if (remembered >= 0 && proto === Transport.TCP && (tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) === TcpFlag.SYN) {
        const base = this.ended.baseSeq(remembered, srcIsA ? 0 : 1);
        if (base >= 0 && base !== seq) {
          this.ended.release(remembered);
          remembered = -1;
          this.resumedWithNewIsn = true;
        }
      }
    }
    if (this.freeTop === 0) this.evictOldest();
    const slot = this.freeSlots[--this.freeTop]!;
    this.inUse[slot] = 1;
    this.version[slot] = version;
    this.proto[slot] = proto;
    this.portA[slot] = pa;
    this.portB[slot] = pb;
    const o = slot * ROW;
    const row = this.rowU32;
    this.rowI32[o + R_HASH] = h;
    this.rowI32[o + R_VP] = version << 8 | proto;
    this.rowI32[o + R_PORTS] = pa << 16 | pb;
    // Word by word: TypedArray.prototype.set is a builtin call each, for four words.
    for (let k = 0; k < 4; k++) {
      const wa = a[k]!;
      const wb = b[k]!;
      row[o + R_A + k] = wa;
      row[o + R_B + k] = wb;
      this.addrA[slot * 4 + k] = wa;
      this.addrB[slot * 4 + k] = wb;
    }
    this.clientIsA[slot] = clientIsSource === srcIsA ? 1 : 0;
    this.firstTs[slot] = ts;
    this.lastTs[slot] = ts;
    this.rowF64[slot * (ROW / 2) + R_SEEN_AT] = this.clock.now;
    this.packets[slot * 2] = this.packets[slot * 2 + 1] = 0;
    this.bytes[slot * 2] = this.bytes[slot * 2 + 1] = 0;
    this.baseSeq[slot * 2] = this.baseSeq[slot * 2 + 1] = -1;
    this.finSeen[slot] = 0;
    if (proto === Transport.TCP) {
      const syn = tcpFlags & TcpFlag.SYN;
      this.state[slot] = syn && !(tcpFlags & TcpFlag.ACK) ? FlowState.SYN_SENT
        : syn ? FlowState.SYN_RECEIVED : FlowState.ESTABLISHED;
    } else {
      this.state[slot] = FlowState.OPEN;
    }
    if (remembered >= 0) {
      this.streamIndex[slot] = this.ended.streamIndex(remembered);
      this.clientIsA[slot] = this.ended.clientIsA(remembered) ? 1 : 0;
      // In canonical sides: side A is direction 0 when the client is A.
      const aDir = this.clientIsA[slot] === 1 ? 0 : 1;
      this.baseSeq[slot * 2 + aDir] = this.ended.baseSeq(remembered, 0);
      this.baseSeq[slot * 2 + (aDir ^ 1)] = this.ended.baseSeq(remembered, 1);
      this.ended.release(remembered);
      this.resumed++;
    } else if (proto === Transport.TCP) {
      this.streamIndex[slot] = this.tcpStreams++;
    } else {
      this.streamIndex[slot] = proto === Transport.UDP ? this.udpStreams++ : this.otherFlows++;
    }
    this.rowI32[o + R_LIST] = this.listFor(slot);
    this.append(slot);
    this.insertIndex(slot, h);
    this.active++;
    this.listener?.onFlowStart?.(slot);
    return slot;
  }

  /**
   * Whether the first packet's source is the client: TCP from the SYN (a SYN/ACK
   * comes from the server), otherwise the first sender, except that UDP from a
   * well-known port to an ephemeral one is taken as a server's reply.
   */
  private clientIsSource(v: PacketView, proto: number): boolean {
    if (proto === Transport.TCP) return (v.tcpFlags & (TcpFlag.SYN | TcpFlag.ACK)) !== (TcpFlag.SYN | TcpFlag.ACK);
    if (proto === Transport.UDP) return !(v.srcPort < 1024 && v.dstPort >= 1024);
    return true;
  }

  private insertIndex(slot: number, h: number): void {
    const mask = this.mask;
    const index = this.index;
    let i = h & mask;
    while (index[i * 2] !== 0) i = (i + 1) & mask;
    index[i * 2] = slot + 1;
    index[i * 2 + 1] = h;
    this.recent[(h & (RECENT - 1)) * 2] = slot + 1;
    this.recent[(h & (RECENT - 1)) * 2 + 1] = h;
  }

  /** Linear-probing deletion with backward shift (no tombstones, so lookups stay short). */
  private removeIndex(slot: number): void {
    const mask = this.mask;
    const index = this.index;
    const h = this.rowI32[slot * ROW + R_HASH]!;
    if (this.recent[(h & (RECENT - 1)) * 2] === slot + 1) this.recent[(h & (RECENT - 1)) * 2] = 0;
    let i = h & mask;
    while (index[i * 2] !== slot + 1) i = (i + 1) & mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const entry = index[j * 2]!;
      if (entry === 0) break;
      const hash = index[j * 2 + 1]!;
      const home = hash & mask;
      // Move entry j into the hole at i if its home position is not in (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        index[i * 2] = entry;
        index[i * 2 + 1] = hash;
        i = j;
      }
    }
    index[i * 2] = 0;
  }

  private append(slot: number): void {
    const row = this.rowI32;
    const l = row[slot * ROW + R_LIST]!;
    const tail = this.tails[l]!;
    row[slot * ROW + R_PREV] = tail;
    row[slot * ROW + R_NEXT] = NIL;
    if (tail === NIL) this.heads[l] = slot; else row[tail * ROW + R_NEXT] = slot;
    this.tails[l] = slot;
  }

  private unlink(slot: number): void {
    const row = this.rowI32;
    const l = row[slot * ROW + R_LIST]!;
    const p = row[slot * ROW + R_PREV]!;
    const n = row[slot * ROW + R_NEXT]!;
    if (p === NIL) this.heads[l] = n; else row[p * ROW + R_NEXT] = n;
    if (n === NIL) this.tails[l] = p; else row[n * ROW + R_PREV] = p;
  }

  private touch(slot: number): void {
    if (this.tails[this.rowI32[slot * ROW + R_LIST]!] === slot) return;
    this.unlink(slot);
    this.append(slot);
  }

  /** Ends flows idle for longer than their class's timeout, in packet time. */
  private expire(now: number): void {
    for (let l = 0; l < LISTS; l++) {
      const timeout = this.timeoutOf[l]!;
      for (let slot = this.heads[l]!; slot !== NIL && now - this.rowF64[slot * (ROW / 2) + R_SEEN_AT]! > timeout; slot = this.heads[l]!) {
        this.expired++;
        this.end(slot, EndReason.IDLE);
      }
    }
  }

  private evictOldest(): void {
    let victim = NIL;
    for (let l = 0; l < LISTS; l++) {
      const h = this.heads[l]!;
      if (h !== NIL && (victim === NIL || this.rowF64[h * (ROW / 2) + R_SEEN_AT]! < this.rowF64[victim * (ROW / 2) + R_SEEN_AT]!)) victim = h;
    }
    this.evicted++;
    this.end(victim, EndReason.EVICTED);
  }

  private end(slot: number, reason: EndReasonCode): void {
    this.listener?.onFlowEnd?.(slot, reason);
    const proto = this.proto[slot];
    if ((reason === EndReason.IDLE || reason === EndReason.EVICTED) && (proto === Transport.TCP || proto === Transport.UDP)) {
      const o = slot * ROW;
      const aDir = this.clientIsA[slot] === 1 ? 0 : 1;
      this.ended.remember(this.rowI32[o + R_HASH]!, this.rowI32[o + R_VP]!, this.rowI32[o + R_PORTS]!,
        this.addrA, this.addrB, slot * 4, this.streamIndex[slot]!,
        this.baseSeq[slot * 2 + aDir]!, this.baseSeq[slot * 2 + (aDir ^ 1)]!, this.clientIsA[slot] === 1);
    }
    this.unlink(slot);
    this.removeIndex(slot);
    this.inUse[slot] = 0;
    this.freeSlots[this.freeTop++] = slot;
    this.active--;
  }

  /** Ends every live flow (end of input), oldest first. */
  endAll(): void {
    for (let l = 0; l < LISTS; l++) {
      while (this.heads[l] !== NIL) this.end(this.heads[l]!, EndReason.END_OF_INPUT);
    }
  }

  /** Client address words of a flow (side A or B storage), for reporting. */
  clientAddr(slot: number): Uint32Array {
    return this.clientIsA[slot] ? this.addrA.subarray(slot * 4, slot * 4 + 4) : this.addrB.subarray(slot * 4, slot * 4 + 4);
  }
  serverAddr(slot: number): Uint32Array {
    return this.clientIsA[slot] ? this.addrB.subarray(slot * 4, slot * 4 + 4) : this.addrA.subarray(slot * 4, slot * 4 + 4);
  }
  /**
   * Copies a flow's client and server address words into `client` and
   * `server` (IPv4 in word 0, the rest 0): what detectors key hosts on,
   * without the allocation of clientAddr/serverAddr.
   */
  copyEndpoints(slot: number, client: Uint32Array, server: Uint32Array): void {
    const clientIsA = this.clientIsA[slot] === 1;
    const c = clientIsA ? this.addrA : this.addrB;
    const s = clientIsA ? this.addrB : this.addrA;
    const o = slot * 4;
    const words = this.version[slot] === 6 ? 4 : 1;
    for (let i = 0; i < 4; i++) {
      client[i] = i < words ? c[o + i]! : 0;
      server[i] = i < words ? s[o + i]! : 0;
    }
  }
  clientPort(slot: number): number { return this.clientIsA[slot] ? this.portA[slot]! : this.portB[slot]!; }
  serverPort(slot: number): number { return this.clientIsA[slot] ? this.portB[slot]! : this.portA[slot]!; }
}

/** Orders endpoints so both directions give the same key: negative when (a, pa) sorts first. */
function compareEndpoints(a: Uint32Array, pa: number, b: Uint32Array, pb: number): number {
  for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return pa - pb;
}

/** FNV-1a over the canonical key words. */
function hashKey(vp: number, ports: number, a: Uint32Array, b: Uint32Array): number {
  let h = 0x811c9dc5 ^ vp;
  h = Math.imul(h, 16777619);
  for (let i = 0; i < 4; i++) {
    h = Math.imul(h ^ a[i]!, 16777619);
    h = Math.imul(h ^ b[i]!, 16777619);
  }
  h = Math.imul(h ^ ports, 16777619);
  return (h ^ (h >>> 15)) | 0;
}
