/**
 * Lateral movement (finding type `lateral_movement`): an internal host opening
 * connections to many internal hosts on administrative ports (SMB, RPC, RDP,
 * WinRM, SSH: analyzers.lateral_movement.ports) within the look-back
 * (lookback, 300 s of packet time, fixed at start).
 *
 * Internal means inside networks.internal (RFC 1918 + ULA by default); with
 * networks.includeLoopback, loopback addresses count as internal too, else
 * loopback traffic is ignored. A connection attempt is one of the shared
 * tracker's (flow/connection-attempts.ts: a flow whose first packet is the
 * client's SYN; its STARTED event) from an internal host to another internal
 * host on a watched port; the host was reached when the tracker says the
 * handshake completed (COMPLETED). Attempts count whether they succeed or
 * not: probing hosts that refuse is as telling as reaching them; the evidence
 * says how many hosts were reached.
 *
 * Not tracked (allow-list, analyzers.lateral_movement.allowHosts /
 * allowPorts): an attempt whose source is listed (a jump host, an
 * administration or configuration server), whose target is listed (a host
 * every workstation may reach on an administrative port, such as a file
 * server), or whose port is listed (an administrative port that is ordinary
 * in this network, such as SSH where every host is administered over it).
 * Checked once per attempt, after the rules above and before the source is
 * interned; counted per window in the metric `allowed` (attempts). A
 * SIGHUP's new allow-list applies to attempts that start after it.
 *
 * At each window close a source with new attempts in the window fires when it
 * tried >= minHosts distinct internal hosts over the look-back. Severity:
 * critical from 3x minHosts; info when only SSH (22) was used and every host
 * was reached (an administrator or configuration tool at work, most likely);
 * warning otherwise. The evidence names the threshold crossed
 * (evidence.thresholds: hosts against minHosts).
 *
 * State, all preallocated at start: one byte per flow slot (a followed
 * attempt); a HostTable of sources, as many as memory.budgetMB grants, at most
 * maxKeys (least recently active evicted first, counted in the metrics), with
 * typed-array columns (times, pair count and list head, latest attempt per
 * watched port) and a BucketReducer of attempts; a KeyTable of (source id,
 * destination address) pairs with the latest attempt and a reached flag,
 * chained per source so judging or dropping a source is O(its pairs), at most
 * MAX_REMEMBERED in all (or what the budget grants; the least recently tried
 * pair goes first, counted as an eviction) and MAX_HOSTS_PER_SOURCE (4096) per
 * source (past that the count is a lower bound: `capped`). Sources idle for a
 * look-back are dropped at window close. Re-reported, with updated evidence,
 * at most once per suppressFor seconds (a SuppressionTable keyed by the
 * source's address), and only in windows with new attempts.
 *
 * Flow-sharded workers (issue 13): a source trying many hosts spans workers
 * (a host pair's packets go to one), and its state depends on the order of
 * its attempts (pairs' latest times, prunes, evictions), so a worker keeps
 * none: it filters each attempt (watched port, internal hosts, allow-list)
 * and logs the followed ones and their completions (LateralMovementPart); at
 * each window close the coordinator replays every worker's records in input
 * order (each comes from its own packet: no ties) into this state and judges
 * there, as one pipeline would. Workers report nothing. A worker's log of a
 * window is bounded by the detector's part of memory.budgetMB
 * (lib/replay-log.ts: about 60,000 records at the default 200): past it the
 * window's oldest records are not replayed, counted in the metric
 * `notReplayed` (present only then), and the state can differ from one
 * pipeline's.
 */
import { formatAddress } from '../../common/address.js';
import type { FindingSeverity } from '../../common/report.js';
import { AttemptEvent, type AttemptEventCode } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { ConfiguredAllowList, thresholdsCrossed } from './lib/allow-list.js';
import { HostTable } from './lib/host-table.js';
import { KeyTable } from './lib/key-table.js';
import { plural } from './lib/format.js';
import { isLoopback } from './lib/networks.js';
import { SuppressionTable } from './lib/suppression.js';
import { BucketReducer } from './lib/time-buckets.js';
import { LOG_SHARE, ReplayLog, endReplay, replayInOrder, type ReplayLogPart } from './lib/replay-log.js';

/** Destination hosts remembered per source. */
export const MAX_HOSTS_PER_SOURCE = 4096;
/** Destination hosts remembered over all sources (at most; the memory budget may grant fewer). */
export const MAX_REMEMBERED = 1_000_000;
const SAMPLE = 10;
/** Window ends are exclusive: look-back sums are read this much before. */
const SUM_EPSILON = 1e-3;
/** Look-back buckets (as the former BucketCounter's). */
const BUCKETS = 6;
const NIL = -1;

/** Suppression key: IP version and the source's address words. */
const SUPPRESSION_WIDTH = 5;
/** Pair key: source id and the destination's address words (same IP version as the source). */
const PAIR_WIDTH = 5;
/** Bytes per pair: key, latest attempt, reached flag, list links. */
const PAIR_BYTES = KeyTable.bytesPerEntry(PAIR_WIDTH) + 8 + 1 + 2 * 4;

interface Candidate { id: number; rank: number; hosts: number; key: string }

// Words of a flow-sharded worker's record (ReplayLog; see LateralMovementPart).
const R_VERSION = 0;
/** Client and server, four address words each (IPv4: the first). */
const R_CLIENT = 1;
const R_SERVER = 5;
/** The watched port's column (a started attempt), or -1: the handshake of a followed attempt completed. */
const R_COLUMN = 9;
const R_WORDS = 10;
/** Bytes of a record: its words, order and time. */
const R_BYTES = R_WORDS * 4 + 16;
const REACHED = -1;

/**
 * A flow-sharded worker's part of a window: its allow-listed attempts, its
 * followed attempts and completions to replay, and their counts (whole when
 * the log dropped some).
 */
interface LateralMovementPart { allowed: number; attempts: number; succeeded: number; events: ReplayLogPart }

export function createLateralMovementAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new LateralMovementAnalyzer(ctx);
}

class LateralMovementAnalyzer implements Analyzer {
  readonly id = 'lateral_movement';
  /** Read on use, so SIGHUP's new thresholds apply at once (the look-back and table sizes are fixed at start). */
  private get cfg(): AnalyzerContext['config']['analyzers']['lateral_movement'] { return this.ctx.config.analyzers.lateral_movement; }
  private readonly includeLoopback: boolean;
  private readonly lookback: number;
  private readonly allowList = new ConfiguredAllowList(() => this.cfg, 'analyzers.lateral_movement');
  /** Port -> column of `portTime` + 1 (0: not watched). */
  private readonly watched = new Int32Array(65536);
  /** Watched ports, ascending (the order of the report). */
  private readonly ports: number[];
  /** Per flow slot: 1 when the attempt is followed (internal -> internal, watched port). */
  private readonly followed: Uint8Array;

  private readonly sources: HostTable;
  /** Per source id: 1 while it has state here (a HostTable id outlives its state: dropped sources stay interned until evicted). */
  private readonly active: Uint8Array;
  /** Active source ids, dense, and each one's position in it. */
  private readonly activeIds: Int32Array;
  private readonly activePos: Int32Array;
  private activeCount = 0;
  private readonly first: Float64Array;
  private readonly last: Float64Array;
  private readonly cappedAt: Float64Array;
  private readonly prunedAt: Float64Array;
  private readonly dirty: Uint8Array;
  private readonly pairHead: Int32Array;
  private readonly pairCount: Int32Array;
  /** [source][watched port column]: latest attempt on it (-Infinity: none in the look-back). */
  private readonly portTime: Float64Array;
  private readonly attempts: BucketReducer;

  /** (source id, destination address) -> pair id. */
  private readonly pairs: KeyTable;
  private readonly pairTime: Float64Array;
  private readonly pairReached: Uint8Array;
  private readonly pairPrev: Int32Array;
  private readonly pairNext: Int32Array;

  private readonly suppression: SuppressionTable;
  /** Address words of the flow's client and server (scratch, so the event path allocates nothing). */
  private readonly client = new Uint32Array(4);
  private readonly server = new Uint32Array(4);
  /** Sources and pairs evicted by the caps. */
  private evicted = 0;
  private evictedBefore = 0;
  private w = emptyWindow();
  /** A flow-sharded worker's log (ctx.shardRole 'worker'): it keeps no source state, the coordinator replays the log. */
  private readonly log: ReplayLog | null;
  private part: LateralMovementPart | undefined;

  constructor(private readonly ctx: AnalyzerContext) {
    const cfg = this.cfg;
    this.includeLoopback = ctx.config.networks.includeLoopback;
    // Sized from the detector's part of the budget, which a worker's (empty) tables leave unused.
    this.log = ctx.shardRole === 'worker' ? new ReplayLog({ width: R_WORDS, maxRecords: ctx.memory.keys('lateral_movement.log', R_BYTES, Infinity, LOG_SHARE) }) : null;
    this.lookback = cfg.lookback;
    const ports = [...new Set(cfg.ports.filter((p) => Number.isInteger(p) && p >= 0 && p < 65536))].sort((a, b) => a - b);
    ports.forEach((p, i) => { this.watched[p] = i + 1; });
    this.ports = ports;
    this.followed = new Uint8Array(ctx.flows.capacity);

    const nPorts = Math.max(1, ports.length);
    const sourceBytes = HostTable.bytesPerEntry + 1 + 2 * 4 + 4 * 8 + 1 + 2 * 4 + nPorts * 8
      + BucketReducer.bytesPerKey(BUCKETS, 1) + SuppressionTable.bytesPerEntry(SUPPRESSION_WIDTH);
    // A worker's tables stay empty (the coordinator replays its records): it takes no memory for them.
    const worker = this.log !== null;
    const n = worker ? 1 : ctx.memory.keys('lateral_movement.sources', sourceBytes, Math.max(1, cfg.maxKeys), 0.4);
    this.sources = new HostTable(n, ctx.networks, this.includeLoopback);
    this.active = new Uint8Array(n);
    this.activeIds = new Int32Array(n);
    this.activePos = new Int32Array(n);
    this.first = new Float64Array(n);
    this.last = new Float64Array(n);
    this.cappedAt = new Float64Array(n);
    this.prunedAt = new Float64Array(n);
    this.dirty = new Uint8Array(n);
    this.pairHead = new Int32Array(n).fill(NIL);
    this.pairCount = new Int32Array(n);
    this.portTime = new Float64Array(n * nPorts).fill(-Infinity);
    this.attempts = new BucketReducer(n, this.lookback, BUCKETS, 1);

    const m = worker ? 1 : ctx.memory.keys('lateral_movement.pairs', PAIR_BYTES, MAX_REMEMBERED, 0.6);
    this.pairs = new KeyTable(m, PAIR_WIDTH, (p) => { this.unlinkPair(p); this.evicted++; });
    this.pairTime = new Float64Array(m);
    this.pairReached = new Uint8Array(m);
    this.pairPrev = new Int32Array(m);
    this.pairNext = new Int32Array(m);

    this.suppression = new SuppressionTable(cfg.suppressFor, n, SUPPRESSION_WIDTH);
  }

  onConnectionAttempt(slot: number, event: AttemptEventCode, at: number): void {
    if (event === AttemptEvent.STARTED) this.started(slot, at);
    else if (event === AttemptEvent.COMPLETED && this.followed[slot] === 1) {
      this.ctx.flows.copyEndpoints(slot, this.client, this.server);
      const version = this.ctx.flows.version[slot]!;
      if (this.log === null) { this.reached(version); return; }
      this.w.succeeded++; // as reached counts it
      this.logRecord(version, REACHED, at);
    }
  }

  private internal(version: number, words: Uint32Array): boolean {
    if (isLoopback(version, words)) return this.includeLoopback;
    return this.ctx.networks.isInternal(version, words);
  }

  /** The SYN of an attempt: counted when internal -> another internal host on a watched port. */
  private started(slot: number, at: number): void {
    this.followed[slot] = 0;
    const flows = this.ctx.flows;
    const port = flows.serverPort(slot);
    const column = this.watched[port]! - 1;
    if (column < 0) return;
    this.ctx.flows.copyEndpoints(slot, this.client, this.server);
    const version = flows.version[slot]!;
    const c = this.client;
    const d = this.server;
    if (!this.internal(version, c) || !this.internal(version, d) || (c[0] === d[0] && c[1] === d[1] && c[2] === d[2] && c[3] === d[3])) return;
    const allow = this.allowList.get();
    if (allow.covers(version, c, d, port)) { this.w.allowed++; return; }
    this.followed[slot] = 1;
    if (this.log === null) { this.track(version, column, at); return; }
    // Counted as track counts it: the coordinator takes the workers' counts (its replay misses records a full log dropped).
    this.w.attempts++;
    this.logRecord(version, column, at);
  }

  /** A worker: the current attempt (addresses in `client` and `server`) into the log. */
  private logRecord(version: number, column: number, at: number): void {
    const log = this.log!;
    const r = log.add(this.ctx.packetOrder, at);
    const q = log.ints;
    q[r + R_VERSION] = version;
    for (let i = 0; i < 4; i++) {
      q[r + R_CLIENT + i] = this.client[i]!;
      q[r + R_SERVER + i] = this.server[i]!;
    }
    q[r + R_COLUMN] = column;
  }

  /** The coordinator: record `i` of a worker's log, counted as the worker would have in one pipeline. */
  private replay(log: ReplayLogPart, i: number): void {
    const q = log.ints;
    const r = i * R_WORDS;
    for (let k = 0; k < 4; k++) {
      this.client[k] = q[r + R_CLIENT + k]!;
      this.server[k] = q[r + R_SERVER + k]!;
    }
    const column = q[r + R_COLUMN]!;
    if (column === REACHED) this.reached(q[r + R_VERSION]!);
    else this.track(q[r + R_VERSION]!, column, log.times[2 * i + 1]!);
  }

  /** A followed attempt from `client` to `server` (on the watched port's `column`) at `at`. */
  private track(version: number, column: number, at: number): void {
    const c = this.client;
    const d = this.server;
    this.w.attempts++;

    const lookback = this.lookback;
    const sources = this.sources;
    const s = sources.intern(version, c);
    if (sources.inserted && this.active[s] === 1) {
      // The HostTable took back the least recently active source's id.
      this.drop(s);
      this.evicted++;
    }
    if (this.active[s] === 0) this.activate(s, at);
    else if (this.last[s]! < at - lookback) this.first[s] = at;
    if (at > this.last[s]!) this.last[s] = at;
    this.dirty[s] = 1;
    this.attempts.add(s, at, 0, 1);
    this.portTime[s * Math.max(1, this.ports.length) + column] = at;

    const pairs = this.pairs;
    const key = pairs.key;
    key[0] = s;
    key[1] = d[0]!; key[2] = d[1]!; key[3] = d[2]!; key[4] = d[3]!;
    const known = pairs.find();
    if (known >= 0) {
      pairs.touch(known);
      this.pairTime[known] = at;
      return;
    }
    if (this.pairCount[s]! >= MAX_HOSTS_PER_SOURCE) {
      if (at - this.prunedAt[s]! >= lookback / 6) this.prune(s, at - lookback, at);
      if (this.pairCount[s]! >= MAX_HOSTS_PER_SOURCE) { this.cappedAt[s] = at; return; }
    }
    const p = pairs.findOrInsert(); // may evict the least recently tried pair (onEvict unlinks it)
    this.pairTime[p] = at;
    this.pairReached[p] = 0;
    const head = this.pairHead[s]!;
    this.pairPrev[p] = NIL;
    this.pairNext[p] = head;
    if (head !== NIL) this.pairPrev[head] = p;
    this.pairHead[s] = p;
    this.pairCount[s]++;
  }

  /** The handshake of a followed attempt from `client` to `server` completed: its destination was reached. */
  private reached(version: number): void {
    this.w.succeeded++;
    const s = this.sources.find(version, this.client);
    if (s < 0 || this.active[s] === 0) return;
    const key = this.pairs.key;
    const d = this.server;
    key[0] = s;
    key[1] = d[0]!; key[2] = d[1]!; key[3] = d[2]!; key[4] = d[3]!;
    const p = this.pairs.find();
    if (p >= 0) this.pairReached[p] = 1;
  }

  private activate(s: number, at: number): void {
    this.active[s] = 1;
    this.activePos[s] = this.activeCount;
    this.activeIds[this.activeCount++] = s;
    this.first[s] = at;
    this.last[s] = at;
    this.cappedAt[s] = -Infinity;
    this.prunedAt[s] = at;
    this.dirty[s] = 0;
    this.pairHead[s] = NIL;
    this.pairCount[s] = 0;
    const nPorts = Math.max(1, this.ports.length);
    this.portTime.fill(-Infinity, s * nPorts, s * nPorts + nPorts);
    this.attempts.clear(s);
  }

  /** Forgets source `s` and its pairs. */
  private drop(s: number): void {
    const pairs = this.pairs;
    for (let p = this.pairHead[s]!; p !== NIL;) {
      const next = this.pairNext[p]!;
      pairs.remove(p);
      p = next;
    }
    this.pairHead[s] = NIL;
    this.pairCount[s] = 0;
    this.active[s] = 0;
    const i = this.activePos[s]!;
    const moved = this.activeIds[--this.activeCount]!;
    this.activeIds[i] = moved;
    this.activePos[moved] = i;
  }

  /** Takes pair `p` out of its source's list (the pair table is about to free it). */
  private unlinkPair(p: number): void {
    const s = this.pairs.keyWord(p, 0);
    const prev = this.pairPrev[p]!;
    const next = this.pairNext[p]!;
    if (prev === NIL) this.pairHead[s] = next; else this.pairNext[prev] = next;
    if (next !== NIL) this.pairPrev[next] = prev;
    this.pairCount[s]--;
  }

  /** Forgets the pairs and ports of `s` last tried before `cutoff`. */
  private prune(s: number, cutoff: number, now: number): void {
    this.prunedAt[s] = now;
    const pairs = this.pairs;
    for (let p = this.pairHead[s]!; p !== NIL;) {
      const next = this.pairNext[p]!;
      if (this.pairTime[p]! < cutoff) { this.unlinkPair(p); pairs.remove(p); }
      p = next;
    }
    const nPorts = Math.max(1, this.ports.length);
    const o = s * nPorts;
    for (let k = 0; k < nPorts; k++) if (this.portTime[o + k]! < cutoff) this.portTime[o + k] = -Infinity;
  }

  closeWindow(span: WindowSpan): Metrics {
    // A worker's records go to the coordinator; its source state stays empty, so it judges (and reports) nothing below.
    if (this.log !== null) this.part = { allowed: this.w.allowed, attempts: this.w.attempts, succeeded: this.w.succeeded, events: this.log.take() };
    return this.judge(span);
  }

  windowPart(): unknown {
    const part = this.part;
    this.part = undefined;
    return part;
  }

  /** The coordinator: every worker's records of the window replayed in input order, then judged as one pipeline's window. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly LateralMovementPart[];
    const logs = parts.map((p) => p.events);
    replayInOrder(logs, (worker, record) => { this.replay(logs[worker]!, record); });
    // The workers' counts, not the replay's: whole when a log dropped records.
    const w = this.w;
    w.attempts = w.succeeded = 0;
    for (const p of parts) {
      w.allowed += p.allowed;
      w.attempts += p.attempts;
      w.succeeded += p.succeeded;
    }
    return endReplay(logs, this.judge(input.span));
  }

  /** Judges the sources with new attempts at the close of window `span`: its metrics. */
  private judge(span: WindowSpan): Metrics {
    const now = span.relEnd;
    // Bucket sums are read just inside the window, so the look-back is the `lookback` seconds ending at its end.
    const b = this.attempts.bucketOf(Math.max(span.relStart, now - SUM_EPSILON)) + 1;
    const cfg = this.cfg;
    const cutoff = now - this.lookback;
    const candidates: Candidate[] = [];
    // Backwards, so dropping a source (its place taken by the last one) skips none.
    for (let i = this.activeCount - 1; i >= 0; i--) {
      const s = this.activeIds[i]!;
      if (this.last[s]! < cutoff) { this.drop(s); continue; }
      if (this.dirty[s] === 0) continue;
      this.dirty[s] = 0;
      if (this.pairCount[s]! < cfg.minHosts) continue;
      this.prune(s, cutoff, now);
      const hosts = this.pairCount[s]!;
      if (hosts < cfg.minHosts || hosts === 0) continue;
      const severity = this.severity(s, hosts);
      candidates.push({ id: s, rank: severity === 'critical' ? 2 : severity === 'warning' ? 1 : 0, hosts, key: `source ${this.sources.name(s)}` });
    }
    candidates.sort((a, b) => b.rank - a.rank || b.hosts - a.hosts || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let reported = 0;
    for (const c of candidates) {
      if (!this.allow(c.id, now)) { this.w.suppressed++; continue; }
      this.ctx.report(this.draft(c, now, b));
      reported++;
    }
    const w = this.w;
    const metrics: Metrics = {
      attempts: w.attempts,
      succeeded: w.succeeded,
      allowed: w.allowed,
      sources: candidates.length,
      reported,
      suppressed: w.suppressed,
      trackedKeys: this.activeCount,
      maxKeys: this.sources.capacity,
      rememberedHosts: this.pairs.size,
      evicted: this.evicted,
      evictedInWindow: this.evicted - this.evictedBefore,
    };
    this.evictedBefore = this.evicted;
    this.w = emptyWindow();
    return metrics;
  }

  private reachedCount(s: number): number {
    let n = 0;
    for (let p = this.pairHead[s]!; p !== NIL; p = this.pairNext[p]!) n += this.pairReached[p]!;
    return n;
  }

  private severity(s: number, hosts: number): FindingSeverity {
    const minHosts = this.cfg.minHosts;
    if (hosts >= 3 * Math.max(1, minHosts)) return 'critical';
    const nPorts = Math.max(1, this.ports.length);
    let used = 0;
    let ssh = false;
    for (let k = 0; k < this.ports.length; k++) {
      if (this.portTime[s * nPorts + k] === -Infinity) continue;
      used++;
      if (this.ports[k] === 22) ssh = true;
    }
    return used === 1 && ssh && this.reachedCount(s) === hosts ? 'info' : 'warning';
  }

  /** Suppression by the source's address, so it outlives the source's id. */
  private allow(s: number, now: number): boolean {
    const key = this.suppression.key;
    this.sources.writeHost(s, key, 0);
    return this.suppression.allow(now);
  }

  private draft(c: Candidate, now: number, b: number): FindingDraft {
    const s = c.id;
    const lookback = this.lookback;
    const addr = this.sources.name(s);
    const version = this.sources.version(s);
    const hosts = c.hosts;
    const nPorts = Math.max(1, this.ports.length);
    const ports = this.ports.filter((_p, k) => this.portTime[s * nPorts + k] !== -Infinity);
    const all: string[] = [];
    const ok: string[] = [];
    const words = new Uint32Array(4);
    for (let p = this.pairHead[s]!; p !== NIL; p = this.pairNext[p]!) {
      for (let i = 0; i < 4; i++) words[i] = this.pairs.keyWord(p, 1 + i);
      const name = formatAddress(version, words);
      all.push(name);
      if (this.pairReached[p] === 1) ok.push(name);
    }
    all.sort();
    ok.sort();
    const reached = ok.length;
    const severity: FindingSeverity = c.rank === 2 ? 'critical' : c.rank === 1 ? 'warning' : 'info';
    const capped = this.cappedAt[s]! >= now - lookback;
    const attempts = this.attempts.sumBefore(s, 0, b);
    return {
      type: 'lateral_movement',
      severity,
      key: c.key,
      summary: `Internal host ${addr} tried ${capped ? 'at least ' : ''}${plural(hosts, 'internal host')} on administrative ports (${ports.join(', ')})`
        + ` in the last ${lookback} s: ${reached} reached, ${hosts - reached} not (refused, unanswered or still pending).`,
      evidence: {
        source: addr,
        hosts,
        hostsSucceeded: reached,
        hostsFailed: hosts - reached,
        attempts,
        ports: ports.join(','),
        sampleHosts: all.slice(0, SAMPLE).join(','),
        sampleSucceeded: ok.slice(0, SAMPLE).join(','),
        capped,
        thresholds: thresholdsCrossed([{ measured: 'hosts', value: hosts, setting: 'minHosts', limit: this.cfg.minHosts }]),
        lookbackSeconds: lookback,
      },
      host: addr,
    };
  }
}

function emptyWindow(): { attempts: number; succeeded: number; allowed: number; suppressed: number } {
  return { attempts: 0, succeeded: 0, allowed: 0, suppressed: 0 };
}
