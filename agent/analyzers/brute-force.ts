/**
 * Brute force against authentication services (finding type `brute_force`):
 * repeated failing, short or look-alike connections from one client to one
 * service (server host and port, the port one of analyzers.brute_force.ports:
 * FTP, SSH, Telnet, POP3/IMAP and their TLS ports, SMTP submission 465/587,
 * SMB, the databases, RDP, VNC, WinRM (HTTP authentication)). Plain HTTP(S)
 * 80/443 and SMTP relay 25 are not watched by default: browsers, API clients
 * and mail relays open many similar short connections to one server; list a
 * login portal's port to watch it.
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
 * An attempt counts in the look-back at the time it is settled. Besides, a
 * completed connection (handshake done, then CLOSED or RESET) is a session;
 * one of at most maxSessionSeconds (SYN to end) and maxSessionBytes (frames,
 * both directions) is a login-sized session, whose bytes and duration (and
 * their squares) are summed in the look-back. A longer or bigger one (an
 * interactive shell, a transfer) is not: it breaks no burst but never counts
 * in one.
 *
 * At each window close a (client, service) with new settled attempts in the
 * window is judged over the look-back (lookback, 60 s, fixed at start). It
 * fires on either rule:
 *   failures  >= minAttempts settled attempts AND (failed + short-lived) /
 *             attempts >= minFailureRatio (scanners and guessers whose logins
 *             fail fast or are refused);
 *   sessions  >= minSessions login-sized sessions, dense (sessionsPerMinute:
 *             (sessions - 1) per minute over the span from the first to the
 *             latest session of the current run, at most the look-back, a run
 *             ending when a look-back passes without a session) >=
 *             minSessionRate, and alike: coefficient of variation (population
 *             standard deviation / mean) of their bytes <= maxSizeCv and of
 *             their durations <= maxDurationCv. This is password guessing where
 *             every connection completes (a tool making one or a few tries per
 *             session, each session the same exchange), as Zeek's SSH guesser
 *             counts failed logins by session size: without decoding the
 *             protocol, a burst of look-alike short sessions from one client is
 *             the signature. The sessions are counted over the look-back
 *             and, when that falls short, over the whole current run (sums
 *             per key from the run's first session, the rate over the run's
 *             span however long): a guesser whose connections each take
 *             several passwords (sshd's MaxAuthTries 6, vsftpd's 3) with PAM's
 *             failure delays lasts 10-20 s a connection, so hydra -t 4 opens
 *             about 5 a minute, in rounds of 4 - under minSessions in any one
 *             look-back, yet 25 alike sessions in four minutes. Human use
 *             (shells, copies of different files) varies in size and duration;
 *             a monitoring check every minute is not dense enough with the
 *             defaults (3 a minute: a session every 20 s, sustained); automation
 *             that is dense and regular (CI or configuration management over
 *             SSH, checks every few seconds) belongs in the allow-list.
 * Severity: critical when the rule that fired counts 5x its minimum (attempts
 * >= 5 x minAttempts, or sessions >= 5 x minSessions), else warning. The
 * summary and evidence say how many attempts were longer (one after many
 * failures may be a guessed password); `rules` names the rules that fired and
 * `thresholds` each threshold crossed with the measured value.
 *
 * Allow-list (analyzers.brute_force.allowHosts / allowPorts; a SIGHUP's new
 * list applies to attempts that start after it):
 * an attempt whose client or server address is listed (a jump host, a
 * monitoring or CI runner; a server scripted logins are expected on), or whose
 * service port is listed, is not tracked. Checked once per attempt, at its
 * SYN, and counted in the window metric `allowed`.
 *
 * State, all preallocated at start: one byte per flow slot (where the attempt
 * stands); a KeyTable of services (client host id, server host id, port) with
 * typed-array columns and a BucketReducer of eight look-back series (attempts,
 * failed, short-lived, sessions, their bytes, bytes squared, seconds, seconds
 * squared), as many as memory.budgetMB grants, at most maxKeys (least recently
 * settled evicted first, counted in the metrics); a HostTable of twice as many
 * hosts (so the hosts of every live service stay interned); services idle for
 * a look-back are dropped at window close. Re-reported, with updated evidence,
 * at most once per suppressFor seconds (a SuppressionTable keyed by the
 * addresses and port, as many keys as services), and only in windows with new
 * attempts. Loopback traffic is ignored unless networks.includeLoopback.
 *
 * Flow-sharded workers (issue 13): a key (client, server, port) is one host
 * pair, whose packets all go to one worker, and nothing here spans keys but
 * the bounded tables (evicted only when full). So each worker keeps, judges
 * and reports its own keys as one pipeline would; the merged window's
 * metrics are the workers' added up (maxKeys is one pipeline's table size).
 * Not identical to one pipeline only past the bounds: the workers share one
 * pipeline's capacity (shard-pipeline.ts workerShare), so with more live
 * services than maxKeys (or the memory budget) grants, each evicts when its
 * share is full, other keys than one pipeline would.
 */
import { idleKeys } from '../../common/memory-budget.js';
import type { FindingSeverity } from '../../common/report.js';
import { AttemptEvent, type AttemptEventCode } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { ConfiguredAllowList, thresholdsCrossed, type Crossing } from './lib/allow-list.js';
import { HostTable } from './lib/host-table.js';
import { KeyTable } from './lib/key-table.js';
import { isLoopback } from './lib/networks.js';
import { SuppressionTable } from './lib/suppression.js';
import { BucketReducer } from './lib/time-buckets.js';
import { endpoint, plural } from './lib/format.js';
import { sumMetrics } from './lib/merge-metrics.js';

/** Frame bytes (both directions) at most for a short-lived connection. */
export const LITTLE_DATA_BYTES = 32 * 1024;
/** Window ends are exclusive: look-back sums are read this much before. */
const SUM_EPSILON = 1e-3;
/** Look-back buckets (as the former BucketCounter's). */
const BUCKETS = 6;

const SERVICES: Record<number, string> = {
  21: 'ftp', 22: 'ssh', 23: 'telnet', 25: 'smtp', 110: 'pop3', 143: 'imap', 389: 'ldap', 445: 'smb', 465: 'submissions', 587: 'submission', 993: 'imaps',
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
/** Login-sized complete sessions, and sums of their frame bytes and seconds (and squares, for the coefficients of variation). */
const S_SESSIONS = 3;
const S_BYTES = 4;
const S_BYTES_SQ = 5;
const S_SECONDS = 6;
const S_SECONDS_SQ = 7;
const SERIES = 8;

/** Suppression key: IP version, source address (4 words), target address (4 words), port. */
const SUPPRESSION_WIDTH = 10;

// Per key sums over the current run of sessions (RUN_SERIES columns): sessions, bytes, bytes squared, seconds, seconds squared.
const RUN_SERIES = 5;

/** Bytes per service: its key and columns, look-back series, two hosts, a suppression key. */
const SERVICE_BYTES = KeyTable.bytesPerEntry(3) + (4 + 4 + 8 + 8 + 8 + 8 + 1) + RUN_SERIES * 8 + BucketReducer.bytesPerKey(BUCKETS, SERIES)
  + 2 * HostTable.bytesPerEntry + SuppressionTable.bytesPerEntry(SUPPRESSION_WIDTH);

/** What the sessions rule measured, over the look-back or over the current run of sessions (`run`), spanning `span` seconds. */
interface SessionStats { sessions: number; perMinute: number; meanBytes: number; sizeCv: number; meanSeconds: number; durationCv: number; run: boolean; span: number }

interface Candidate {
  id: number; rank: number; attempts: number; key: string;
  /** Which rules fired. */
  failures: boolean; sessions: boolean;
  ratio: number; stats: SessionStats;
}

export function createBruteForceAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new BruteForceAnalyzer(ctx);
}

class BruteForceAnalyzer implements Analyzer {
  readonly id = 'brute_force';
  /** Read on use, so SIGHUP's new thresholds apply at once (the look-back and table sizes are fixed at start). */
  private get cfg(): AnalyzerContext['config']['analyzers']['brute_force'] { return this.ctx.config.analyzers.brute_force; }
  private readonly includeLoopback: boolean;
  private readonly lookback: number;
  private readonly allowList = new ConfiguredAllowList(() => this.cfg, 'analyzers.brute_force');
  private readonly watched = new Uint8Array(65536);
  /** Per flow slot: NONE, STARTED, ANSWERED, OPEN. */
  private readonly state: Uint8Array;

  private readonly hosts: HostTable;
  /** (source host id, target host id, port) -> service id. */
  private readonly services: KeyTable;
  /** The service table's capacity granted by memory.budgetMB (the coordinator's instance allocates less: idleKeys). */
  private readonly maxKeys: number;
  /** Host generations when the service was made: another host holds the id when they differ. */
  private readonly srcGen: Uint32Array;
  private readonly dstGen: Uint32Array;
  /** First settled attempt of the current run (for the rate), latest settled attempt. */
  private readonly first: Float64Array;
  private readonly last: Float64Array;
  /** First and latest login-sized session of the current run of sessions (for their rate). */
  private readonly sessionFirst: Float64Array;
  private readonly sessionLast: Float64Array;
  /** Sums over the current run of sessions, RUN_SERIES per key (a run can outlast the look-back). */
  private readonly runSums: Float64Array;
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
    this.maxKeys = ctx.memory.keys('brute_force.services', SERVICE_BYTES, Math.max(1, cfg.maxKeys));
    // A flow-sharded coordinator only adds up the workers' metrics: its tables stay empty.
    const n = ctx.shardRole === 'coordinator' ? idleKeys(this.maxKeys) : this.maxKeys;
    this.hosts = new HostTable(2 * n, ctx.networks, this.includeLoopback);
    this.services = new KeyTable(n, 3);
    this.srcGen = new Uint32Array(n);
    this.dstGen = new Uint32Array(n);
    this.first = new Float64Array(n);
    this.last = new Float64Array(n);
    this.sessionFirst = new Float64Array(n);
    this.sessionLast = new Float64Array(n);
    this.runSums = new Float64Array(n * RUN_SERIES);
    this.dirty = new Uint8Array(n);
    this.counts = new BucketReducer(n, this.lookback, BUCKETS, SERIES);
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
      case AttemptEvent.RESET: {
        // RESET comes only once completed: a session, ended by either side's RST.
        const seconds = at - flows.firstTs[slot]!;
        this.settle(slot, seconds <= this.cfg.shortLived ? RESET : LONGER, at, seconds, flows.bytes[slot * 2]! + flows.bytes[slot * 2 + 1]!);
        return;
      }
      case AttemptEvent.CLOSED: {
        // The FIN, or the flow's last packet when the flow ended (idle, evicted, port reuse).
        const t = Math.min(at, flows.lastTs[slot]!);
        const seconds = t - flows.firstTs[slot]!;
        const bytes = flows.bytes[slot * 2]! + flows.bytes[slot * 2 + 1]!;
        this.settle(slot, seconds <= this.cfg.shortLived && bytes <= LITTLE_DATA_BYTES ? SHORT : LONGER, t, seconds, bytes);
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
    if (this.allowList.get().covers(version, this.client, this.server, flows.serverPort(slot))) {
      this.w.allowed++;
      return;
    }
    this.state[slot] = STARTED;
    this.w.attempts++;
  }

  /** `seconds` and `bytes` of a completed session (seconds < 0: the handshake never completed). */
  private settle(slot: number, outcome: number, t: number, seconds = -1, bytes = 0): void {
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
      this.sessionFirst[id] = -Infinity;
      this.sessionLast[id] = -Infinity;
      this.dirty[id] = 0;
    } else if (this.last[id]! < t - this.lookback) {
      this.first[id] = t;
    }
    if (t > this.last[id]!) this.last[id] = t;
    this.dirty[id] = 1;
    const counts = this.counts;
    const k = counts.bucketOf(t);
    counts.addToBucket(id, k, S_ATTEMPTS, 1);
    if (outcome === SHORT) counts.addToBucket(id, k, S_SHORT, 1);
    else if (outcome !== LONGER) counts.addToBucket(id, k, S_FAILED, 1);
    const cfg = this.cfg;
    if (seconds < 0 || seconds > cfg.maxSessionSeconds || bytes > cfg.maxSessionBytes) return;
    w.sessions++;
    // A run of sessions starts after a look-back without one (or with the service's first).
    const run = id * RUN_SERIES;
    const sums = this.runSums;
    if (this.sessionLast[id]! < t - this.lookback) { this.sessionFirst[id] = t; sums.fill(0, run, run + RUN_SERIES); }
    if (t > this.sessionLast[id]!) this.sessionLast[id] = t;
    sums[run]++;
    sums[run + 1] += bytes;
    sums[run + 2] += bytes * bytes;
    sums[run + 3] += seconds;
    sums[run + 4] += seconds * seconds;
    counts.addToBucket(id, k, S_SESSIONS, 1);
    counts.addToBucket(id, k, S_BYTES, bytes);
    counts.addToBucket(id, k, S_BYTES_SQ, bytes * bytes);
    counts.addToBucket(id, k, S_SECONDS, seconds);
    counts.addToBucket(id, k, S_SECONDS_SQ, seconds * seconds);
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
      allowed: w.allowed,
      sessions: w.sessions,
      outcomes: { longer: w.longer, shortLived: w.shortLived, refused: w.refused, reset: w.reset, noAnswer: w.noAnswer, incomplete: w.incomplete },
      attackers: candidates.length,
      reported,
      suppressed: w.suppressed,
      trackedKeys: services.size,
      maxKeys: this.maxKeys,
      evicted,
      evictedInWindow: evicted - this.evictedBefore,
    };
    this.evictedBefore = evicted;
    this.w = emptyWindow();
    return metrics;
  }

  /** The coordinator: each key lives (and was judged and reported) in one worker, so the figures add up. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const merged = sumMetrics(input.metrics);
    merged['maxKeys'] = this.maxKeys;
    return merged;
  }

  /** Whether service `id` fires (either rule) over the look-back before bucket boundary `b`. */
  private judge(id: number, b: number): Candidate | null {
    const cfg = this.cfg;
    const counts = this.counts;
    const attempts = counts.sumBefore(id, S_ATTEMPTS, b);
    if (attempts === 0) return null;
    const ratio = Math.min(1, (counts.sumBefore(id, S_FAILED, b) + counts.sumBefore(id, S_SHORT, b)) / attempts);
    const failures = attempts >= cfg.minAttempts && ratio >= cfg.minFailureRatio;
    // The look-back's burst, else the whole run (a guesser whose connections each take several passwords
    // and a while is dense over minutes, not within one look-back).
    let stats = this.sessionStats(id, b);
    let sessions = this.sessionsRule(stats);
    if (!sessions) {
      const run = this.runStats(id);
      if (this.sessionsRule(run)) { stats = run; sessions = true; }
    }
    if (!failures && !sessions) return null;
    const critical = (failures && attempts >= 5 * Math.max(1, cfg.minAttempts)) || (sessions && stats.sessions >= 5 * Math.max(1, cfg.minSessions));
    const services = this.services;
    const port = services.keyWord(id, 2);
    const key = `${this.hosts.name(services.keyWord(id, 0))} ${endpoint(this.hosts.name(services.keyWord(id, 1)), port)}`;
    return { id, rank: critical ? 1 : 0, attempts, key, failures, sessions, ratio, stats };
  }

  private sessionsRule(st: SessionStats): boolean {
    const cfg = this.cfg;
    return st.sessions >= cfg.minSessions && st.perMinute >= cfg.minSessionRate && st.sizeCv <= cfg.maxSizeCv && st.durationCv <= cfg.maxDurationCv;
  }

  /** Login-sized sessions of the current run (from its first to its latest session, however long). */
  private runStats(id: number): SessionStats {
    const sums = this.runSums;
    const o = id * RUN_SERIES;
    const sessions = sums[o]!;
    const span = Math.max(1, this.sessionLast[id]! - this.sessionFirst[id]!);
    if (sessions === 0) return { sessions: 0, perMinute: 0, meanBytes: 0, sizeCv: 0, meanSeconds: 0, durationCv: 0, run: true, span };
    const meanBytes = sums[o + 1]! / sessions;
    const meanSeconds = sums[o + 3]! / sessions;
    return {
      sessions,
      perMinute: ((sessions - 1) / span) * 60,
      meanBytes,
      sizeCv: cv(meanBytes, sums[o + 2]! / sessions),
      meanSeconds,
      durationCv: cv(meanSeconds, sums[o + 4]! / sessions),
      run: true,
      span,
    };
  }

  /** Login-sized sessions in the look-back before boundary `b`: count, rate, and the mean and coefficient of variation of their bytes and seconds. */
  private sessionStats(id: number, b: number): SessionStats {
    const counts = this.counts;
    const sessions = counts.sumBefore(id, S_SESSIONS, b);
    if (sessions === 0) return { sessions: 0, perMinute: 0, meanBytes: 0, sizeCv: 0, meanSeconds: 0, durationCv: 0, run: false, span: 0 };
    const meanBytes = counts.sumBefore(id, S_BYTES, b) / sessions;
    const meanSeconds = counts.sumBefore(id, S_SECONDS, b) / sessions;
    const span = Math.max(1, Math.min(this.lookback, this.sessionLast[id]! - this.sessionFirst[id]!));
    return {
      sessions,
      perMinute: ((sessions - 1) / span) * 60,
      meanBytes,
      sizeCv: cv(meanBytes, counts.sumBefore(id, S_BYTES_SQ, b) / sessions),
      meanSeconds,
      durationCv: cv(meanSeconds, counts.sumBefore(id, S_SECONDS_SQ, b) / sessions),
      run: false,
      span,
    };
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
    const ratio = c.ratio;
    const longer = Math.max(0, attempts - failed - short);
    const severity: FindingSeverity = c.rank === 1 ? 'critical' : 'warning';
    const seconds = Math.max(1, Math.min(lookback, now - this.first[id]!));
    const service = SERVICES[port] ?? `port ${port}`;
    const st = c.stats;
    const crossings: Crossing[] = [];
    if (c.failures) {
      crossings.push({ measured: 'attempts', value: attempts, setting: 'minAttempts', limit: cfg.minAttempts });
      crossings.push({ measured: 'ratio', value: ratio, setting: 'minFailureRatio', limit: cfg.minFailureRatio });
    }
    if (c.sessions) {
      crossings.push({ measured: 'sessions', value: st.sessions, setting: 'minSessions', limit: cfg.minSessions });
      crossings.push({ measured: 'sessionsPerMinute', value: st.perMinute, setting: 'minSessionRate', limit: cfg.minSessionRate });
      crossings.push({ measured: 'sessionSizeCv', value: st.sizeCv, setting: 'maxSizeCv', limit: cfg.maxSizeCv, op: '<=' });
      crossings.push({ measured: 'sessionDurationCv', value: st.durationCv, setting: 'maxDurationCv', limit: cfg.maxDurationCv, op: '<=' });
    }
    const over = st.run ? `over the last ${Math.round(st.span)} s` : `in the last ${lookback} s`;
    const sessionsText = `${plural(st.sessions, `complete ${service} session`)} to ${endpoint(dst, port)} ${over}`
      + ` (${round1(st.perMinute)}/min), alike in size (mean ${Math.round(st.meanBytes)} B, CV ${round3(st.sizeCv)})`
      + ` and duration (mean ${round1(st.meanSeconds)} s, CV ${round3(st.durationCv)})`;
    const longerText = longer > 0 ? `; ${longer} lasted longer (a login may have succeeded).` : '.';
    const summary = c.failures
      ? `${src} made ${plural(attempts, `${service} connection attempt`)} to ${endpoint(dst, port)} in the last ${lookback} s:`
        + ` ${failed} failed, ${short} short-lived (${(ratio * 100).toFixed(1)} %)` + (c.sessions ? `; ${plural(st.sessions, 'complete session')} alike in size and duration` : '') + longerText
      : `${src} opened ${sessionsText}: password guessing that completes every connection` + longerText;
    return {
      type: 'brute_force',
      severity,
      key: c.key,
      summary,
      evidence: {
        source: src,
        target: dst,
        servicePort: port,
        service,
        attempts,
        failed,
        shortLived: short,
        longer,
        ratio: round3(ratio),
        attemptsPerMinute: round1((attempts / seconds) * 60),
        shortLivedSeconds: cfg.shortLived,
        lookbackSeconds: lookback,
        rules: c.failures && c.sessions ? 'failures,sessions' : c.failures ? 'failures' : 'sessions',
        sessions: st.sessions,
        sessionsPerMinute: round1(st.perMinute),
        meanSessionBytes: Math.round(st.meanBytes),
        sessionSizeCv: round3(st.sizeCv),
        meanSessionSeconds: round3(st.meanSeconds),
        sessionDurationCv: round3(st.durationCv),
        sessionsOver: st.run ? 'run' : 'lookback',
        sessionSpanSeconds: round1(st.span),
        thresholds: thresholdsCrossed(crossings),
      },
      host: src,
    };
  }
}

/** Coefficient of variation (population) from the mean and the mean of squares; 0 for a zero mean. */
function cv(mean: number, meanOfSquares: number): number {
  if (!(mean > 0)) return 0;
  return Math.sqrt(Math.max(0, meanOfSquares - mean * mean)) / mean;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

interface WindowCounts {
  attempts: number; allowed: number; sessions: number;
  longer: number; shortLived: number; refused: number; reset: number; noAnswer: number; incomplete: number; suppressed: number;
}

function emptyWindow(): WindowCounts {
  return { attempts: 0, allowed: 0, sessions: 0, longer: 0, shortLived: 0, refused: 0, reset: 0, noAnswer: 0, incomplete: 0, suppressed: 0 };
}
