/**
 * Brute force against authentication services (finding type `brute_force`):
 * repeated short or failing connections from one source to one service
 * (host and port, the port one of analyzers.brute_force.ports).
 *
 * A connection attempt is one of the shared tracker's (flow/connection-
 * attempts.ts: a flow whose first packet is the client's SYN) to a watched
 * port. Its outcome event settles it as one of:
 *   failed       REFUSED (the server's RST before the handshake completed;
 *                after a SYN/ACK it counts as incomplete), UNANSWERED (no
 *                SYN/ACK within the tracker's 5 s, by the end of its flow or of
 *                the input, or the client's own RST before one), ABANDONED
 *                (incomplete: a SYN/ACK the client never ACKs), or RESET within
 *                shortLived seconds of the SYN;
 *   short-lived  CLOSED (first FIN from either side, or the flow ending, timed
 *                at the flow's last packet) within shortLived seconds of the
 *                SYN with at most LITTLE_DATA_BYTES (32 KiB of frames, both
 *                directions, from the flow table): a login that failed and hung
 *                up, or a one-shot probe;
 *   longer       anything else: RESET or CLOSED after shortLived seconds, or
 *                more data (a session, a transfer). Decided when the connection
 *                ends; one still open at the end of the input counts as longer
 *                then if it has been open for shortLived seconds, else it is
 *                undecided and not counted.
 * An attempt counts in the look-back at the time it is settled.
 *
 * At each window close a (source, service) with new settled attempts in the
 * window is judged over the look-back (lookback, 60 s, fixed at start): it
 * fires when it has >= minAttempts settled attempts AND (failed + short-lived)
 * / attempts >= minFailureRatio. Severity: critical at 5x minAttempts, else
 * warning; the evidence says how many attempts were longer (one after many
 * failures may be a guessed password).
 *
 * State, all preallocated at start: one byte per flow slot (where the attempt
 * stands); a KeyTable of services (source host id, target host id, port) with
 * typed-array columns and a BucketReducer of three look-back counts (attempts,
 * failed, short-lived), as many as memory.budgetMB grants, at most maxKeys
 * (least recently settled evicted first, counted in the metrics); a HostTable
 * of twice as many hosts (so the hosts of every live service stay interned);
 * services idle for a look-back are dropped at window close. Re-reported, with
 * updated evidence, at most once per suppressFor seconds (a SuppressionTable
 * keyed by the addresses and port, as many keys as services), and only in
 * windows with new attempts. Loopback traffic is ignored unless
 * networks.includeLoopback.
 */
import type { FindingSeverity } from '../../common/report.js';
import { AttemptEvent, type AttemptEventCode } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowSpan } from './analyzer.js';
import { HostTable } from './lib/host-table.js';
import { KeyTable } from './lib/key-table.js';
import { isLoopback } from './lib/networks.js';
import { SuppressionTable } from './lib/suppression.js';
import { BucketReducer } from './lib/time-buckets.js';
import { endpoint } from './lib/format.js';

/** Frame bytes (both directions) at most for a short-lived connection. */
export const LITTLE_DATA_BYTES = 32 * 1024;
/** Window ends are exclusive: look-back sums are read this much before. */
const SUM_EPSILON = 1e-3;
/** Look-back buckets (as the former BucketCounter's). */
const BUCKETS = 6;

const SERVICES: Record<number, string> = {
  21: 'ftp', 22: 'ssh', 23: 'telnet', 25: 'smtp', 110: 'pop3', 143: 'imap', 389: 'ldap', 445: 'smb', 587: 'submission', 993: 'imaps',
  995: 'pop3s', 1433: 'mssql', 1521: 'oracle', 3306: 'mysql', 3389: 'rdp', 5432: 'postgresql', 5900: 'vnc', 5985: 'winrm', 5986: 'winrm',
  6379: 'redis', 11211: 'memcached', 27017: 'mongodb',
};

// Per-slot attempt state (only attempts to a watched port, loopback filtered).
const NONE = 0;
const STARTED = 1;
const ANSWERED = 2;
const OPEN = 3;

// Outcomes.
const LONGER = 0;
const SHORT = 1;
const REFUSED = 2;
const RESET = 3;
const NO_ANSWER = 4;
const INCOMPLETE = 5;

// Look-back series.
const S_ATTEMPTS = 0;
const S_FAILED = 1;
const S_SHORT = 2;

/** Suppression key: IP version, source address (4 words), target address (4 words), port. */
const SUPPRESSION_WIDTH = 10;

/** Bytes per service: its key and columns, look-back counts, two hosts, a suppression key. */
const SERVICE_BYTES = KeyTable.bytesPerEntry(3) + (4 + 4 + 8 + 8 + 1) + BucketReducer.bytesPerKey(BUCKETS, 3)
  + 2 * HostTable.bytesPerEntry + SuppressionTable.bytesPerEntry(SUPPRESSION_WIDTH);

interface Candidate { id: number; rank: number; attempts: number; key: string }

export function createBruteForceAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new BruteForceAnalyzer(ctx);
}

class BruteForceAnalyzer implements Analyzer {
  readonly id = 'brute_force';
  /** Read on use, so SIGHUP's new thresholds apply at once (the look-back and table sizes are fixed at start). */
  private get cfg(): AnalyzerContext['config']['analyzers']['brute_force'] { return this.ctx.config.analyzers.brute_force; }
  private readonly includeLoopback: boolean;
  private readonly lookback: number;
  private readonly watched = new Uint8Array(65536);
  /** Per flow slot: NONE, STARTED, ANSWERED, OPEN. */
  private readonly state: Uint8Array;

  private readonly hosts: HostTable;
  /** (source host id, target host id, port) -> service id. */
  private readonly services: KeyTable;
  /** Host generations when the service was made: another host holds the id when they differ. */
  private readonly srcGen: Uint32Array;
  private readonly dstGen: Uint32Array;
  /** First settled attempt of the current run (for the rate), latest settled attempt. */
  private readonly first: Float64Array;
  private readonly last: Float64Array;
  /** New settled attempts since the last window close. */
  private readonly dirty: Uint8Array;
  private readonly counts: BucketReducer;
  private readonly suppression: SuppressionTable;

  /** Address words of the flow's client and server (scratch, so the event path allocates nothing). */
  private readonly client = new Uint32Array(4);
  private readonly server = new Uint32Array(4);
  private evictedBefore = 0;
  private w = emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {
    const cfg = this.cfg;
    this.includeLoopback = ctx.config.networks.includeLoopback;
    this.lookback = cfg.lookback;
    for (const p of cfg.ports) if (Number.isInteger(p) && p >= 0 && p < 65536) this.watched[p] = 1;
    this.state = new Uint8Array(ctx.flows.capacity);
    const n = ctx.memory.keys('brute_force.services', SERVICE_BYTES, Math.max(1, cfg.maxKeys));
    this.hosts = new HostTable(2 * n, ctx.networks, this.includeLoopback);
    this.services = new KeyTable(n, 3);
    this.srcGen = new Uint32Array(n);
    this.dstGen = new Uint32Array(n);
    this.first = new Float64Array(n);
    this.last = new Float64Array(n);
    this.dirty = new Uint8Array(n);
    this.counts = new BucketReducer(n, this.lookback, BUCKETS, 3);
    this.suppression = new SuppressionTable(cfg.suppressFor, n, SUPPRESSION_WIDTH);
  }

  onConnectionAttempt(slot: number, event: AttemptEventCode, at: number): void {
    if (event === AttemptEvent.STARTED) { this.started(slot); return; }
    const s = this.state[slot]!;
    if (s === NONE) return;
    const flows = this.ctx.flows;
    switch (event) {
      case AttemptEvent.ANSWERED:
        this.state[slot] = ANSWERED;
        return;
      case AttemptEvent.COMPLETED:
        this.state[slot] = OPEN;
        return;
      case AttemptEvent.REFUSED:
        this.settle(slot, s === ANSWERED ? INCOMPLETE : REFUSED, at);
        return;
      case AttemptEvent.UNANSWERED:
        this.settle(slot, NO_ANSWER, at);
        return;
      case AttemptEvent.ABANDONED:
        this.settle(slot, INCOMPLETE, at);
        return;
      case AttemptEvent.RESET:
        this.settle(slot, at - flows.firstTs[slot]! <= this.cfg.shortLived ? RESET : LONGER, at);
        return;
      case AttemptEvent.CLOSED: {
        // The FIN, or the flow's last packet when the flow ended (idle, evicted, port reuse).
        const t = Math.min(at, flows.lastTs[slot]!);
        const bytes = flows.bytes[slot * 2]! + flows.bytes[slot * 2 + 1]!;
        this.settle(slot, t - flows.firstTs[slot]! <= this.cfg.shortLived && bytes <= LITTLE_DATA_BYTES ? SHORT : LONGER, t);
        return;
      }
      default:
    }
  }

  /** The SYN of an attempt (the flow's first packet): followed if to a watched port. */
  private started(slot: number): void {
    const flows = this.ctx.flows;
    this.state[slot] = NONE;
    if (!this.watched[flows.serverPort(slot)]) return;
    this.ctx.flows.copyEndpoints(slot, this.client, this.server);
    const version = flows.version[slot]!;
    if (!this.includeLoopback && (isLoopback(version, this.client) || isLoopback(version, this.server))) return;
    this.state[slot] = STARTED;
    this.w.attempts++;
  }

  private settle(slot: number, outcome: number, t: number): void {
    this.state[slot] = NONE;
    const w = this.w;
    if (outcome === LONGER) w.longer++;
    else if (outcome === SHORT) w.shortLived++;
    else if (outcome === REFUSED) w.refused++;
    else if (outcome === RESET) w.reset++;
    else if (outcome === INCOMPLETE) w.incomplete++;
    else w.noAnswer++;
    const flows = this.ctx.flows;
    this.ctx.flows.copyEndpoints(slot, this.client, this.server);
    const version = flows.version[slot]!;
    const hosts = this.hosts;
    const src = hosts.intern(version, this.client);
    const dst = hosts.intern(version, this.server);
    const services = this.services;
    const key = services.key;
    key[0] = src;
    key[1] = dst;
    key[2] = flows.serverPort(slot);
    const id = services.findOrInsert();
    if (services.inserted || this.srcGen[id] !== hosts.generation[src] || this.dstGen[id] !== hosts.generation[dst]) {
      this.srcGen[id] = hosts.generation[src]!;
      this.dstGen[id] = hosts.generation[dst]!;
      this.counts.clear(id);
      this.first[id] = t;
      this.last[id] = t;
      this.dirty[id] = 0;
    } else if (this.last[id]! < t - this.lookback) {
      this.first[id] = t;
    }
    if (t > this.last[id]!) this.last[id] = t;
    this.dirty[id] = 1;
    const counts = this.counts;
    counts.add(id, t, S_ATTEMPTS, 1);
    if (outcome === SHORT) counts.add(id, t, S_SHORT, 1);
    else if (outcome !== LONGER) counts.add(id, t, S_FAILED, 1);
  }

  /** End of input (the tracker settled the attempts still waiting): connections open for shortLived seconds are longer. */
  finish(): void {
    const now = this.ctx.clock.now;
    const shortLived = this.cfg.shortLived;
    const firstTs = this.ctx.flows.firstTs;
    const state = this.state;
    for (let slot = 0; slot < state.length; slot++) {
      if (state[slot] === OPEN && now - firstTs[slot]! >= shortLived) this.settle(slot, LONGER, now);
    }
  }

  closeWindow(span: WindowSpan): Metrics {
    const now = span.relEnd;
    // Bucket sums are read just inside the window, so the look-back is the `lookback` seconds ending at its end.
    const b = this.counts.bucketOf(Math.max(span.relStart, now - SUM_EPSILON)) + 1;
    const cutoff = now - this.lookback;
    const services = this.services;
    const generation = this.hosts.generation;
    const candidates: Candidate[] = [];
    for (let id = services.oldest(); id >= 0;) {
      const next = services.newer(id);
      if (this.last[id]! < cutoff || this.srcGen[id] !== generation[services.keyWord(id, 0)] || this.dstGen[id] !== generation[services.keyWord(id, 1)]) {
        services.remove(id);
      } else if (this.dirty[id] === 1) {
        this.dirty[id] = 0;
        const c = this.judge(id, b);
        if (c !== null) candidates.push(c);
      }
      id = next;
    }
    candidates.sort((a, b) => b.rank - a.rank || b.attempts - a.attempts || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    let reported = 0;
    for (const c of candidates) {
      if (!this.allow(c.id, now)) { this.w.suppressed++; continue; }
      this.ctx.report(this.draft(c, now, b));
      reported++;
    }
    const w = this.w;
    const evicted = services.evicted;
    const metrics: Metrics = {
      attempts: w.attempts,
      outcomes: { longer: w.longer, shortLived: w.shortLived, refused: w.refused, reset: w.reset, noAnswer: w.noAnswer, incomplete: w.incomplete },
      attackers: candidates.length,
      reported,
      suppressed: w.suppressed,
      trackedKeys: services.size,
      maxKeys: services.capacity,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
    };
    this.evictedBefore = evicted;
    this.w = emptyWindow();
    return metrics;
  }

  /** Whether service `id` fires over the look-back before bucket boundary `b`. */
  private judge(id: number, b: number): Candidate | null {
    const cfg = this.cfg;
    const counts = this.counts;
    const attempts = counts.sumBefore(id, S_ATTEMPTS, b);
    if (attempts < cfg.minAttempts || attempts === 0) return null;
    const ratio = Math.min(1, (counts.sumBefore(id, S_FAILED, b) + counts.sumBefore(id, S_SHORT, b)) / attempts);
    if (ratio < cfg.minFailureRatio) return null;
    const critical = attempts >= 5 * Math.max(1, cfg.minAttempts);
    const services = this.services;
    const port = services.keyWord(id, 2);
    const key = `${this.hosts.name(services.keyWord(id, 0))} ${endpoint(this.hosts.name(services.keyWord(id, 1)), port)}`;
    return { id, rank: critical ? 1 : 0, attempts, key };
  }

  /** Suppression by addresses and port, so it outlives the service's ids. */
  private allow(id: number, now: number): boolean {
    const services = this.services;
    const hosts = this.hosts;
    const src = services.keyWord(id, 0);
    const dst = services.keyWord(id, 1);
    const key = this.suppression.key;
    key[0] = hosts.version(src);
    for (let i = 0; i < 4; i++) {
      key[1 + i] = hosts.addressWord(src, i);
      key[5 + i] = hosts.addressWord(dst, i);
    }
    key[9] = services.keyWord(id, 2);
    return this.suppression.allow(now);
  }

  private draft(c: Candidate, now: number, b: number): FindingDraft {
    const cfg = this.cfg;
    const lookback = this.lookback;
    const id = c.id;
    const services = this.services;
    const src = this.hosts.name(services.keyWord(id, 0));
    const dst = this.hosts.name(services.keyWord(id, 1));
    const port = services.keyWord(id, 2);
    const attempts = c.attempts;
    const failed = this.counts.sumBefore(id, S_FAILED, b);
    const short = this.counts.sumBefore(id, S_SHORT, b);
    const ratio = Math.min(1, (failed + short) / attempts);
    const longer = Math.max(0, attempts - failed - short);
    const severity: FindingSeverity = c.rank === 1 ? 'critical' : 'warning';
    const seconds = Math.max(1, Math.min(lookback, now - this.first[id]!));
    const service = SERVICES[port] ?? `port ${port}`;
    return {
      type: 'brute_force',
      severity,
      key: c.key,
      summary: `${src} made ${attempts} ${service} connection attempts to ${endpoint(dst, port)} in the last ${lookback} s:`
        + ` ${failed} failed, ${short} short-lived (${(ratio * 100).toFixed(1)} %)`
        + (longer > 0 ? `; ${longer} lasted longer (a login may have succeeded).` : '.'),
      evidence: {
        source: src,
        target: dst,
        servicePort: port,
        service,
        attempts,
        failed,
        shortLived: short,
        longer,
        ratio: Math.round(ratio * 1000) / 1000,
        attemptsPerMinute: Math.round((attempts / seconds) * 60 * 10) / 10,
        shortLivedSeconds: cfg.shortLived,
        lookbackSeconds: lookback,
      },
      host: src,
    };
  }
}

function emptyWindow(): { attempts: number; longer: number; shortLived: number; refused: number; reset: number; noAnswer: number; incomplete: number; suppressed: number } {
  return { attempts: 0, longer: 0, shortLived: 0, refused: 0, reset: 0, noAnswer: 0, incomplete: 0, suppressed: 0 };
}
