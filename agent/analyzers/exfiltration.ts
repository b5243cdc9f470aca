/**
 * Data exfiltration (analyzers.exfiltration): per (internal source, external
 * destination) pair, the bytes (frame lengths on the wire, as the flow table
 * counts them) the internal host sent to the external one and received from
 * it over the look-back (`lookback` seconds of packet time). A finding (type
 * `exfiltration`) when
 *
 *   sent >= minBytes  and  sent >= minRatio * received
 *
 * (an upload, not a download or a balanced exchange). Only connections the
 * internal host opened count: its TCP handshakes and UDP flows it started
 * (the flow table's client). A TCP flow whose handshake was not captured
 * counts unless the internal side is on a well-known port (< 1024) and the
 * external one not: then the internal host is a server answering the outside
 * (a public web server is not exfiltrating). Internal to internal traffic,
 * loopback (unless networks.includeLoopback), multicast, broadcast and
 * link-local addresses never count.
 *
 * Severity: the destination port that received the most bytes of the pair is
 * the finding's port. In commonPorts: info (a large backup or upload to a
 * cloud service looks the same); elsewhere: warning, and critical from ten
 * times minBytes.
 *
 * Evaluation: a pair is judged over the look-back ending at each bucket
 * boundary it has traffic after (sliding, 10 buckets per look-back) and at
 * each window's end; re-reported at most once per suppressFor with the
 * evidence of that moment.
 *
 * Bounded: pairs in a BoundedMap of maxKeys (LRU, evictions counted), each
 * with a fixed ring of buckets for sent and received bytes (SeriesRing) and
 * at most MAX_PORTS ports; a pair with nothing left in its look-back is
 * dropped at window close. Per flow, a cached reference: no per-packet
 * allocation.
 */
import { formatIPv6 } from '../../common/address.js';
import type { FindingSeverity } from '../../common/report.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, FlowState, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowSpan } from './analyzer.js';
import { BoundedMap } from './lib/bounded-map.js';
import { isLoopback } from './lib/networks.js';
import { SeriesRing, isSpecialAddress } from './lib/series-ring.js';
import { Suppressor } from './lib/suppressor.js';
import { round1, addrName } from './lib/format.js';

const SENT = 0;
const RECEIVED = 1;
const BUCKETS = 10;
/** Destination ports remembered per pair (more go to "other"). */
const MAX_PORTS = 8;
/** Sent bytes this many times minBytes to an unusual port make the finding critical. */
const CRITICAL_FACTOR = 10;

/** An address: the IPv4 word itself (cheap keys, formatted only to report), IPv6 as text. */
type Addr = number | string;

class Pair {
  readonly ports: number[] = [];
  readonly portBytes: number[] = [];
  otherPortBytes = 0;
  flows = 0;
  dead = false;
  lastBucket = -Infinity;
  /** The window (serial) it last had traffic in. */
  window = -1;
  constructor(readonly key: string, readonly internalAddr: Addr, readonly externalAddr: Addr, readonly ring: SeriesRing) {}

  get internal(): string { return addrName(this.internalAddr); }
  get external(): string { return addrName(this.externalAddr); }

  /** Index of `port` in the pair's port table, added if there is room; -1 for "other". */
  portIndex(port: number): number {
    const i = this.ports.indexOf(port);
    if (i >= 0 || this.ports.length >= MAX_PORTS) return i;
    this.ports.push(port);
    this.portBytes.push(0);
    return this.ports.length - 1;
  }
}

export function createExfiltrationAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ExfiltrationAnalyzer(ctx);
}

class ExfiltrationAnalyzer implements Analyzer {
  readonly id = 'exfiltration';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['exfiltration'] { return this.ctx.config.analyzers.exfiltration; }
  private readonly flows: FlowTable;
  private readonly pairs: BoundedMap<string, Pair>;
  private readonly suppressor: Suppressor;
  private readonly commonPorts: Set<number>;
  private readonly touched = new Set<Pair>();
  // per flow slot
  private readonly pairRef: Array<Pair | null>;
  /** The direction in which the internal host sends. */
  private readonly sendDir: Uint8Array;
  private readonly portIdx: Int8Array;
  private readonly scratchA = new Uint32Array(4);
  private readonly scratchB = new Uint32Array(4);
  /** Counts closed windows. */
  private windowSerial = 0;
  // per window
  private findings = 0;
  private suppressed = 0;
  private expired = 0;
  private evictedBefore = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    this.flows = ctx.flows;
    const n = ctx.flows.capacity;
    this.pairRef = new Array<Pair | null>(n).fill(null);
    this.sendDir = new Uint8Array(n);
    this.portIdx = new Int8Array(n);
    this.commonPorts = new Set(this.cfg.commonPorts);
    this.pairs = new BoundedMap<string, Pair>(Math.max(1, this.cfg.maxKeys), (_key, p) => this.drop(p));
    this.suppressor = new Suppressor(this.cfg.suppressFor, Math.max(1, this.cfg.maxKeys));
  }

  onFlowStart(slot: number): void {
    this.pairRef[slot] = null;
    const flows = this.flows;
    const version = flows.version[slot]!;
    const a = this.scratchA;
    const b = this.scratchB;
    for (let i = 0; i < 4; i++) { a[i] = flows.addrA[slot * 4 + i]!; b[i] = flows.addrB[slot * 4 + i]!; }
    const nets = this.ctx.networks;
    const aIn = nets.isInternal(version, a);
    const bIn = nets.isInternal(version, b);
    if (aIn === bIn) return;
    const ext = aIn ? b : a;
    if (isSpecialAddress(version, ext)) return;
    if (!this.ctx.config.networks.includeLoopback && (isLoopback(version, a) || isLoopback(version, b))) return;
    const internalIsA = aIn;
    const clientIsA = flows.clientIsA[slot] === 1;
    const internalIsClient = internalIsA === clientIsA;
    const internalPort = internalIsA ? flows.portA[slot]! : flows.portB[slot]!;
    const externalPort = internalIsA ? flows.portB[slot]! : flows.portA[slot]!;
    const proto = flows.proto[slot]!;
    if (proto === Transport.TCP && flows.state[slot] === FlowState.ESTABLISHED) {
      // Handshake not captured: who opened it is a guess from the ports.
      if (internalPort < 1024 && externalPort >= 1024) return;
    } else if (!internalIsClient) {
      return;
    }
    const int = internalIsA ? a : b;
    const internal: Addr = version === 4 ? int[0]! : formatIPv6(int);
    const external: Addr = version === 4 ? ext[0]! : formatIPv6(ext);
    const key = `${internal}>${external}`;
    let p = this.pairs.get(key);
    if (p === undefined) {
      p = new Pair(key, internal, external, new SeriesRing(this.cfg.lookback, BUCKETS, 2));
      this.pairs.set(key, p);
    }
    p.flows++;
    this.pairRef[slot] = p;
    this.sendDir[slot] = internalIsClient ? Dir.CLIENT_TO_SERVER : Dir.SERVER_TO_CLIENT;
    this.portIdx[slot] = p.portIndex(externalPort);
  }

  onFlowEnd(slot: number): void {
    this.pairRef[slot] = null;
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    if (slot < 0) return;
    const p = this.pairRef[slot];
    if (p === null || p === undefined) return;
    if (p.dead) { this.pairRef[slot] = null; return; }
    const now = v.ts;
    const k = p.ring.bucketOf(now);
    if (k > p.lastBucket) {
      if (p.lastBucket !== -Infinity) this.evaluate(p, k);
      p.lastBucket = k;
      this.pairs.get(p.key); // recency follows activity
    }
    if (p.window !== this.windowSerial) { p.window = this.windowSerial; this.touched.add(p); }
    const len = v.wireLen;
    if (dir === this.sendDir[slot]) {
      p.ring.add(now, SENT, len);
      const i = this.portIdx[slot]!;
      if (i >= 0) p.portBytes[i] += len; else p.otherPortBytes += len;
    } else {
      p.ring.add(now, RECEIVED, len);
    }
  }

  private drop(p: Pair): void {
    p.dead = true;
    this.touched.delete(p);
  }

  /** Judges a pair over the look-back ending at bucket boundary `b`. */
  private evaluate(p: Pair, b: number): void {
    const cfg = this.cfg;
    const sent = p.ring.sumBefore(SENT, b);
    if (sent <= 0 || sent < cfg.minBytes) return;
    const received = p.ring.sumBefore(RECEIVED, b);
    if (sent < cfg.minRatio * received) return;
    const end = b * p.ring.bucketSeconds;
    if (!this.suppressor.allow(p.key, end)) { this.suppressed++; return; }
    this.findings++;
    // The port that took the most bytes (ties: the first seen).
    let port = -1;
    let most = -1;
    p.ports.forEach((x, i) => { if (p.portBytes[i]! > most) { most = p.portBytes[i]!; port = x; } });
    const unusual = port < 0 || !this.commonPorts.has(port);
    const severity: FindingSeverity = !unusual ? 'info' : sent >= CRITICAL_FACTOR * cfg.minBytes ? 'critical' : 'warning';
    const ratio = received > 0 ? round1(sent / received) : null;
    const ports = p.ports.map((x, i) => `${x}: ${p.portBytes[i]}`).join(', ') + (p.otherPortBytes > 0 ? `, other: ${p.otherPortBytes}` : '');
    const internal = p.internal;
    const external = p.external;
    this.ctx.report({
      type: 'exfiltration',
      severity,
      key: `${internal}->${external}`,
      summary: `${internal} sent ${mb(sent)} to external host ${external}${port >= 0 ? ` (port ${port}${unusual ? ', unusual' : ''})` : ''} over the last ${cfg.lookback} s`
        + ` and received ${mb(received)}${ratio === null ? '' : ` (${ratio}:1)`}.`,
      evidence: {
        source: internal,
        destination: external,
        port: port >= 0 ? port : null,
        unusualPort: unusual,
        // Bytes sent per destination port since the pair was first seen (at most MAX_PORTS ports, then "other").
        ports,
        sentBytes: sent,
        receivedBytes: received,
        ratio,
        lookbackSeconds: cfg.lookback,
        sentBitsPerSecond: Math.round((sent * 8) / cfg.lookback),
        flows: p.flows,
        minBytes: cfg.minBytes,
        minRatio: cfg.minRatio,
      },
      host: internal,
    });
  }

  closeWindow(span: WindowSpan): Metrics {
    for (const p of this.touched) this.evaluate(p, p.ring.boundaryAt(span.relEnd));
    this.touched.clear();
    this.windowSerial++;
    this.sweep(span.relEnd);
    const evicted = this.pairs.evicted;
    const metrics: Metrics = {
      tracked: this.pairs.size,
      maxKeys: this.pairs.maxKeys,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
      expired: this.expired,
      findings: this.findings,
      suppressed: this.suppressed,
      suppressorEvicted: this.suppressor.evicted,
    };
    this.evictedBefore = evicted;
    this.findings = this.suppressed = this.expired = 0;
    return metrics;
  }

  /** Drops pairs with nothing left in their look-back (oldest activity first). */
  private sweep(now: number): void {
    const drop: Pair[] = [];
    for (const p of this.pairs.values()) {
      if (p.ring.boundaryAt(now) - p.lastBucket <= BUCKETS) break;
      drop.push(p);
    }
    for (const p of drop) {
      this.pairs.delete(p.key);
      this.drop(p);
      this.expired++;
    }
  }
}

const mb = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${n.toLocaleString('en-US')} bytes`);
