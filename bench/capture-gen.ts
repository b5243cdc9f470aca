/**
 * Synthetic capture generator for the benchmark: a classic pcap (little-endian,
 * microseconds, Ethernet) of N packets that looks like a busy enterprise
 * uplink, deterministic from a seed (same seed and size: same bytes; a smaller
 * N gives exactly the first N packets of a larger file).
 *
 * Default ("realistic") mix, all running at once and interleaved in time:
 *  - ~150 bulk TCP transfers at a time (IPv4 and 10 % IPv6): handshake with
 *    MSS/WS/SACK options, request, slow-start rounds of full-size segments,
 *    delayed ACKs, ~0.6 % segment loss (after the capture point: duplicate ACKs
 *    with SACK blocks then a fast retransmission; before it: a gap, duplicate
 *    ACKs and a retransmission; at a round's end: an RTO retransmission), FIN
 *    teardown; some zero-window stalls with probes, resets mid-transfer,
 *    refused connections (RST) and unanswered SYNs (SYN retransmissions);
 *  - ~2,000 interactive TCP sessions (ssh, database, websocket-like): small
 *    request/response exchanges with think times and delayed ACKs; those alive
 *    at the start are already established (no handshake in the capture);
 *  - DNS over UDP to an internal and an external resolver: A/AAAA queries and
 *    answers, ~3 % NXDOMAIN, ~1.5 % unanswered (timeouts);
 *  - ~8 RTP (G.711) media calls, both directions every 20 ms with jitter;
 *  - one vertical SYN port scan of 1,000 ports (RST from closed ports,
 *    SYN/ACK then RST for open ones).
 * Aggregate rate is about 40-50 k packets/s of packet time (`timeScale`
 * stretches it) and ~0.7 KB per packet.
 *
 * "Mice" mode (`flows: F`): exactly F distinct 5-tuples of k = max(1, round(N / F))
 * packets each (k >= 3: a TCP connection; k = 2: SYN -> RST or a DNS
 * query/answer; k = 1: a lone SYN or UDP datagram), for flow-table scaling.
 *
 * Written with large buffered writes: about 250-300 k packets/s (2 M in under 10 s).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

export interface GenerateOptions {
  packets: number;
  seed: number;
  /** Mice mode: this many distinct 5-tuples (the packet count becomes F * k). */
  flows?: number;
  /** Multiplies the packet-time span (1 = native pacing, 40 = forty times slower). */
  timeScale?: number;
}

export interface GenerateResult {
  path: string;
  packets: number;
  /** File size in bytes. */
  bytes: number;
  /** Distinct flows started (5-tuples; approximate in the realistic mix). */
  flows: number;
  tcpFlows: number;
  dnsQueries: number;
  mediaCalls: number;
  scanProbes: number;
  spanSeconds: number;
  seed: number;
  /** Packets per flow in mice mode, 0 otherwise. */
  packetsPerFlow: number;
  generateSeconds: number;
}

// ---------------------------------------------------------------------------
// Deterministic random numbers (mulberry32)

export class Rng {
  private s: number;
  constructor(seed: number) { this.s = (seed >>> 0) || 0x9e3779b9; }
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  float(): number { return this.u32() / 4294967296; }
  int(n: number): number { return Math.floor(this.float() * n); }
  range(lo: number, hi: number): number { return lo + this.float() * (hi - lo); }
  exp(mean: number): number { return -Math.log(1 - this.float()) * mean; }
  chance(p: number): boolean { return this.float() < p; }
  /** Pareto with minimum xm and shape alpha (heavy tail: flow sizes). */
  pareto(xm: number, alpha: number): number { return xm / Math.pow(1 - this.float(), 1 / alpha); }
}

// ---------------------------------------------------------------------------
// Constants

const CHUNK = 16 * 1024 * 1024;
const BASE_SEC = 1_700_000_000; // 2023-11-14
const T0 = BASE_SEC * 1e6; // µs
const ETH = 14;
const IP4 = 20;
const IP6 = 40;
const TCP = 20;
const UDP = 8;
const MSS4 = 1460;
const MSS6 = 1440;

const F_FIN = 0x01;
const F_SYN = 0x02;
const F_RST = 0x04;
const F_PSH = 0x08;
const F_ACK = 0x10;

const OPT_NONE = 0;
const OPT_SYN = 1; // MSS, NOP, WS, NOP, NOP, SACK_PERM: 12 bytes
const OPT_SACK = 2; // NOP, NOP, SACK one block: 12 bytes

/** Scaled windows (wscale 7) and the SYN windows. */
const WIN_C = 502;
const WIN_S = 509;
const SYN_WIN_C = 64240;
const SYN_WIN_S = 65160;

const ip4 = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
const ROUTER = ip4(10, 0, 0, 1);
const RESOLVER_IN = ip4(10, 0, 0, 53);
const RESOLVER_OUT = ip4(198, 18, 0, 53);
const SCANNER = ip4(203, 0, 113, 66);
const SCAN_TARGET = ip4(10, 2, 0, 10);

// Endpoints: internal clients 10.1.0.0/16, internal servers 10.2.0.0/16, external 198.18.0.0/15 (RFC 2544 benchmarking).
const CLIENTS = 6000;
const IN_SERVERS = 300;
const OUT_SERVERS = 4000;
const clientAddr = (i: number): number => (ip4(10, 1, 0, 0) + 1 + i) >>> 0;
const inServerAddr = (i: number): number => (ip4(10, 2, 0, 0) + 20 + i) >>> 0;
const outServerAddr = (i: number): number => (ip4(198, 18, 1, 0) + i) >>> 0;
const isInternal = (a: number): boolean => (a >>> 24) === 10;

const DOMAINS = ['example', 'contoso', 'fabrikam', 'northwind', 'tailspin', 'wingtip', 'adventure-works', 'litware', 'proseware', 'fourthcoffee',
  'cdn-assets', 'api-gateway', 'static-files', 'video-edge', 'mail-relay', 'update-service', 'telemetry-sink', 'auth-portal', 'crm-cloud', 'docs-hub'];
const TLDS = ['com', 'net', 'org', 'io', 'cloud'];
const HOSTS = ['www', 'api', 'cdn', 'img', 'login', 'mail', 'static', 'edge', 'ws', 'files'];

// ---------------------------------------------------------------------------
// Output: large buffered writes of whole records

class PcapOut {
  readonly buf = Buffer.allocUnsafe(CHUNK);
  private used = 0;
  private readonly fd: number;
  packets = 0;
  bytes = 0;
  firstUs = -1;
  lastUs = 0;

  constructor(path: string, private readonly timeScale: number) {
    this.fd = openSync(path, 'w');
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(262144, 16);
    h.writeUInt32LE(1, 20);
    writeSync(this.fd, h);
    this.bytes = 24;
  }

  /** Reserves a record of `len` frame bytes at time `t` (µs, relative); returns the frame's offset in `buf`. */
  record(t: number, len: number): number {
    if (this.used + 16 + len > CHUNK) this.flush();
    const us = T0 + Math.round(t * this.timeScale);
    if (this.firstUs < 0) this.firstUs = us;
    this.lastUs = us;
    const sec = Math.floor(us / 1e6);
    const b = this.buf;
    const o = this.used;
    b.writeUInt32LE(sec, o);
    b.writeUInt32LE(us - sec * 1e6, o + 4);
    b.writeUInt32LE(len, o + 8);
    b.writeUInt32LE(len, o + 12);
    this.used = o + 16 + len;
    this.packets++;
    this.bytes += 16 + len;
    return o + 16;
  }

  flush(): void {
    if (this.used) writeSync(this.fd, this.buf, 0, this.used);
    this.used = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

// ---------------------------------------------------------------------------
// Header writers (big-endian network order)

function writeMac(b: Buffer, o: number, host: number): void {
  b[o] = 0x02; b[o + 1] = 0x00;
  b.writeUInt32BE(host >>> 0, o + 2);
}

/** Ethernet header; MACs follow the hosts on the LAN side, the router's for anything external. */
function writeEth(b: Buffer, o: number, src: number, dst: number, v6: boolean): void {
  writeMac(b, o, isInternal(dst) ? dst : ROUTER);
  writeMac(b, o + 6, isInternal(src) ? src : ROUTER);
  b[o + 12] = v6 ? 0x86 : 0x08;
  b[o + 13] = v6 ? 0xdd : 0x00;
}

function writeIp4(b: Buffer, o: number, src: number, dst: number, proto: number, payload: number, ttl: number, id: number): void {
  b[o] = 0x45; b[o + 1] = 0;
  b.writeUInt16BE(IP4 + payload, o + 2);
  b.writeUInt16BE(id & 0xffff, o + 4);
  b[o + 6] = 0x40; b[o + 7] = 0; // DF
  b[o + 8] = ttl; b[o + 9] = proto;
  b[o + 10] = 0; b[o + 11] = 0;
  b.writeUInt32BE(src >>> 0, o + 12);
  b.writeUInt32BE(dst >>> 0, o + 16);
  let sum = 0;
  for (let i = 0; i < IP4; i += 2) sum += (b[o + i]! << 8) | b[o + i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  b.writeUInt16BE(~sum & 0xffff, o + 10);
}

/** IPv6 addresses 2001:db8:<net>::<host as two 16-bit words>; net 1 for internal-side hosts, 2 for the rest. */
function writeIp6Addr(b: Buffer, o: number, host: number): void {
  b.writeUInt32BE(0x20010db8, o);
  b.writeUInt32BE(isInternal(host) ? 0x00010000 : 0x00020000, o + 4);
  b.writeUInt32BE(0, o + 8);
  b.writeUInt32BE(host >>> 0, o + 12);
}

function writeIp6(b: Buffer, o: number, src: number, dst: number, nh: number, payload: number, hlim: number): void {
  b.writeUInt32BE(0x60000000, o);
  b.writeUInt16BE(payload, o + 4);
  b[o + 6] = nh; b[o + 7] = hlim;
  writeIp6Addr(b, o + 8, src);
  writeIp6Addr(b, o + 24, dst);
}

function optLen(opt: number): number { return opt === OPT_NONE ? 0 : 12; }

function writeTcp(b: Buffer, o: number, sport: number, dport: number, seq: number, ack: number, flags: number, win: number,
  opt: number, sackL: number, sackR: number, mss: number): void {
  b.writeUInt16BE(sport, o);
  b.writeUInt16BE(dport, o + 2);
  b.writeUInt32BE(seq >>> 0, o + 4);
  b.writeUInt32BE(flags & F_ACK ? ack >>> 0 : 0, o + 8);
  const hl = TCP + optLen(opt);
  b[o + 12] = (hl / 4) << 4;
  b[o + 13] = flags;
  b.writeUInt16BE(win, o + 14);
  b[o + 16] = 0; b[o + 17] = 0; b[o + 18] = 0; b[o + 19] = 0;
  const p = o + TCP;
  if (opt === OPT_SYN) {
    b[p] = 2; b[p + 1] = 4; b.writeUInt16BE(mss, p + 2);
    b[p + 4] = 1; b[p + 5] = 3; b[p + 6] = 3; b[p + 7] = 7;
    b[p + 8] = 1; b[p + 9] = 1; b[p + 10] = 4; b[p + 11] = 2;
  } else if (opt === OPT_SACK) {
    b[p] = 1; b[p + 1] = 1; b[p + 2] = 5; b[p + 3] = 10;
    b.writeUInt32BE(sackL >>> 0, p + 4);
    b.writeUInt32BE(sackR >>> 0, p + 8);
  }
}

function writeUdp(b: Buffer, o: number, sport: number, dport: number, payload: number): void {
  b.writeUInt16BE(sport, o);
  b.writeUInt16BE(dport, o + 2);
  b.writeUInt16BE(UDP + payload, o + 4);
  b[o + 6] = 0; b[o + 7] = 0;
}

// ---------------------------------------------------------------------------
// Actors: each emits at most one packet per step, at `next` (µs of packet time)

interface Actor {
  next: number;
  /** Emits the packet due at `next` (or none), then sets `next` (Infinity when done). */
  step(g: CaptureGenerator): void;
}

class Heap {
  readonly items: Actor[] = [];
  get size(): number { return this.items.length; }
  push(a: Actor): void {
    const h = this.items;
    h.push(a);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.next <= a.next) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = a;
  }
  top(): Actor { return this.items[0]!; }
  /** Restores order after the top's `next` grew; removes it when done. */
  fixTop(): void {
    const h = this.items;
    let a = h[0]!;
    if (a.next === Infinity) {
      const last = h.pop()!;
      if (!h.length) return;
      a = last;
    }
    const n = h.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && h[r]!.next < h[l]!.next ? r : l;
      if (h[c]!.next >= a.next) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = a;
  }
}

/** One scripted packet of a TCP conversation. */
interface Seg {
  t: number;
  /** Client to server. */
  c2s: boolean;
  flags: number;
  seq: number;
  ack: number;
  win: number;
  len: number;
  opt: number;
  sackL: number;
  sackR: number;
}

const seg = (t: number, c2s: boolean, flags: number, seq: number, ack: number, win: number, len = 0, opt = OPT_NONE, sackL = 0, sackR = 0): Seg =>
  ({ t, c2s, flags, seq, ack, win, len, opt, sackL, sackR });

const byTime = (a: Seg, b: Seg): number => a.t - b.t;

const TcpKind = { BULK: 0, INTERACTIVE: 1, REFUSED: 2, UNANSWERED: 3, MOUSE: 4 } as const;
type TcpKindCode = (typeof TcpKind)[keyof typeof TcpKind];

const PHASE_START = 0;
const PHASE_DATA = 1;
const PHASE_CHAT = 2;
const PHASE_FIN = 3;
const PHASE_END = 4;

/** A TCP conversation scripted one round at a time (a round's packets sorted by time). */
class TcpFlow implements Actor {
  next: number;
  private q: Seg[] = [];
  private qi = 0;
  private phase = PHASE_START;
  private cSeq: number;
  private sSeq: number;
  private readonly mss: number;
  private readonly ipHdr: number;
  private cwnd = 10;
  private round = 0;
  private left = 0;
  private chats = 0;
  private zeroWindowAt = -1;
  private resetAt = -1;
  private ipId: number;
  /** Packets still allowed (mice), or Infinity. */
  private budget = Infinity;

  constructor(
    g: CaptureGenerator, start: number,
    readonly kind: TcpKindCode,
    readonly client: number, readonly server: number,
    readonly cPort: number, readonly sPort: number,
    readonly v6: boolean,
    private readonly rtt: number,
    midStream: boolean,
    budget = Infinity,
  ) {
    const r = g.rng;
    this.cSeq = r.u32();
    this.sSeq = r.u32();
    this.ipId = r.int(65536);
    this.mss = v6 ? MSS6 : MSS4;
    this.ipHdr = v6 ? IP6 : IP4;
    this.budget = budget;
    if (kind === TcpKind.BULK) {
      this.left = Math.min(40e6, Math.round(r.pareto(12_000, 1.2)));
      if (r.chance(0.05)) this.zeroWindowAt = 1 + r.int(4);
      else if (r.chance(0.04)) this.resetAt = 1 + r.int(3);
    } else if (kind === TcpKind.INTERACTIVE) {
      this.chats = 20 + Math.round(r.exp(150));
    } else if (kind === TcpKind.MOUSE) {
      this.left = Math.max(0, budget - 3) * 700;
    }
    if (midStream) {
      this.phase = kind === TcpKind.INTERACTIVE ? PHASE_CHAT : PHASE_DATA;
      this.cSeq += 1; this.sSeq += 1;
      this.chats = Math.round(this.chats * r.float());
      this.script(g, start);
    } else {
      this.script(g, start);
    }
    this.next = this.q.length ? this.q[0]!.t : Infinity;
  }

  step(g: CaptureGenerator): void {
    const s = this.q[this.qi++]!;
    this.emit(g, s);
    if (this.qi >= this.q.length) {
      this.q = [];
      this.qi = 0;
      if (this.budget > 0) this.script(g, s.t);
    }
    this.next = this.qi < this.q.length && this.budget > 0 ? this.q[this.qi]!.t : Infinity;
    if (this.next === Infinity) g.flowDone(this);
  }

  private emit(g: CaptureGenerator, s: Seg): void {
    this.budget--;
    const src = s.c2s ? this.client : this.server;
    const dst = s.c2s ? this.server : this.client;
    const l4 = TCP + optLen(s.opt) + s.len;
    const len = ETH + this.ipHdr + l4;
    const out = g.out;
    const o = out.record(s.t, len);
    const b = out.buf;
    writeEth(b, o, src, dst, this.v6);
    if (this.v6) writeIp6(b, o + ETH, src, dst, 6, l4, s.c2s ? 64 : 52);
    else writeIp4(b, o + ETH, src, dst, 6, l4, s.c2s ? 64 : 52, this.ipId++);
    const th = o + ETH + this.ipHdr;
    writeTcp(b, th, s.c2s ? this.cPort : this.sPort, s.c2s ? this.sPort : this.cPort, s.seq, s.ack, s.flags, s.win, s.opt, s.sackL, s.sackR, this.mss);
  }

  /** Appends the next round of packets, all after `t`. */
  private script(g: CaptureGenerator, t: number): void {
    const r = g.rng;
    const q = this.q;
    const rtt = this.rtt;
    switch (this.phase) {
      case PHASE_START: {
        const t0 = t;
        q.push(seg(t0, true, F_SYN, this.cSeq, 0, SYN_WIN_C, 0, OPT_SYN));
        if (this.kind === TcpKind.UNANSWERED) {
          q.push(seg(t0 + 1e6, true, F_SYN, this.cSeq, 0, SYN_WIN_C, 0, OPT_SYN));
          q.push(seg(t0 + 3e6, true, F_SYN, this.cSeq, 0, SYN_WIN_C, 0, OPT_SYN));
          this.phase = PHASE_END;
          return;
        }
        if (this.kind === TcpKind.REFUSED) {
          q.push(seg(t0 + rtt, false, F_RST | F_ACK, 0, this.cSeq + 1, 0));
          this.phase = PHASE_END;
          return;
        }
        this.cSeq += 1;
        q.push(seg(t0 + rtt, false, F_SYN | F_ACK, this.sSeq, this.cSeq, SYN_WIN_S, 0, OPT_SYN));
        this.sSeq += 1;
        q.push(seg(t0 + rtt + 40, true, F_ACK, this.cSeq, this.sSeq, WIN_C));
        if (this.kind === TcpKind.INTERACTIVE) { this.phase = PHASE_CHAT; return; }
        const req = 120 + r.int(480);
        q.push(seg(t0 + rtt + 90, true, F_PSH | F_ACK, this.cSeq, this.sSeq, WIN_C, req));
        this.cSeq += req;
        this.phase = this.left > 0 ? PHASE_DATA : PHASE_FIN;
        return;
      }
      case PHASE_DATA: this.dataRound(g, t); return;
      case PHASE_CHAT: this.chatRound(g, t); return;
      case PHASE_FIN: {
        // The server closes bulk transfers, the client interactive sessions.
        const byClient = this.kind === TcpKind.INTERACTIVE;
        const a = t + 200 + r.exp(2000);
        const [s1, s2] = byClient ? [this.cSeq, this.sSeq] : [this.sSeq, this.cSeq];
        const w1 = byClient ? WIN_C : WIN_S;
        const w2 = byClient ? WIN_S : WIN_C;
        const far = byClient ? rtt : 40;
        const near = byClient ? 40 : rtt;
        q.push(seg(a, byClient, F_FIN | F_ACK, s1, s2, w1));
        q.push(seg(a + far, !byClient, F_ACK, s2, s1 + 1, w2));
        q.push(seg(a + far + 300, !byClient, F_FIN | F_ACK, s2, s1 + 1, w2));
        q.push(seg(a + far + 300 + near, byClient, F_ACK, s1 + 1, s2 + 1, w1));
        this.phase = PHASE_END;
        return;
      }
      default:
        return;
    }
  }

  /** One slow-start round of server data with the client's ACKs, loss and recovery. */
  private dataRound(g: CaptureGenerator, t: number): void {
    const r = g.rng;
    const q = this.q;
    const rtt = this.rtt;
    const start = t + rtt + r.exp(3000);
    const gap = 12 + r.exp(25); // bottleneck serialisation, µs per full segment
    const segs = Math.min(this.cwnd, Math.ceil(this.left / this.mss));
    let lossAt = -1;
    let lossBefore = false;
    let lostSeq = 0;
    let lostLen = 0;
    let dups = 0;
    let thirdDupAt = 0;
    let last = start;
    const ack = this.cSeq;
    for (let j = 0; j < segs; j++) {
      const len = Math.min(this.mss, this.left);
      const seq = this.sSeq;
      this.sSeq += len;
      this.left -= len;
      const ts = start + j * gap;
      if (lossAt < 0 && j < segs - 1 && r.chance(0.006)) {
        lossAt = j; lostSeq = seq; lostLen = len; lossBefore = r.chance(0.3);
      }
      if (!(lossAt === j && lossBefore)) q.push(seg(ts, false, j === segs - 1 ? F_PSH | F_ACK : F_ACK, seq, ack, WIN_S, len));
      last = ts + 30;
      if (lossAt < 0) {
        if (j % 2 === 1 || j === segs - 1) q.push(seg(ts + 30, true, F_ACK, ack, this.sSeq, WIN_C));
      } else if (j > lossAt) {
        q.push(seg(ts + 30, true, F_ACK, ack, lostSeq, WIN_C, 0, OPT_SACK, lostSeq + lostLen, this.sSeq));
        if (++dups === 3) thirdDupAt = ts + 30;
      }
    }
    let end = last;
    if (lossAt >= 0) {
      const rtx = dups >= 3 ? Math.max(last + 20, thirdDupAt + Math.min(rtt, 15_000)) : last + Math.max(200_000, 2 * rtt);
      q.push(seg(rtx, false, F_ACK, lostSeq, ack, WIN_S, lostLen));
      q.push(seg(rtx + 30, true, F_ACK, ack, this.sSeq, WIN_C));
      end = rtx + 30;
      this.cwnd = Math.max(2, this.cwnd >> 1);
    } else {
      this.cwnd = Math.min(64, this.cwnd * 2);
    }
    this.round++;
    if (this.round === this.zeroWindowAt && this.left > 0) {
      // The receiver's buffer fills: it advertises a zero window, the sender probes, then a window update.
      q.push(seg(end + 200, true, F_ACK, ack, this.sSeq, 0));
      let p = end + 200;
      const probes = 1 + r.int(3);
      for (let i = 0, backoff = 200_000; i < probes; i++, backoff *= 2) {
        p += backoff;
        q.push(seg(p, false, F_ACK, this.sSeq, ack, WIN_S, 1));
        q.push(seg(p + 30, true, F_ACK, ack, this.sSeq, 0));
      }
      end = p + 30 + 50_000 + r.exp(100_000);
      q.push(seg(end, true, F_ACK, ack, this.sSeq, WIN_C));
    }
    q.sort(byTime);
    if (this.round === this.resetAt) {
      q.push(seg(end + 1000, true, F_RST | F_ACK, this.cSeq, this.sSeq, 0));
      this.phase = PHASE_END;
      return;
    }
    if (this.left <= 0) this.phase = PHASE_FIN;
  }

  /** One interactive exchange: a small request, the answer one RTT later, a delayed ACK. */
  private chatRound(g: CaptureGenerator, t: number): void {
    const r = g.rng;
    const q = this.q;
    const think = 2000 + r.exp(500_000);
    const a = t + think;
    const req = 36 + r.int(90);
    q.push(seg(a, true, F_PSH | F_ACK, this.cSeq, this.sSeq, WIN_C, req));
    this.cSeq += req;
    let b = a + this.rtt + 100 + r.exp(300);
    const parts = r.chance(0.1) ? 2 + r.int(4) : 1;
    for (let i = 0; i < parts; i++) {
      const resp = parts > 1 ? this.mss : 36 + r.int(400);
      q.push(seg(b, false, F_PSH | F_ACK, this.sSeq, this.cSeq, WIN_S, resp));
      this.sSeq += resp;
      b += 20 + r.exp(40);
    }
    q.push(seg(b + 40_000, true, F_ACK, this.cSeq, this.sSeq, WIN_C));
    if (--this.chats <= 0) this.phase = PHASE_FIN;
  }
}

/** A UDP datagram exchange: DNS query and (usually) its answer, or a lone datagram. */
class DnsTransaction implements Actor {
  next: number;
  private sent = false;
  private readonly name: number;
  private readonly qtype: number;
  private readonly rcode: number;
  private readonly answers: number;
  private readonly id: number;
  private readonly sport: number;

  constructor(g: CaptureGenerator, start: number, private readonly client: number, private readonly resolver: number, private readonly answered: boolean, sport = -1) {
    const r = g.rng;
    this.next = start;
    this.id = r.int(65536);
    this.sport = sport >= 0 ? sport : 1024 + r.int(64512);
    const nx = r.chance(0.03);
    this.name = nx ? g.nxNames.length > 0 ? r.int(g.nxNames.length) : 0 : r.int(g.names.length);
    this.rcode = nx ? 3 : 0;
    this.qtype = r.chance(0.25) ? 28 : 1;
    this.answers = nx ? 0 : 1 + r.int(3);
  }

  step(g: CaptureGenerator): void {
    const r = g.rng;
    const question = this.rcode ? g.nxNames[this.name]! : g.names[this.name]!;
    const response = this.sent;
    const rdLen = this.qtype === 28 ? 16 : 4;
    const dnsLen = 12 + question.length + (response ? this.answers * (12 + rdLen) : 0);
    const len = ETH + IP4 + UDP + dnsLen;
    const out = g.out;
    const o = out.record(this.next, len);
    const b = out.buf;
    const src = response ? this.resolver : this.client;
    const dst = response ? this.client : this.resolver;
    writeEth(b, o, src, dst, false);
    writeIp4(b, o + ETH, src, dst, 17, UDP + dnsLen, response ? 62 : 64, r.int(65536));
    writeUdp(b, o + ETH + IP4, response ? 53 : this.sport, response ? this.sport : 53, dnsLen);
    const d = o + ETH + IP4 + UDP;
    b.writeUInt16BE(this.id, d);
    b.writeUInt16BE(response ? 0x8180 | this.rcode : 0x0100, d + 2);
    b.writeUInt16BE(1, d + 4);
    b.writeUInt16BE(response ? this.answers : 0, d + 6);
    b.writeUInt32BE(0, d + 8);
    question.copy(b, d + 12);
    b.writeUInt16BE(this.qtype, d + 12 + question.length - 4);
    if (response) {
      let p = d + 12 + question.length;
      for (let i = 0; i < this.answers; i++) {
        b.writeUInt16BE(0xc00c, p);
        b.writeUInt16BE(this.qtype, p + 2);
        b.writeUInt16BE(1, p + 4);
        b.writeUInt32BE(60 + r.int(3600), p + 6);
        b.writeUInt16BE(rdLen, p + 10);
        if (rdLen === 4) b.writeUInt32BE(outServerAddr(r.int(OUT_SERVERS)), p + 12);
        else { writeIp6Addr(b, p + 12, outServerAddr(r.int(OUT_SERVERS))); }
        p += 12 + rdLen;
      }
    }
    if (!this.sent && this.answered) {
      this.sent = true;
      this.next += (this.resolver === RESOLVER_IN ? 300 : 8000) + r.exp(this.resolver === RESOLVER_IN ? 2000 : 25_000);
    } else {
      this.next = Infinity;
    }
  }
}

/** Starts DNS queries as a Poisson process. */
class DnsSource implements Actor {
  constructor(public next: number, private readonly meanGap: number) {}
  step(g: CaptureGenerator): void {
    const r = g.rng;
    const resolver = r.chance(0.7) ? RESOLVER_IN : RESOLVER_OUT;
    g.spawn(new DnsTransaction(g, this.next, clientAddr(r.int(CLIENTS)), resolver, !r.chance(0.015)));
    g.dnsQueries++;
    g.flows++;
    this.next += r.exp(this.meanGap);
  }
}

/** An RTP (G.711, 20 ms) call: both directions, with jitter and the odd late packet. */
class MediaCall implements Actor {
  next: number;
  private tA: number;
  private tB: number;
  private seqA: number;
  private seqB: number;
  private tsA: number;
  private tsB: number;
  private readonly end: number;
  private readonly ssrcA: number;
  private readonly ssrcB: number;
  constructor(g: CaptureGenerator, start: number, private readonly phone: number, private readonly sbc: number, private readonly portA: number, private readonly portB: number) {
    const r = g.rng;
    this.tA = start;
    this.tB = start + r.range(1000, 19000);
    this.seqA = r.int(65536); this.seqB = r.int(65536);
    this.tsA = r.u32(); this.tsB = r.u32();
    this.ssrcA = r.u32(); this.ssrcB = r.u32();
    this.end = start + 10e6 + r.exp(40e6);
    this.next = this.tA;
  }
  step(g: CaptureGenerator): void {
    const r = g.rng;
    const fromA = this.tA <= this.tB;
    const src = fromA ? this.phone : this.sbc;
    const dst = fromA ? this.sbc : this.phone;
    const payload = 12 + 160;
    const o = g.out.record(this.next, ETH + IP4 + UDP + payload);
    const b = g.out.buf;
    writeEth(b, o, src, dst, false);
    writeIp4(b, o + ETH, src, dst, 17, UDP + payload, fromA ? 64 : 56, r.int(65536));
    writeUdp(b, o + ETH + IP4, fromA ? this.portA : this.portB, fromA ? this.portB : this.portA, payload);
    const p = o + ETH + IP4 + UDP;
    b[p] = 0x80; b[p + 1] = 0;
    b.writeUInt16BE((fromA ? this.seqA++ : this.seqB++) & 0xffff, p + 2);
    b.writeUInt32BE((fromA ? this.tsA : this.tsB) >>> 0, p + 4);
    b.writeUInt32BE(fromA ? this.ssrcA : this.ssrcB, p + 8);
    const jitter = r.chance(0.01) ? r.range(5000, 40_000) : r.range(-1500, 1500);
    if (fromA) { this.tsA += 160; this.tA = Math.max(this.next + 100, this.tA + 20_000 + jitter); } else { this.tsB += 160; this.tB = Math.max(this.next + 100, this.tB + 20_000 + jitter); }
    const n = Math.min(this.tA, this.tB);
    this.next = n > this.end ? Infinity : n;
    if (this.next === Infinity) g.callDone();
  }
}

/** One scanner SYN-probing a shuffled list of ports on one host. */
class PortScan implements Actor {
  next: number;
  private i = 0;
  private pending = 0; // 0: send a probe; 1: answer it; 2: scanner's RST after a SYN/ACK
  private readonly ports: number[];
  private readonly open = new Set([22, 80, 443, 3306]);
  private readonly seq: number;
  constructor(g: CaptureGenerator, start: number, count: number) {
    const r = g.rng;
    this.next = start;
    this.seq = r.u32();
    this.ports = Array.from({ length: count }, (_, i) => i + 1);
    for (let i = this.ports.length - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [this.ports[i], this.ports[j]] = [this.ports[j]!, this.ports[i]!];
    }
  }
  step(g: CaptureGenerator): void {
    const port = this.ports[this.i]!;
    const open = this.open.has(port);
    const fromScanner = this.pending !== 1;
    const src = fromScanner ? SCANNER : SCAN_TARGET;
    const dst = fromScanner ? SCAN_TARGET : SCANNER;
    const hasOpt = this.pending === 0;
    const l4 = TCP + (hasOpt ? 4 : 0);
    const o = g.out.record(this.next, ETH + IP4 + l4);
    const b = g.out.buf;
    writeEth(b, o, src, dst, false);
    writeIp4(b, o + ETH, src, dst, 6, l4, fromScanner ? 48 : 64, g.rng.int(65536));
    const th = o + ETH + IP4;
    const sp = 54321;
    if (this.pending === 0) {
      writeTcp(b, th, sp, port, this.seq, 0, F_SYN, 1024, OPT_NONE, 0, 0, 0);
      b[th + 12] = 6 << 4; // with a 4-byte MSS option, as nmap sends
      b[th + 20] = 2; b[th + 21] = 4; b.writeUInt16BE(1460, th + 22);
      this.pending = 1;
      this.next += 150 + g.rng.exp(200);
    } else if (this.pending === 1) {
      writeTcp(b, th, port, sp, open ? 0x11223344 : 0, this.seq + 1, open ? F_SYN | F_ACK : F_RST | F_ACK, open ? 29200 : 0, OPT_NONE, 0, 0, 0);
      this.pending = open ? 2 : 0;
      this.next += open ? 60 : 0;
    } else {
      writeTcp(b, th, sp, port, this.seq + 1, 0, F_RST, 0, OPT_NONE, 0, 0, 0);
      this.pending = 0;
    }
    if (this.pending === 0) {
      this.i++;
      g.scanProbes++;
      g.flows++;
      this.next = this.i >= this.ports.length ? Infinity : this.next + 1500 + g.rng.exp(500);
    }
  }
}

/** Starts the mice of mice mode at a steady rate until `count` have started. */
class MiceSource implements Actor {
  private started = 0;
  constructor(public next: number, private readonly count: number, private readonly k: number, private readonly meanGap: number) {}
  step(g: CaptureGenerator): void {
    const r = g.rng;
    const i = this.started++;
    // Distinct 5-tuples by construction: client address and port come from the mouse's index.
    const client = (ip4(10, 64, 0, 0) + (i % 4_000_000)) >>> 0;
    const cPort = 1024 + Math.floor(i / 4_000_000);
    const server = outServerAddr(r.int(OUT_SERVERS));
    const k = this.k;
    const tcp = k >= 3 || r.chance(0.5);
    if (tcp) {
      const kind = k === 2 ? TcpKind.REFUSED : k === 1 ? TcpKind.UNANSWERED : TcpKind.MOUSE;
      g.spawn(new TcpFlow(g, this.next, kind, client, server, cPort, r.chance(0.8) ? 443 : 80, false, 2000 + r.exp(20_000), false, k));
    } else {
      g.spawn(new DnsTransaction(g, this.next, client, RESOLVER_OUT, k === 2, cPort));
    }
    g.flows++;
    this.next = this.started >= this.count ? Infinity : this.next + r.exp(this.meanGap);
  }
}

// ---------------------------------------------------------------------------

function encodeName(name: string): Buffer {
  const parts: number[] = [];
  for (const label of name.split('.')) {
    parts.push(label.length);
    for (let i = 0; i < label.length; i++) parts.push(label.charCodeAt(i));
  }
  parts.push(0, 0, 1, 0, 1); // root, QTYPE (patched per query), QCLASS IN
  return Buffer.from(parts);
}

const BULK_TARGET = 150;
const INTERACTIVE_TARGET = 2000;
/** TCP flows open at any moment of the realistic mix. */
export const CONCURRENT_TCP_FLOWS = BULK_TARGET + INTERACTIVE_TARGET;
const CALLS_TARGET = 8;
const DNS_PER_SECOND = 800;
const MICE_PACKETS_PER_SECOND = 40_000;

export class CaptureGenerator {
  readonly rng: Rng;
  readonly out: PcapOut;
  readonly heap = new Heap();
  readonly names: Buffer[] = [];
  readonly nxNames: Buffer[] = [];
  private readonly mice: boolean;
  flows = 0;
  tcpFlows = 0;
  dnsQueries = 0;
  mediaCalls = 0;
  scanProbes = 0;
  private bulk = 0;
  private interactive = 0;

  constructor(path: string, private readonly options: GenerateOptions) {
    this.rng = new Rng(options.seed);
    this.out = new PcapOut(path, options.timeScale ?? 1);
    // Payload bytes are whatever the reused output chunk holds there: random bytes written
    // once here, or older frames' bytes. Deterministic, opaque to every analyzer, and no
    // per-packet copy (a copy per segment took a quarter of the generator's time).
    const chunk = this.out.buf;
    for (let i = 0; i + 4 <= chunk.length; i += 4) chunk.writeUInt32LE(this.rng.u32(), i);
    for (const d of DOMAINS) for (const tld of TLDS) for (const h of HOSTS) this.names.push(encodeName(`${h}.${d}.${tld}`));
    for (let i = 0; i < 200; i++) this.nxNames.push(encodeName(`${(this.rng.u32().toString(36))}.corp-${i % 7}.internal`));
    this.mice = options.flows !== undefined;
  }

  /** Actors started during a step join the heap after it (the stepped actor must stay on top until then). */
  spawn(a: Actor): void {
    if (a.next === Infinity) return;
    if (this.stepping) this.spawned.push(a); else this.heap.push(a);
  }
  private stepping = false;
  private readonly spawned: Actor[] = [];

  private newTcp(start: number, bulk: boolean, midStream: boolean): void {
    const r = this.rng;
    const v6 = r.chance(0.1);
    const client = clientAddr(r.int(CLIENTS));
    const external = r.chance(bulk ? 0.75 : 0.4);
    const server = external ? outServerAddr(r.int(OUT_SERVERS)) : inServerAddr(r.int(IN_SERVERS));
    const rtt = external ? 8000 + r.exp(40_000) : 300 + r.exp(2000);
    let kind: TcpKindCode = bulk ? TcpKind.BULK : TcpKind.INTERACTIVE;
    let port: number;
    if (bulk) {
      const x = r.float();
      if (!midStream && x < 0.04) kind = TcpKind.REFUSED;
      else if (!midStream && x < 0.06) kind = TcpKind.UNANSWERED;
      port = r.chance(0.7) ? 443 : r.chance(0.5) ? 80 : 8080;
    } else {
      const x = r.float();
      port = x < 0.3 ? 22 : x < 0.55 ? 5432 : x < 0.7 ? 3306 : 443;
    }
    const cPort = 32768 + r.int(28232);
    this.spawn(new TcpFlow(this, start, kind, client, server, cPort, port, v6, rtt, midStream));
    this.tcpFlows++;
    this.flows++;
    if (bulk) this.bulk++; else this.interactive++;
  }

  flowDone(f: TcpFlow): void {
    if (this.mice) return;
    const now = f.next === Infinity ? this.lastTime : f.next;
    if (f.kind === TcpKind.INTERACTIVE) { this.interactive--; this.newTcp(now + this.rng.exp(20_000), false, false); } else { this.bulk--; this.newTcp(now + this.rng.exp(5000), true, false); }
  }

  callDone(): void {
    const r = this.rng;
    const start = this.lastTime + r.exp(2e6);
    this.startCall(start);
  }

  private startCall(start: number): void {
    const r = this.rng;
    this.spawn(new MediaCall(this, start, (ip4(10, 3, 0, 0) + 10 + r.int(500)) >>> 0, (ip4(198, 19, 0, 10) + r.int(4)) >>> 0, 16384 + 2 * r.int(8000), 20000 + 2 * r.int(5000)));
    this.mediaCalls++;
    this.flows++;
  }

  private lastTime = 0;

  run(): void {
    const r = this.rng;
    const target = this.options.packets;
    if (this.mice) {
      const flows = this.options.flows!;
      const k = Math.max(1, Math.round(target / flows));
      this.spawn(new MiceSource(0, flows, k, (k * 1e6) / MICE_PACKETS_PER_SECOND));
    } else {
      for (let i = 0; i < BULK_TARGET; i++) this.newTcp(r.exp(200_000), true, r.chance(0.5));
      for (let i = 0; i < INTERACTIVE_TARGET; i++) this.newTcp(r.exp(500_000), false, r.chance(0.7));
      for (let i = 0; i < CALLS_TARGET; i++) this.startCall(r.exp(1e6));
      this.spawn(new DnsSource(r.exp(1000), 1e6 / DNS_PER_SECOND));
      this.spawn(new PortScan(this, 1e6 + r.exp(1e6), 1000));
    }
    const heap = this.heap;
    const limit = this.mice ? Infinity : target;
    while (heap.size > 0 && this.out.packets < limit) {
      const a = heap.top();
      this.lastTime = a.next;
      this.stepping = true;
      a.step(this);
      this.stepping = false;
      heap.fixTop();
      if (this.spawned.length) {
        for (const s of this.spawned) heap.push(s);
        this.spawned.length = 0;
      }
    }
    this.out.close();
  }
}

export function generateCapture(path: string, options: GenerateOptions): GenerateResult {
  const t0 = performance.now();
  const g = new CaptureGenerator(path, options);
  g.run();
  const out = g.out;
  return {
    path,
    packets: out.packets,
    bytes: out.bytes,
    flows: g.flows,
    tcpFlows: g.tcpFlows,
    dnsQueries: g.dnsQueries,
    mediaCalls: g.mediaCalls,
    scanProbes: g.scanProbes,
    spanSeconds: out.packets ? Math.round((out.lastUs - out.firstUs) / 1e3) / 1e3 : 0,
    seed: options.seed,
    packetsPerFlow: options.flows !== undefined ? Math.max(1, Math.round(options.packets / options.flows)) : 0,
    generateSeconds: Math.round((performance.now() - t0)) / 1e3,
  };
}

const USAGE = 'usage: node dist/bench/capture-gen.js OUT [--packets N (default 2000000)] [--seed S (default 1)] [--flows F] [--time-scale X]';

function parseCount(text: string | undefined, what: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmKM]?)$/.exec(text ?? '');
  if (!m) throw new Error(`${what} needs a number (e.g. 300k, 2M), got ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (m[2]!.toLowerCase() === 'k' ? 1e3 : m[2]!.toLowerCase() === 'm' ? 1e6 : 1));
}

export { parseCount };

function main(argv: string[]): void {
  let path: string | undefined;
  const options: GenerateOptions = { packets: 2_000_000, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--packets') options.packets = parseCount(argv[++i], '--packets');
    else if (a === '--seed') options.seed = parseCount(argv[++i], '--seed');
    else if (a === '--flows') options.flows = parseCount(argv[++i], '--flows');
    else if (a === '--time-scale') options.timeScale = Number(argv[++i]);
    else if (a === '-h' || a === '--help') { process.stdout.write(`${USAGE}\n`); return; }
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (path === undefined) path = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (path === undefined) throw new Error('missing OUT path');
  if (!(options.packets > 0)) throw new Error('--packets must be > 0');
  if (options.timeScale !== undefined && !(options.timeScale > 0)) throw new Error('--time-scale must be > 0');
  process.stdout.write(`${JSON.stringify(generateCapture(path, options))}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`capture-gen: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    process.exit(2);
  }
}
