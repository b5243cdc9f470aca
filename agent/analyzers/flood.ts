/**
 * Floods (analyzers.flood): per destination address, over the look-back
 * (`lookback` seconds of packet time; rates are the look-back's count divided
 * by its length, never averaged over the capture):
 *
 * - SYN flood: SYNs (without ACK) per second >= synRate, and a share of the
 *   connection attempts in the look-back never completed >= halfOpenRatio
 *   (attempts: flows that began with a SYN; completed: the client's ACK of
 *   the SYN/ACK, or data from the server, was seen). A busy server that
 *   completes its handshakes is not flooded.
 * - UDP flood: UDP packets per second >= udpRate, counting what is sent
 *   towards the flow's server and any packet of a flow whose client never
 *   sent (unsolicited "replies": reflection / amplification). Replies to the
 *   destination's own requests (a large QUIC or streaming download) do not
 *   count.
 * - ICMP flood: ICMP / ICMPv6 packets per second >= icmpRate, counted the
 *   same way (echo requests and unsolicited messages, not echo replies to the
 *   destination's own pings).
 *
 * Each finding (type `flood`, evidence.kind syn | udp | icmp) gives the rate,
 * the packets in the look-back, the half-open ratio (SYN), the number of
 * distinct sources seen in the look-back (exact up to MAX_SOURCES per
 * destination, "at least" past it) and the top sources; DISTRIBUTED sources
 * or more make it a DDoS (critical), fewer a warning.
 *
 * Evaluation: a destination is judged over the look-back ending at each
 * bucket boundary it has traffic after (a sliding look-back in buckets of
 * 1 s up to a 60 s look-back, of lookback / 60 beyond), and at each window's
 * end. The same flood (kind and destination) is reported again at most once
 * per suppressFor (Suppressor), with the evidence of that moment.
 *
 * Bounded: destinations in a BoundedMap of maxKeys (LRU, evictions counted),
 * each with a fixed ring of buckets (SeriesRing) and at most MAX_SOURCES
 * sources (all destinations together at most MAX_SOURCE_ENTRIES; a source
 * silent for a look-back makes room); a destination with nothing left in its
 * look-back is dropped at window close. Per flow, typed arrays and one cached
 * reference: no per-packet allocation (a new destination or source allocates,
 * once; IPv4 addresses are map keys as numbers).
 */
import { formatIPv6 } from '../../common/address.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, FlowState, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowSpan } from './analyzer.js';
import { BoundedMap } from './lib/bounded-map.js';
import { isLoopback } from './lib/networks.js';
import { SeriesRing } from './lib/series-ring.js';
import { Suppressor } from './lib/suppressor.js';
import { round1, round3, addrName } from './lib/format.js';

const { SYN, ACK } = TcpFlag;

// Series of a destination's ring.
const SYNS = 0;
const ATTEMPTS = 1;
const COMPLETED = 2;
const UDP = 3;
const ICMP = 4;
const SERIES = 5;

/** Sources tracked per destination (distinct count exact up to here, then "at least"). */
export const MAX_SOURCES = 1024;
/** Sources tracked over all destinations. */
const MAX_SOURCE_ENTRIES = 262_144;
/** Distinct sources that make a flood distributed (DDoS). */
export const DISTRIBUTED = 20;
const TOP_SOURCES = 5;

// Handshake tracking per flow.
const HS_NONE = 0;
/** Began with a SYN, attempt not yet counted. */
const HS_NEW = 1;
/** Attempt counted, not completed yet. */
const HS_PENDING = 2;
const HS_DONE = 3;

const KINDS = ['syn', 'udp', 'icmp'] as const;
type Kind = (typeof KINDS)[number];

/** An address as a map key: the IPv4 word itself (no allocation), IPv6 as text. */
type AddrKey = number | string;

/** A source of a destination's counted packets; `tracked` false: the placeholder for sources past the cap. */
class Source {
  packets = 0;
  lastSeen = -Infinity;
  dead = false;
  constructor(readonly addr: AddrKey, readonly dest: Dest, readonly tracked: boolean) {}
}

class Dest {
  readonly sources = new Map<AddrKey, Source>();
  dead = false;
  /** Newest bucket with counted traffic. */
  lastBucket = -Infinity;
  /** Last time a source could not be tracked (cap reached). */
  overflowAt = -Infinity;
  /** Bucket of the last prune that freed nothing. */
  pruneFailed = -Infinity;
  /** The window (serial) it was last counted in. */
  window = -1;
  readonly untracked: Source;
  constructor(readonly key: AddrKey, readonly ring: SeriesRing) {
    this.untracked = new Source(-1, this, false);
  }
}

export function createFloodAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new FloodAnalyzer(ctx);
}

class FloodAnalyzer implements Analyzer {
  readonly id = 'flood';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['flood'] { return this.ctx.config.analyzers.flood; }
  private readonly flows: FlowTable;
  private readonly buckets: number;
  private readonly dests: BoundedMap<AddrKey, Dest>;
  private readonly suppressor: Suppressor;
  /** Destinations with traffic in the current window (judged at its end). */
  private readonly touched = new Set<Dest>();
  // per flow slot
  private readonly skip: Uint8Array;
  private readonly hs: Uint8Array;
  /** Per flow slot: the source of its counted packets in direction refDir (and through it their destination). */
  private readonly ref: Array<Source | null>;
  private readonly refDir: Uint8Array;
  private readonly scratch = new Uint32Array(4);
  private sourceEntries = 0;
  /** Counts closed windows. */
  private windowSerial = 0;
  // per window
  private findings = 0;
  private suppressed = 0;
  private expired = 0;
  private untrackedSources = 0;
  private evictedBefore = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    this.flows = ctx.flows;
    const n = ctx.flows.capacity;
    this.skip = new Uint8Array(n);
    this.hs = new Uint8Array(n);
    this.ref = new Array<Source | null>(n).fill(null);
    this.refDir = new Uint8Array(n);
    // 1 s buckets for the default 10 s; at most 60 buckets.
    this.buckets = Math.max(1, Math.min(60, Math.ceil(this.cfg.lookback)));
    this.dests = new BoundedMap<AddrKey, Dest>(Math.max(1, this.cfg.maxKeys), (_key, d) => this.drop(d));
    this.suppressor = new Suppressor(this.cfg.suppressFor, Math.max(1, this.cfg.maxKeys));
  }

  onFlowStart(slot: number): void {
    const flows = this.flows;
    this.ref[slot] = null;
    const proto = flows.proto[slot]!;
    let skip = proto !== Transport.TCP && proto !== Transport.UDP && proto !== Transport.ICMP && proto !== Transport.ICMPV6;
    if (!skip && !this.ctx.config.networks.includeLoopback) {
      const v = flows.version[slot]!;
      skip = isLoopback(v, this.words(flows.addrA, slot)) || isLoopback(v, this.words(flows.addrB, slot));
    }
    this.skip[slot] = skip ? 1 : 0;
    this.hs[slot] = proto === Transport.TCP && flows.state[slot] === FlowState.SYN_SENT ? HS_NEW : HS_NONE;
  }

  onFlowEnd(slot: number): void {
    this.ref[slot] = null;
  }

  private addrKey(version: number, a: Uint32Array, slot: number): AddrKey {
    return version === 4 ? a[slot * 4]! : formatIPv6(this.words(a, slot));
  }

  private words(a: Uint32Array, slot: number): Uint32Array {
    const w = this.scratch;
    for (let i = 0; i < 4; i++) w[i] = a[slot * 4 + i]!;
    return w;
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    if (slot < 0 || this.skip[slot] === 1) return;
    const flows = this.flows;
    const t = v.transport;
    const now = v.ts;
    if (t === Transport.TCP) {
      const hs = this.hs[slot]!;
      if ((v.tcpFlags & (SYN | ACK)) === SYN) {
        const src = this.sourceOf(slot, dir, now);
        const d = src.dest;
        this.count(d, SYNS, now);
        this.seen(src, now);
        if (hs === HS_NEW && dir === Dir.CLIENT_TO_SERVER) {
          d.ring.add(now, ATTEMPTS, 1);
          this.hs[slot] = HS_PENDING;
        }
        return;
      }
      if (hs === HS_PENDING) {
        const s = flows.state[slot]!;
        if (s === FlowState.ESTABLISHED || s === FlowState.CLOSING || s === FlowState.CLOSED) {
          this.sourceOf(slot, Dir.CLIENT_TO_SERVER, now).dest.ring.add(now, COMPLETED, 1);
          this.hs[slot] = HS_DONE;
        } else if (s === FlowState.RESET) {
          this.hs[slot] = HS_DONE;
        }
      }
      return;
    }
    // UDP, ICMP: towards the server, or any packet of a flow whose client never sent (unsolicited).
    if (dir !== Dir.CLIENT_TO_SERVER && flows.packets[slot * 2 + Dir.CLIENT_TO_SERVER]! > 0) return;
    const series = t === Transport.UDP ? UDP : t === Transport.ICMP || t === Transport.ICMPV6 ? ICMP : -1;
    if (series < 0) return;
    const src = this.sourceOf(slot, dir, now);
    this.count(src.dest, series, now);
    this.seen(src, now);
  }

  /**
   * The source of a flow direction's packets, and through it their
   * destination: cached per slot (looked up, or created, when the flow or
   * its counted direction changes, or the entry went away).
   */
  private sourceOf(slot: number, dir: number, now: number): Source {
    const cached = this.ref[slot];
    if (cached && this.refDir[slot] === dir && !cached.dead && !cached.dest.dead) return cached;
    const d = this.dest(slot, dir);
    const s = this.source(d, slot, dir, now);
    if (!s.tracked) this.untrackedSources++;
    this.ref[slot] = s;
    this.refDir[slot] = dir;
    return s;
  }

  /** The destination of direction `dir` of a flow, looked up or created. */
  private dest(slot: number, dir: number): Dest {
    const flows = this.flows;
    // The destination of direction dir is the server for client-to-server packets, else the client.
    const dstIsA = (flows.clientIsA[slot] === 1) === (dir === Dir.SERVER_TO_CLIENT);
    const key = this.addrKey(flows.version[slot]!, dstIsA ? flows.addrA : flows.addrB, slot);
    let d = this.dests.get(key);
    if (d === undefined) {
      d = new Dest(key, new SeriesRing(this.cfg.lookback, this.buckets, SERIES));
      this.dests.set(key, d);
    }
    return d;
  }

  /** Counts a packet for a destination, judging it first when it enters a new bucket (a sliding look-back). */
  private count(d: Dest, series: number, now: number): void {
    const k = d.ring.bucketOf(now);
    if (k > d.lastBucket) {
      if (d.lastBucket !== -Infinity) this.evaluate(d, k);
      d.lastBucket = k;
      this.dests.get(d.key); // recency: the LRU order follows activity
    }
    if (d.window !== this.windowSerial) { d.window = this.windowSerial; this.touched.add(d); }
    d.ring.add(now, series, 1);
  }

  /** Counts a packet for its source (a source past the cap only marks the destination's count as a lower bound). */
  private seen(s: Source, now: number): void {
    if (!s.tracked) { s.dest.overflowAt = now; return; }
    if (now - s.lastSeen > this.cfg.lookback) s.packets = 0;
    s.packets++;
    if (now > s.lastSeen) s.lastSeen = now;
  }

  private source(d: Dest, slot: number, dir: number, now: number): Source {
    const flows = this.flows;
    const srcIsA = (flows.clientIsA[slot] === 1) === (dir === Dir.CLIENT_TO_SERVER);
    const addr = this.addrKey(flows.version[slot]!, srcIsA ? flows.addrA : flows.addrB, slot);
    const known = d.sources.get(addr);
    if (known !== undefined) return known;
    if (d.sources.size >= MAX_SOURCES || this.sourceEntries >= MAX_SOURCE_ENTRIES) this.prune(d, now);
    if (d.sources.size >= MAX_SOURCES || this.sourceEntries >= MAX_SOURCE_ENTRIES) return d.untracked;
    const s = new Source(addr, d, true);
    d.sources.set(addr, s);
    this.sourceEntries++;
    return s;
  }

  /** Forgets a destination's sources silent for longer than the look-back (at most once per bucket when it frees nothing). */
  private prune(d: Dest, now: number): void {
    const k = d.ring.bucketOf(now);
    if (d.pruneFailed === k) return;
    const before = d.sources.size;
    for (const [addr, s] of d.sources) {
      if (now - s.lastSeen > this.cfg.lookback) { s.dead = true; d.sources.delete(addr); }
    }
    this.sourceEntries -= before - d.sources.size;
    if (d.sources.size === before) d.pruneFailed = k;
  }

  /** A destination leaves the map (evicted or expired). */
  private drop(d: Dest): void {
    d.dead = true;
    for (const s of d.sources.values()) s.dead = true;
    this.sourceEntries -= d.sources.size;
    d.sources.clear();
    this.touched.delete(d);
  }

  /** Judges a destination over the look-back ending at bucket boundary `b`. */
  private evaluate(d: Dest, b: number): void {
    const cfg = this.cfg;
    const r = d.ring;
    const seconds = cfg.lookback;
    const syns = r.sumBefore(SYNS, b);
    if (syns > 0 && syns / seconds >= cfg.synRate) {
      const attempts = r.sumBefore(ATTEMPTS, b);
      const completed = r.sumBefore(COMPLETED, b);
      const halfOpen = attempts > 0 ? Math.max(0, attempts - completed) / attempts : completed > 0 ? 0 : 1;
      if (halfOpen >= cfg.halfOpenRatio) this.flood(d, 'syn', syns, b, { attempts, completed, halfOpen });
    }
    const udp = r.sumBefore(UDP, b);
    if (udp > 0 && udp / seconds >= cfg.udpRate) this.flood(d, 'udp', udp, b, null);
    const icmp = r.sumBefore(ICMP, b);
    if (icmp > 0 && icmp / seconds >= cfg.icmpRate) this.flood(d, 'icmp', icmp, b, null);
  }

  private flood(d: Dest, kind: Kind, packets: number, b: number, syn: { attempts: number; completed: number; halfOpen: number } | null): void {
    const cfg = this.cfg;
    const end = b * d.ring.bucketSeconds;
    const host = addrName(d.key);
    const key = `${kind}:${host}`;
    if (!this.suppressor.allow(key, end)) { this.suppressed++; return; }
    this.findings++;
    const rate = packets / cfg.lookback;
    const threshold = kind === 'syn' ? cfg.synRate : kind === 'udp' ? cfg.udpRate : cfg.icmpRate;
    // Sources seen within the look-back, by packets (ties: address), top few.
    const from = end - cfg.lookback;
    const active: Source[] = [];
    for (const s of d.sources.values()) if (s.lastSeen >= from) active.push(s);
    const capped = d.overflowAt >= from;
    const sources = active.length;
    // Ties: numeric order for IPv4 words, text order for IPv6 (IPv4 first).
    active.sort((x, y) => y.packets - x.packets || cmpKey(x.addr, y.addr));
    const top = active.slice(0, TOP_SOURCES).map((s) => `${addrName(s.addr)} (${s.packets})`).join(', ');
    const distributed = sources >= DISTRIBUTED;
    const what = kind === 'syn' ? 'SYN flood' : kind === 'udp' ? 'UDP flood' : 'ICMP flood';
    const unit = kind === 'syn' ? 'SYN/s' : 'packets/s';
    const sourcesText = `${capped ? 'at least ' : ''}${sources.toLocaleString('en-US')} source${sources === 1 && !capped ? '' : 's'}`;
    this.ctx.report({
      type: 'flood',
      severity: distributed ? 'critical' : 'warning',
      key,
      summary: `${distributed ? 'Distributed ' : ''}${what} against ${host}: ${round1(rate).toLocaleString('en-US')} ${unit} over the last ${cfg.lookback} s`
        + (syn ? `, ${Math.round(syn.halfOpen * 100)} % of connection attempts never completed` : '')
        + `, from ${sourcesText}${distributed ? ' (DDoS)' : ''}.`,
      evidence: {
        kind,
        destination: host,
        ratePerSecond: round1(rate),
        packets,
        threshold,
        lookbackSeconds: cfg.lookback,
        halfOpenRatio: syn ? round3(syn.halfOpen) : null,
        attempts: syn ? syn.attempts : null,
        completed: syn ? syn.completed : null,
        sources,
        sourcesCapped: capped,
        distributed,
        topSources: top,
      },
      host,
    });
  }

  closeWindow(span: WindowSpan): Metrics {
    // Judge the destinations seen in this window over the look-back ending at its end.
    let b = NaN;
    for (const d of this.touched) {
      if (Number.isNaN(b)) b = d.ring.boundaryAt(span.relEnd);
      this.evaluate(d, b);
    }
    this.touched.clear();
    this.windowSerial++;
    this.sweep(span.relEnd);
    const evicted = this.dests.evicted;
    const metrics: Metrics = {
      tracked: this.dests.size,
      maxKeys: this.dests.maxKeys,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
      expired: this.expired,
      sourcesTracked: this.sourceEntries,
      untrackedSources: this.untrackedSources,
      findings: this.findings,
      suppressed: this.suppressed,
      suppressorEvicted: this.suppressor.evicted,
    };
    this.evictedBefore = evicted;
    this.findings = this.suppressed = this.expired = this.untrackedSources = 0;
    return metrics;
  }

  /** Drops destinations with nothing left in their look-back (oldest activity first). */
  private sweep(now: number): void {
    const drop: AddrKey[] = [];
    for (const [key, d] of this.dests.entries()) {
      if (d.ring.boundaryAt(now) - Math.max(d.lastBucket, d.ring.newestBucket) <= this.buckets) break;
      drop.push(key);
    }
    for (const key of drop) {
      const d = this.dests.peek(key)!;
      this.dests.delete(key);
      this.drop(d);
      this.expired++;
    }
  }
}

function cmpKey(a: AddrKey, b: AddrKey): number {
  if (typeof a === 'number') return typeof b === 'number' ? a - b : -1;
  return typeof b === 'number' ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

