/**
 * Soak test (`npm run soak`; not part of the test suite): streams synthetic
 * packet time through the whole pipeline (every analyzer, default config) at
 * top speed and checks that memory does not grow with capture length.
 *
 *   node dist/agent/tools/soak.js [--hours 24] [--packets 10000000] [--sources 100000] [--seed 1]
 *                                 [--disable id,id...] [--no-gc]
 *
 * Frames (Ethernet / IPv4 / TCP or UDP) are built in memory into one reused
 * buffer and FrameRecord, in packet-time order, from a seeded PRNG (the same
 * seed gives the same packets). The traffic, spread evenly over the hours:
 *   - TCP sessions between a sliding population of clients (`--sources`
 *     distinct addresses over the run, a few thousand active at a time) and
 *     400 servers (half internal, half external): handshake with options,
 *     request, data and ACKs, FIN exchange; some keep-alive sessions with
 *     several rounds, some refused (SYN, RST) and some ended by a RST;
 *   - DNS queries and responses to two resolvers (A/AAAA, some NXDOMAIN, some
 *     unanswered, CDN names, Kubernetes search-path NXDOMAINs from pods);
 *   - UDP media flows (50 packets/s, both ways, 20 to 60 s);
 *   - a vertical or horizontal port scan from one of a few sources every
 *     2 to 4 hours;
 *   - a beacon (a short TLS-like session) every 30 s from one host;
 *   - a DNS tunnel (TXT queries with base32 names, 2 a second) for 6 % of the run.
 * Arrival rates follow the packets each kind of activity has produced so
 * far, corrected each simulated minute by the shortfall or excess against
 * the target line, so the run totals at least about `--packets` over
 * `--hours` (aiming 1 % over).
 *
 * Prints one row per simulated hour: packets so far, packets/s of wall time
 * over that hour, RSS as it is, then a full garbage collection and RSS, heap
 * used and heap total after it, array buffers, active flows, findings so far.
 * Then the totals, findings per type, and the ratio of RSS at the last hour
 * to RSS at hour 2, as it is and after the collection: the verdict, PASS
 * when within 5 % (else FAIL and exit code 1), is on RSS after the
 * collection, which is what the process keeps; RSS as it is also counts
 * garbage not yet collected, so it varies with the collector's timing.
 * `--no-gc` skips the collections and judges RSS as it is. `--disable`
 * turns analyzers off (to find which one grows).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { buildConfig } from '../../common/config.js';
import { FrameRecord } from '../capture/frame-record.js';
import { Pipeline } from '../pipeline.js';
import { PIPELINE_THREAD_LIMITS } from '../core/thread-limits.js';

const USAGE = 'usage: node dist/agent/tools/soak.js [--hours 24] [--packets 10000000] [--sources 100000] [--seed 1] [--disable id,id...] [--no-gc]';
/** Start of packet time: a multiple of 10^6 s (the decoder's time base) and of the window length. */
const T0 = 1_700_000_000;
/** Hour-24 / hour-2 RSS may differ by this much (issue 12: a sensor's memory stays flat). */
const LIMIT_RATIO = 0.05;

interface Options { hours: number; packets: number; sources: number; seed: number; disable: string[]; gc: boolean }

function parseArgs(argv: readonly string[]): Options {
  const out: Options = { hours: 24, packets: 10_000_000, sources: 100_000, seed: 1, disable: [], gc: true };
  const num = (i: number, name: string): number => {
    const v = Number(argv[i]);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (argv[i] === undefined || !Number.isFinite(v) || v <= 0) throw new Error(`${name} needs a positive number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--hours') out.hours = num(++i, a);
    else if (a === '--packets') out.packets = Math.round(num(++i, a));
    else if (a === '--sources') out.sources = Math.max(10, Math.round(num(++i, a)));
    else if (a === '--seed') out.seed = Math.round(num(++i, a));
    else if (a === '--disable') out.disable = (argv[++i] ?? '').split(',').filter((s) => s.length > 0);
    else if (a === '--no-gc') out.gc = false;
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
    else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Randomness

/** xorshift128+ style generator on 32-bit words (deterministic from the seed). */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = seed ^ 0x9e3779b9; this.b = Math.imul(seed, 0x85ebca6b) ^ 0x243f6a88; this.c = 0xb7e15162; this.d = seed + 0x6a09e667;
    for (let i = 0; i < 20; i++) this.u32();
  }
  /** xoshiro128** */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9);
    const t = this.b << 9;
    this.c ^= this.a; this.d ^= this.b; this.b ^= this.c; this.a ^= this.d;
    this.c ^= t; this.d = rotl(this.d, 11);
    return r >>> 0;
  }
  next(): number { return this.u32() / 4294967296; }
  int(n: number): number { return Math.floor(this.next() * n); }
  range(lo: number, hi: number): number { return lo + this.next() * (hi - lo); }
  /** Exponential interval with the given mean. */
  exp(mean: number): number { return -Math.log(1 - this.next()) * mean; }
}
const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

// ---------------------------------------------------------------------------
// Frames

const ETH = 14;
const IP = 20;
const TCP_FIN = 0x01, TCP_SYN = 0x02, TCP_RST = 0x04, TCP_PSH = 0x08, TCP_ACK = 0x10;

/** Builds frames into one reused buffer and hands them to the pipeline. */
class FrameWriter {
  readonly buf = new Uint8Array(1600);
  readonly rec = new FrameRecord();
  private ipId = 0;
  packets = 0;

  constructor(private readonly pipeline: Pipeline) {
    const b = this.buf;
    b.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
    this.rec.data = b;
    this.rec.linkType = 1;
  }

  private ip(t: number, src: number, dst: number, proto: number, l4Len: number): void {
    const b = this.buf;
    const total = IP + l4Len;
    b[14] = 0x45; b[15] = 0;
    b[16] = total >>> 8; b[17] = total & 0xff;
    this.ipId = (this.ipId + 1) & 0xffff;
    b[18] = this.ipId >>> 8; b[19] = this.ipId & 0xff;
    b[20] = 0x40; b[21] = 0; b[22] = 64; b[23] = proto; b[24] = 0; b[25] = 0;
    put32(b, 26, src); put32(b, 30, dst);
    const rec = this.rec;
    const sec = Math.floor(t);
    rec.tsSec = T0 + sec;
    rec.tsNsec = Math.min(999_999_999, Math.round((t - sec) * 1e9));
    rec.capLen = rec.wireLen = ETH + total;
    rec.offset = 0;
  }

  private send(): void {
    this.rec.number = ++this.packets;
    this.pipeline.process(this.rec);
  }

  tcp(t: number, src: number, sport: number, dst: number, dport: number, seq: number, ack: number, flags: number, len: number, win = 65535): void {
    const syn = (flags & TCP_SYN) !== 0;
    const hl = syn ? 32 : 20;
    this.ip(t, src, dst, 6, hl + len);
    const b = this.buf;
    const o = ETH + IP;
    put16(b, o, sport); put16(b, o + 2, dport);
    put32(b, o + 4, seq >>> 0); put32(b, o + 8, ack >>> 0);
    b[o + 12] = (hl / 4) << 4; b[o + 13] = flags;
    put16(b, o + 14, win); b[o + 16] = 0; b[o + 17] = 0; b[o + 18] = 0; b[o + 19] = 0;
    if (syn) {
      // MSS 1460, NOP, window scale 7, SACK permitted, NOP, NOP
      b.set([2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 1, 1], o + 20);
    }
    this.send();
  }

  udp(t: number, src: number, sport: number, dst: number, dport: number, len: number): void {
    this.ip(t, src, dst, 17, 8 + len);
    const b = this.buf;
    const o = ETH + IP;
    put16(b, o, sport); put16(b, o + 2, dport); put16(b, o + 4, 8 + len); b[o + 6] = 0; b[o + 7] = 0;
    this.send();
  }

  /** Offset where a UDP payload starts (write it before calling `udp`). */
  static readonly UDP_PAYLOAD = ETH + IP + 8;
}

function put16(b: Uint8Array, o: number, v: number): void { b[o] = v >>> 8; b[o + 1] = v & 0xff; }
function put32(b: Uint8Array, o: number, v: number): void { b[o] = v >>> 24; b[o + 1] = (v >>> 16) & 0xff; b[o + 2] = (v >>> 8) & 0xff; b[o + 3] = v & 0xff; }
const ipv4 = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

/** A name as DNS labels (ending with the root label). */
function encodeName(name: string): Uint8Array {
  const parts = name.split('.').filter((p) => p.length > 0);
  const out: number[] = [];
  for (const p of parts) { out.push(p.length); for (let i = 0; i < p.length; i++) out.push(p.charCodeAt(i)); }
  out.push(0);
  return Uint8Array.from(out);
}

/** Writes a DNS message (one question; a response has one A answer unless NXDOMAIN) at the UDP payload; returns its length. */
function writeDns(b: Uint8Array, id: number, response: boolean, rcode: number, qname: Uint8Array, qnameLen: number, qtype: number): number {
  const o = FrameWriter.UDP_PAYLOAD;
  put16(b, o, id);
  put16(b, o + 2, response ? 0x8180 | rcode : 0x0100);
  put16(b, o + 4, 1);
  const answers = response && rcode === 0 ? 1 : 0;
  put16(b, o + 6, answers); put16(b, o + 8, 0); put16(b, o + 10, 0);
  b.set(qname.subarray(0, qnameLen), o + 12);
  let p = o + 12 + qnameLen;
  put16(b, p, qtype); put16(b, p + 2, 1); p += 4;
  if (answers) {
    put16(b, p, 0xc00c); put16(b, p + 2, 1); put16(b, p + 4, 1); put32(b, p + 6, 300); put16(b, p + 10, 4); put32(b, p + 12, ipv4(192, 0, 2, 10));
    p += 16;
  }
  return p - o;
}

// ---------------------------------------------------------------------------
// Activities: one object per ongoing exchange, in a min-heap by next packet time

const enum Kind { TCP, DNS, MEDIA, SCAN, TUNNEL, SPAWN_TCP, SPAWN_DNS, SPAWN_MEDIA, SPAWN_BEACON, SPAWN_SCAN }

class Activity {
  kind: Kind = Kind.TCP;
  t = 0;
  /** Insertion order, to break ties deterministically. */
  order = 0;
  state = 0;
  client = 0;
  server = 0;
  sport = 0;
  dport = 0;
  seqC = 0;
  seqS = 0;
  rtt = 0.02;
  /** Server segments left in this round, rounds left, segments since the last client ACK. */
  left = 0;
  rounds = 0;
  unacked = 0;
  reset = false;
  refused = false;
  end = 0;
  /** DNS: id, name index, qtype, rcode, answered. */
  id = 0;
  name = 0;
  qtype = 1;
  rcode = 0;
  answered = true;
  count = 0;
  horizontal = false;
}

class Heap {
  private items: Activity[] = [];
  private order = 0;
  get size(): number { return this.items.length; }
  push(a: Activity): void {
    a.order = this.order++;
    const items = this.items;
    items.push(a);
    let i = items.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(a, items[p]!)) break;
      items[i] = items[p]!;
      i = p;
    }
    items[i] = a;
  }
  pop(): Activity | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && less(items[r]!, items[l]!) ? r : l;
      if (!less(items[c]!, last)) break;
      items[i] = items[c]!;
      i = c;
    }
    items[i] = last;
    return top;
  }
}
const less = (a: Activity, b: Activity): boolean => a.t < b.t || (a.t === b.t && a.order < b.order);

// ---------------------------------------------------------------------------
// The traffic

const SERVERS = 400;
const RESOLVERS = [ipv4(10, 0, 0, 53), ipv4(10, 0, 1, 53)];
const BEACON_HOST = ipv4(10, 9, 9, 9);
const C2 = ipv4(203, 0, 113, 66);
const TUNNEL_HOST = ipv4(10, 7, 7, 7);
const SCANNERS = [ipv4(198, 51, 100, 7), ipv4(198, 51, 100, 8), ipv4(10, 66, 0, 5)];
const SERVER_PORTS = [443, 443, 443, 443, 443, 443, 80, 80, 80, 22, 8080, 3306];
const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const TUNNEL_DOMAIN = ['t', 'exfil-example', 'net'];
/** Share of the packets per traffic type (the rest: beacon, scans, tunnel). */
const SHARE_TCP = 0.62;
const SHARE_DNS = 0.12;
const SHARE_MEDIA = 0.25;
/** Rough packets per activity, for the initial arrival rates (adapted as the run goes). */
const PACKETS_TCP = 24;
const PACKETS_DNS = 2;
const PACKETS_MEDIA = 2000;
/** Clients active at a time (the population slides over the run). */
const ACTIVE_CLIENTS = 2000;

class Traffic {
  private readonly heap = new Heap();
  private readonly pool: Activity[] = [];
  private readonly rng: Rng;
  private readonly servers: Uint32Array;
  private readonly names: Uint8Array[];
  private readonly podNames: Uint8Array[];
  private readonly qname = new Uint8Array(256);
  private readonly seen: Uint8Array;
  private readonly duration: number;
  private readonly rate: number;
  distinctSources = 0;
  /** Arrival-rate multiplier, set each simulated minute from the shortfall against the target line. */
  private scale = 1;
  /** Activities started and packets produced, per kind (TCP, DNS, MEDIA), for the arrival rates. */
  private readonly started = new Float64Array(3);
  private readonly produced = new Float64Array(3);
  private nextAdapt = 60;
  /** Next client id never used yet. */
  private nextNew = 0;

  constructor(private readonly w: FrameWriter, private readonly opts: Options) {
    this.rng = new Rng(opts.seed);
    this.duration = opts.hours * 3600;
    this.rate = opts.packets / this.duration;
    this.seen = new Uint8Array(Math.ceil(opts.sources / 8) + 1);
    this.servers = new Uint32Array(SERVERS);
    for (let i = 0; i < SERVERS; i++) this.servers[i] = i % 2 ? ipv4(10, 200, i >> 8, i & 0xff) : ipv4(198, 18, i >> 8, (i & 0xff) | 1);
    const subs = ['www', 'api', 'cdn', 'img', 'static', 'mail', 'login', 'assets'];
    this.names = [];
    for (let d = 0; d < 300; d++) for (const s of subs) this.names.push(encodeName(`${s}.site${d}.example${d % 7}.com`));
    for (let i = 0; i < 200; i++) this.names.push(encodeName(`d${(0x1000000 + i * 7919).toString(16)}abc.cloudfront.net`));
    this.podNames = [];
    for (let i = 0; i < 50; i++) this.podNames.push(encodeName(`svc${i}.prod.svc.cluster.local`));
    // Spawners and fixed events.
    this.spawner(Kind.SPAWN_TCP, 0);
    this.spawner(Kind.SPAWN_DNS, 0);
    this.spawner(Kind.SPAWN_MEDIA, 0);
    this.spawner(Kind.SPAWN_BEACON, 5);
    this.spawner(Kind.SPAWN_SCAN, this.rng.range(1800, 7200));
    const tunnel = this.take(Kind.TUNNEL, this.duration * 0.25);
    tunnel.end = this.duration * 0.31;
    tunnel.client = TUNNEL_HOST;
    this.heap.push(tunnel);
  }

  private take(kind: Kind, t: number): Activity {
    const a = this.pool.pop() ?? new Activity();
    a.kind = kind; a.t = t; a.state = 0; a.count = 0; a.id = 0; a.unacked = 0; a.reset = false; a.refused = false; a.answered = true;
    return a;
  }

  private release(a: Activity): void { if (this.pool.length < 100_000) this.pool.push(a); }

  private spawner(kind: Kind, t: number): void { this.heap.push(this.take(kind, t)); }

  /**
   * A client at time `t`: the next new one when the sweep through the
   * `sources` ids is behind time, else one of the ACTIVE_CLIENTS most recent
   * (returning clients). Every id is used by the end of the run.
   */
  private client(t: number): number {
    const due = Math.min(this.opts.sources, Math.ceil((t / this.duration) * this.opts.sources) + 1);
    const id = this.nextNew < due ? this.nextNew++ : Math.max(0, this.nextNew - ACTIVE_CLIENTS) + this.rng.int(Math.min(ACTIVE_CLIENTS, Math.max(1, this.nextNew)));
    const byte = id >> 3;
    const bit = 1 << (id & 7);
    if (byte < this.seen.length && !(this.seen[byte]! & bit)) { this.seen[byte]! |= bit; this.distinctSources++; }
    return ipv4(10, 1 + (id >> 16), (id >> 8) & 0xff, id & 0xff);
  }

  /** Runs until packet time reaches the end; calls `tick(t)` before each packet time it handles. */
  run(tick: (t: number) => void): void {
    const end = this.duration;
    for (let a = this.heap.pop(); a !== undefined; a = this.heap.pop()) {
      if (a.t >= end) break;
      tick(a.t);
      if (a.t >= this.nextAdapt) this.adapt(a.t);
      const before = this.w.packets;
      const more = this.step(a);
      if (a.kind <= Kind.MEDIA) this.produced[a.kind] += this.w.packets - before;
      if (more) this.heap.push(a); else this.release(a);
    }
  }

  /** Steers the arrival rates so the packets so far follow the target line. */
  private adapt(t: number): void {
    this.nextAdapt = t + 60;
    const shortfall = this.rate * 1.01 * t - this.w.packets;
    this.scale = Math.min(2, Math.max(0.5, 1 + shortfall / (this.rate * 900)));
  }

  /** Packets per activity of a kind so far (the estimate until 100 have started). */
  private mean(kind: Kind.TCP | Kind.DNS | Kind.MEDIA, estimate: number): number {
    const n = this.started[kind]!;
    return n < 100 ? estimate : Math.max(1, this.produced[kind]! / n);
  }

  /** Handles one activity at its time; true when it goes on (its `t` moved). */
  private step(a: Activity): boolean {
    const r = this.rng;
    switch (a.kind) {
      case Kind.SPAWN_TCP: {
        const s = this.take(Kind.TCP, a.t);
        s.client = this.client(a.t);
        const k = r.int(SERVERS);
        s.server = this.servers[k]!;
        s.dport = SERVER_PORTS[k % SERVER_PORTS.length]!;
        s.sport = 1024 + r.int(64000);
        s.seqC = r.u32(); s.seqS = r.u32();
        s.rtt = r.range(0.002, 0.08);
        s.rounds = r.next() < 0.8 ? 1 : 2 + r.int(6);
        s.refused = r.next() < 0.03;
        s.reset = r.next() < 0.05;
        this.heap.push(s);
        this.started[Kind.TCP]++;
        a.t += r.exp(this.mean(Kind.TCP, PACKETS_TCP) / (this.rate * SHARE_TCP * this.scale));
        return true;
      }
      case Kind.SPAWN_DNS: {
        const s = this.take(Kind.DNS, a.t);
        const pod = r.next() < 0.05;
        s.client = pod ? ipv4(10, 244, r.int(4), 2 + r.int(200)) : this.client(a.t);
        s.server = RESOLVERS[r.int(RESOLVERS.length)]!;
        s.sport = 1024 + r.int(64000);
        s.id = r.int(65536);
        s.name = pod ? -1 - r.int(this.podNames.length) : r.int(this.names.length);
        s.qtype = r.next() < 0.7 ? 1 : 28;
        s.rcode = pod ? 3 : r.next() < 0.03 ? 3 : 0;
        s.answered = r.next() >= 0.01;
        s.rtt = r.range(0.002, 0.04);
        this.heap.push(s);
        this.started[Kind.DNS]++;
        a.t += r.exp(this.mean(Kind.DNS, PACKETS_DNS) / (this.rate * SHARE_DNS * this.scale));
        return true;
      }
      case Kind.SPAWN_MEDIA: {
        const s = this.take(Kind.MEDIA, a.t);
        s.client = this.client(a.t);
        s.server = ipv4(10, 50, 0, 1 + r.int(20));
        s.sport = 16384 + 2 * r.int(8000);
        s.dport = 16384 + 2 * r.int(8000);
        s.end = a.t + r.range(20, 60);
        this.heap.push(s);
        this.started[Kind.MEDIA]++;
        a.t += r.exp(this.mean(Kind.MEDIA, PACKETS_MEDIA) / (this.rate * SHARE_MEDIA * this.scale));
        return true;
      }
      case Kind.SPAWN_BEACON: {
        const s = this.take(Kind.TCP, a.t);
        s.client = BEACON_HOST; s.server = C2; s.dport = 443; s.sport = 40000 + r.int(20000);
        s.seqC = r.u32(); s.seqS = r.u32(); s.rtt = 0.03; s.rounds = 1; s.left = 1;
        s.id = -1; // fixed sizes
        this.heap.push(s);
        a.t += 30;
        return true;
      }
      case Kind.SPAWN_SCAN: {
        const s = this.take(Kind.SCAN, a.t);
        s.client = SCANNERS[r.int(SCANNERS.length)]!;
        s.horizontal = r.next() < 0.4;
        s.server = this.servers[1 + 2 * r.int(SERVERS / 2)]!; // an internal server
        s.sport = 40000 + r.int(20000);
        s.count = 0;
        this.heap.push(s);
        a.t += r.range(7200, 14400);
        return true;
      }
      case Kind.TCP: return this.tcpStep(a);
      case Kind.DNS: return this.dnsStep(a);
      case Kind.MEDIA: {
        const out = (a.count & 1) === 0;
        if (out) this.w.udp(a.t, a.client, a.sport, a.server, a.dport, 160 + r.int(20));
        else this.w.udp(a.t, a.server, a.dport, a.client, a.sport, 160 + r.int(20));
        a.count++;
        a.t += out ? 0.001 + r.next() * 0.002 : 0.017 + r.next() * 0.002;
        return a.t < a.end;
      }
      case Kind.SCAN: return this.scanStep(a);
      case Kind.TUNNEL: {
        // A TXT query with two 30-character base32 labels, its answer 20 ms later; two a second.
        const q = this.qname;
        if (a.state === 0) {
          let n = 0;
          for (let l = 0; l < 2; l++) { q[n++] = 30; for (let i = 0; i < 30; i++) q[n++] = B32.charCodeAt(r.int(32)); }
          for (const label of TUNNEL_DOMAIN) { q[n++] = label.length; for (let i = 0; i < label.length; i++) q[n++] = label.charCodeAt(i); }
          q[n++] = 0;
          a.name = n;
          a.id = (a.id + 1) & 0xffff;
          this.w.udp(a.t, a.client, 53000, RESOLVERS[0]!, 53, writeDns(this.w.buf, a.id, false, 0, q, n, 16));
          a.state = 1;
          a.t += 0.02;
          return true;
        }
        this.w.udp(a.t, RESOLVERS[0]!, 53, a.client, 53000, writeDns(this.w.buf, a.id, true, 0, q, a.name, 16));
        a.state = 0;
        a.t += 0.48;
        return a.t < a.end;
      }
    }
  }

  private tcpStep(a: Activity): boolean {
    const w = this.w;
    const r = this.rng;
    const half = a.rtt / 2;
    const beacon = a.id === -1;
    switch (a.state) {
      case 0: // SYN
        w.tcp(a.t, a.client, a.sport, a.server, a.dport, a.seqC, 0, TCP_SYN, 0);
        a.state = a.refused ? 9 : 1; a.t += half; return true;
      case 1: // SYN/ACK
        w.tcp(a.t, a.server, a.dport, a.client, a.sport, a.seqS, a.seqC + 1, TCP_SYN | TCP_ACK, 0);
        a.seqC = (a.seqC + 1) >>> 0; a.seqS = (a.seqS + 1) >>> 0;
        a.state = 2; a.t += half; return true;
      case 2: // ACK
        w.tcp(a.t, a.client, a.sport, a.server, a.dport, a.seqC, a.seqS, TCP_ACK, 0);
        a.state = 3; a.t += 0.0005; return true;
      case 3: { // request
        const len = beacon ? 310 : 200 + r.int(600);
        w.tcp(a.t, a.client, a.sport, a.server, a.dport, a.seqC, a.seqS, TCP_PSH | TCP_ACK, len);
        a.seqC = (a.seqC + len) >>> 0;
        a.left = beacon ? 1 : 1 + r.int(16);
        a.unacked = 0;
        a.state = 4; a.t += half + 0.001; return true;
      }
      case 4: { // server data
        const len = beacon ? 520 : a.left === 1 ? 100 + r.int(1348) : 1448;
        w.tcp(a.t, a.server, a.dport, a.client, a.sport, a.seqS, a.seqC, a.left === 1 ? TCP_PSH | TCP_ACK : TCP_ACK, len);
        a.seqS = (a.seqS + len) >>> 0;
        a.left--; a.unacked++;
        if (a.unacked >= 2 || a.left === 0) { a.state = 5; a.t += half; } else a.t += 0.0002;
        return true;
      }
      case 5: // client ACK
        w.tcp(a.t, a.client, a.sport, a.server, a.dport, a.seqC, a.seqS, TCP_ACK, 0);
        a.unacked = 0;
        if (a.left > 0) { a.state = 4; a.t += half; return true; }
        if (--a.rounds > 0) { a.state = 3; a.t += r.range(0.5, 20); return true; }
        a.state = 6; a.t += beacon ? 0.05 : r.range(0.01, 2); return true;
      case 6: // close: RST, or FIN from the client
        if (a.reset) { w.tcp(a.t, a.client, a.sport, a.server, a.dport, a.seqC, a.seqS, TCP_RST | TCP_ACK, 0); return false; }
        w.tcp(a.t, a.client, a.sport, a.server, a.dport, a.seqC, a.seqS, TCP_FIN | TCP_ACK, 0);
        a.seqC = (a.seqC + 1) >>> 0;
        a.state = 7; a.t += half; return true;
      case 7: // server FIN
        w.tcp(a.t, a.server, a.dport, a.client, a.sport, a.seqS, a.seqC, TCP_FIN | TCP_ACK, 0);
        a.seqS = (a.seqS + 1) >>> 0;
        a.state = 8; a.t += half; return true;
      case 8: // last ACK
        w.tcp(a.t, a.client, a.sport, a.server, a.dport, a.seqC, a.seqS, TCP_ACK, 0);
        return false;
      case 9: // refused: RST/ACK from the server
        w.tcp(a.t, a.server, a.dport, a.client, a.sport, 0, a.seqC + 1, TCP_RST | TCP_ACK, 0, 0);
        return false;
      default:
        return false;
    }
  }

  private dnsStep(a: Activity): boolean {
    const name = a.name >= 0 ? this.names[a.name]! : this.podNames[-1 - a.name]!;
    const len = writeDns(this.w.buf, a.id, a.state === 1, a.rcode, name, name.length, a.qtype);
    if (a.state === 0) {
      this.w.udp(a.t, a.client, a.sport, a.server, 53, len);
      if (!a.answered) return false;
      a.state = 1; a.t += a.rtt; return true;
    }
    this.w.udp(a.t, a.server, 53, a.client, a.sport, len);
    return false;
  }

  /** 1024 probes at 500 a second: ports 1-1024 of one host (RST back, SYN/ACK from 22/80/443), or port 445 on 1024 hosts (no answer). */
  private scanStep(a: Activity): boolean {
    const w = this.w;
    if (a.state === 0) {
      const port = a.horizontal ? 445 : 1 + a.count;
      const target = a.horizontal ? ipv4(10, 30, a.count >> 8, a.count & 0xff) : a.server;
      w.tcp(a.t, a.client, a.sport, target, port, 1000, 0, TCP_SYN, 0, 1024);
      a.state = a.horizontal ? 0 : 1;
      if (a.horizontal) { a.count++; a.t += 0.002; return a.count < 1024; }
      a.t += 0.0004; return true;
    }
    const port = 1 + a.count;
    const open = port === 22 || port === 80 || port === 443;
    w.tcp(a.t, a.server, port, a.client, a.sport, open ? 5000 : 0, 1001, open ? TCP_SYN | TCP_ACK : TCP_RST | TCP_ACK, 0, open ? 65535 : 0);
    a.count++;
    a.state = 0;
    a.t += 0.0016;
    return a.count < 1024;
  }
}

// ---------------------------------------------------------------------------
// Main

interface Row { hour: number; packets: number; rate: number; raw: number; rss: number; heap: number; heapTotal: number; buffers: number; flows: number; findings: number }

function main(): number {
  const opts = parseArgs(process.argv.slice(2));
  const analyzers: Record<string, { enabled: boolean }> = {};
  for (const id of opts.disable) analyzers[id] = { enabled: false };
  const config = buildConfig(opts.disable.length ? { analyzers } : undefined);
  const findings = new Map<string, number>();
  let findingCount = 0;
  // As the agent's capture thread runs it: tables resident from the start, young generation capped.
  const pipeline = new Pipeline(config, {
    onWindow: (out) => {
      for (const f of out.findings) { findings.set(f.type, (findings.get(f.type) ?? 0) + 1); findingCount++; }
    },
    commitMemory: true,
  });
  const writer = new FrameWriter(pipeline);
  const traffic = new Traffic(writer, opts);
  const gc = opts.gc ? fullGc() : undefined;

  const MB = 1024 * 1024;
  const rows: Row[] = [];
  const started = performance.now();
  let lastWall = started;
  let lastPackets = 0;
  let nextHour = 3600;
  const lastHour = Math.ceil(opts.hours);
  console.log(`soak: ${opts.hours} h of packet time, target ${opts.packets.toLocaleString('en')} packets, ${opts.sources.toLocaleString('en')} sources, seed ${opts.seed}` +
    (opts.disable.length ? `, disabled: ${opts.disable.join(',')}` : ''));
  if (gc) console.log('RSS GC, heap used, heap total and buffers: after a full garbage collection');
  console.log(' hour     packets  packets/s   RSS MB  RSS GC MB  heap used MB  heap total MB  buffers MB  flows  findings');
  const measure = (hour: number): void => {
    const now = performance.now();
    const raw = process.memoryUsage.rss();
    gc?.();
    const mem = process.memoryUsage();
    const row: Row = {
      hour,
      packets: writer.packets,
      rate: (writer.packets - lastPackets) / Math.max(1e-3, (now - lastWall) / 1000),
      raw: raw / MB,
      rss: mem.rss / MB,
      heap: mem.heapUsed / MB,
      heapTotal: mem.heapTotal / MB,
      buffers: mem.arrayBuffers / MB,
      flows: pipeline.flows.active,
      findings: findingCount,
    };
    rows.push(row);
    lastWall = performance.now();
    lastPackets = writer.packets;
    console.log(`${String(hour).padStart(5)} ${String(row.packets).padStart(11)} ${row.rate.toFixed(0).padStart(10)} ${row.raw.toFixed(1).padStart(8)} ${(gc ? row.rss.toFixed(1) : '-').padStart(10)} ${row.heap.toFixed(1).padStart(13)} ${row.heapTotal.toFixed(1).padStart(14)} ${row.buffers.toFixed(1).padStart(11)} ${String(row.flows).padStart(6)} ${String(row.findings).padStart(9)}`);
  };
  traffic.run((t) => {
    while (t >= nextHour) { measure(nextHour / 3600); nextHour += 3600; }
  });
  // The last hour is measured at the end of packet time, before the pipeline ends every flow.
  while (nextHour / 3600 <= lastHour) { measure(nextHour / 3600); nextHour += 3600; }
  pipeline.finish();
  const seconds = (performance.now() - started) / 1000;

  console.log('');
  console.log(`packets ${writer.packets.toLocaleString('en')} in ${seconds.toFixed(1)} s (${(writer.packets / seconds).toFixed(0)} packets/s), distinct client sources ${traffic.distinctSources.toLocaleString('en')}, windows of ${config.windows.seconds} s`);
  console.log(`flows: created tcp ${pipeline.flows.tcpStreams.toLocaleString('en')}, udp ${pipeline.flows.udpStreams.toLocaleString('en')}, evicted ${pipeline.flows.evicted}; internal errors ${pipeline.unexpected}${pipeline.unexpected ? ` (first: ${String(pipeline.lastError)})` : ''}`);
  console.log(`findings: ${[...findings].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  const base = rows.find((r) => r.hour === 2);
  const last = rows.at(-1);
  if (base === undefined || last === undefined || last.hour <= 2) {
    console.log('RSS: fewer than 3 hours, not judged');
    return 0;
  }
  const line = (what: string, a: number, b: number): string => `${what} hour ${last.hour} / hour 2 = ${a.toFixed(1)} / ${b.toFixed(1)} MB = ${(a / b).toFixed(3)}`;
  const judged = gc ? last.rss / base.rss : last.raw / base.raw;
  const pass = Math.abs(judged - 1) <= LIMIT_RATIO;
  const verdict = `${pass ? 'PASS' : 'FAIL'} (limit ±${LIMIT_RATIO * 100} %)`;
  if (gc) {
    console.log(`${line('RSS as it is:', last.raw, base.raw)} (not judged: includes uncollected garbage)`);
    console.log(`${line('RSS after GC:', last.rss, base.rss)}: ${verdict}`);
  } else {
    console.log(`${line('RSS:', last.raw, base.raw)}: ${verdict}`);
  }
  return pass ? 0 : 1;
}

/** A function running a full garbage collection (V8's gc, exposed at run time), or undefined when unavailable. */
function fullGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    if (typeof gc === 'function') return () => { gc(); };
  } catch {
    // fall through
  }
  console.error('soak: cannot run a full GC here; measuring RSS as it is');
  return undefined;
}

// The pipeline runs in a worker thread with the agent capture thread's limits, as in the agent.
if (isMainThread) {
  const worker = new Worker(new URL(import.meta.url), { argv: process.argv.slice(2), resourceLimits: PIPELINE_THREAD_LIMITS });
  worker.on('message', (code: number) => { process.exitCode = code; });
  worker.on('error', (err) => { console.error(err); process.exitCode = 1; });
} else {
  parentPort!.postMessage(main());
}
