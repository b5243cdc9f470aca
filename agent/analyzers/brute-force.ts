/**
 * Brute force against authentication services (finding type `brute_force`):
 * repeated short or failing connections from one source to one service
 * (host and port, the port one of analyzers.brute_force.ports).
 *
 * A connection attempt is a client SYN that starts a TCP flow to a watched
 * port. It is settled as one of:
 *   failed       refused (the server's RST before any SYN/ACK), no answer (no
 *                SYN/ACK within max(shortLived, PROBE_TIMEOUT) of the SYN, by
 *                the end of its flow or of the input, or the client's own RST
 *                before one), incomplete (a SYN/ACK the client never ACKs by
 *                then), or reset (a RST from either side within shortLived
 *                seconds of the SYN);
 *   short-lived  closed (first FIN from either side, or the flow ending) within
 *                shortLived seconds of the SYN with at most LITTLE_DATA_BYTES
 *                (32 KiB of frames, both directions): a login that failed and
 *                hung up, or a one-shot probe;
 *   longer       anything else: still open after shortLived seconds, or more
 *                data (a session, a transfer).
 * An established connection still open at the end of the input (before its
 * deadline) is undecided and not counted.
 *
 * At each window close a (source, service) with new settled attempts in the
 * window is judged over the look-back (lookback, 60 s): it fires when it has
 * >= minAttempts settled attempts AND (failed + short-lived) / attempts >=
 * minFailureRatio. Severity: critical at 5x minAttempts, else warning; the
 * evidence says how many attempts were longer (one after many failures may
 * be a guessed password).
 *
 * Bounded: one state per (source, host, port) in a BoundedMap of maxKeys (LRU,
 * evictions counted in the metrics), three bucket counters each; states idle
 * for a look-back are dropped at window close. Re-reported, with updated
 * evidence, at most once per suppressFor seconds, and only in windows with new
 * attempts. Loopback traffic is ignored unless networks.includeLoopback.
 */
import type { FindingSeverity } from '../../common/report.js';
import { formatAddress } from '../../common/address.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowSpan } from './analyzer.js';
import { BoundedMap, BucketCounter } from './lib/bounded-map.js';
import { isLoopback } from './lib/networks.js';
import { SlotDeadlines } from './lib/slot-deadlines.js';
import { Suppressor } from './lib/suppressor.js';
import { endpoint } from './lib/format.js';

const { SYN, ACK, RST, FIN } = TcpFlag;

/** Attempts awaiting their deadline at once; past it the oldest is settled early. */
export const MAX_PENDING = 32_768;
/** Seconds after its SYN an attempt without SYN/ACK has no answer (at least; shortLived if longer). */
export const PROBE_TIMEOUT = 5;
/** Frame bytes (both directions) at most for a short-lived connection. */
export const LITTLE_DATA_BYTES = 32 * 1024;
/** Window ends are exclusive: look-back sums are read this much before. */
const SUM_EPSILON = 1e-3;

const SERVICES: Record<number, string> = {
  21: 'ftp', 22: 'ssh', 23: 'telnet', 25: 'smtp', 110: 'pop3', 143: 'imap', 389: 'ldap', 445: 'smb', 587: 'submission', 993: 'imaps',
  995: 'pop3s', 1433: 'mssql', 1521: 'oracle', 3306: 'mysql', 3389: 'rdp', 5432: 'postgresql', 5900: 'vnc', 5985: 'winrm', 5986: 'winrm',
  6379: 'redis', 11211: 'memcached', 27017: 'mongodb',
};

// Per-slot attempt state.
const NONE = 0;
const WAIT_SYNACK = 1;
const WAIT_ACK = 2;
const OPEN = 3;
const OVER = 4;

// Outcomes.
const LONGER = 0;
const SHORT = 1;
const REFUSED = 2;
const RESET = 3;
const NO_ANSWER = 4;
const INCOMPLETE = 5;

interface Service {
  key: string;
  src: string;
  dst: string;
  port: number;
  attempts: BucketCounter;
  failed: BucketCounter;
  short: BucketCounter;
  first: number;
  last: number;
  dirty: boolean;
}

interface Candidate { rank: number; attempts: number; draft: FindingDraft }

export function createBruteForceAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new BruteForceAnalyzer(ctx);
}

class BruteForceAnalyzer implements Analyzer {
  readonly id = 'brute_force';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['brute_force'] { return this.ctx.config.analyzers.brute_force; }
  private readonly includeLoopback: boolean;
  private readonly watched = new Uint8Array(65536);
  private readonly deadline: number;
  private readonly state: Uint8Array;
  private readonly deadlines: SlotDeadlines;
  private readonly services: BoundedMap<string, Service>;
  private readonly suppressor: Suppressor;
  private evictedBefore = 0;
  private w = emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {
    this.includeLoopback = ctx.config.networks.includeLoopback;
    for (const p of this.cfg.ports) if (Number.isInteger(p) && p >= 0 && p < 65536) this.watched[p] = 1;
    this.deadline = Math.max(this.cfg.shortLived, PROBE_TIMEOUT);
    const n = ctx.flows.capacity;
    this.state = new Uint8Array(n);
    this.deadlines = new SlotDeadlines(Math.min(n, MAX_PENDING));
    const maxKeys = Math.max(1, this.cfg.maxKeys);
    this.services = new BoundedMap<string, Service>(maxKeys);
    this.suppressor = new Suppressor(this.cfg.suppressFor, maxKeys);
  }

  /** The flow's tcp.stream number (mod 2^32): tells a deadline entry of an ended flow from one of the slot's next flow. */
  private stream(slot: number): number {
    return this.ctx.flows.streamIndex[slot]! >>> 0;
  }

  onFlowStart(slot: number): void {
    this.state[slot] = NONE;
  }

  onFlowEnd(slot: number): void {
    const s = this.state[slot];
    if (s === WAIT_SYNACK) this.settle(slot, NO_ANSWER, this.ctx.clock.now);
    else if (s === WAIT_ACK) this.settle(slot, INCOMPLETE, this.ctx.clock.now);
    else if (s === OPEN) this.closed(slot, this.ctx.flows.lastTs[slot]!);
    this.state[slot] = OVER;
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    const now = this.ctx.clock.now;
    if (now >= this.deadlines.headDue) this.expireDue(now);
    if (slot < 0 || v.transport !== Transport.TCP) return;
    const s = this.state[slot]!;
    if (s === OVER) return;
    const tf = v.tcpFlags;
    if (s === NONE) {
      const flows = this.ctx.flows;
      if ((tf & (SYN | ACK | RST)) !== SYN || dir !== Dir.CLIENT_TO_SERVER || !this.watched[v.dstPort]
        || flows.packets[slot * 2]! !== 1 || flows.packets[slot * 2 + 1]! !== 0
        || (!this.includeLoopback && (isLoopback(v.ipVersion, v.src) || isLoopback(v.ipVersion, v.dst)))) {
        this.state[slot] = OVER;
        return;
      }
      this.state[slot] = WAIT_SYNACK;
      this.w.attempts++;
      const q = this.deadlines;
      if (q.full && q.shift() && this.stream(q.slot) === q.gen) this.expire(q.slot, now);
      q.push(slot, this.stream(slot), now + this.deadline);
      return;
    }
    const fromServer = dir === Dir.SERVER_TO_CLIENT;
    if (s === WAIT_SYNACK) {
      if (tf & RST) this.settle(slot, fromServer ? REFUSED : NO_ANSWER, now);
      else if (fromServer) this.state[slot] = tf & SYN ? WAIT_ACK : OPEN; // no SYN/ACK: the handshake happened out of sight
      return;
    }
    if (s === WAIT_ACK) {
      if (tf & RST) this.settle(slot, INCOMPLETE, now);
      else if (!fromServer && tf & ACK && !(tf & SYN)) this.state[slot] = OPEN; // may carry data or a FIN too
      else return;
      if (!(tf & FIN)) return;
    }
    // OPEN
    if (tf & RST) this.settle(slot, now - this.ctx.flows.firstTs[slot]! <= this.cfg.shortLived ? RESET : LONGER, now);
    else if (tf & FIN) this.closed(slot, now);
  }

  /** The connection closes at `now`: short-lived or not. */
  private closed(slot: number, now: number): void {
    const flows = this.ctx.flows;
    const bytes = flows.bytes[slot * 2]! + flows.bytes[slot * 2 + 1]!;
    this.settle(slot, now - this.ctx.flows.firstTs[slot]! <= this.cfg.shortLived && bytes <= LITTLE_DATA_BYTES ? SHORT : LONGER, now);
  }

  private expireDue(until: number): void {
    const q = this.deadlines;
    while (q.headDue <= until && q.shift()) {
      if (this.stream(q.slot) === q.gen) this.expire(q.slot, q.dueTime);
    }
  }

  private expire(slot: number, now: number): void {
    const s = this.state[slot];
    if (s === WAIT_SYNACK) this.settle(slot, NO_ANSWER, now);
    else if (s === WAIT_ACK) this.settle(slot, INCOMPLETE, now);
    else if (s === OPEN) this.settle(slot, LONGER, now); // still open after shortLived seconds
  }

  private settle(slot: number, outcome: number, now: number): void {
    this.state[slot] = OVER;
    const w = this.w;
    if (outcome === LONGER) w.longer++;
    else if (outcome === SHORT) w.shortLived++;
    else if (outcome === REFUSED) w.refused++;
    else if (outcome === RESET) w.reset++;
    else if (outcome === INCOMPLETE) w.incomplete++;
    else w.noAnswer++;
    const flows = this.ctx.flows;
    const version = flows.version[slot]!;
    const src = formatAddress(version, flows.clientAddr(slot));
    const dst = formatAddress(version, flows.serverAddr(slot));
    const port = flows.serverPort(slot);
    const key = `${src} ${endpoint(dst, port)}`;
    let svc = this.services.get(key);
    if (svc === undefined) {
      const lookback = this.cfg.lookback;
      svc = {
        key, src, dst, port, attempts: new BucketCounter(lookback), failed: new BucketCounter(lookback), short: new BucketCounter(lookback),
        first: now, last: now, dirty: false,
      };
      this.services.set(key, svc);
    } else if (svc.last < now - this.cfg.lookback) {
      svc.first = now;
    }
    svc.last = Math.max(svc.last, now);
    svc.dirty = true;
    svc.attempts.add(now);
    if (outcome === SHORT) svc.short.add(now);
    else if (outcome !== LONGER) svc.failed.add(now);
  }

  finish(): void {
    // End of input: unanswered SYNs and unfinished handshakes failed; established connections are undecided.
    const q = this.deadlines;
    const now = this.ctx.clock.now;
    while (q.shift()) {
      if (this.stream(q.slot) !== q.gen) continue;
      const s = this.state[q.slot];
      if (s === WAIT_SYNACK || s === WAIT_ACK) this.settle(q.slot, s === WAIT_SYNACK ? NO_ANSWER : INCOMPLETE, Math.min(now, q.dueTime));
      this.state[q.slot] = OVER;
    }
  }

  closeWindow(span: WindowSpan): Metrics {
    const now = span.relEnd;
    // Bucket sums are read just inside the window, so the look-back is the `lookback` seconds ending at its end.
    const at = Math.max(span.relStart, now - SUM_EPSILON);
    this.expireDue(at);
    const cfg = this.cfg;
    const cutoff = now - cfg.lookback;
    const candidates: Candidate[] = [];
    for (const [key, svc] of this.services.entries()) {
      if (svc.last < cutoff) { this.services.delete(key); continue; }
      if (!svc.dirty) continue;
      svc.dirty = false;
      const c = this.judge(svc, now, at);
      if (c !== null) candidates.push(c);
    }
    candidates.sort((a, b) => b.rank - a.rank || b.attempts - a.attempts || (a.draft.key < b.draft.key ? -1 : a.draft.key > b.draft.key ? 1 : 0));
    let reported = 0;
    for (const c of candidates) {
      if (!this.suppressor.allow(c.draft.key, now)) { this.w.suppressed++; continue; }
      this.ctx.report(c.draft);
      reported++;
    }
    const w = this.w;
    const evicted = this.services.evicted;
    const metrics: Metrics = {
      attempts: w.attempts,
      outcomes: { longer: w.longer, shortLived: w.shortLived, refused: w.refused, reset: w.reset, noAnswer: w.noAnswer, incomplete: w.incomplete },
      attackers: candidates.length,
      reported,
      suppressed: w.suppressed,
      trackedKeys: this.services.size,
      maxKeys: cfg.maxKeys,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
    };
    this.evictedBefore = evicted;
    this.w = emptyWindow();
    return metrics;
  }

  private judge(svc: Service, now: number, at: number): Candidate | null {
    const cfg = this.cfg;
    const attempts = svc.attempts.sum(at);
    if (attempts < cfg.minAttempts || attempts === 0) return null;
    const failed = svc.failed.sum(at);
    const short = svc.short.sum(at);
    const ratio = Math.min(1, (failed + short) / attempts);
    if (ratio < cfg.minFailureRatio) return null;
    const longer = Math.max(0, attempts - failed - short);
    const severity: FindingSeverity = attempts >= 5 * Math.max(1, cfg.minAttempts) ? 'critical' : 'warning';
    const seconds = Math.max(1, Math.min(cfg.lookback, now - svc.first));
    const service = SERVICES[svc.port] ?? `port ${svc.port}`;
    return {
      rank: severity === 'critical' ? 1 : 0,
      attempts,
      draft: {
        type: 'brute_force',
        severity,
        key: svc.key,
        summary: `${svc.src} made ${attempts} ${service} connection attempts to ${endpoint(svc.dst, svc.port)} in the last ${cfg.lookback} s:`
          + ` ${failed} failed, ${short} short-lived (${(ratio * 100).toFixed(1)} %)`
          + (longer > 0 ? `; ${longer} lasted longer (a login may have succeeded).` : '.'),
        evidence: {
          source: svc.src,
          target: svc.dst,
          servicePort: svc.port,
          service,
          attempts,
          failed,
          shortLived: short,
          longer,
          ratio: Math.round(ratio * 1000) / 1000,
          attemptsPerMinute: Math.round((attempts / seconds) * 60 * 10) / 10,
          shortLivedSeconds: cfg.shortLived,
          lookbackSeconds: cfg.lookback,
        },
        host: svc.src,
      },
    };
  }
}

function emptyWindow(): { attempts: number; longer: number; shortLived: number; refused: number; reset: number; noAnswer: number; incomplete: number; suppressed: number } {
  return { attempts: 0, longer: 0, shortLived: 0, refused: 0, reset: 0, noAnswer: 0, incomplete: 0, suppressed: 0 };
}

