/**
 * Beaconing (analyzers.beaconing): a host reaching the same destination and
 * port at regular intervals with regular sizes, as command-and-control
 * implants do. Per (source, destination, destination port, protocol):
 *
 * - events: each TCP connection (a new flow: its start time, its size the
 *   bytes of both directions on the wire), and for UDP each burst (a packet
 *   from the client after more than BURST_GAP seconds of silence on the key;
 *   its size the bytes until the next burst, both directions);
 * - over the look-back (`lookback`, default 1200 s), a finding (type
 *   `beaconing`) when there are >= minEvents events, the period (mean
 *   interval) is at least MIN_PERIOD, the intervals' coefficient of variation
 *   is <= maxIntervalCv and the sizes' <= maxSizeCv. A short observation
 *   lowers the score (and so the severity) rather than hiding the beacon.
 * - not judged: destination ports in ignorePorts (DNS, NTP, SNMP, syslog,
 *   mDNS), loopback (unless networks.includeLoopback), multicast, broadcast
 *   and link-local destinations; and, towards internal destinations only
 *   (networks.internal), periods within 5 % of ignorePeriods: scrapes, probes
 *   and health checks run inside the network. Towards external destinations
 *   every period is judged, since common C2 sleep times (10 s, 60 s) are the
 *   same round numbers.
 *
 * A score 0-100 (50 at the thresholds, more for tighter intervals and sizes,
 * more events and a longer observation) comes with the period, interval CV,
 * size CV, events, jitter (standard deviation of the intervals) and the
 * largest deviation from the period; warning from BEACON_WARNING_SCORE, else
 * info. Judged when a key gets a new event (intervals up to it; sizes of the
 * events before it, which are complete) and at the end of the input (all
 * events); the same key is re-reported at most once per suppressFor.
 *
 * Bounded: keys in a BoundedMap of maxKeys (LRU, evictions counted), each with
 * a ring of at most MAX_EVENTS event times and sizes (allocated small, grown
 * as events come); a key without an event in its look-back is dropped at
 * window close. Per flow, a cached reference and event index: no per-packet
 * allocation.
 */
import { formatIPv6 } from '../../common/address.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowSpan } from './analyzer.js';
import { BoundedMap } from './lib/bounded-map.js';
import { isLoopback } from './lib/networks.js';
import { isSpecialAddress } from './lib/series-ring.js';
import { Suppressor } from './lib/suppressor.js';
import { round2, round3, round4, addrName } from './lib/format.js';

/** Event times and sizes kept per key. */
export const MAX_EVENTS = 64;
/** The behaviour must have been seen for this long (or half the look-back, if shorter). */
/** Faster than this is a busy client, not a beacon. */
export const MIN_PERIOD = 1;
/** A period within this fraction of an ignored period is that period. */
export const PERIOD_TOLERANCE = 0.05;
/** Silence that separates two UDP bursts. */
export const BURST_GAP = 1;
export const BEACON_WARNING_SCORE = 80;

export type BeaconConfig = Pick<AnalyzerContext['config']['analyzers']['beaconing'], 'lookback' | 'minEvents' | 'maxIntervalCv' | 'maxSizeCv' | 'ignorePeriods'>;

export interface BeaconStats {
  events: number;
  periodSeconds: number;
  intervalCv: number;
  sizeCv: number;
  meanBytes: number;
  /** Standard deviation of the intervals, in seconds. */
  jitterSeconds: number;
  /** Largest distance of an interval from the period, in seconds. */
  maxDeviationSeconds: number;
  observedSeconds: number;
}

export type BeaconReason = 'events' | 'period' | 'monitoring' | 'intervals' | 'sizes';

export interface BeaconVerdict {
  fire: boolean;
  /** The first rule that failed, in the order of BeaconReason; null when it fires. */
  reason: BeaconReason | null;
  score: number;
  stats: BeaconStats;
}

/** Seconds a key must have been active before it can be judged a beacon. */

/**
 * The rules, on event times (ascending) and sizes (of the complete events;
 * may be one fewer than the times). `observedSeconds`: how long the key has
 * been active without a gap longer than the look-back.
 */
export function judgeBeacon(times: ArrayLike<number>, sizes: ArrayLike<number>, observedSeconds: number, cfg: BeaconConfig, internalDestination: boolean): BeaconVerdict {
  const n = times.length;
  let mean = 0;
  for (let i = 1; i < n; i++) mean += times[i]! - times[i - 1]!;
  mean = n > 1 ? mean / (n - 1) : 0;
  let varI = 0;
  let maxDev = 0;
  for (let i = 1; i < n; i++) {
    const d = times[i]! - times[i - 1]! - mean;
    varI += d * d;
    if (Math.abs(d) > maxDev) maxDev = Math.abs(d);
  }
  const jitter = n > 1 ? Math.sqrt(varI / (n - 1)) : 0;
  const intervalCv = mean > 0 ? jitter / mean : Infinity;
  const m = sizes.length;
  let meanS = 0;
  for (let i = 0; i < m; i++) meanS += sizes[i]!;
  meanS = m > 0 ? meanS / m : 0;
  let varS = 0;
  for (let i = 0; i < m; i++) varS += (sizes[i]! - meanS) ** 2;
  const sizeCv = meanS > 0 ? Math.sqrt(varS / m) / meanS : 0;
  const stats: BeaconStats = {
    events: n,
    periodSeconds: mean,
    intervalCv,
    sizeCv,
    meanBytes: meanS,
    jitterSeconds: jitter,
    maxDeviationSeconds: maxDev,
    observedSeconds,
  };
  let reason: BeaconReason | null = null;
  if (n < Math.max(2, cfg.minEvents)) reason = 'events';
  else if (mean < MIN_PERIOD) reason = 'period';
  else if (internalDestination && cfg.ignorePeriods.some((p) => Math.abs(mean - p) <= PERIOD_TOLERANCE * p)) reason = 'monitoring';
  else if (intervalCv > cfg.maxIntervalCv) reason = 'intervals';
  else if (sizeCv > cfg.maxSizeCv) reason = 'sizes';
  if (reason !== null) return { fire: false, reason, score: 0, stats };
  // 50 at the thresholds; up to 25 for tight intervals, 10 for sizes, 10 for events (3x minEvents), 5 for a full look-back.
  const tight = (cv: number, max: number): number => (max > 0 ? Math.max(0, 1 - cv / max) : 1);
  const events = cfg.minEvents > 0 ? Math.min(1, (n - cfg.minEvents) / (2 * cfg.minEvents)) : 1;
  const span = cfg.lookback > 0 ? Math.min(1, observedSeconds / cfg.lookback) : 1;
  const score = Math.round(50 + 25 * tight(intervalCv, cfg.maxIntervalCv) + 10 * tight(sizeCv, cfg.maxSizeCv) + 10 * events + 5 * span);
  return { fire: true, reason: null, score: Math.min(100, Math.max(0, score)), stats };
}

/** An address: the IPv4 word itself (cheap keys, formatted only to report), IPv6 as text. */
type Addr = number | string;

/** Event rings are plain arrays (many small keys: no off-heap backing store each). */
class Beacon {
  times: number[] = [0, 0, 0, 0];
  sizes: number[] = [0, 0, 0, 0];
  /** Events ever recorded (the absolute index of the next one). */
  count = 0;
  runStart = -Infinity;
  lastEvent = -Infinity;
  lastPacket = -Infinity;
  dead = false;
  constructor(
    readonly key: string,
    readonly srcAddr: Addr,
    readonly dstAddr: Addr,
    readonly port: number,
    readonly proto: 'tcp' | 'udp',
    readonly internalDst: boolean,
  ) {}

  get src(): string { return addrName(this.srcAddr); }
  get dst(): string { return addrName(this.dstAddr); }
  /** What the finding is about: source -> destination:port/proto. */
  get name(): string {
    const dst = this.dst;
    return `${this.src}->${typeof this.dstAddr === 'string' ? `[${dst}]` : dst}:${this.port}/${this.proto}`;
  }

  /** Records an event at `t`; returns its absolute index. */
  addEvent(t: number, lookback: number): number {
    if (!(t - this.lastEvent <= lookback)) this.runStart = t;
    let cap = this.times.length;
    if (this.count === cap && cap < MAX_EVENTS) {
      // Not wrapped yet: positions are indices.
      for (let i = 0; i < cap; i++) { this.times.push(0); this.sizes.push(0); }
      cap *= 2;
    }
    const idx = this.count++;
    this.times[idx % cap] = t;
    this.sizes[idx % cap] = 0;
    if (t > this.lastEvent) this.lastEvent = t;
    return idx;
  }

  addBytes(idx: number, n: number): void {
    if (idx >= 0 && this.count - idx <= this.times.length) this.sizes[idx % this.times.length] += n;
  }
}

export function createBeaconingAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new BeaconingAnalyzer(ctx);
}

type Rejections = Record<Exclude<BeaconReason, 'events'>, number>;
const noRejections = (): Rejections => ({ period: 0, monitoring: 0, intervals: 0, sizes: 0 });

class BeaconingAnalyzer implements Analyzer {
  readonly id = 'beaconing';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['beaconing'] { return this.ctx.config.analyzers.beaconing; }
  private readonly flows: FlowTable;
  private readonly keys: BoundedMap<string, Beacon>;
  private readonly suppressor: Suppressor;
  private readonly ignorePorts: Set<number>;
  // per flow slot
  private readonly ref: Array<Beacon | null>;
  /** TCP: the flow's event (absolute index in its key's ring); UDP: -1. */
  private readonly eventIdx: Float64Array;
  private readonly scratchA = new Uint32Array(4);
  private readonly scratchB = new Uint32Array(4);
  // per window
  private ignoredPortFlows = 0;
  private candidates = 0;
  private rejected = noRejections();
  private findings = 0;
  private suppressed = 0;
  private expired = 0;
  private evictedBefore = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    this.flows = ctx.flows;
    const n = ctx.flows.capacity;
    this.ref = new Array<Beacon | null>(n).fill(null);
    this.eventIdx = new Float64Array(n).fill(-1);
    this.ignorePorts = new Set(this.cfg.ignorePorts);
    this.keys = new BoundedMap<string, Beacon>(Math.max(1, this.cfg.maxKeys), (_key, b) => { b.dead = true; });
    this.suppressor = new Suppressor(this.cfg.suppressFor, Math.max(1, this.cfg.maxKeys));
  }

  onFlowStart(slot: number): void {
    this.ref[slot] = null;
    this.eventIdx[slot] = -1;
    const flows = this.flows;
    const proto = flows.proto[slot]!;
    if (proto !== Transport.TCP && proto !== Transport.UDP) return;
    if (this.ignorePorts.has(flows.serverPort(slot))) { this.ignoredPortFlows++; return; }
    const b = this.bind(slot);
    if (b !== null && proto === Transport.TCP) {
      const t = flows.firstTs[slot]!;
      this.eventIdx[slot] = b.addEvent(t, this.cfg.lookback);
      this.judge(b, t, false);
    }
  }

  /** The key of a TCP or UDP flow, looked up or created (null when the flow is not judged). */
  private bind(slot: number): Beacon | null {
    const flows = this.flows;
    const proto = flows.proto[slot]!;
    const port = flows.serverPort(slot);
    const version = flows.version[slot]!;
    const clientIsA = flows.clientIsA[slot] === 1;
    const c = this.scratchA;
    const s = this.scratchB;
    for (let i = 0; i < 4; i++) {
      const a = flows.addrA[slot * 4 + i]!;
      const b = flows.addrB[slot * 4 + i]!;
      c[i] = clientIsA ? a : b;
      s[i] = clientIsA ? b : a;
    }
    if (isSpecialAddress(version, s)) return null;
    if (!this.ctx.config.networks.includeLoopback && (isLoopback(version, c) || isLoopback(version, s))) return null;
    const internalDst = this.ctx.networks.isInternal(version, s);
    const src: Addr = version === 4 ? c[0]! : formatIPv6(c);
    const dst: Addr = version === 4 ? s[0]! : formatIPv6(s);
    const name = proto === Transport.TCP ? 'tcp' : 'udp';
    const key = `${src}>${dst}:${port}/${name}`;
    let b = this.keys.get(key);
    if (b === undefined) {
      b = new Beacon(key, src, dst, port, name, internalDst);
      this.keys.set(key, b);
    }
    this.ref[slot] = b;
    return b;
  }

  onFlowEnd(slot: number): void {
    this.ref[slot] = null;
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    if (slot < 0) return;
    let b = this.ref[slot];
    if (b === null || b === undefined) return;
    const len = v.wireLen;
    const idx = this.eventIdx[slot]!;
    if (b.dead) {
      // Evicted or expired: a TCP connection's event is gone with it; a UDP flow goes on under a new entry.
      this.ref[slot] = null;
      if (idx >= 0) return;
      b = this.bind(slot);
      if (b === null) return;
    }
    if (idx >= 0) { b.addBytes(idx, len); return; }
    // UDP: bursts per key.
    const now = v.ts;
    if (dir === Dir.CLIENT_TO_SERVER && !(now - b.lastPacket <= BURST_GAP)) {
      b.addEvent(now, this.cfg.lookback);
      this.keys.get(b.key); // recency follows events
      this.judge(b, now, false);
    }
    if (now > b.lastPacket) b.lastPacket = now;
    if (b.count > 0) b.addBytes(b.count - 1, len);
  }

  /**
   * Judges a key over the look-back ending at `now`. When `complete` is false
   * the newest event is still going on: its time counts, its size not yet.
   */
  private judge(b: Beacon, now: number, complete: boolean): void {
    const cfg = this.cfg;
    const cap = b.times.length;
    const from = now - cfg.lookback;
    let first = Math.max(0, b.count - cap);
    while (first < b.count && b.times[first % cap]! < from) first++;
    const n = b.count - first;
    if (n < Math.max(2, cfg.minEvents)) return;
    const times = new Float64Array(n);
    const sizes = new Float64Array(complete ? n : n - 1);
    for (let i = 0; i < n; i++) {
      times[i] = b.times[(first + i) % cap]!;
      if (i < sizes.length) sizes[i] = b.sizes[(first + i) % cap]!;
    }
    const verdict = judgeBeacon(times, sizes, b.lastEvent - b.runStart, cfg, b.internalDst);
    this.candidates++;
    if (!verdict.fire) {
      if (verdict.reason !== null && verdict.reason !== 'events') this.rejected[verdict.reason]++;
      return;
    }
    if (!this.suppressor.allow(b.key, now)) { this.suppressed++; return; }
    this.findings++;
    const st = verdict.stats;
    const severity = verdict.score >= BEACON_WARNING_SCORE ? 'warning' : 'info';
    const src = b.src;
    const dst = b.dst;
    this.ctx.report({
      type: 'beaconing',
      severity,
      key: b.name,
      summary: `${src} reaches ${dst} port ${b.port}/${b.proto} every ${round2(st.periodSeconds)} s (interval CV ${round3(st.intervalCv)}, size CV ${round3(st.sizeCv)})`
        + ` over ${st.events} ${b.proto === 'tcp' ? 'connections' : 'bursts'} in ${Math.round(st.observedSeconds)} s: beaconing score ${verdict.score}.`,
      evidence: {
        source: src,
        destination: dst,
        port: b.port,
        proto: b.proto,
        score: verdict.score,
        periodSeconds: round3(st.periodSeconds),
        intervalCv: round4(st.intervalCv),
        sizeCv: round4(st.sizeCv),
        meanBytes: Math.round(st.meanBytes),
        events: st.events,
        jitterSeconds: round3(st.jitterSeconds),
        maxDeviationSeconds: round3(st.maxDeviationSeconds),
        observedSeconds: round3(st.observedSeconds),
        internalDestination: b.internalDst,
        lookbackSeconds: cfg.lookback,
      },
      host: src,
    });
  }

  finish(): void {
    // End of input: every event is complete; judge the keys with enough of them.
    const now = this.ctx.clock.now;
    for (const b of this.keys.values()) if (b.count >= this.cfg.minEvents) this.judge(b, now, true);
  }

  closeWindow(span: WindowSpan): Metrics {
    this.sweep(span.relEnd);
    const evicted = this.keys.evicted;
    const metrics: Metrics = {
      tracked: this.keys.size,
      maxKeys: this.keys.maxKeys,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
      expired: this.expired,
      ignoredPortFlows: this.ignoredPortFlows,
      candidates: this.candidates,
      rejected: this.rejected,
      findings: this.findings,
      suppressed: this.suppressed,
      suppressorEvicted: this.suppressor.evicted,
    };
    this.evictedBefore = evicted;
    this.ignoredPortFlows = this.candidates = this.findings = this.suppressed = this.expired = 0;
    this.rejected = noRejections();
    return metrics;
  }

  /** Drops keys whose newest event left the look-back (least recently active first). */
  private sweep(now: number): void {
    const drop: Beacon[] = [];
    for (const b of this.keys.values()) {
      if (now - b.lastEvent <= this.cfg.lookback) break;
      drop.push(b);
    }
    for (const b of drop) {
      this.keys.delete(b.key);
      b.dead = true;
      this.expired++;
    }
  }
}

