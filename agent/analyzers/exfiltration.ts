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
 * link-local addresses never count. Nor does a flow the allow-list
 * (analyzers.exfiltration.allowHosts / allowPorts) covers: its internal host
 * listed (a backup server), its external host listed (sanctioned cloud
 * storage, an offsite backup target) or its external port listed (TCP and
 * UDP: a sanctioned upload service). Checked once per flow, after the rules
 * above and before its hosts are interned; counted per window in the metric
 * `allowed` (flows). A SIGHUP's new allow-list applies to flows that start
 * after it.
 *
 * Severity: the destination port that received the most bytes of the pair is
 * the finding's port. In commonPorts: info (a large backup or upload to a
 * cloud service looks the same); elsewhere: warning, and critical from ten
 * times minBytes. The evidence names the thresholds crossed
 * (evidence.thresholds: sentBytes against minBytes, the sent / received
 * ratio against minRatio, Infinity when nothing came back).
 *
 * Evaluation: a pair is judged over the look-back ending at each bucket
 * boundary it has traffic after (sliding, 10 buckets per look-back) and at
 * each window's end; re-reported at most once per suppressFor with the
 * evidence of that moment.
 *
 * State, all preallocated at construction (no object per pair or packet):
 * pairs in a KeyTable of [internal host id, external host id] (LRU,
 * evictions counted) sized from memory.budgetMB (capped by maxKeys), with
 * typed-array columns: flows, newest bucket, the window it last had traffic
 * in, at most MAX_PORTS destination ports with their bytes, the hosts'
 * generations; sent and received bytes in a BucketReducer of 10 buckets;
 * suppression in a SuppressionTable on the two addresses (Suppressor's key),
 * one entry per pair of capacity. Hosts are interned in a HostTable of two
 * ids per pair, and only for flows that make a pair, touched whenever their
 * pair is: so a live pair's hosts are never the least recently used ones
 * while it lives (a host id reused for another address would retire the pair:
 * the generation check is a safety net). A pair with nothing left in its
 * look-back is dropped at window close. Per flow: the pair id and its
 * generation in typed arrays.
 *
 * Bytes are added per packet (onPacket: every IP protocol counts, not only
 * TCP and UDP), not read from the flow table at flow end: a pair is judged at
 * the first packet of any of its flows in a new bucket, so every bucket must
 * already hold the bytes of all its flows by then.
 */
import { idleKeys } from '../../common/memory-budget.js';
import type { FindingSeverity } from '../../common/report.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, FlowState, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { ConfiguredAllowList, thresholdsCrossed } from './lib/allow-list.js';
import { HostTable } from './lib/host-table.js';
import { isLoopback } from './lib/networks.js';
import { isSpecialAddress } from './lib/networks.js';
import { KeyTable } from './lib/key-table.js';
import { SuppressionTable } from './lib/suppression.js';
import { BucketReducer } from './lib/time-buckets.js';
import { plural, round1 } from './lib/format.js';

const SENT = 0;
const RECEIVED = 1;
const BUCKETS = 10;
/** Destination ports remembered per pair (more go to "other"). */
const MAX_PORTS = 8;
/** Sent bytes this many times minBytes to an unusual port make the finding critical. */
const CRITICAL_FACTOR = 10;
/** Host ids per pair of capacity: a pair's two hosts must outlive it in the host table. */
const HOSTS_PER_PAIR = 2;
/**
 * Touched-list entries per pair of capacity: pairs evicted within a window
 * leave stale entries; with room for twice the live pairs, a compaction
 * frees at least half the list (amortised O(1) per entry, even under churn).
 */
const TOUCHED_PER_PAIR = 2;

/** Bytes one pair costs across every structure indexed by its id (memory.budgetMB). */
const BYTES_PER_PAIR = KeyTable.bytesPerEntry(2)
  + 4 * 5 /* generation, host generations, flows, window */ + 8 /* newest bucket */
  + MAX_PORTS * (2 + 8) + 1 + 8 /* ports, their bytes, count, other */
  + TOUCHED_PER_PAIR * 8 /* touched list */
  + BucketReducer.bytesPerKey(BUCKETS, 2)
  + SuppressionTable.bytesPerEntry(10)
  + HOSTS_PER_PAIR * HostTable.bytesPerEntry;

export function createExfiltrationAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ExfiltrationAnalyzer(ctx);
}

class ExfiltrationAnalyzer implements Analyzer {
  readonly id = 'exfiltration';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['exfiltration'] { return this.ctx.config.analyzers.exfiltration; }
  private readonly flows: FlowTable;
  private readonly hosts: HostTable;
  private readonly pairs: KeyTable;
  /** The pair table's capacity granted by memory.budgetMB (the coordinator's instance allocates less: idleKeys). */
  private readonly maxKeys: number;
  private readonly bytes: BucketReducer;
  private readonly suppression: SuppressionTable;
  private readonly commonPorts: Uint8Array = new Uint8Array(65536);
  private readonly allow = new ConfiguredAllowList(() => this.cfg, 'analyzers.exfiltration');
  // per pair id
  /** Bumped when the id is (re)assigned or freed: flows holding an older value let go. */
  private readonly gen: Uint32Array;
  private readonly internalGen: Uint32Array;
  private readonly externalGen: Uint32Array;
  private readonly flowCount: Uint32Array;
  /** Newest bucket with traffic (-Infinity: none yet). */
  private readonly lastBucket: Float64Array;
  /** The window (serial) it last had traffic in. */
  private readonly window: Int32Array;
  private readonly portCount: Uint8Array;
  private readonly ports: Uint16Array;
  private readonly portBytes: Float64Array;
  private readonly otherPortBytes: Float64Array;
  /** Pairs with traffic in the current window, in first-traffic order, with their generation. */
  private readonly touched: Int32Array;
  private readonly touchedGen: Uint32Array;
  private touchedCount = 0;
  // per flow slot
  private readonly pairOf: Int32Array;
  private readonly pairGenOf: Uint32Array;
  /** The direction in which the internal host sends. */
  private readonly sendDir: Uint8Array;
  private readonly portIdx: Int8Array;
  private readonly scratchA = new Uint32Array(4);
  private readonly scratchB = new Uint32Array(4);
  /** Counts closed windows. */
  private windowSerial = 0;
  /** Pairs retired because one of their hosts left the host table. */
  private retired = 0;
  // per window
  private findings = 0;
  private suppressed = 0;
  private expired = 0;
  /** Flows not tracked: an allowed host or external port. */
  private allowed = 0;
  private evictedBefore = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    this.flows = ctx.flows;
    const n = ctx.flows.capacity;
    this.pairOf = new Int32Array(n).fill(-1);
    this.pairGenOf = new Uint32Array(n);
    this.sendDir = new Uint8Array(n);
    this.portIdx = new Int8Array(n);
    const cfg = this.cfg;
    for (const p of cfg.commonPorts) if (p >= 0 && p < 65536) this.commonPorts[p] = 1;
    this.maxKeys = ctx.memory.keys('exfiltration.pairs', BYTES_PER_PAIR, cfg.maxKeys);
    // A flow-sharded coordinator only adds up the workers' metrics: its tables stay empty.
    const capacity = ctx.shardRole === 'coordinator' ? idleKeys(this.maxKeys) : this.maxKeys;
    this.hosts = new HostTable(capacity * HOSTS_PER_PAIR, ctx.networks, ctx.config.networks.includeLoopback);
    this.pairs = new KeyTable(capacity, 2, (id) => { this.gen[id]++; });
    this.bytes = new BucketReducer(capacity, cfg.lookback, BUCKETS, 2);
    this.suppression = new SuppressionTable(cfg.suppressFor, capacity, 10);
    this.gen = new Uint32Array(capacity);
    this.internalGen = new Uint32Array(capacity);
    this.externalGen = new Uint32Array(capacity);
    this.flowCount = new Uint32Array(capacity);
    this.lastBucket = new Float64Array(capacity);
    this.window = new Int32Array(capacity);
    this.portCount = new Uint8Array(capacity);
    this.ports = new Uint16Array(capacity * MAX_PORTS);
    this.portBytes = new Float64Array(capacity * MAX_PORTS);
    this.otherPortBytes = new Float64Array(capacity);
    this.touched = new Int32Array(capacity * TOUCHED_PER_PAIR);
    this.touchedGen = new Uint32Array(capacity * TOUCHED_PER_PAIR);
  }

  onFlowStart(slot: number): void {
    this.pairOf[slot] = -1;
    const flows = this.flows;
    const version = flows.version[slot]!;
    const wa = this.scratchA;
    const wb = this.scratchB;
    for (let i = 0; i < 4; i++) { wa[i] = flows.addrA[slot * 4 + i]!; wb[i] = flows.addrB[slot * 4 + i]!; }
    // Judged on the addresses before interning: only hosts of pairs take host ids (see the header).
    const nets = this.ctx.networks;
    const aIn = nets.isInternal(version, wa);
    if (aIn === nets.isInternal(version, wb)) return;
    if (isSpecialAddress(version, aIn ? wb : wa)) return;
    if (!this.ctx.config.networks.includeLoopback && (isLoopback(version, wa) || isLoopback(version, wb))) return;
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
    const allow = this.allow.get();
    if (allow.covers(version, wa, wb, proto === Transport.TCP || proto === Transport.UDP ? externalPort : -1)) { this.allowed++; return; }
    const hosts = this.hosts;
    const int = hosts.intern(version, aIn ? wa : wb);
    const ext = hosts.intern(version, aIn ? wb : wa);
    const pairs = this.pairs;
    pairs.key[0] = int;
    pairs.key[1] = ext;
    const p = pairs.findOrInsert();
    if (pairs.inserted) {
      this.init(p, int, ext);
    } else if (this.internalGen[p] !== hosts.generation[int] || this.externalGen[p] !== hosts.generation[ext]) {
      // The key names host ids now given to other addresses: that pair is gone.
      this.retired++;
      this.init(p, int, ext);
    }
    this.flowCount[p]++;
    this.pairOf[slot] = p;
    this.pairGenOf[slot] = this.gen[p]!;
    this.sendDir[slot] = internalIsClient ? Dir.CLIENT_TO_SERVER : Dir.SERVER_TO_CLIENT;
    this.portIdx[slot] = this.portIndex(p, externalPort);
  }

  onFlowEnd(slot: number): void {
    this.pairOf[slot] = -1;
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    if (slot < 0) return;
    const p = this.pairOf[slot]!;
    if (p < 0) return;
    if (this.gen[p] !== this.pairGenOf[slot]) { this.pairOf[slot] = -1; return; }
    const now = v.ts;
    const bytes = this.bytes;
    const k = bytes.bucketOf(now);
    const last = this.lastBucket[p]!;
    if (k > last) {
      if (last !== -Infinity) this.evaluate(p, k);
      this.lastBucket[p] = k;
      this.pairs.touch(p); // recency follows activity
      const hosts = this.hosts;
      hosts.touch(this.pairs.keyWord(p, 0));
      hosts.touch(this.pairs.keyWord(p, 1));
    }
    if (this.window[p] !== this.windowSerial) {
      this.window[p] = this.windowSerial;
      if (this.touchedCount === this.touched.length) this.compactTouched();
      this.touched[this.touchedCount] = p;
      this.touchedGen[this.touchedCount++] = this.gen[p]!;
    }
    const len = v.wireLen;
    if (dir === this.sendDir[slot]) {
      bytes.addToBucket(p, k, SENT, len);
      const i = this.portIdx[slot]!;
      if (i >= 0) this.portBytes[p * MAX_PORTS + i] += len; else this.otherPortBytes[p] += len;
    } else {
      bytes.addToBucket(p, k, RECEIVED, len);
    }
  }

  /**
   * Drops the entries of pairs freed since they were listed (ids evicted and
   * reused within one window), keeping the order. The live pairs are listed
   * once each, so at most half the list stays.
   */
  private compactTouched(): void {
    let n = 0;
    for (let i = 0; i < this.touchedCount; i++) {
      const p = this.touched[i]!;
      if (this.gen[p] !== this.touchedGen[i]) continue;
      this.touched[n] = p;
      this.touchedGen[n++] = this.touchedGen[i]!;
    }
    this.touchedCount = n;
  }

  /** A new pair in id `p`. */
  private init(p: number, internal: number, external: number): void {
    this.gen[p]++;
    this.internalGen[p] = this.hosts.generation[internal]!;
    this.externalGen[p] = this.hosts.generation[external]!;
    this.flowCount[p] = 0;
    this.lastBucket[p] = -Infinity;
    this.window[p] = -1;
    this.portCount[p] = 0;
    this.portBytes.fill(0, p * MAX_PORTS, p * MAX_PORTS + MAX_PORTS);
    this.otherPortBytes[p] = 0;
    this.bytes.clear(p);
  }

  /** Index of `port` in the pair's port table, added if there is room; -1 for "other". */
  private portIndex(p: number, port: number): number {
    const n = this.portCount[p]!;
    const o = p * MAX_PORTS;
    for (let i = 0; i < n; i++) if (this.ports[o + i] === port) return i;
    if (n >= MAX_PORTS) return -1;
    this.ports[o + n] = port;
    this.portCount[p] = n + 1;
    return n;
  }

  /** Frees pair id `p` (flows holding it let go on their next packet). */
  private drop(p: number): void {
    this.pairs.remove(p);
    this.gen[p]++;
  }

  /** Judges a pair over the look-back ending at bucket boundary `b`. */
  private evaluate(p: number, b: number): void {
    const cfg = this.cfg;
    // The bucket layout (and so the look-back) is fixed at start.
    const lookback = this.bytes.lookback;
    const sent = this.bytes.sumBefore(p, SENT, b);
    if (sent <= 0 || sent < cfg.minBytes) return;
    const received = this.bytes.sumBefore(p, RECEIVED, b);
    if (sent < cfg.minRatio * received) return;
    const hosts = this.hosts;
    const int = this.pairs.keyWord(p, 0);
    const ext = this.pairs.keyWord(p, 1);
    const intGen = this.internalGen[p]!;
    const extGen = this.externalGen[p]!;
    // A host id given to another address since: the pair cannot be named any more.
    if (hosts.generation[int] !== intGen || hosts.generation[ext] !== extGen) return;
    const end = b * this.bytes.bucketSeconds;
    // Suppressed per pair of addresses, as long as the table remembers it (a pair evicted and seen again is the same pair).
    const sk = this.suppression.key;
    hosts.writeHost(int, sk, 0);
    hosts.writeHost(ext, sk, 5);
    if (!this.suppression.allow(end)) { this.suppressed++; return; }
    this.findings++;
    // The port that took the most bytes (ties: the first seen).
    const o = p * MAX_PORTS;
    const n = this.portCount[p]!;
    let port = -1;
    let most = -1;
    for (let i = 0; i < n; i++) if (this.portBytes[o + i]! > most) { most = this.portBytes[o + i]!; port = this.ports[o + i]!; }
    const unusual = port < 0 || this.commonPorts[port] !== 1;
    const severity: FindingSeverity = !unusual ? 'info' : sent >= CRITICAL_FACTOR * cfg.minBytes ? 'critical' : 'warning';
    const ratio = received > 0 ? round1(sent / received) : null;
    const list: string[] = [];
    for (let i = 0; i < n; i++) list.push(`${this.ports[o + i]}: ${this.portBytes[o + i]}`);
    const other = this.otherPortBytes[p]!;
    const ports = list.join(', ') + (other > 0 ? `, other: ${other}` : '');
    const internal = hosts.name(int);
    const external = hosts.name(ext);
    this.ctx.report({
      type: 'exfiltration',
      severity,
      key: `${internal}->${external}`,
      summary: `${internal} sent ${mb(sent)} to external host ${external}${port >= 0 ? ` (port ${port}${unusual ? ', unusual' : ''})` : ''} over the last ${lookback} s`
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
        lookbackSeconds: lookback,
        sentBitsPerSecond: Math.round((sent * 8) / lookback),
        flows: this.flowCount[p]!,
        minBytes: cfg.minBytes,
        minRatio: cfg.minRatio,
        thresholds: thresholdsCrossed([
          { measured: 'sentBytes', value: sent, setting: 'minBytes', limit: cfg.minBytes },
          { measured: 'ratio', value: received > 0 ? sent / received : Infinity, setting: 'minRatio', limit: cfg.minRatio },
        ]),
      },
      host: internal,
    });
  }

  closeWindow(span: WindowSpan): Metrics {
    const boundary = this.bytes.boundaryAt(span.relEnd);
    for (let i = 0; i < this.touchedCount; i++) {
      const p = this.touched[i]!;
      if (this.gen[p] === this.touchedGen[i]) this.evaluate(p, boundary);
    }
    this.touchedCount = 0;
    this.windowSerial++;
    this.sweep(boundary);
    const evicted = this.pairs.evicted + this.retired;
    const metrics: Metrics = {
      tracked: this.pairs.size,
      maxKeys: this.maxKeys,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
      expired: this.expired,
      allowed: this.allowed,
      findings: this.findings,
      suppressed: this.suppressed,
      suppressorEvicted: this.suppression.evicted,
    };
    this.evictedBefore = evicted;
    this.findings = this.suppressed = this.expired = this.allowed = 0;
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

  /** Drops pairs with nothing left in their look-back ending at `boundary` (least recently active first). */
  private sweep(boundary: number): void {
    const pairs = this.pairs;
    for (let p = pairs.oldest(); p >= 0;) {
      if (boundary - this.lastBucket[p]! <= BUCKETS) break;
      const next = pairs.newer(p);
      this.drop(p);
      this.expired++;
      p = next;
    }
  }
}

const mb = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : plural(n, 'byte'));
