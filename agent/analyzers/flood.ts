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
 * Judged at the window's close (flow-sharded workers, issue 13: a
 * destination's and its sources' packets come from host pairs in every
 * worker). During the window the packets are only counted, per (destination,
 * bucket) and per (destination, source, bucket), with where in the input each
 * was first seen and a source's first and last time (lib/flood-window.ts):
 * figures that add up across workers. At the close those entries are replayed
 * in input order (by where each was first seen) into the state below: the
 * judgement at a bucket boundary, a source's admission, an eviction happen as
 * they would have at that packet (a source past the caps is tried again at
 * each bucket; the packets of one bucket count at its first). A finding
 * judged at a boundary carries the place in the input of the packet that
 * crossed it (FindingDraft.order), so the window lists it where it would
 * have been reported at that packet. One pipeline does the same with its one
 * window's entries; a flow-sharded worker gives its entries (windowPart) and
 * keeps no state, the coordinator merges them and judges (mergeWindow): the
 * same report.
 *
 * State, all typed arrays sized once at start (memory.budgetMB, capped by
 * maxKeys; the window's entries grow up to theirs, then are reused), nothing
 * allocated per packet once they have:
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
 * - the window's entries: two WindowCounts growing up to their share of the
 *   budget (past it a packet is not counted, or not for its source: in
 *   `windowDropped`, and the source count becomes a lower bound); per flow
 *   the entries of its current bucket, so only a flow's first counted packet
 *   in a bucket hashes its addresses.
 * The look-back's buckets are fixed at start (a SIGHUP changes thresholds
 * and the allow-list, not the look-back).
 */
import { formatAddress } from '../../common/address.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { AttemptEvent, type AttemptEventCode } from '../flow/connection-attempts.js';
import { Dir, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { ConfiguredAllowList, thresholdsCrossed, type Crossing } from './lib/allow-list.js';
import { HostTable } from './lib/host-table.js';
import { KeyTable } from './lib/key-table.js';
import { isLoopback } from './lib/networks.js';
import { SuppressionTable } from './lib/suppression.js';
import { IdList } from './lib/id-list.js';
import { BucketReducer } from './lib/time-buckets.js';
import { MAX, MIN, SUM, WindowCounts, type WindowCountsPart } from './lib/flood-window.js';
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

// The window's entries (lib/flood-window.ts).
/** (IP version, destination address words 0..3, bucket low and high words). */
const WD_WIDTH = 7;
/** (IP version, destination address words 0..3, source address words 0..3, bucket low and high words). */
const WS_WIDTH = 11;
/** A bucket index in two key words (a packet time far from the time base gives one past 32 bits). */
const TWO_32 = 4294967296;
// A destination entry's values: where first seen, the last time of a packet whose source entry did not fit, then its SERIES counts.
const D_ORDER = 0;
const D_LOST_AT = 1;
const D_SERIES = 2;
const D_MODES = [MIN, MAX, SUM, SUM, SUM, SUM, SUM];
// A source entry's values: where first seen, first and last time, then its KIND_COUNT counts.
const S_ORDER = 0;
const S_FIRST = 1;
const S_LAST = 2;
const S_KINDS = 3;
const S_MODES = [MIN, MIN, MAX, SUM, SUM, SUM];
/** Entries per window, at most (the memory budget may grant fewer). */
const MAX_WINDOW_ENTRIES = 1 << 20;
/** Bytes of a window entry beside its key: values, index share. */
const WINDOW_ENTRY_BYTES = 7 * 8 + 2 * 4;
// Shares of the detector's budget (at memory.budgetMB 200: 5,036 destinations, 24,041 sources, 11,684 window entries of each kind).
const DEST_SHARE = 0.45;
const SOURCE_SHARE = 0.25;
const WINDOW_SHARE = 0.3;

/** A flow-sharded worker's window (windowPart): its entries and the flows its allow-list skipped. */
interface FloodPart {
  destinations: WindowCountsPart;
  sources: WindowCountsPart;
  allowed: number;
  dropped: number;
}

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
  /** Workers count their window and judge nothing; the coordinator judges and counts nothing. */
  private readonly worker: boolean;

  // Destinations, by host id.
  private readonly hosts: HostTable;
  private readonly series: BucketReducer;
  private readonly live: Uint8Array;
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
  private readonly srcNext: Int32Array;
  private readonly srcPrev: Int32Array;

  private readonly suppression: SuppressionTable;

  // The current window's entries.
  private readonly winDest: WindowCounts;
  private readonly winSource: WindowCounts;
  /** The coordinator's merge of the workers' entries. */
  private readonly mergedDest: WindowCounts | null;
  private readonly mergedSource: WindowCounts | null;
  /** The source entry of the last `entry` call (-1: none, the table is full). */
  private curSource = NIL;

  // Per flow slot: the skip flag, the direction the allow-list was checked for, and the entries of its current bucket.
  private readonly skip: Uint8Array;
  private readonly checkedDir: Uint8Array;
  private readonly flowSerial: Int32Array;
  private readonly flowBucket: Float64Array;
  private readonly flowDir: Uint8Array;
  private readonly flowDest: Int32Array;
  private readonly flowSrc: Int32Array;

  /** Counts closed windows. */
  private windowSerial = 0;
  // per window
  private findings = 0;
  private suppressed = 0;
  private expired = 0;
  private untrackedSources = 0;
  /** Flows not tracked: an allowed host or destination port. */
  private allowed = 0;
  /** Packets (and connection attempts) not counted, or not for their source: the window's entries were at their cap. */
  private dropped = 0;
  private evictedBefore = 0;
  private part: FloodPart | undefined;

  constructor(private readonly ctx: AnalyzerContext) {
    const cfg = this.cfg;
    this.flows = ctx.flows;
    this.worker = ctx.shardRole === 'worker';
    const judging = !this.worker;
    const counting = ctx.shardRole !== 'coordinator';
    this.lookback = cfg.lookback;
    // 1 s buckets for the default 10 s; at most 60 buckets.
    this.buckets = Math.max(1, Math.min(60, Math.ceil(cfg.lookback)));
    const destBytes = HostTable.bytesPerEntry + BucketReducer.bytesPerKey(this.buckets, SERIES) + DEST_COLUMN_BYTES
      + SuppressionTable.bytesPerEntry(SUPPRESSION_WIDTH);
    // A worker judges nothing: its state stays at one entry (the capacity granted is still the one reported).
    const granted = ctx.memory.keys('flood.destinations', destBytes, Math.max(1, cfg.maxKeys), DEST_SHARE);
    const d = judging ? granted : 1;
    this.hosts = new HostTable(d, ctx.networks, ctx.config.networks.includeLoopback);
    this.series = new BucketReducer(d, cfg.lookback, this.buckets, SERIES);
    this.live = new Uint8Array(d);
    this.lastBucket = new Float64Array(d);
    this.overflowAt = new Float64Array(d);
    this.pruneFailed = new Float64Array(d);
    this.window = new Int32Array(d);
    this.srcHead = new Int32Array(d);
    this.srcCount = new Int32Array(d);
    this.lru = new IdList(d);
    this.touched = new IdList(d);
    this.suppression = new SuppressionTable(cfg.suppressFor, d, SUPPRESSION_WIDTH);

    const s = judging ? ctx.memory.keys('flood.sources', KeyTable.bytesPerEntry(SOURCE_WIDTH) + SOURCE_COLUMN_BYTES, MAX_SOURCE_ENTRIES, SOURCE_SHARE) : 1;
    this.sources = new KeyTable(s, SOURCE_WIDTH);
    this.lastSeen = new Float64Array(s);
    this.kindPackets = new Uint32Array(s * KIND_COUNT);
    this.srcNext = new Int32Array(s);
    this.srcPrev = new Int32Array(s);

    // Both tables in one share, by the bytes of a destination and a source entry.
    const w = counting ? ctx.memory.keys('flood.window', 4 * (WD_WIDTH + WS_WIDTH) + 2 * WINDOW_ENTRY_BYTES, MAX_WINDOW_ENTRIES, WINDOW_SHARE) : 1;
    this.winDest = new WindowCounts(WD_WIDTH, D_MODES, w);
    this.winSource = new WindowCounts(WS_WIDTH, S_MODES, w);
    // Bounded by the workers' entries: uncapped.
    this.mergedDest = ctx.shardRole === 'coordinator' ? new WindowCounts(WD_WIDTH, D_MODES, Infinity) : null;
    this.mergedSource = ctx.shardRole === 'coordinator' ? new WindowCounts(WS_WIDTH, S_MODES, Infinity) : null;

    const n = counting ? ctx.flows.capacity : 1;
    this.skip = new Uint8Array(n);
    this.checkedDir = new Uint8Array(n);
    this.flowSerial = new Int32Array(n).fill(-1);
    this.flowBucket = new Float64Array(n);
    this.flowDir = new Uint8Array(n);
    this.flowDest = new Int32Array(n);
    this.flowSrc = new Int32Array(n);
  }

  onFlowStart(slot: number): void {
    const flows = this.flows;
    this.checkedDir[slot] = 0;
    this.flowSerial[slot] = -1;
    let skip = false;
    if (!this.ctx.config.networks.includeLoopback) {
      const v = flows.version[slot]!;
      skip = isLoopback(v, this.words(flows.addrA, slot)) || isLoopback(v, this.words(flows.addrB, slot));
    }
    this.skip[slot] = skip ? 1 : 0;
  }

  onTcpSegment(v: PacketView, slot: number, dir: number): void {
    if (this.skip[slot] === 1 || (v.tcpFlags & (SYN | ACK)) !== SYN) return;
    this.collect(slot, dir, v.ts, SYNS, K_SYN);
  }

  onConnectionAttempt(slot: number, event: AttemptEventCode, at: number): void {
    if (this.skip[slot] === 1) return;
    // Both count for the flow's server (the SYN's destination), without judging it: its SYNs do.
    const series = event === AttemptEvent.STARTED ? ATTEMPTS : event === AttemptEvent.COMPLETED ? COMPLETED : -1;
    if (series < 0) return;
    const e = this.entry(slot, Dir.CLIENT_TO_SERVER, at);
    if (e < 0) return;
    this.firstSeen(e);
    this.winDest.values[e * D_MODES.length + D_SERIES + series]++;
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
    this.collect(slot, dir, v.ts, series, kind);
  }

  private words(a: Uint32Array, slot: number): Uint32Array {
    const w = this.scratch;
    for (let i = 0; i < 4; i++) w[i] = a[slot * 4 + i]!;
    return w;
  }

  /** Counts a packet of `series` (and its source's `kind`) in the window's entries. */
  private collect(slot: number, dir: number, now: number, series: number, kind: number): void {
    const e = this.entry(slot, dir, now);
    if (e < 0) return;
    this.firstSeen(e);
    this.winDest.values[e * D_MODES.length + D_SERIES + series]++;
    const s = this.curSource;
    if (s < 0) {
      // Its source is not counted: the destination's source count becomes a lower bound.
      this.dropped++;
      if (now > this.winDest.values[e * D_MODES.length + D_LOST_AT]!) this.winDest.values[e * D_MODES.length + D_LOST_AT] = now;
      return;
    }
    const values = this.winSource.values;
    const o = s * S_MODES.length;
    const order = this.ctx.packetOrder;
    if (order < values[o + S_ORDER]!) values[o + S_ORDER] = order;
    if (now < values[o + S_FIRST]!) values[o + S_FIRST] = now;
    if (now > values[o + S_LAST]!) values[o + S_LAST] = now;
    values[o + S_KINDS + kind]++;
  }

  /** The destination entry `e` was seen at the current packet. */
  private firstSeen(e: number): void {
    const values = this.winDest.values;
    const order = this.ctx.packetOrder;
    if (order < values[e * D_MODES.length + D_ORDER]!) values[e * D_MODES.length + D_ORDER] = order;
  }

  /**
   * The window's destination entry of a flow direction's packets at time `t`
   * (its source entry in curSource): kept per slot for the bucket, looked up
   * (or inserted) when the bucket, the window or the direction changes. -1
   * when the flow is allowed (then never counted again) or the entries are at
   * their cap (counted in `dropped`).
   */
  private entry(slot: number, dir: number, t: number): number {
    const k = Math.floor(t / this.series.bucketSeconds);
    if (this.flowSerial[slot] === this.windowSerial && this.flowBucket[slot] === k && this.flowDir[slot] === dir) {
      this.curSource = this.flowSrc[slot]!;
      return this.flowDest[slot]!;
    }
    const flows = this.flows;
    const version = flows.version[slot]!;
    // The destination of direction dir is the server for client-to-server packets, else the client.
    const dstIsA = (flows.clientIsA[slot] === 1) === (dir === Dir.SERVER_TO_CLIENT);
    if (this.checkedDir[slot] !== dir + 1) {
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
      this.checkedDir[slot] = dir + 1;
    }
    const dst = dstIsA ? flows.addrA : flows.addrB;
    const src = dstIsA ? flows.addrB : flows.addrA;
    const v6 = version === 6;
    const dk = this.winDest.key;
    dk[0] = version;
    for (let i = 0; i < 4; i++) dk[1 + i] = i === 0 || v6 ? dst[slot * 4 + i]! : 0;
    dk[5] = k >>> 0;
    dk[6] = Math.floor(k / TWO_32) | 0;
    const d = this.winDest.findOrInsert();
    if (d < 0) { this.dropped++; return NIL; }
    const sk = this.winSource.key;
    for (let i = 0; i < 5; i++) sk[i] = dk[i]!;
    for (let i = 0; i < 4; i++) sk[5 + i] = i === 0 || v6 ? src[slot * 4 + i]! : 0;
    sk[9] = dk[5]!;
    sk[10] = dk[6]!;
    const s = this.winSource.findOrInsert();
    this.flowSerial[slot] = this.windowSerial;
    this.flowBucket[slot] = k;
    this.flowDir[slot] = dir;
    this.flowDest[slot] = d;
    this.flowSrc[slot] = s;
    this.curSource = s;
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
  }

  /**
   * Replays a destination entry (packets and attempts of one destination in
   * one bucket) where it was first seen: the destination judged first when it
   * enters a new bucket (a sliding look-back), as at that packet.
   */
  private replayDestination(keys: Uint32Array, values: Float64Array, e: number): void {
    const w = this.scratch;
    for (let i = 0; i < 4; i++) w[i] = keys[e * WD_WIDTH + 1 + i]!;
    const d = this.destination(keys[e * WD_WIDTH]!, w);
    const k = (keys[e * WD_WIDTH + 6]! | 0) * TWO_32 + keys[e * WD_WIDTH + 5]!;
    const o = e * D_MODES.length;
    const packets = values[o + D_SERIES + SYNS]! + values[o + D_SERIES + UDP]! + values[o + D_SERIES + ICMP]!;
    if (packets > 0) {
      if (k > this.lastBucket[d]!) {
        if (this.lastBucket[d] !== -Infinity) this.evaluate(d, k, values[o + D_ORDER]!);
        this.lastBucket[d] = k;
        // Recency follows activity.
        this.hosts.touch(d);
        this.lru.moveToTail(d);
      }
      if (this.window[d] !== this.windowSerial) { this.window[d] = this.windowSerial; this.touched.append(d); }
    }
    if (values[o + D_LOST_AT]! > this.overflowAt[d]!) this.overflowAt[d] = values[o + D_LOST_AT]!;
    for (let series = 0; series < SERIES; series++) {
      const n = values[o + D_SERIES + series]!;
      if (n > 0) this.series.addToBucket(d, k, series, n);
    }
  }

  /** Replays a source entry (a source's packets to a destination in one bucket): the source admitted if there is room, its packets counted. */
  private replaySource(keys: Uint32Array, values: Float64Array, e: number): void {
    const w = this.scratch;
    const base = e * WS_WIDTH;
    for (let i = 0; i < 4; i++) w[i] = keys[base + 1 + i]!;
    const o = e * S_MODES.length;
    const first = values[o + S_FIRST]!;
    const last = values[o + S_LAST]!;
    const d = this.hosts.find(keys[base]!, w);
    // Its destination entry came first; only an eviction in between (a full table) takes it.
    if (d < 0 || this.live[d] !== 1) { this.untrackedSources++; return; }
    const sources = this.sources;
    const key = sources.key;
    key[0] = d;
    for (let i = 0; i < 4; i++) key[1 + i] = keys[base + 5 + i]!;
    let s: number;
    if (this.srcCount[d]! < MAX_SOURCES && sources.size < sources.capacity) {
      // Room for a new source: one hash either way.
      s = sources.findOrInsert();
      if (sources.inserted) this.linkSource(d, s);
    } else {
      s = sources.find();
      if (s === NIL) s = this.admit(d, first);
    }
    if (s === NIL) {
      // A source past the cap only marks the destination's count as a lower bound.
      this.untrackedSources++;
      if (last > this.overflowAt[d]!) this.overflowAt[d] = last;
      return;
    }
    const ko = s * KIND_COUNT;
    if (first - this.lastSeen[s]! > this.lookback) this.kindPackets.fill(0, ko, ko + KIND_COUNT);
    for (let kind = 0; kind < KIND_COUNT; kind++) this.kindPackets[ko + kind] += values[o + S_KINDS + kind]!;
    if (last > this.lastSeen[s]!) this.lastSeen[s] = last;
  }

  /** Judges a destination over the look-back ending at bucket boundary `b`; its findings belong at input position `order`. */
  private evaluate(d: number, b: number, order: number): void {
    const cfg = this.cfg;
    const r = this.series;
    const seconds = this.lookback;
    const syns = r.sumBefore(d, SYNS, b);
    if (syns > 0 && syns / seconds >= cfg.synRate) {
      const attempts = r.sumBefore(d, ATTEMPTS, b);
      const completed = r.sumBefore(d, COMPLETED, b);
      const halfOpen = attempts > 0 ? Math.max(0, attempts - completed) / attempts : completed > 0 ? 0 : 1;
      if (halfOpen >= cfg.halfOpenRatio) this.flood(d, K_SYN, syns, b, attempts, completed, halfOpen, order);
    }
    const udp = r.sumBefore(d, UDP, b);
    if (udp > 0 && udp / seconds >= cfg.udpRate) this.flood(d, K_UDP, udp, b, 0, 0, NaN, order);
    const icmp = r.sumBefore(d, ICMP, b);
    if (icmp > 0 && icmp / seconds >= cfg.icmpRate) this.flood(d, K_ICMP, icmp, b, 0, 0, NaN, order);
  }

  /** Reports a flood (allocates: findings are rare). `halfOpen` is NaN for UDP and ICMP. */
  private flood(d: number, kind: number, packets: number, b: number, attempts: number, completed: number, halfOpen: number, order: number): void {
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
      order,
    });
  }


  closeWindow(span: WindowSpan): Metrics {
    const part: FloodPart = {
      destinations: this.winDest.take(),
      sources: this.winSource.take(),
      allowed: this.allowed,
      dropped: this.dropped,
    };
    this.allowed = this.dropped = 0;
    if (this.worker) {
      // Judged by the coordinator (mergeWindow): this worker keeps no state.
      this.part = part;
      this.windowSerial++;
      return {};
    }
    return this.judge(span, part.destinations, part.sources, part.allowed, part.dropped);
  }

  windowPart(): unknown {
    const part = this.part;
    this.part = undefined;
    return part;
  }

  /**
   * The workers' entries merged by key (a destination's add up; a source's
   * are one host pair's, so in one worker, merged all the same), then judged
   * as one pipeline's window.
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly FloodPart[];
    const dests = this.mergedDest!;
    const sources = this.mergedSource!;
    let allowed = 0;
    let dropped = 0;
    for (const p of parts) {
      dests.absorb(p.destinations);
      sources.absorb(p.sources);
      allowed += p.allowed;
      dropped += p.dropped;
    }
    return this.judge(input.span, dests.take(), sources.take(), allowed, dropped);
  }

  /**
   * The window's entries replayed in input order (where each was first seen;
   * a destination's entry before its sources' at the same packet; then by
   * key, for a total order), the destinations counted in it judged at its
   * end, the idle ones dropped: its metrics.
   */
  private judge(span: WindowSpan, dests: WindowCountsPart, sources: WindowCountsPart, allowed: number, dropped: number): Metrics {
    // Entry i < nd: destination i; else source i - nd.
    const nd = dests.keys.length / WD_WIDTH;
    const ns = sources.keys.length / WS_WIDTH;
    const orderOf = (i: number): number => (i < nd ? dests.values[i * D_MODES.length + D_ORDER]! : sources.values[(i - nd) * S_MODES.length + S_ORDER]!);
    const keyOf = (i: number): Uint32Array => (i < nd ? dests.keys.subarray(i * WD_WIDTH, (i + 1) * WD_WIDTH) : sources.keys.subarray((i - nd) * WS_WIDTH, (i - nd + 1) * WS_WIDTH));
    const all = Array.from({ length: nd + ns }, (_, i) => i);
    all.sort((a, b) => {
      const oa = orderOf(a);
      const ob = orderOf(b);
      if (oa !== ob) return oa < ob ? -1 : 1;
      if ((a < nd) !== (b < nd)) return a < nd ? -1 : 1;
      const ka = keyOf(a);
      const kb = keyOf(b);
      for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
      return 0;
    });
    for (const i of all) {
      if (i < nd) this.replayDestination(dests.keys, dests.values, i);
      else this.replaySource(sources.keys, sources.values, i - nd);
    }
    // Judge the destinations counted in this window over the look-back ending at its end.
    if (this.touched.head !== NIL) {
      const b = this.series.boundaryAt(span.relEnd);
      for (let d = this.touched.head; d !== NIL; d = this.touched.next(d)) this.evaluate(d, b, Infinity);
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
      allowed,
      windowDropped: dropped,
      findings: this.findings,
      suppressed: this.suppressed,
      suppressorEvicted: this.suppression.evicted,
    };
    this.evictedBefore = evicted;
    this.findings = this.suppressed = this.expired = this.untrackedSources = 0;
    return metrics;
  }

  /**
   * Drops every destination with nothing left in its look-back. All are
   * walked, not up to the first live one: which expire then depends on their
   * own buckets only, never on the recency order (which packet times going
   * backwards can take out of time order).
   */
  private sweep(now: number): void {
    const b = this.series.boundaryAt(now);
    for (let d = this.lru.head; d !== NIL;) {
      const next = this.lru.next(d);
      if (b - Math.max(this.lastBucket[d]!, this.series.newestBucket(d)) > this.buckets) {
        this.drop(d);
        this.expired++;
      }
      d = next;
    }
  }
}
