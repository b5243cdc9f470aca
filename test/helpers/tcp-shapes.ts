/**
 * Seeded generator of nasty-but-realistic traffic for the differential test
 * against tshark (test/helpers/difftest.ts): each seed gives one capture of a
 * few concurrent TCP connections simulated end to end (both sides sending
 * data in bursts, losses before and after the capture point, RTO
 * retransmissions with doubling timers, fast retransmissions after three
 * duplicate ACKs, with or without SACK, repacketized retransmissions (split,
 * merged, overlapping acknowledged data), reordering, duplicated frames, zero
 * windows with probes and window updates, keep-alives, window scaling,
 * sequence wraparound, FIN / RST / no end, idle gaps past the flow timeouts,
 * port reuse with a new or the same ISN, handshakes not captured) and UDP
 * conversations with idle gaps, ICMP / ICMPv6 errors quoting them and bad UDP
 * length fields. The same seed always gives the same bytes.
 */
import {
  EtherTypes, ethernet, icmpError, icmpv6Error, ipv4, ipv6, Proto, tcp, TcpFlags, udp,
  type PcapRecordSpec, type PcapSpec, type TcpOption,
} from './capture-writer.js';

/** mulberry32: small, fast, and the same sequence on every platform. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed * 0x9e3779b1) >>> 0; }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(items: readonly T[]): T { return items[Math.floor(this.next() * items.length)]!; }
}

/** A frame of the capture: time in microseconds, bytes from the IP header on. */
interface Frame { us: number; order: number; v6: boolean; ip: Buffer }

const US = 1_000_000;
const BASE_SEC = 1_700_000_000;

class Capture {
  readonly frames: Frame[] = [];
  private order = 0;
  add(us: number, v6: boolean, ip: Buffer): void { this.frames.push({ us: Math.round(us), order: this.order++, v6, ip }); }
  /**
   * `disorder`: the chance that a frame is written after the next one, timestamps kept (time goes backwards).
   * `nanos`: nanosecond timestamps, each frame a random fraction of a microsecond later.
   */
  records(rng: Rng, disorder: number, nanos: boolean): PcapRecordSpec[] {
    const sorted = [...this.frames].sort((a, b) => a.us - b.us || a.order - b.order);
    for (let i = 0; i + 1 < sorted.length; i++) {
      if (rng.chance(disorder)) { const x = sorted[i]!; sorted[i] = sorted[i + 1]!; sorted[i + 1] = x; i++; }
    }
    return sorted.map((f) => ({
      tsSec: BASE_SEC + Math.floor(f.us / US),
      tsSub: nanos ? (f.us % US) * 1000 + rng.int(0, 999) : f.us % US,
      data: ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', f.v6 ? EtherTypes.IPV6 : EtherTypes.IPV4, f.ip),
    }));
  }
}

const ipPacket = (v6: boolean, src: string, dst: string, proto: number, payload: Buffer, id = 1): Buffer =>
  v6 ? ipv6({ src, dst, proto, payload }) : ipv4({ src, dst, proto, payload, id });

// ---------------------------------------------------------------------------
// TCP

interface Side {
  ip: string;
  port: number;
  isn: number;
  /** Offsets count payload bytes after the SYN: sequence number = isn + 1 + offset (mod 2^32). */
  nxt: number;
  una: number;
  /** Highest offset ever sent (go-back-N after an RTO sends below it again). */
  high: number;
  toSend: number;
  /** Contiguous offset received from the peer, and ranges received beyond it. */
  rcv: number;
  ooo: Array<[number, number]>;
  wscale: number;
  sack: boolean;
  mss: number;
  /** The peer's window in bytes, as last advertised. */
  peerWin: number;
  buf: number;
  stalledUntil: number;
  dupAcks: number;
  recoveryUntil: number;
  sackRetransmitted: number;
  rto: number;
  rtoGen: number;
  rtoArmed: boolean;
  probeArmed: boolean;
  delAckPending: boolean;
  finOff: number;
  finAcked: boolean;
  peerFin: boolean;
  ipId: number;
  /** Capture point delay from this side (µs), one-way delay to the peer after it. */
  tapDelay: number;
}

type Event =
  | { kind: 'deliver'; at: number; to: number; seg: Segment }
  | { kind: 'pump' | 'delack' | 'probe' | 'ka' | 'close' | 'rst' | 'unstall'; at: number; side: number }
  | { kind: 'rto'; at: number; side: number; gen: number }
  | { kind: 'burst'; at: number; side: number; bytes: number };

interface Segment { flags: number; off: number; len: number; ack: number; win: number; syn?: boolean; keepAlive?: boolean; sack?: Array<[number, number]> }

interface TcpPlan {
  v6: boolean;
  client: string; server: string; cport: number; sport: number;
  start: number;
  /** ISNs; a value near 2^32 makes the flow wrap. */
  cisn: number; sisn: number;
}

/** Knobs per connection, drawn from the seed. */
interface Nasty {
  loss: number; lossBeforeTap: number; dup: number; reorder: number;
  handshake: boolean; synLoss: boolean; wscale: boolean; sack: boolean;
  smallBuf: boolean; stall: number; keepAlive: boolean; probeStyle: 'byte' | 'old';
  goBackN: boolean; repacketize: number; end: 'fin' | 'rst' | 'none' | 'rst-ack';
  delAck: number; rtt: number;
  /** SYN/ACK lost after the capture point (the client retransmits its SYN, the server its SYN/ACK). */
  synAckLoss: boolean;
  /** Chance per captured segment of an ICMP error quoting it (fragmentation needed, time exceeded). */
  icmpQuote: number;
  /** Chance per data segment of the ACK flag missing (the ack field still filled). */
  noAckFlag: number;
  /** A direction the capture never sees (asymmetric routing), or -1. */
  hidden: number;
}

class TcpSim {
  private readonly q: Event[] = [];
  private readonly s: [Side, Side];
  private frames = 0;
  private readonly deadline: number;
  private closing = [false, false];
  private done = false;

  constructor(private readonly rng: Rng, private readonly cap: Capture, private readonly plan: TcpPlan,
    private readonly n: Nasty, private readonly maxFrames: number) {
    const minRto = Math.max(200_000, 4 * n.rtt);
    const side = (ip: string, port: number, isn: number, near: boolean): Side => ({
      ip, port, isn, nxt: 0, una: 0, high: 0, toSend: 0, rcv: 0, ooo: [], wscale: n.wscale ? (rng.chance(0.05) ? rng.int(14, 15) : rng.int(0, 9)) : -1,
      sack: n.sack, mss: rng.pick([536, 1000, 1448, 1460]), peerWin: 65535, buf: n.smallBuf ? rng.int(2, 8) * 1024 : rng.int(16, 256) * 1024,
      stalledUntil: 0, dupAcks: 0, recoveryUntil: -1, sackRetransmitted: -1, rto: minRto, rtoGen: 0, rtoArmed: false, probeArmed: false,
      delAckPending: false, finOff: -1, finAcked: false, peerFin: false, ipId: rng.int(1, 60000),
      tapDelay: near ? 50 : Math.round(n.rtt / 2) - 50,
    });
    this.s = [side(plan.client, plan.cport, plan.cisn, true), side(plan.server, plan.sport, plan.sisn, false)];
    this.deadline = plan.start + 900 * US;
  }

  /** Runs the connection; returns the time of its last event. */
  run(): number {
    const { plan, n, rng } = this;
    let t = plan.start;
    const [c, s] = this.s;
    if (n.handshake) {
      const synOpts = (me: Side, peerAllowsScale: boolean): TcpOption[] => [
        { kind: 'mss', value: me.mss }, ...(me.wscale >= 0 && peerAllowsScale ? [{ kind: 'wscale', shift: me.wscale } as const] : []),
        ...(me.sack ? [{ kind: 'sackPermitted' } as const] : []),
      ];
      this.tx(0, t, { flags: TcpFlags.SYN, off: -1, len: 0, ack: 0, win: 65535, syn: true }, synOpts(c, true), n.synLoss ? 'drop' : 'keep');
      if (n.synLoss) { t += 1_000_000; this.tx(0, t, { flags: TcpFlags.SYN, off: -1, len: 0, ack: 0, win: 65535, syn: true }, synOpts(c, true), 'keep'); }
      t += n.rtt;
      if (n.synAckLoss) {
        // Now and then the lost SYN/ACK had another ISN (a middlebox, or a server that forgot the first SYN).
        const isn = s.isn;
        if (rng.chance(0.3)) s.isn = (s.isn + 0x12345) >>> 0;
        this.tx(1, t - n.rtt / 2, { flags: TcpFlags.SYN | TcpFlags.ACK, off: -1, len: 0, ack: 0, win: 65535, syn: true }, synOpts(s, c.wscale >= 0), 'keep');
        s.isn = isn;
        t += 1_000_000;
        this.tx(0, t - n.rtt, { flags: TcpFlags.SYN, off: -1, len: 0, ack: 0, win: 65535, syn: true }, synOpts(c, true), 'keep');
      }
      this.tx(1, t - n.rtt / 2, { flags: TcpFlags.SYN | TcpFlags.ACK, off: -1, len: 0, ack: 0, win: 65535, syn: true }, synOpts(s, c.wscale >= 0), 'keep');
      if (c.wscale < 0 || s.wscale < 0) c.wscale = s.wscale = -1;
      t += n.rtt / 2;
      this.tx(0, t, { flags: TcpFlags.ACK, off: 0, len: 0, ack: 0, win: this.rawWin(c), syn: false }, [], 'keep');
    } else {
      // The handshake happened before the capture: the scale the sides agreed is unknown to the analyzers.
      if (c.wscale < 0 || s.wscale < 0) c.wscale = s.wscale = -1;
    }
    c.peerWin = s.buf; s.peerWin = c.buf;
    // Bursts of data from both sides, some overlapping, with idle gaps between (some past the flow timeouts).
    let at = t + 1000;
    const bursts = rng.int(2, 8);
    for (let i = 0; i < bursts; i++) {
      const who = rng.chance(0.5) ? 0 : 1;
      this.push({ kind: 'burst', at, side: who, bytes: rng.int(1, 60) * rng.pick([100, 1000, 1460]) });
      if (rng.chance(0.4)) this.push({ kind: 'burst', at: at + rng.int(0, 20_000), side: who ^ 1, bytes: rng.int(1, 30) * 1000 });
      const gap = rng.chance(0.15) ? rng.pick([30, 130, 700, 3700]) * US : rng.int(5, 2000) * 1000;
      if (n.keepAlive && gap > 20 * US) {
        for (let k = 1; k <= 3; k++) this.push({ kind: 'ka', at: at + 10 * US * k + rng.int(0, 1000), side: rng.int(0, 1) });
      }
      at += gap;
    }
    this.push({ kind: n.end === 'fin' ? 'close' : 'rst', at: at + rng.int(0, 50_000), side: rng.int(0, 1) });
    let last = t;
    while (this.q.length && !this.done && this.frames < this.maxFrames) {
      const e = this.q.shift()!;
      if (e.at > this.deadline + 5000 * US) break;
      last = Math.max(last, e.at);
      this.handle(e);
    }
    return last;
  }

  private rawWin(me: Side): number {
    if (me.stalledUntil > 0) return 0;
    const bytes = Math.max(0, me.buf - this.oooBytes(me));
    return Math.min(65535, me.wscale > 0 ? bytes >> me.wscale : bytes);
  }

  private oooBytes(me: Side): number { return me.ooo.reduce((sum, [a, b]) => sum + b - a, 0); }

  private push(e: Event): void {
    let i = this.q.length;
    while (i > 0 && this.q[i - 1]!.at > e.at) i--;
    this.q.splice(i, 0, e);
  }

  /** Sends a segment from side `from`: captured (or not), delivered (or lost), maybe duplicated or delayed. */
  private tx(from: number, t: number, seg: Segment, options: TcpOption[] = [], fate: 'keep' | 'drop' | 'random' = 'random'): void {
    const { rng, n, plan } = this;
    const me = this.s[from]!;
    const peer = this.s[from ^ 1]!;
    let captured = true;
    let delivered = true;
    if (fate === 'drop') delivered = false;
    if (from === n.hidden) captured = false;
    if (fate === 'random' && rng.chance(n.loss)) {
      delivered = false;
      captured = !rng.chance(n.lossBeforeTap);
    }
    const jitter = rng.chance(n.reorder) ? rng.int(1000, 8000) : rng.int(0, 40);
    const tapAt = t + me.tapDelay + jitter;
    const seqAbs = (me.isn + 1 + seg.off) >>> 0;
    const ackAbs = seg.flags & TcpFlags.ACK ? (peer.isn + 1 + seg.ack) >>> 0 : 0;
    const sackOpt: TcpOption[] = seg.sack?.length
      ? [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: seg.sack.slice(0, 3).map(([a, b]) => [(peer.isn + 1 + a) >>> 0, (peer.isn + 1 + b) >>> 0] as const) }]
      : [];
    const payload = Buffer.alloc(seg.len, 0x61 + (from * 2));
    const flags = seg.len > 0 && rng.chance(n.noAckFlag) ? seg.flags & ~TcpFlags.ACK : seg.flags;
    const bytes = tcp({ srcPort: me.port, dstPort: peer.port, seq: seqAbs, ack: ackAbs, flags, window: seg.win, options: [...options, ...sackOpt], payload });
    if (captured && !(seg.syn === true && !n.handshake) && !(seg.flags === TcpFlags.ACK && seg.off === 0 && seg.len === 0 && !n.handshake && this.frames === 0)) {
      const ip = ipPacket(plan.v6, me.ip, peer.ip, Proto.TCP, bytes, me.ipId++ & 0xffff);
      this.cap.add(tapAt, plan.v6, ip);
      this.frames++;
      if (rng.chance(n.dup)) { this.cap.add(tapAt + rng.int(1, 300), plan.v6, ip); this.frames++; }
      if (rng.chance(n.icmpQuote)) {
        // A router between the capture point and the peer returns an ICMP error quoting the segment (whole or 28 bytes).
        const quoted = rng.chance(0.5) ? ip : ip.subarray(0, (plan.v6 ? 40 : 20) + rng.pick([8, 16, 20]));
        const router = plan.v6 ? '2001:db8:ff::1' : '10.255.0.1';
        const icmp = plan.v6 ? icmpv6Error(rng.pick([2, 3]), 0, quoted, 1280) : rng.chance(0.5) ? icmpError(3, 4, quoted, 1400) : icmpError(11, 0, quoted);
        this.cap.add(tapAt + rng.int(100, 3000), plan.v6, ipPacket(plan.v6, router, me.ip, plan.v6 ? Proto.ICMPV6 : Proto.ICMP, icmp));
      }
    }
    if (delivered && !seg.syn) this.push({ kind: 'deliver', at: t + n.rtt / 2 + jitter, to: from ^ 1, seg });
  }

  private ackSeg(me: Side, extraFlags = 0): Segment {
    const sack = me.sack && me.ooo.length ? me.ooo.map(([a, b]) => [a, b] as [number, number]).reverse() : undefined;
    return { flags: TcpFlags.ACK | extraFlags, off: this.sndSeq(me), len: 0, ack: this.rcvAck(me), win: this.rawWin(me), sack };
  }

  /** What `me` acknowledges: the contiguous data received, and the peer's FIN once it arrived in order. */
  private rcvAck(me: Side): number {
    return me.rcv + (me.peerFin ? 1 : 0);
  }

  /** The sequence offset of a segment without data: past the FIN once it was sent. */
  private sndSeq(me: Side): number {
    return me.finOff >= 0 ? me.finOff + 1 : me.nxt;
  }

  private handle(e: Event): void {
    const { rng, n } = this;
    switch (e.kind) {
      case 'burst': {
        const me = this.s[e.side]!;
        if (me.finOff >= 0) return;
        me.toSend += e.bytes;
        this.push({ kind: 'pump', at: e.at, side: e.side });
        return;
      }
      case 'pump': this.pump(e.side, e.at); return;
      case 'unstall': this.unstall(e.side, e.at); return;
      case 'deliver': this.deliver(e.to, e.at, e.seg); return;
      case 'delack': {
        const me = this.s[e.side]!;
        if (!me.delAckPending) return;
        me.delAckPending = false;
        this.tx(e.side, e.at, this.ackSeg(me));
        return;
      }
      case 'rto': {
        const me = this.s[e.side]!;
        if (e.gen !== me.rtoGen) return;
        me.rtoArmed = false;
        const limit = me.finOff >= 0 ? me.finOff + 1 : me.nxt;
        if (me.una >= limit) return;
        if (me.una === me.finOff) {
          this.tx(e.side, e.at, { flags: TcpFlags.FIN | TcpFlags.ACK, off: me.finOff, len: 0, ack: this.rcvAck(me), win: this.rawWin(me) });
        } else {
          const len = this.retransmitLength(me, me.una);
          this.tx(e.side, e.at, { flags: TcpFlags.ACK | TcpFlags.PSH, off: me.una, len, ack: this.rcvAck(me), win: this.rawWin(me) });
          if (n.goBackN && me.finOff < 0) { me.toSend += me.nxt - (me.una + len); me.nxt = me.una + len; }
        }
        me.rto = Math.min(me.rto * 2, 30 * US);
        this.armRto(e.side, e.at);
        this.push({ kind: 'pump', at: e.at + 100, side: e.side });
        return;
      }
      case 'probe': {
        const me = this.s[e.side]!;
        me.probeArmed = false;
        if (me.peerWin > 0 || me.finOff >= 0) { this.pump(e.side, e.at); return; }
        if (n.probeStyle === 'byte' && me.toSend > 0 && me.una === me.nxt) {
          this.tx(e.side, e.at, { flags: TcpFlags.ACK, off: me.nxt, len: 1, ack: this.rcvAck(me), win: this.rawWin(me) });
          me.nxt += 1; me.high = Math.max(me.high, me.nxt); me.toSend -= 1;
        } else {
          this.tx(e.side, e.at, { flags: TcpFlags.ACK, off: me.una - 1, len: 0, ack: this.rcvAck(me), win: this.rawWin(me) });
        }
        me.rto = Math.min(me.rto * 2, 30 * US);
        me.probeArmed = true;
        this.push({ kind: 'probe', at: e.at + me.rto, side: e.side });
        return;
      }
      case 'ka': {
        const me = this.s[e.side]!;
        if (me.una !== me.nxt || me.toSend > 0 || me.finOff >= 0 || me.nxt === 0) return;
        const len = rng.chance(0.5) ? 1 : 0;
        this.tx(e.side, e.at, { flags: TcpFlags.ACK, off: me.nxt - 1, len, ack: this.rcvAck(me), win: this.rawWin(me), keepAlive: true });
        return;
      }
      case 'close': {
        const me = this.s[e.side]!;
        if (me.toSend > 0 || me.una < me.nxt) { this.push({ kind: 'close', at: e.at + 200_000, side: e.side }); return; }
        this.closing[e.side] = true;
        this.sendFin(e.side, e.at);
        return;
      }
      case 'rst': {
        const me = this.s[e.side]!;
        if (n.end === 'none') { this.done = true; return; }
        this.tx(e.side, e.at, { flags: n.end === 'rst-ack' ? TcpFlags.RST | TcpFlags.ACK : TcpFlags.RST, off: this.sndSeq(me), len: 0, ack: this.rcvAck(me), win: 0 }, [], 'keep');
        this.done = true;
        return;
      }
    }
  }

  private sendFin(side: number, t: number): void {
    const me = this.s[side]!;
    if (me.finOff >= 0) return;
    me.finOff = me.nxt;
    this.tx(side, t, { flags: TcpFlags.FIN | TcpFlags.ACK, off: me.nxt, len: 0, ack: this.rcvAck(me), win: this.rawWin(me) });
    this.armRto(side, t);
  }

  /** Length of a retransmission starting at `off`: the original segmentation, split, merged, or overlapping acked data. */
  private retransmitLength(me: Side, off: number): number {
    const room = Math.max(1, me.high - off);
    const r = this.rng.next();
    if (r < this.n.repacketize / 2) return Math.min(room, Math.max(1, Math.floor(me.mss / 2))); // split
    if (r < this.n.repacketize) return Math.min(room, me.mss * 2); // merged (TSO-like)
    return Math.min(room, me.mss);
  }

  private armRto(side: number, t: number): void {
    const me = this.s[side]!;
    me.rtoGen++;
    me.rtoArmed = true;
    this.push({ kind: 'rto', at: t + me.rto, side, gen: me.rtoGen });
  }

  private pump(side: number, t: number): void {
    const { rng } = this;
    const me = this.s[side]!;
    if (me.toSend <= 0 || me.finOff >= 0) return;
    const inflight = me.nxt - me.una;
    const room = me.peerWin - inflight;
    if (me.peerWin === 0) {
      if (!me.probeArmed && inflight === 0) { me.probeArmed = true; this.push({ kind: 'probe', at: t + me.rto, side }); }
      return;
    }
    if (room <= 0) return; // window full: wait for an ACK
    // Odd sizes now and then, and exactly the room left (window full) when it is small.
    let len = Math.min(me.toSend, room, rng.chance(0.1) ? rng.int(1, me.mss) : me.mss);
    if (len <= 0) return;
    if (me.high > me.nxt) len = Math.min(len, me.high - me.nxt); // resending after go-back-N: not past what was sent
    len = Math.max(1, len);
    this.tx(side, t, { flags: TcpFlags.ACK | (len === me.toSend ? TcpFlags.PSH : 0), off: me.nxt, len, ack: this.rcvAck(me), win: this.rawWin(me) });
    me.nxt += len;
    me.high = Math.max(me.high, me.nxt);
    me.toSend -= len;
    if (me.delAckPending) me.delAckPending = false; // the data carried the ACK
    if (!me.rtoArmed) this.armRto(side, t);
    if (me.toSend > 0) this.push({ kind: 'pump', at: t + rng.int(20, rng.chance(0.1) ? 30_000 : 2000), side });
  }

  private deliver(to: number, t: number, seg: Segment): void {
    const { rng, n } = this;
    const me = this.s[to]!;
    const peer = this.s[to ^ 1]!;
    if (seg.flags & TcpFlags.RST) { this.done = true; return; }
    // The ACK side of the segment, for my sent data.
    if (seg.flags & TcpFlags.ACK) this.onAck(to, t, seg);
    // The data side, for my receive state.
    const fin = (seg.flags & TcpFlags.FIN) !== 0;
    if (seg.len === 0 && !fin) return;
    if (seg.keepAlive) { this.tx(to, t, this.ackSeg(me)); return; }
    const start = seg.off;
    const end = seg.off + seg.len;
    let inOrder = false;
    if (end <= me.rcv && !(fin && seg.off === me.rcv)) {
      // Old data: a duplicate ACK (a D-SACK receiver would say which).
    } else if (start <= me.rcv) {
      me.rcv = Math.max(me.rcv, end);
      inOrder = true;
      me.ooo.sort((a, b) => a[0] - b[0]);
      while (me.ooo.length && me.ooo[0]![0] <= me.rcv) { me.rcv = Math.max(me.rcv, me.ooo[0]![1]); me.ooo.shift(); }
      if (fin && seg.off + seg.len === me.rcv) { me.peerFin = true; }
    } else {
      me.ooo.push([start, end]);
      me.ooo.sort((a, b) => a[0] - b[0]);
      const merged: Array<[number, number]> = [];
      for (const r of me.ooo) {
        const l = merged.length > 0 ? merged[merged.length - 1]! : undefined;
        if (l !== undefined && r[0] <= l[1]) l[1] = Math.max(l[1], r[1]); else merged.push([r[0], r[1]]);
      }
      me.ooo = merged;
    }
    // Receive buffer stalls: the application stops reading for a while (zero window), then a window update.
    if (inOrder && me.stalledUntil === 0 && rng.chance(n.stall)) {
      me.stalledUntil = t + rng.int(100, 3000) * 1000;
      this.push({ kind: 'unstall', at: me.stalledUntil, side: to });
    }
    if (me.peerFin && fin) {
      this.tx(to, t, this.ackSeg(me));
      if (this.closing[to] === false) { this.closing[to] = true; if (me.toSend === 0 && me.una >= me.nxt) this.sendFin(to, t + rng.int(10, 5000)); else this.push({ kind: 'close', at: t + 1000, side: to }); }
      return;
    }
    if (inOrder && rng.chance(n.delAck) && !me.delAckPending && me.ooo.length === 0) {
      me.delAckPending = true;
      this.push({ kind: 'delack', at: t + rng.int(1, 40) * 1000, side: to });
      return;
    }
    me.delAckPending = false;
    this.tx(to, t, this.ackSeg(me));
    void peer;
  }

  /** Ends a stall: the window opens again (a window update). */
  private unstall(side: number, t: number): void {
    const me = this.s[side]!;
    me.stalledUntil = 0;
    me.buf = this.rng.chance(0.3) ? me.buf * 2 : me.buf;
    this.tx(side, t, this.ackSeg(me));
  }

  private onAck(side: number, t: number, seg: Segment): void {
    const { n } = this;
    const me = this.s[side]!;
    const scale = this.s[side ^ 1]!.wscale;
    const before = me.peerWin;
    me.peerWin = scale > 0 ? seg.win << scale : seg.win;
    const limit = me.finOff >= 0 ? me.finOff + 1 : me.nxt;
    const ackOff = Math.min(seg.ack, limit);
    if (ackOff > me.una) {
      me.una = ackOff;
      me.dupAcks = 0;
      me.rto = Math.max(200_000, 4 * n.rtt);
      if (me.finOff >= 0 && ackOff >= me.finOff) me.finAcked = true;
      if (me.una < limit) this.armRto(side, t); else { me.rtoGen++; me.rtoArmed = false; }
      if (me.una >= me.recoveryUntil) me.recoveryUntil = -1;
      if (me.nxt < me.una) me.nxt = me.una;
      this.push({ kind: 'pump', at: t + 10, side });
      return;
    }
    if (seg.len === 0 && me.nxt > me.una && me.peerWin === before && !(seg.flags & (TcpFlags.FIN | TcpFlags.SYN))) {
      me.dupAcks++;
      if (me.dupAcks === 3) {
        // Fast retransmission of the first unacknowledged segment.
        me.recoveryUntil = me.nxt;
        me.sackRetransmitted = me.una;
        const len = this.retransmitLength(me, me.una);
        this.tx(side, t + 50, { flags: TcpFlags.ACK, off: me.una, len, ack: this.rcvAck(me), win: this.rawWin(me) });
        this.armRto(side, t);
      } else if (me.dupAcks > 3 && me.sack && seg.sack?.length && me.recoveryUntil > 0) {
        // SACK recovery: resend the next hole below the highest SACKed byte.
        const blocks = [...seg.sack].sort((a, b) => a[0] - b[0]);
        let hole = Math.max(me.una, me.sackRetransmitted + 1);
        for (const [a, b] of blocks) { if (hole >= a && hole < b) hole = b; }
        const top = blocks[blocks.length - 1]![0];
        if (hole < top) {
          const len = Math.min(me.mss, top - hole);
          me.sackRetransmitted = hole + len - 1;
          this.tx(side, t + 50, { flags: TcpFlags.ACK, off: hole, len, ack: this.rcvAck(me), win: this.rawWin(me) });
        }
      } else if (n.loss > 0 && me.dupAcks > 3 && me.dupAcks % 4 === 0) {
        this.push({ kind: 'pump', at: t + 20, side });
      }
    } else if (me.peerWin > before) {
      this.push({ kind: 'pump', at: t + 10, side });
    }
  }
}

// ---------------------------------------------------------------------------
// UDP

function udpConversations(rng: Rng, cap: Capture, count: number, start: number): void {
  for (let i = 0; i < count; i++) {
    const v6 = rng.chance(0.3);
    const client = v6 ? `2001:db8::${rng.int(1, 20).toString(16)}` : `10.1.${rng.int(0, 3)}.${rng.int(1, 40)}`;
    const server = v6 ? `2001:db8:1::${rng.int(1, 5).toString(16)}` : `192.0.2.${rng.int(1, 10)}`;
    const cport = rng.chance(0.1) ? rng.pick([53, 123, 500]) : rng.int(1024, 65535);
    const sport = rng.pick([53, 123, 161, 5353, 4500, 9999, cport]);
    let t = start + rng.int(0, 20 * US);
    const packets = rng.int(1, 12);
    for (let k = 0; k < packets; k++) {
      const fromClient = rng.chance(0.6);
      const src = fromClient ? client : server;
      const dst = fromClient ? server : client;
      const payload = Buffer.alloc(rng.int(0, 200), 0x55);
      let length: number | undefined;
      let extra = Buffer.alloc(0);
      const bad = rng.next();
      if (bad < 0.04) length = 8 + payload.length + rng.int(1, 40); // claims more than the IP payload
      else if (bad < 0.07) length = rng.int(0, 7); // shorter than the header
      else if (bad < 0.10) { extra = Buffer.alloc(rng.int(1, 10)); } // trailing bytes beyond the UDP length
      else if (bad < 0.12) length = 0; // jumbogram-style zero
      const dgram = Buffer.concat([udp({ srcPort: fromClient ? cport : sport, dstPort: fromClient ? sport : cport, payload, length: length ?? (extra.length ? 8 + payload.length : undefined) }), extra]);
      const ipId = rng.int(1, 65535);
      const ip = ipPacket(v6, src, dst, Proto.UDP, dgram, ipId);
      if (rng.chance(0.08)) fragmented(rng, cap, t, v6, src, dst, ipId, Buffer.concat([dgram, Buffer.alloc(rng.int(100, 3000), 0x66)]));
      else cap.add(t, v6, ip);
      if (rng.chance(0.15)) {
        // The receiver answers with an ICMP error quoting the datagram (all of it, or the first 8 bytes of UDP).
        const quoted = rng.chance(0.5) ? ip : ip.subarray(0, (v6 ? 40 : 20) + 8);
        const icmp = v6 ? icmpv6Error(1, 4, quoted) : icmpError(3, 3, quoted);
        cap.add(t + rng.int(100, 5000), v6, ipPacket(v6, dst, src, v6 ? Proto.ICMPV6 : Proto.ICMP, icmp));
      }
      if (rng.chance(0.05)) {
        // An ICMP error about a datagram never captured (another port): a conversation of its own.
        const other = udp({ srcPort: rng.int(1024, 65535), dstPort: sport, payload: Buffer.alloc(4) });
        const quoted = ipPacket(v6, src, dst, Proto.UDP, other);
        const icmp = v6 ? icmpv6Error(1, 4, quoted) : icmpError(3, 3, quoted);
        cap.add(t + rng.int(100, 5000), v6, ipPacket(v6, dst, src, v6 ? Proto.ICMPV6 : Proto.ICMP, icmp));
      }
      t += rng.chance(0.2) ? rng.pick([60, 121, 200, 700, 4000]) * US : rng.int(1, 3000) * 1000;
    }
  }
}

/**
 * A UDP datagram (length field left as it was) in IP fragments: in order, reversed, one missing (never
 * reassembled), or one duplicated.
 */
function fragmented(rng: Rng, cap: Capture, t: number, v6: boolean, src: string, dst: string, id: number, dgram: Buffer): void {
  const size = rng.pick([64, 512, 1232]);
  const pieces: Buffer[] = [];
  for (let off = 0; off < dgram.length; off += size) {
    const more = off + size < dgram.length;
    const payload = dgram.subarray(off, off + size);
    pieces.push(v6
      ? ipv6({ src, dst, proto: Proto.UDP, payload, ext: [{ kind: 'fragment', offset: off, more, id }] })
      : ipv4({ src, dst, proto: Proto.UDP, payload, id: id & 0xffff, mf: more, fragOffset: off }));
  }
  const how = rng.int(0, 3);
  if (how === 1) pieces.reverse();
  if (how === 2 && pieces.length > 1) pieces.splice(rng.int(0, pieces.length - 1), 1);
  if (how === 3) pieces.splice(rng.int(0, pieces.length - 1), 0, pieces[rng.int(0, pieces.length - 1)]!);
  pieces.forEach((p, i) => cap.add(t + i * 10, v6, p));
}

// ---------------------------------------------------------------------------

export interface ShapeOptions {
  /** Upper bound on TCP frames per connection (keeps a seed's capture small). */
  maxFramesPerFlow?: number;
}

/** One capture for `seed`: the file's header options and its records. */
export function generateShapes(seed: number, options: ShapeOptions = {}): { spec: PcapSpec; records: PcapRecordSpec[] } {
  const rng = new Rng(seed);
  const cap = new Capture();
  const maxFrames = options.maxFramesPerFlow ?? 1500;
  const flows = rng.int(1, 4);
  let reuseFrom: TcpPlan | undefined;
  let lastEnd = 0;
  for (let i = 0; i < flows; i++) {
    const v6 = rng.chance(0.25);
    const wrap = rng.chance(0.3);
    const isn = (): number => (wrap ? (0x100000000 - rng.int(0, 200_000)) >>> 0 : rng.int(0, 0xffffffff) >>> 0);
    let plan: TcpPlan;
    if (reuseFrom && rng.chance(0.6)) {
      // Port reuse: the same addresses and ports, after the previous connection (sometimes the same ISN).
      const sameIsn = rng.chance(0.2);
      plan = { ...reuseFrom, start: lastEnd + rng.pick([1000, 50_000, 2 * US, 130 * US]), cisn: sameIsn ? reuseFrom.cisn : isn(), sisn: isn() };
    } else {
      plan = {
        v6,
        client: v6 ? `2001:db8::${(i + 1).toString(16)}` : `10.0.0.${i + 1}`,
        server: v6 ? '2001:db8:ffff::1' : `10.9.9.${rng.int(1, 3)}`,
        cport: rng.int(32768, 60999), sport: rng.pick([80, 443, 8080, 5001, 22]),
        start: rng.int(0, 3 * US), cisn: isn(), sisn: isn(),
      };
    }
    const nasty: Nasty = {
      loss: rng.pick([0, 0.01, 0.03, 0.08]), lossBeforeTap: rng.next(), dup: rng.pick([0, 0, 0.01, 0.03]), reorder: rng.pick([0, 0, 0.02, 0.05]),
      handshake: rng.chance(0.8), synLoss: rng.chance(0.1), wscale: rng.chance(0.7), sack: rng.chance(0.5),
      smallBuf: rng.chance(0.3), stall: rng.pick([0, 0, 0.005, 0.02]), keepAlive: rng.chance(0.4), probeStyle: rng.chance(0.5) ? 'byte' : 'old',
      goBackN: rng.chance(0.3), repacketize: rng.pick([0, 0.2, 0.5]), end: rng.pick(['fin', 'fin', 'rst', 'none', 'rst-ack'] as const),
      delAck: rng.pick([0, 0.3, 0.7]), rtt: rng.pick([300, 2000, 20_000, 80_000]),
      synAckLoss: rng.chance(0.1), icmpQuote: rng.pick([0, 0, 0.002, 0.01]), noAckFlag: rng.pick([0, 0, 0.003]),
      hidden: rng.chance(0.08) ? rng.int(0, 1) : -1,
    };
    const end = new TcpSim(rng, cap, plan, nasty, maxFrames).run();
    reuseFrom = plan;
    lastEnd = Math.max(lastEnd, end);
  }
  udpConversations(rng, cap, rng.int(0, 5), rng.int(0, 5 * US));
  const nanos = rng.chance(0.3);
  return { spec: { nanos }, records: cap.records(rng, rng.pick([0, 0, 0, 0.002, 0.01]), nanos) };
}
