/**
 * Floods (analyzers.flood): per destination address, over the look-back
 * (`lookback` seconds of packet time; rates are the look-back's count divided
 * by its length, never averaged over the capture):
 *
 * - SYN flood: SYNs (without ACK) per second >= synRate, and a share of the
 *   connection attempts in the look-back never completed >= halfOpenRatio
 *   (attempts and completions: the shared tracker's STARTED and COMPLETED,
 *   flow/connection-attempts.ts; a handshake not completed within its 5 s
 *   timeout stays half-open). A busy server that completes its handshakes is
 *   not flooded.
 * - UDP flood: UDP packets per second >= udpRate, counting what is sent
 *   towards the flow's server and any packet of a flow whose client never
 *   sent (unsolicited "replies": reflection / amplification). Replies to the
 *   destination's own requests (a large QUIC or streaming download) do not
 *   count.
 * - ICMP flood: ICMP / ICMPv6 packets per second >= icmpRate, counted the
 *   same way (echo requests and unsolicited messages, not echo replies to the
 *   destination's own pings).
 *
 * Not tracked (allow-list, analyzers.flood.allowHosts / allowPorts): a flow
 * with either endpoint listed (a load-tested service as the destination, a
 * load generator as the source), or whose counted packets go to a listed
 * destination port (TCP and UDP: the port of the service under load; for
 * unsolicited replies, the receiving host's port). Checked once per flow,
 * when its first counted packet looks its destination up; counted per window
 * in the metric `allowed` (flows).
 *
 * Each finding (type `flood`, evidence.kind syn | udp | icmp) gives the rate,
 * the thresholds crossed (evidence.thresholds: the rate against synRate,
 * udpRate or icmpRate, and for SYN the half-open ratio against
 * halfOpenRatio), the packets in the look-back, the half-open ratio (SYN),
 * the number of distinct sources that sent that kind and were seen in the
 * look-back (exact up to MAX_SOURCES per destination, "at least" past it) and
 * the top sources by packets of that kind; DISTRIBUTED sources or more make
 * it a DDoS (critical), fewer a warning.
 *
 * Evaluation: a destination is judged over the look-back ending at each
 * bucket boundary it has traffic after (a sliding look-back in buckets of
 * 1 s up to a 60 s look-back, of lookback / 60 beyond), and at each window's
 * end. The same flood (kind and destination) is reported again at most once
 * per suppressFor, with the evidence of that moment.
 *
 * State, all typed arrays sized once at start (memory.budgetMB, capped by
 * maxKeys), nothing allocated per packet:
 * - destinations: a HostTable (id per address; the least recently active
 *   destination evicted when full, counted), per id a BucketReducer ring
 *   (series SYNS, ATTEMPTS, COMPLETED, UDP, ICMP) and a few columns; a
 *   destination with nothing left in its look-back is dropped at window
 *   close (its host id stays interned, so suppression still knows it);
 * - sources: a KeyTable of (destination id, source address) with the
 *   source's last-seen time and packets per kind, chained per destination (so
 *   judging one is O(its sources)); at most MAX_SOURCES per destination and
 *   the table's capacity overall; a source silent for a look-back makes room;
 * - suppression: a SuppressionTable of (kind, destination id, its generation);
 * - per flow: the destination id and source id it counts for, with their
 *   generations, so only a flow's first counted packet (or one after its
 *   entry went away) hashes an address.
 * The look-back's buckets are fixed at start (a SIGHUP changes thresholds
 * and the allow-list, not the look-back).
 */
import { formatAddress } from '../../common/address.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { AttemptEvent, type AttemptEventCode } from '../flow/connection-attempts.js';
import { Dir, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowSpan } from './analyzer.js';
import { ConfiguredAllowList, thresholdsCrossed, type Crossing } from './lib/allow-list.js';
import { HostTable } from './lib/host-table.js';
import { KeyTable } from './lib/key-table.js';
import { isLoopback } from './lib/networks.js';
import { SuppressionTable } from './lib/suppression.js';
import { IdList } from './lib/id-list.js';
import { BucketReducer } from './lib/time-buckets.js';
import { round1, round3 } from './lib/format.js';

const { SYN, ACK } = TcpFlag;

// Series of a destination's buckets.
const SYNS = 0;
const ATTEMPTS = 1;
const COMPLETED = 2;
const UDP = 3;
const ICMP = 4;
const SERIES = 5;

// Finding kinds (also the index of a source's per-kind packet count).
const K_SYN = 0;
const K_UDP = 1;
const K_ICMP = 2;
const KIND_COUNT = 3;
const KIND_NAMES = ['syn', 'udp', 'icmp'] as const;

/** Sources tracked per destination (distinct count exact up to here, then "at least"). */
export const MAX_SOURCES = 1024;
/** Sources tracked over all destinations, at most (the memory budget may grant fewer). */
const MAX_SOURCE_ENTRIES = 262_144;
/** Distinct sources that make a flood distributed (DDoS). */
export const DISTRIBUTED = 20;
const TOP_SOURCES = 5;

const NIL = -1;
/** Bytes of a destination's own columns (flags, generation, times, source list, LRU and window links). */
const DEST_COLUMN_BYTES = 1 + 4 + 8 * 3 + 4 * 2 + 4 * 2 + 4 + 4 * 2;
/** Bytes of a source's columns beside its key (last seen, per-kind counts, generation, list links). */
const SOURCE_COLUMN_BYTES = 8 + 4 * KIND_COUNT + 4 + 4 * 2;
/** (kind, destination id, host generation). */
const SUPPRESSION_WIDTH = 3;
/** (destination id, source address words 0..3). */
const SOURCE_WIDTH = 5;

export function createFloodAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new FloodAnalyzer(ctx);
}

class FloodAnalyzer implements Analyzer {
  readonly id = 'flood';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['flood'] { return this.ctx.config.analyzers.flood; }
  private readonly flows: FlowTable;
  private readonly lookback: number;
  private readonly buckets: number;
  private readonly scratch = new Uint32Array(4);
  /** A flow's endpoints, for the allow-list. */
  private readonly endA = new Uint32Array(4);
  private readonly endB = new Uint32Array(4);
  private readonly allow = new ConfiguredAllowList(() => this.cfg, 'analyzers.flood');

  // Destinations, by host id.
  private readonly hosts: HostTable;
  private readonly series: BucketReducer;
  private readonly live: Uint8Array;
  /** Bumped when a destination's state goes away, so per-flow references to it fail. */
  private readonly destGen: Uint32Array;
  /** Newest bucket with counted traffic. */
  private readonly lastBucket: Float64Array;
  /** Last time a source could not be tracked (cap reached). */
  private readonly overflowAt: Float64Array;
  /** Bucket of the last prune that freed nothing. */
  private readonly pruneFailed: Float64Array;
  /** The window (serial) it was last counted in: in the touch list when it equals windowSerial. */
  private readonly window: Int32Array;
  private readonly srcHead: Int32Array;
  private readonly srcCount: Int32Array;
  // Live destinations, least recently active first (expiry walks from the head).
  private readonly lru: IdList;
  // Destinations counted in the current window, in first-count order (judged at its end).
  private readonly touched: IdList;
  private liveCount = 0;
  private evicted = 0;

  // Sources: (destination, address) ids.
  private readonly sources: KeyTable;
  private readonly lastSeen: Float64Array;
  /** [id * KIND_COUNT + kind]: packets since the source became active. */
  private readonly kindPackets: Uint32Array;
  private readonly srcGen: Uint32Array;
  private readonly srcNext: Int32Array;
  private readonly srcPrev: Int32Array;

  private readonly suppression: SuppressionTable;

  // Per flow slot: the destination (and source, NIL = past the cap) its packets in direction flowDir count for.
  private readonly skip: Uint8Array;
  private readonly flowDir: Uint8Array;
  private readonly flowDest: Int32Array;
  private readonly flowDestGen: Uint32Array;
  private readonly flowSrc: Int32Array;
  private readonly flowSrcGen: Uint32Array;

  /** Counts closed windows. */
  private windowSerial = 0;
  // per window
  private findings = 0;
  private suppressed = 0;
  private expired = 0;
  private untrackedSources = 0;
  /** Flows not tracked: an allowed host or destination port. */
  private allowed = 0;
  private evictedBefore = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    const cfg = this.cfg;
    this.flows = ctx.flows;
    this.lookback = cfg.lookback;
    // 1 s buckets for the default 10 s; at most 60 buckets.
    this.buckets = Math.max(1, Math.min(60, Math.ceil(cfg.lookback)));
    const destBytes = HostTable.bytesPerEntry + BucketReducer.bytesPerKey(this.buckets, SERIES) + DEST_COLUMN_BYTES
      + SuppressionTable.bytesPerEntry(SUPPRESSION_WIDTH);
    const d = ctx.memory.keys('flood.destinations', destBytes, Math.max(1, cfg.maxKeys), 0.5);
    this.hosts = new HostTable(d, ctx.networks, ctx.config.networks.includeLoopback);
    this.series = new BucketReducer(d, cfg.lookback, this.buckets, SERIES);
    this.live = new Uint8Array(d);
    this.destGen = new Uint32Array(d);
    this.lastBucket = new Float64Array(d);
    this.overflowAt = new Float64Array(d);
    this.pruneFailed = new Float64Array(d);
    this.window = new Int32Array(d);
    this.srcHead = new Int32Array(d);
    this.srcCount = new Int32Array(d);
    this.lru = new IdList(d);
    this.touched = new IdList(d);
    this.suppression = new SuppressionTable(cfg.suppressFor, d, SUPPRESSION_WIDTH);

    const s = ctx.memory.keys('flood.sources', KeyTable.bytesPerEntry(SOURCE_WIDTH) + SOURCE_COLUMN_BYTES, MAX_SOURCE_ENTRIES, 0.5);
    this.sources = new KeyTable(s, SOURCE_WIDTH);
    this.lastSeen = new Float64Array(s);
    this.kindPackets = new Uint32Array(s * KIND_COUNT);
    this.srcGen = new Uint32Array(s);
    this.srcNext = new Int32Array(s);
    this.srcPrev = new Int32Array(s);

    const n = ctx.flows.capacity;
    this.skip = new Uint8Array(n);
    this.flowDir = new Uint8Array(n);
    this.flowDest = new Int32Array(n).fill(NIL);
    this.flowDestGen = new Uint32Array(n);
    this.flowSrc = new Int32Array(n);
    this.flowSrcGen = new Uint32Array(n);
  }

  onFlowStart(slot: number): void {
    const flows = this.flows;
    this.flowDest[slot] = NIL;
    let skip = false;
    if (!this.ctx.config.networks.includeLoopback) {
      const v = flows.version[slot]!;
      skip = isLoopback(v, this.words(flows.addrA, slot)) || isLoopback(v, this.words(flows.addrB, slot));
    }
    this.skip[slot] = skip ? 1 : 0;
  }

  onTcpSegment(v: PacketView, slot: number, dir: number): void {
    if (this.skip[slot] === 1 || (v.tcpFlags & (SYN | ACK)) !== SYN) return;
    const now = v.ts;
    const d = this.destOf(slot, dir, now);
    if (d === NIL) return;
    this.count(d, SYNS, now);
    this.seen(d, this.flowSrc[slot]!, K_SYN, now);
  }

  onConnectionAttempt(slot: number, event: AttemptEventCode, at: number): void {
    if (this.skip[slot] === 1) return;
    // Both count for the flow's server (the SYN's destination), without judging it: its SYNs do.
    const series = event === AttemptEvent.STARTED ? ATTEMPTS : event === AttemptEvent.COMPLETED ? COMPLETED : -1;
    if (series < 0) return;
    const d = this.destOf(slot, Dir.CLIENT_TO_SERVER, at);
    if (d !== NIL) this.series.add(d, at, series, 1);
  }

  onUdpDatagram(v: PacketView, slot: number, dir: number): void {
    this.unsolicited(v, slot, dir, UDP, K_UDP);
  }

  onIcmpMessage(v: PacketView, slot: number, dir: number): void {
    this.unsolicited(v, slot, dir, ICMP, K_ICMP);
  }

  /** UDP, ICMP: counted towards the server, or any packet of a flow whose client never sent (unsolicited). */
  private unsolicited(v: PacketView, slot: number, dir: number, series: number, kind: number): void {
    if (this.skip[slot] === 1) return;
    if (dir !== Dir.CLIENT_TO_SERVER && this.flows.packets[slot * 2 + Dir.CLIENT_TO_SERVER]! > 0) return;
    const now = v.ts;
    const d = this.destOf(slot, dir, now);
    if (d === NIL) return;
    this.count(d, series, now);
    this.seen(d, this.flowSrc[slot]!, kind, now);
  }

  private words(a: Uint32Array, slot: number): Uint32Array {
    const w = this.scratch;
    for (let i = 0; i < 4; i++) w[i] = a[slot * 4 + i]!;
    return w;
  }

  /**
   * The destination of a flow direction's packets (their source in
   * flowSrc[slot]): kept per slot, looked up (or created) when the flow or its
   * counted direction changes, or either entry went away. NIL when the flow
   * is allowed (then never counted again).
   */
  private destOf(slot: number, dir: number, now: number): number {
    const d = this.flowDest[slot]!;
    if (d !== NIL && this.flowDir[slot] === dir && this.destGen[d] === this.flowDestGen[slot]) {
      const s = this.flowSrc[slot]!;
      if (s === NIL || this.srcGen[s] === this.flowSrcGen[slot]) return d;
    }
    return this.lookup(slot, dir, now);
  }

  private lookup(slot: number, dir: number, now: number): number {
    const flows = this.flows;
    const version = flows.version[slot]!;
    // The destination of direction dir is the server for client-to-server packets, else the client.
    const dstIsA = (flows.clientIsA[slot] === 1) === (dir === Dir.SERVER_TO_CLIENT);
    const allow = this.allow.get();
    if (allow.active) {
      // Either endpoint, or the destination port of the counted direction (ICMP has none).
      const proto = flows.proto[slot];
      const dstPort = proto === Transport.TCP || proto === Transport.UDP ? (dstIsA ? flows.portA[slot]! : flows.portB[slot]!) : -1;
      flows.copyEndpoints(slot, this.endA, this.endB);
      if (allow.covers(version, this.endA, this.endB, dstPort)) {
        this.skip[slot] = 1;
        this.allowed++;
        return NIL;
      }
    }
    const d = this.destination(version, this.words(dstIsA ? flows.addrA : flows.addrB, slot));
    const src = dstIsA ? flows.addrB : flows.addrA;
    const sources = this.sources;
    const key = sources.key;
    key[0] = d;
    key[1] = src[slot * 4]!;
    for (let i = 1; i < 4; i++) key[1 + i] = version === 6 ? src[slot * 4 + i]! : 0;
    let s: number;
    if (this.srcCount[d]! < MAX_SOURCES && sources.size < sources.capacity) {
      // Room for a new source: one hash either way.
      s = sources.findOrInsert();
      if (sources.inserted) this.linkSource(d, s);
    } else {
      s = sources.find();
      if (s === NIL) s = this.admit(d, now);
      if (s === NIL) this.untrackedSources++;
    }
    this.flowDir[slot] = dir;
    this.flowDest[slot] = d;
    this.flowDestGen[slot] = this.destGen[d]!;
    this.flowSrc[slot] = s;
    if (s !== NIL) this.flowSrcGen[slot] = this.srcGen[s]!;
    return d;
  }

  /** The destination's id, its state created if it has none (the least recently active one evicted when the table is full). */
  private destination(version: number, words: Uint32Array): number {
    const hosts = this.hosts;
    const d = hosts.intern(version, words);
    // Expired destinations are the least recently active hosts, so the table reuses their ids first:
    // a live one is taken only when every id is live (then it is the least recently active).
    if (hosts.inserted && this.live[d] === 1) {
      this.evicted++;
      this.drop(d);
    }
    if (this.live[d] === 1) {
      this.lru.moveToTail(d);
      return d;
    }
    this.live[d] = 1;
    this.liveCount++;
    this.lastBucket[d] = -Infinity;
    this.overflowAt[d] = -Infinity;
    this.pruneFailed[d] = -Infinity;
    this.window[d] = -1;
    this.srcHead[d] = NIL;
    this.srcCount[d] = 0;
    this.lru.append(d);
    return d;
  }

  /** A new source of destination `d` (its key in sources.key) past a cap: NIL unless pruning makes room. */
  private admit(d: number, now: number): number {
    const sources = this.sources;
    this.prune(d, now);
    if (this.srcCount[d]! >= MAX_SOURCES || sources.size >= sources.capacity) return NIL;
    const s = sources.findOrInsert();
    this.linkSource(d, s);
    return s;
  }

  /** A new source `s` of destination `d`: no packets yet, first in its list. */
  private linkSource(d: number, s: number): void {
    this.lastSeen[s] = -Infinity;
    this.kindPackets.fill(0, s * KIND_COUNT, s * KIND_COUNT + KIND_COUNT);
    const head = this.srcHead[d]!;
    this.srcPrev[s] = NIL;
    this.srcNext[s] = head;
    if (head !== NIL) this.srcPrev[head] = s;
    this.srcHead[d] = s;
    this.srcCount[d]++;
  }

  private removeSource(d: number, s: number): void {
    const prev = this.srcPrev[s]!;
    const next = this.srcNext[s]!;
    if (prev === NIL) this.srcHead[d] = next; else this.srcNext[prev] = next;
    if (next !== NIL) this.srcPrev[next] = prev;
    this.srcCount[d]--;
    this.srcGen[s]++;
    this.sources.remove(s);
  }

  /** Forgets a destination's sources silent for longer than the look-back (at most once per bucket when it frees nothing). */
  private prune(d: number, now: number): void {
    const k = this.series.bucketOf(now);
    if (this.pruneFailed[d] === k) return;
    const before = this.srcCount[d];
    for (let s = this.srcHead[d]!; s !== NIL;) {
      const next = this.srcNext[s]!;
      if (now - this.lastSeen[s]! > this.lookback) this.removeSource(d, s);
      s = next;
    }
    if (this.srcCount[d] === before) this.pruneFailed[d] = k;
  }

  /** A destination's state goes away (evicted or expired); its host id stays interned until the table reuses it. */
  private drop(d: number): void {
    for (let s = this.srcHead[d]!; s !== NIL;) {
      const next = this.srcNext[s]!;
      this.srcGen[s]++;
      this.sources.remove(s);
      s = next;
    }
    this.srcHead[d] = NIL;
    this.srcCount[d] = 0;
    if (this.window[d] === this.windowSerial) this.touched.unlink(d);
    this.lru.unlink(d);
    this.series.clear(d);
    this.live[d] = 0;
    this.liveCount--;
    this.destGen[d]++;
  }

  /** Counts a packet for a destination, judging it first when it enters a new bucket (a sliding look-back). */
  private count(d: number, series: number, now: number): void {
    const k = this.series.bucketOf(now);
    if (k > this.lastBucket[d]!) {
      if (this.lastBucket[d] !== -Infinity) this.evaluate(d, k);
      this.lastBucket[d] = k;
      // Recency follows activity.
      this.hosts.touch(d);
      this.lru.moveToTail(d);
    }
    if (this.window[d] !== this.windowSerial) { this.window[d] = this.windowSerial; this.touched.append(d); }
    this.series.addToBucket(d, k, series, 1);
  }

  /** Counts a packet for its source (a source past the cap only marks the destination's count as a lower bound). */
  private seen(d: number, s: number, kind: number, now: number): void {
    if (s === NIL) { this.overflowAt[d] = now; return; }
    const o = s * KIND_COUNT;
    if (now - this.lastSeen[s]! > this.lookback) this.kindPackets.fill(0, o, o + KIND_COUNT);
    this.kindPackets[o + kind]++;
    if (now > this.lastSeen[s]!) this.lastSeen[s] = now;
  }

  /** Judges a destination over the look-back ending at bucket boundary `b`. */
  private evaluate(d: number, b: number): void {
    const cfg = this.cfg;
    const r = this.series;
    const seconds = this.lookback;
    const syns = r.sumBefore(d, SYNS, b);
    if (syns > 0 && syns / seconds >= cfg.synRate) {
      const attempts = r.sumBefore(d, ATTEMPTS, b);
      const completed = r.sumBefore(d, COMPLETED, b);
      const halfOpen = attempts > 0 ? Math.max(0, attempts - completed) / attempts : completed > 0 ? 0 : 1;
      if (halfOpen >= cfg.halfOpenRatio) this.flood(d, K_SYN, syns, b, attempts, completed, halfOpen);
    }
    const udp = r.sumBefore(d, UDP, b);
    if (udp > 0 && udp / seconds >= cfg.udpRate) this.flood(d, K_UDP, udp, b, 0, 0, NaN);
    const icmp = r.sumBefore(d, ICMP, b);
    if (icmp > 0 && icmp / seconds >= cfg.icmpRate) this.flood(d, K_ICMP, icmp, b, 0, 0, NaN);
  }

  /** Reports a flood (allocates: findings are rare). `halfOpen` is NaN for UDP and ICMP. */
  private flood(d: number, kind: number, packets: number, b: number, attempts: number, completed: number, halfOpen: number): void {
    const cfg = this.cfg;
    const end = b * this.series.bucketSeconds;
    const key = this.suppression.key;
    key[0] = kind;
    key[1] = d;
    key[2] = this.hosts.generation[d]!;
    if (!this.suppression.allow(end)) { this.suppressed++; return; }
    this.findings++;
    const kindName = KIND_NAMES[kind]!;
    const syn = kind === K_SYN;
    const host = this.hosts.name(d);
    const rate = packets / this.lookback;
    const threshold = kind === K_SYN ? cfg.synRate : kind === K_UDP ? cfg.udpRate : cfg.icmpRate;
    const crossed: Crossing[] = [{ measured: 'ratePerSecond', value: round1(rate), setting: kind === K_SYN ? 'synRate' : kind === K_UDP ? 'udpRate' : 'icmpRate', limit: threshold }];
    if (syn) crossed.push({ measured: 'halfOpenRatio', value: halfOpen, setting: 'halfOpenRatio', limit: cfg.halfOpenRatio });
    // Sources of this kind seen within the look-back, by packets of it (ties: address), top few.
    const from = end - this.lookback;
    const version = this.hosts.version(d);
    const active: Array<{ packets: number; word: number; name: string }> = [];
    const w = this.scratch;
    for (let s = this.srcHead[d]!; s !== NIL; s = this.srcNext[s]!) {
      const n = this.kindPackets[s * KIND_COUNT + kind]!;
      if (this.lastSeen[s]! < from || n === 0) continue;
      for (let i = 0; i < 4; i++) w[i] = this.sources.keyWord(s, 1 + i);
      active.push({ packets: n, word: w[0]!, name: formatAddress(version, w) });
    }
    const capped = this.overflowAt[d]! >= from;
    const sources = active.length;
    // Ties: numeric order for IPv4, text order for IPv6.
    active.sort((x, y) => y.packets - x.packets || (version === 4 ? x.word - y.word : x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    const top = active.slice(0, TOP_SOURCES).map((s) => `${s.name} (${s.packets})`).join(', ');
    const distributed = sources >= DISTRIBUTED;
    const what = syn ? 'SYN flood' : kind === K_UDP ? 'UDP flood' : 'ICMP flood';
    const unit = syn ? 'SYN/s' : 'packets/s';
    const sourcesText = `${capped ? 'at least ' : ''}${sources.toLocaleString('en-US')} source${sources === 1 && !capped ? '' : 's'}`;
    this.ctx.report({
      type: 'flood',
      severity: distributed ? 'critical' : 'warning',
      key: `${kindName}:${host}`,
      summary: `${distributed ? 'Distributed ' : ''}${what} against ${host}: ${round1(rate).toLocaleString('en-US')} ${unit} over the last ${this.lookback} s`
        + (syn ? `, ${Math.round(halfOpen * 100)} % of connection attempts never completed` : '')
        + `, from ${sourcesText}${distributed ? ' (DDoS)' : ''}.`,
      evidence: {
        kind: kindName,
        destination: host,
        ratePerSecond: round1(rate),
        packets,
        threshold,
        thresholds: thresholdsCrossed(crossed),
        lookbackSeconds: this.lookback,
        halfOpenRatio: syn ? round3(halfOpen) : null,
        attempts: syn ? attempts : null,
        completed: syn ? completed : null,
        sources,
        sourcesCapped: capped,
        distributed,
        topSources: top,
      },
      host,
    });
  }

  closeWindow(span: WindowSpan): Metrics {
    // Judge the destinations counted in this window over the look-back ending at its end.
    if (this.touched.head !== NIL) {
      const b = this.series.boundaryAt(span.relEnd);
      for (let d = this.touched.head; d !== NIL; d = this.touched.next(d)) this.evaluate(d, b);
    }
    this.touched.clear();
    this.windowSerial++;
    this.sweep(span.relEnd);
    const evicted = this.evicted;
    const metrics: Metrics = {
      tracked: this.liveCount,
      maxKeys: this.hosts.capacity,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
      expired: this.expired,
      sourcesTracked: this.sources.size,
      untrackedSources: this.untrackedSources,
      allowed: this.allowed,
      findings: this.findings,
      suppressed: this.suppressed,
      suppressorEvicted: this.suppression.evicted,
    };
    this.evictedBefore = evicted;
    this.findings = this.suppressed = this.expired = this.untrackedSources = this.allowed = 0;
    return metrics;
  }

  /** Drops destinations with nothing left in their look-back (least recently active first, up to the first that has). */
  private sweep(now: number): void {
    const b = this.series.boundaryAt(now);
    for (let d = this.lru.head; d !== NIL;) {
      if (b - Math.max(this.lastBucket[d]!, this.series.newestBucket(d)) <= this.buckets) break;
      const next = this.lru.next(d);
      this.drop(d);
      this.expired++;
      d = next;
    }
  }
}
