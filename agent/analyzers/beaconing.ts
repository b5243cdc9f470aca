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
 * - not tracked (allow-list, analyzers.beaconing.allowHosts / allowPorts): a
 *   flow with either endpoint listed (a sanctioned agent or its collector) or
 *   whose destination (server) port is listed. ignorePorts stays the default
 *   list of ordinary periodic services; allowPorts is the operator's own.
 *   Checked once per flow, before its hosts are interned; counted per window
 *   in the metric `allowed` (flows). A SIGHUP's new allow-list applies to
 *   flows that start after it.
 *
 * A score 0-100 (50 at the thresholds, more for tighter intervals and sizes,
 * more events and a longer observation) comes with the period, interval CV,
 * size CV, events, jitter (standard deviation of the intervals), the
 * largest deviation from the period and the thresholds crossed
 * (evidence.thresholds: events against minEvents, the interval and size CVs
 * against maxIntervalCv and maxSizeCv). Severity: warning from
 * BEACON_WARNING_SCORE, else info; and info whatever the score for an
 * internal destination observed for less than SHORT_INTERNAL_SPAN (300 s):
 * periodic reconnects to an internal host over a few seconds (a device
 * re-registering with its controller, a client retrying) are weak evidence of
 * command and control, whose beacons mostly go to external hosts and are seen
 * over minutes. Still reported, so the regularity is visible. Judged when a
 * key gets a new event (intervals up to it; sizes of the
 * events before it, which are complete) and at the end of the input (all
 * events); the same key is re-reported at most once per suppressFor.
 *
 * State, all preallocated at construction (no object per key or packet):
 * keys in a KeyTable of [client host id, server host id, port | UDP bit]
 * (LRU, evictions counted) sized from memory.budgetMB (capped by maxKeys),
 * with typed-array columns (event count, run start, last event, last packet,
 * flags, the hosts' generations); suppression in a SuppressionTable on the
 * addresses, port and protocol (Suppressor's key), one entry per key of
 * capacity. Hosts are interned in a HostTable of two ids per key, and only
 * for flows that get a key, touched whenever their key is: so a live key's
 * hosts are never the least recently used ones while it lives (a host id
 * reused for another address would retire the key: the generation check is a
 * safety net).
 *
 * Event rings: the judgment uses the last MAX_EVENTS (64) events in the
 * look-back, as before the rewrite (so 64 also bounds a useful minEvents).
 * Most keys never get past a few events (one connection, a retry), so each key
 * has a small ring of SMALL_EVENTS (8) times and sizes (128 bytes), and a key
 * reaching its 9th event takes a ring of 64 (1 KB) from a pool of one per
 * KEYS_PER_RING (8) keys; when the pool is used up, the key holding the least
 * recently used ring is dropped (counted in `evicted`). A key without an
 * event in its look-back is dropped at window close.
 *
 * Per-packet work: none for TCP (the connection's size is the flow table's
 * byte count, read when the key is judged and kept when the flow ends); per
 * UDP datagram the burst rule on the key's columns. Per flow: the key id with
 * its generation, and the TCP event's index, in typed arrays.
 */
import { idleKeys } from '../../common/memory-budget.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { ConfiguredAllowList, thresholdsCrossed } from './lib/allow-list.js';
import { HostTable } from './lib/host-table.js';
import { isLoopback } from './lib/networks.js';
import { isSpecialAddress } from './lib/networks.js';
import { KeyTable } from './lib/key-table.js';
import { SuppressionTable } from './lib/suppression.js';
import { duration, plural, round3, round4 } from './lib/format.js';

/** Event times and sizes kept per key (the newest ones). */
export const MAX_EVENTS = 64;
/** Events every key has room for before it takes a ring of MAX_EVENTS. */
const SMALL_EVENTS = 8;
/** Keys per ring of MAX_EVENTS in the pool (at least MIN_RINGS rings). */
const KEYS_PER_RING = 8;
const MIN_RINGS = 16;
/** Host ids per key of capacity: a key's two hosts must outlive it in the host table. */
const HOSTS_PER_KEY = 2;
/** Faster than this is a busy client, not a beacon. */
export const MIN_PERIOD = 1;
/** A period within this fraction of an ignored period is that period. */
export const PERIOD_TOLERANCE = 0.05;
/** Silence that separates two UDP bursts. */
export const BURST_GAP = 1;
export const BEACON_WARNING_SCORE = 80;
/** An internal destination's beacon observed for less than this (seconds) is info whatever its score. */
export const SHORT_INTERNAL_SPAN = 300;

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

/** A rule's outcome: FIRE, or the index in REASONS of the first rule that failed. */
const FIRE = -1;
const REASONS: readonly BeaconReason[] = ['events', 'period', 'monitoring', 'intervals', 'sizes'];
const R_EVENTS = 0;
const R_PERIOD = 1;
const R_MONITORING = 2;
const R_INTERVALS = 3;
const R_SIZES = 4;
// Stats slots of `beaconRule`'s output.
const S_EVENTS = 0;
const S_PERIOD = 1;
const S_INTERVAL_CV = 2;
const S_SIZE_CV = 3;
const S_MEAN_BYTES = 4;
const S_JITTER = 5;
const S_MAX_DEVIATION = 6;
const S_OBSERVED = 7;
const S_SCORE = 8;
const STATS = 9;

/** Up to 1 the tighter `cv` is under `max`. */
const tight = (cv: number, max: number): number => (max > 0 ? Math.max(0, 1 - cv / max) : 1);

/**
 * The rules on the first `n` event times and the first `m` sizes, without
 * allocating (run on the packet path): the statistics and the score go to
 * `out` (S_* slots); returns FIRE or the failed rule (index in REASONS).
 */
function beaconRule(times: ArrayLike<number>, n: number, sizes: ArrayLike<number>, m: number, observedSeconds: number, cfg: BeaconConfig, internalDestination: boolean, out: Float64Array): number {
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
  let meanS = 0;
  for (let i = 0; i < m; i++) meanS += sizes[i]!;
  meanS = m > 0 ? meanS / m : 0;
  let varS = 0;
  for (let i = 0; i < m; i++) varS += (sizes[i]! - meanS) ** 2;
  const sizeCv = meanS > 0 ? Math.sqrt(varS / m) / meanS : 0;
  out[S_EVENTS] = n;
  out[S_PERIOD] = mean;
  out[S_INTERVAL_CV] = intervalCv;
  out[S_SIZE_CV] = sizeCv;
  out[S_MEAN_BYTES] = meanS;
  out[S_JITTER] = jitter;
  out[S_MAX_DEVIATION] = maxDev;
  out[S_OBSERVED] = observedSeconds;
  out[S_SCORE] = 0;
  if (n < Math.max(2, cfg.minEvents)) return R_EVENTS;
  if (mean < MIN_PERIOD) return R_PERIOD;
  if (internalDestination) {
    const periods = cfg.ignorePeriods;
    for (let i = 0; i < periods.length; i++) if (Math.abs(mean - periods[i]!) <= PERIOD_TOLERANCE * periods[i]!) return R_MONITORING;
  }
  if (intervalCv > cfg.maxIntervalCv) return R_INTERVALS;
  if (sizeCv > cfg.maxSizeCv) return R_SIZES;
  // 50 at the thresholds; up to 25 for tight intervals, 10 for sizes, 10 for events (3x minEvents), 5 for a full look-back.
  const events = cfg.minEvents > 0 ? Math.min(1, (n - cfg.minEvents) / (2 * cfg.minEvents)) : 1;
  const span = cfg.lookback > 0 ? Math.min(1, observedSeconds / cfg.lookback) : 1;
  const score = Math.round(50 + 25 * tight(intervalCv, cfg.maxIntervalCv) + 10 * tight(sizeCv, cfg.maxSizeCv) + 10 * events + 5 * span);
  out[S_SCORE] = Math.min(100, Math.max(0, score));
  return FIRE;
}

const statsOf = (out: Float64Array): BeaconStats => ({
  events: out[S_EVENTS]!,
  periodSeconds: out[S_PERIOD]!,
  intervalCv: out[S_INTERVAL_CV]!,
  sizeCv: out[S_SIZE_CV]!,
  meanBytes: out[S_MEAN_BYTES]!,
  jitterSeconds: out[S_JITTER]!,
  maxDeviationSeconds: out[S_MAX_DEVIATION]!,
  observedSeconds: out[S_OBSERVED]!,
});

/**
 * The rules, on event times (ascending) and sizes (of the complete events;
 * may be one fewer than the times). `observedSeconds`: how long the key has
 * been active without a gap longer than the look-back.
 */
export function judgeBeacon(times: ArrayLike<number>, sizes: ArrayLike<number>, observedSeconds: number, cfg: BeaconConfig, internalDestination: boolean): BeaconVerdict {
  const out = new Float64Array(STATS);
  const r = beaconRule(times, times.length, sizes, sizes.length, observedSeconds, cfg, internalDestination, out);
  return { fire: r === FIRE, reason: r === FIRE ? null : REASONS[r]!, score: out[S_SCORE]!, stats: statsOf(out) };
}

export function createBeaconingAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new BeaconingAnalyzer(ctx);
}

type Rejections = Record<Exclude<BeaconReason, 'events'>, number>;
const noRejections = (): Rejections => ({ period: 0, monitoring: 0, intervals: 0, sizes: 0 });

/** Key word 2: the destination port, and this bit for UDP. */
const UDP_BIT = 0x10000;
const F_UDP = 1;
const F_INTERNAL_DST = 2;

/** Bytes one key costs across every structure indexed by its id, with its share of the large rings (memory.budgetMB). */
const BYTES_PER_KEY = KeyTable.bytesPerEntry(3)
  + 4 * 4 /* generation, host generations, ring */ + 1 /* flags */ + 8 * 4 /* count, run start, last event, last packet */
  + SMALL_EVENTS * 16
  + SuppressionTable.bytesPerEntry(11)
  + HOSTS_PER_KEY * HostTable.bytesPerEntry
  + (MAX_EVENTS * 16 + KeyTable.bytesPerEntry(1) + 4) / KEYS_PER_RING;

class BeaconingAnalyzer implements Analyzer {
  readonly id = 'beaconing';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['beaconing'] { return this.ctx.config.analyzers.beaconing; }
  private readonly flows: FlowTable;
  private readonly hosts: HostTable;
  /** [client id, server id, server port | UDP_BIT]. */
  private readonly keys: KeyTable;
  /** The key table's capacity granted by memory.budgetMB (the coordinator's instance allocates less: idleKeys). */
  private readonly maxKeys: number;
  private readonly suppression: SuppressionTable;
  private readonly ignorePorts = new Uint8Array(65536);
  private readonly allow = new ConfiguredAllowList(() => this.cfg, 'analyzers.beaconing');
  // per key id
  /** Bumped when the id is (re)assigned or freed: flows holding an older value let go. */
  private readonly gen: Uint32Array;
  private readonly srcGen: Uint32Array;
  private readonly dstGen: Uint32Array;
  private readonly flags: Uint8Array;
  /** Events ever recorded (the absolute index of the next one). */
  private readonly count: Float64Array;
  private readonly runStart: Float64Array;
  private readonly lastEvent: Float64Array;
  private readonly lastPacket: Float64Array;
  /** The key's large ring, -1 while its events fit in its small one. */
  private readonly ringOf: Int32Array;
  /** Event times and sizes: SMALL_EVENTS per key; a size < 0 is -(flow slot + 1) of a TCP connection still open (its bytes are the flow table's). */
  private readonly smallTimes: Float64Array;
  private readonly smallSizes: Float64Array;
  // large rings (MAX_EVENTS each), taken by keys with more than SMALL_EVENTS events; LRU when all are taken
  private readonly rings: KeyTable;
  private readonly ringOwner: Int32Array;
  private readonly ringTimes: Float64Array;
  private readonly ringSizes: Float64Array;
  // per flow slot
  private readonly keyOf: Int32Array;
  private readonly keyGenOf: Uint32Array;
  /** TCP: the flow's event (absolute index in its key's ring); UDP: -1. */
  private readonly eventIdx: Float64Array;
  private readonly scratchA = new Uint32Array(4);
  private readonly scratchB = new Uint32Array(4);
  private readonly times = new Float64Array(MAX_EVENTS);
  private readonly sizes = new Float64Array(MAX_EVENTS);
  private readonly verdict = new Float64Array(STATS);
  /** Keys dropped because their host ids went to other addresses, or their large ring to another key. */
  private retired = 0;
  // per window
  private ignoredPortFlows = 0;
  /** Flows not tracked: an allowed host or destination port. */
  private allowed = 0;
  private candidates = 0;
  private rejected = noRejections();
  private findings = 0;
  private suppressed = 0;
  private expired = 0;
  private evictedBefore = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    this.flows = ctx.flows;
    const n = ctx.flows.capacity;
    this.keyOf = new Int32Array(n).fill(-1);
    this.keyGenOf = new Uint32Array(n);
    this.eventIdx = new Float64Array(n).fill(-1);
    const cfg = this.cfg;
    for (const p of cfg.ignorePorts) if (p >= 0 && p < 65536) this.ignorePorts[p] = 1;
    this.maxKeys = ctx.memory.keys('beaconing.keys', BYTES_PER_KEY, cfg.maxKeys);
    // A flow-sharded coordinator only adds up the workers' metrics: its tables stay empty.
    const capacity = ctx.shardRole === 'coordinator' ? idleKeys(this.maxKeys) : this.maxKeys;
    this.hosts = new HostTable(capacity * HOSTS_PER_KEY, ctx.networks, ctx.config.networks.includeLoopback);
    this.keys = new KeyTable(capacity, 3, (k) => { this.release(k); });
    this.suppression = new SuppressionTable(cfg.suppressFor, capacity, 11);
    this.gen = new Uint32Array(capacity);
    this.srcGen = new Uint32Array(capacity);
    this.dstGen = new Uint32Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.count = new Float64Array(capacity);
    this.runStart = new Float64Array(capacity);
    this.lastEvent = new Float64Array(capacity);
    this.lastPacket = new Float64Array(capacity);
    this.ringOf = new Int32Array(capacity).fill(-1);
    this.smallTimes = new Float64Array(capacity * SMALL_EVENTS);
    this.smallSizes = new Float64Array(capacity * SMALL_EVENTS);
    const rings = Math.min(capacity, Math.max(MIN_RINGS, Math.ceil(capacity / KEYS_PER_RING)));
    this.rings = new KeyTable(rings, 1, (r) => { this.ringTaken(r); });
    this.ringOwner = new Int32Array(rings);
    this.ringTimes = new Float64Array(rings * MAX_EVENTS);
    this.ringSizes = new Float64Array(rings * MAX_EVENTS);
  }

  onFlowStart(slot: number): void {
    this.keyOf[slot] = -1;
    this.eventIdx[slot] = -1;
    const flows = this.flows;
    const proto = flows.proto[slot]!;
    if (proto !== Transport.TCP && proto !== Transport.UDP) return;
    if (this.ignorePorts[flows.serverPort(slot)] === 1) { this.ignoredPortFlows++; return; }
    const k = this.bind(slot);
    if (k >= 0 && proto === Transport.TCP) {
      const t = flows.firstTs[slot]!;
      const idx = this.addEvent(k, t);
      this.eventIdx[slot] = idx;
      // Its size is the flow's bytes, read from the flow table until it ends.
      this.setSize(k, idx, -(slot + 1));
      this.judge(k, t, false);
    }
  }

  /** The key of a TCP or UDP flow, looked up or created (-1 when the flow is not judged). */
  private bind(slot: number): number {
    const flows = this.flows;
    const version = flows.version[slot]!;
    const wc = this.scratchA;
    const ws = this.scratchB;
    flows.copyEndpoints(slot, wc, ws);
    // Judged on the addresses before interning: only hosts of keys take host ids (see the header).
    if (isSpecialAddress(version, ws)) return -1;
    if (!this.ctx.config.networks.includeLoopback && (isLoopback(version, wc) || isLoopback(version, ws))) return -1;
    // Allowed: either endpoint or the destination port (a flow is bound once; a rebind is of a flow that was not allowed).
    const allow = this.allow.get();
    if (allow.covers(version, wc, ws, flows.serverPort(slot))) { this.allowed++; return -1; }
    const hosts = this.hosts;
    const c = hosts.intern(version, wc);
    const s = hosts.intern(version, ws);
    const udp = flows.proto[slot] === Transport.UDP;
    const keys = this.keys;
    keys.key[0] = c;
    keys.key[1] = s;
    keys.key[2] = flows.serverPort(slot) | (udp ? UDP_BIT : 0);
    const k = keys.findOrInsert();
    if (keys.inserted) {
      this.init(k, c, s, udp);
    } else if (this.srcGen[k] !== hosts.generation[c] || this.dstGen[k] !== hosts.generation[s]) {
      // The key names host ids now given to other addresses: that key is gone.
      this.release(k);
      this.retired++;
      this.init(k, c, s, udp);
    }
    this.keyOf[slot] = k;
    this.keyGenOf[slot] = this.gen[k]!;
    return k;
  }

  onFlowEnd(slot: number): void {
    const k = this.keyOf[slot]!;
    this.keyOf[slot] = -1;
    const idx = this.eventIdx[slot]!;
    if (k < 0 || idx < 0 || this.gen[k] !== this.keyGenOf[slot]) return;
    // The connection's size is final: keep it (if its event is still in the ring).
    const flows = this.flows;
    this.setSize(k, idx, flows.bytes[slot * 2]! + flows.bytes[slot * 2 + 1]!);
  }

  /** UDP: bursts per key. (A TCP connection's size is the flow table's byte count: no per-segment work.) */
  onUdpDatagram(v: PacketView, slot: number, dir: number): void {
    let k = this.keyOf[slot]!;
    if (k < 0) return;
    if (this.gen[k] !== this.keyGenOf[slot]) {
      // Evicted or expired: the flow goes on under a new entry.
      this.keyOf[slot] = -1;
      k = this.bind(slot);
      if (k < 0) return;
    }
    const now = v.ts;
    if (dir === Dir.CLIENT_TO_SERVER && !(now - this.lastPacket[k]! <= BURST_GAP)) {
      this.addEvent(k, now);
      // Recency follows events (the key's hosts too: a long UDP flow interns them only once).
      const keys = this.keys;
      keys.touch(k);
      this.hosts.touch(keys.keyWord(k, 0));
      this.hosts.touch(keys.keyWord(k, 1));
      this.judge(k, now, false);
    }
    if (now > this.lastPacket[k]!) this.lastPacket[k] = now;
    const count = this.count[k]!;
    if (count > 0) this.addBytes(k, count - 1, v.wireLen);
  }

  /** A new key in id `k`. */
  private init(k: number, src: number, dst: number, udp: boolean): void {
    const hosts = this.hosts;
    this.gen[k]++;
    this.srcGen[k] = hosts.generation[src]!;
    this.dstGen[k] = hosts.generation[dst]!;
    this.flags[k] = (udp ? F_UDP : 0) | (hosts.isInternal(dst) ? F_INTERNAL_DST : 0);
    this.count[k] = 0;
    this.runStart[k] = -Infinity;
    this.lastEvent[k] = -Infinity;
    this.lastPacket[k] = -Infinity;
    this.ringOf[k] = -1;
  }

  /** Key `k` leaves id `k` (evicted, expired, retired): its large ring is freed and its flows let go. */
  private release(k: number): void {
    this.gen[k]++;
    const r = this.ringOf[k]!;
    if (r >= 0) { this.rings.remove(r); this.ringOf[k] = -1; }
  }

  /** Every large ring is taken: the key holding the least recently used one is dropped. */
  private ringTaken(r: number): void {
    const k = this.ringOwner[r]!;
    this.ringOf[k] = -1;
    this.gen[k]++;
    this.keys.remove(k);
    this.retired++;
  }

  /** Events key `k` keeps. */
  private capacityOf(k: number): number { return this.ringOf[k]! < 0 ? SMALL_EVENTS : MAX_EVENTS; }

  /** Records an event at `t`; returns its absolute index. */
  private addEvent(k: number, t: number): number {
    if (!(t - this.lastEvent[k]! <= this.cfg.lookback)) this.runStart[k] = t;
    const idx = this.count[k]!;
    let r = this.ringOf[k]!;
    if (r < 0 && idx === SMALL_EVENTS) {
      // Not wrapped yet: positions are indices, the same in the large ring.
      const rings = this.rings;
      rings.key[0] = k;
      r = rings.findOrInsert();
      this.ringOwner[r] = k;
      this.ringOf[k] = r;
      for (let i = 0; i < SMALL_EVENTS; i++) {
        this.ringTimes[r * MAX_EVENTS + i] = this.smallTimes[k * SMALL_EVENTS + i]!;
        this.ringSizes[r * MAX_EVENTS + i] = this.smallSizes[k * SMALL_EVENTS + i]!;
      }
    }
    if (r >= 0) {
      this.rings.touch(r);
      const pos = r * MAX_EVENTS + (idx % MAX_EVENTS);
      this.ringTimes[pos] = t;
      this.ringSizes[pos] = 0;
    } else {
      const pos = k * SMALL_EVENTS + (idx % SMALL_EVENTS);
      this.smallTimes[pos] = t;
      this.smallSizes[pos] = 0;
    }
    this.count[k] = idx + 1;
    if (t > this.lastEvent[k]!) this.lastEvent[k] = t;
    return idx;
  }

  private timeAt(k: number, idx: number): number {
    const r = this.ringOf[k]!;
    return r < 0 ? this.smallTimes[k * SMALL_EVENTS + (idx % SMALL_EVENTS)]! : this.ringTimes[r * MAX_EVENTS + (idx % MAX_EVENTS)]!;
  }

  /** The size of event `idx` (in the ring): an open connection's bytes come from the flow table. */
  private sizeAt(k: number, idx: number): number {
    const r = this.ringOf[k]!;
    const n = r < 0 ? this.smallSizes[k * SMALL_EVENTS + (idx % SMALL_EVENTS)]! : this.ringSizes[r * MAX_EVENTS + (idx % MAX_EVENTS)]!;
    if (n >= 0) return n;
    const slot = -n - 1;
    return this.flows.bytes[slot * 2]! + this.flows.bytes[slot * 2 + 1]!;
  }

  /** Sets the size of event `idx` if it is still in the ring. */
  private setSize(k: number, idx: number, n: number): void {
    if (this.count[k]! - idx > this.capacityOf(k)) return;
    const r = this.ringOf[k]!;
    if (r < 0) this.smallSizes[k * SMALL_EVENTS + (idx % SMALL_EVENTS)] = n;
    else this.ringSizes[r * MAX_EVENTS + (idx % MAX_EVENTS)] = n;
  }

  private addBytes(k: number, idx: number, n: number): void {
    if (this.count[k]! - idx > this.capacityOf(k)) return;
    const r = this.ringOf[k]!;
    if (r < 0) this.smallSizes[k * SMALL_EVENTS + (idx % SMALL_EVENTS)] += n;
    else this.ringSizes[r * MAX_EVENTS + (idx % MAX_EVENTS)] += n;
  }

  /**
   * Judges a key over the look-back ending at `now`. When `complete` is false
   * the newest event is still going on: its time counts, its size not yet.
   */
  private judge(k: number, now: number, complete: boolean): void {
    const cfg = this.cfg;
    const count = this.count[k]!;
    const from = now - cfg.lookback;
    let first = Math.max(0, count - this.capacityOf(k));
    while (first < count && this.timeAt(k, first) < from) first++;
    const n = count - first;
    if (n < Math.max(2, cfg.minEvents)) return;
    const m = complete ? n : n - 1;
    const times = this.times;
    const sizes = this.sizes;
    for (let i = 0; i < n; i++) {
      times[i] = this.timeAt(k, first + i);
      if (i < m) sizes[i] = this.sizeAt(k, first + i);
    }
    const internalDst = (this.flags[k]! & F_INTERNAL_DST) !== 0;
    const st = this.verdict;
    const reason = beaconRule(times, n, sizes, m, this.lastEvent[k]! - this.runStart[k]!, cfg, internalDst, st);
    this.candidates++;
    if (reason !== FIRE) {
      if (reason !== R_EVENTS) this.rejected[REASONS[reason] as keyof Rejections]++;
      return;
    }
    const keys = this.keys;
    const hosts = this.hosts;
    const c = keys.keyWord(k, 0);
    const s = keys.keyWord(k, 1);
    const port = keys.keyWord(k, 2) & 0xffff;
    // A host id given to another address since: the key cannot be named any more.
    if (hosts.generation[c] !== this.srcGen[k] || hosts.generation[s] !== this.dstGen[k]) return;
    // Suppressed per addresses, port and protocol, as long as the table remembers it (a key evicted and seen again is the same key).
    const sk = this.suppression.key;
    hosts.writeHost(c, sk, 0);
    hosts.writeHost(s, sk, 5);
    sk[10] = keys.keyWord(k, 2);
    if (!this.suppression.allow(now)) { this.suppressed++; return; }
    this.findings++;
    this.report(k, c, s, port, st[S_SCORE]!, statsOf(st));
  }

  private report(k: number, c: number, s: number, port: number, score: number, st: BeaconStats): void {
    const cfg = this.cfg;
    const hosts = this.hosts;
    const proto = (this.flags[k]! & F_UDP) !== 0 ? 'udp' : 'tcp';
    const internalDst = (this.flags[k]! & F_INTERNAL_DST) !== 0;
    const severity = score >= BEACON_WARNING_SCORE && !(internalDst && st.observedSeconds < SHORT_INTERNAL_SPAN) ? 'warning' : 'info';
    const src = hosts.name(c);
    const dst = hosts.name(s);
    this.ctx.report({
      type: 'beaconing',
      severity,
      key: `${src}->${hosts.version(s) === 6 ? `[${dst}]` : dst}:${port}/${proto}`,
      summary: `${src} reaches ${dst} port ${port}/${proto} every ${duration(st.periodSeconds)} (interval CV ${round3(st.intervalCv)}, size CV ${round3(st.sizeCv)})`
        + ` over ${plural(st.events, proto === 'tcp' ? 'connection' : 'burst')} in ${duration(st.observedSeconds)}: beaconing score ${score}.`,
      evidence: {
        source: src,
        destination: dst,
        port,
        proto,
        score,
        periodSeconds: round3(st.periodSeconds),
        intervalCv: round4(st.intervalCv),
        sizeCv: round4(st.sizeCv),
        meanBytes: Math.round(st.meanBytes),
        events: st.events,
        jitterSeconds: round3(st.jitterSeconds),
        maxDeviationSeconds: round3(st.maxDeviationSeconds),
        observedSeconds: round3(st.observedSeconds),
        internalDestination: internalDst,
        thresholds: thresholdsCrossed([
          { measured: 'events', value: st.events, setting: 'minEvents', limit: cfg.minEvents },
          { measured: 'intervalCv', value: st.intervalCv, setting: 'maxIntervalCv', limit: cfg.maxIntervalCv, op: '<=' },
          { measured: 'sizeCv', value: st.sizeCv, setting: 'maxSizeCv', limit: cfg.maxSizeCv, op: '<=' },
        ]),
        lookbackSeconds: cfg.lookback,
      },
      host: src,
    });
  }

  finish(): void {
    // End of input: every event is complete; judge the keys with enough of them (least recently active first).
    const now = this.ctx.clock.now;
    const keys = this.keys;
    for (let k = keys.oldest(); k >= 0; k = keys.newer(k)) if (this.count[k]! >= this.cfg.minEvents) this.judge(k, now, true);
  }

  closeWindow(span: WindowSpan): Metrics {
    this.sweep(span.relEnd);
    const evicted = this.keys.evicted + this.retired;
    const metrics: Metrics = {
      tracked: this.keys.size,
      maxKeys: this.maxKeys,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
      expired: this.expired,
      ignoredPortFlows: this.ignoredPortFlows,
      allowed: this.allowed,
      candidates: this.candidates,
      rejected: this.rejected,
      findings: this.findings,
      suppressed: this.suppressed,
      suppressorEvicted: this.suppression.evicted,
    };
    this.evictedBefore = evicted;
    this.ignoredPortFlows = this.allowed = this.candidates = this.findings = this.suppressed = this.expired = 0;
    this.rejected = noRejections();
    return metrics;
  }

  /**
   * Flow-sharded workers: a key is one host pair's, so it lives in one worker
   * and every figure adds up; the workers share one pipeline's capacity
   * (shard-pipeline.ts workerShare): maxKeys is that of this instance,
   * sized as one pipeline's.
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const metrics = sumMetrics(input.metrics);
    metrics['maxKeys'] = this.maxKeys;
    return metrics;
  }

  /**
   * Drops every key whose newest event left the look-back. All keys are
   * walked: recency (table order) also moves on a TCP flow's start without an
   * event, so stopping at the first live key would keep idle keys behind it,
   * and which ones would depend on the other keys of the table (a flow-sharded
   * worker holds only its host pairs' keys).
   */
  private sweep(now: number): void {
    const keys = this.keys;
    const lookback = this.cfg.lookback;
    for (let k = keys.oldest(); k >= 0;) {
      const next = keys.newer(k);
      if (now - this.lastEvent[k]! > lookback) {
        this.release(k);
        keys.remove(k);
        this.expired++;
      }
      k = next;
    }
  }
}
