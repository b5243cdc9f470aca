/**
 * Port scans (finding type `port_scan`), per source over the look-back
 * (analyzers.port_scan.lookback, 60 s of packet time).
 *
 * Connection attempts come settled from the shared tracker
 * (flow/connection-attempts.ts, `onConnectionAttempt`):
 *   completed   a connection, not a probe;
 *   refused     the server's RST before any SYN/ACK (a closed port);
 *   abandoned   a SYN/ACK the client resets or never ACKs (a half-open
 *               SYN scan of an open port);
 *   unanswered  no SYN/ACK within the tracker's 5 s, by the end of its flow,
 *               or by the end of the input (filtered port, or a capture of
 *               the scanner's side only) - unless the client then ACKed
 *               (`handshakeUnseen`): it only ACKs a SYN/ACK it got, so the
 *               handshake happened out of the capture's sight (a one-sided
 *               capture of a real connection, or a connect probe of an open
 *               port), and that counts as completed.
 * Refused, abandoned and unanswered attempts are failed probes. A UDP datagram
 * answered by ICMP port unreachable (ICMPv6 type 1 code 4) is a failed probe
 * too, attributed through the quoted header (its source probed its destination
 * port); a quoted datagram from a port below 1024 to one at or above 1024, or
 * from below 32768 to an ephemeral port (>= 32768), is a late reply to a client
 * (a DNS answer after the resolver gave up), not a probe, and is ignored; so
 * is one quoting a datagram to traceroute's ports 33434-33534 (its destination
 * answers the probes that reach it, each to a new port).
 *
 * Unanswered UDP (`udpUnanswered`): a UDP flow its client opened (onUdpDatagram,
 * the flow's first datagram; the same exclusions as above, and multicast or
 * broadcast destinations, which never answer) that got no datagram back within
 * UDP_ANSWER_TIMEOUT (5 s, as the tracker's SYN), by the end of its flow or of
 * the input, after at most UDP_PROBE_MAX_DATAGRAMS (8) datagrams, is a failed
 * probe too, timed at its first datagram, unless an ICMP port unreachable
 * already counted it. Its wait ends at its own flow's next datagram after
 * those 5 s, at the flow's end, or at the first window close 5 s after it
 * (never at another flow's packet, so where it settles does not depend on
 * traffic of other host pairs). Linux answers about one port unreachable a second, so an
 * nmap -sU of a Linux host (or a host that drops) leaves mostly such silence.
 * More datagrams without an answer are a one-way stream (RTP, syslog, traps),
 * not a probe; unanswered queries to one service (a resolver that is down)
 * fail on one port, never a scan. A one-sided capture of UDP polling (SNMP to
 * minHosts hosts) looks like a horizontal sweep: allow-list the poller. Waiting
 * flows sit in a ring of (slot, start) (port_scan.udpPending of the memory
 * budget, at most one per flow slot; when full its oldest is settled early),
 * drained at window close; a waiting flow's own datagram costs one compare.
 *
 * Stealth probes (Nmap -sF, -sN, -sX, -sM, -sA; `stealthProbes` metrics), read
 * from a flow's first segment only (onTcpSegment; later segments cost one
 * compare): a bare segment (no payload, no SYN, no RST) that opens a flow.
 *   fin, null, xmas  FIN alone, no flag, FIN+PSH+URG: no stack sends a segment
 *               without ACK outside the handshake, so each is a failed probe as
 *               it is sent (an open port answers nothing, a closed one RST).
 *   maimon, ack FIN+ACK and ACK alone are also what a connection the capture
 *               joined late sends: a failed probe only when the peer's next
 *               segment is a bare RST and nothing else came first (no data, no
 *               ACK, no FIN; a retransmitted probe may); unanswered ones are not
 *               counted (they look like a one-sided long-lived flow), nor those
 *               from a port below 1024 to one at or above 1024 or from below
 *               32768 to one at or above (a server's segment to its client).
 * Mid-stream flows therefore stay silent: their ACKs and FIN+ACKs are answered
 * by data or a FIN, or come from a service port; and a scan still needs many
 * distinct ports. Each failed probe is counted by kind per source over its
 * current activity (reset after a look-back of silence) and named in the
 * evidence (`probeKinds: "syn 20, fin 5, null 5, xmas 5"`; udp for ICMP-
 * answered and unanswered datagrams).
 *
 * Per source, failed probes are remembered as (host, port) pairs with their
 * latest time, up to MAX_PAIRS_PER_SOURCE (4096): past that, counts are lower
 * bounds (`capped` in the evidence). At each window close, a source with new
 * attempts in the window is judged over the look-back:
 *   vertical    >= minPorts distinct ports failed on one host;
 *   horizontal  one port failed on >= minHosts distinct hosts;
 *   block       both at once;
 *   small       neither, but >= minPortsSmall (10) distinct ports failed on one
 *               host: a handful of ports refused or unanswered within the
 *               look-back is what a quick scan (nmap -F, a worm's short port
 *               list, a one-sided capture of a scan) leaves, while a client
 *               uses one or two service ports of a host (a fallback reaches 3-5);
 * and it must also have a failure ratio (failed probes / settled attempts,
 * UDP probes counting as failed attempts) >= minFailureRatio, so a busy client
 * whose connections mostly succeed is never a scanner.
 *
 * Distributed scan (one finding per target host): over the look-back, the
 * host's failed ports number >= minPorts, probed by >= MIN_DISTRIBUTED_SOURCES
 * (3) distinct sources, none of which probed minPorts of them itself (each
 * port counts for the last source that probed it: a single source reaching
 * minPorts is a vertical scan, reported as such), and the failure ratio of the
 * attempts to that host (counted from its first failed probe on, for as long
 * as it stays tracked) is >= minFailureRatio.
 *
 * Severity: critical when the count is 10x its threshold (ports for vertical
 * and distributed, hosts for horizontal) or the probe rate is >= 100/s with
 * twice the threshold; info for a slow (< 1 probe/s), partly answered
 * (failure ratio < 0.9) source just over the threshold (score < 2); warning
 * otherwise. Between internal hosts (networks.internal: the source and its
 * most probed host) a scan is reconnaissance from inside, never skipped: at
 * least warning. A small scan is info from outside (the Internet's constant
 * background probing) and warning between internal hosts. A small scan is
 * suppressed under its own key, so the full scan it grows into in a later
 * window is still reported.
 *
 * Allow-lists (analyzers.port_scan.allowHosts / allowPorts): an attempt, probe
 * or ICMP-answered datagram is not tracked (counted in `allowed`, once per
 * settled attempt or probe) when its source (a sanctioned scanner, a
 * monitoring poller) or its destination (a host whose probing is expected,
 * such as a honeypot) is an allowed host, or when its destination port is an
 * allowed port (a service known to refuse by design); a reload (SIGHUP)
 * replaces the lists. Every finding's
 * `thresholds` names the settings it crossed with the measured values.
 *
 * State, all typed arrays sized once from the memory budget (memory.budgetMB,
 * grants port_scan.sources and port_scan.targets, at most
 * analyzers.port_scan.maxKeys hosts each, and port_scan.probes, at most
 * MAX_REMEMBERED probes): two HostTables, sources (every
 * client of a settled attempt) and targets (hosts with a failed probe), with
 * per-id columns and a BucketReducer of attempts and failures over the
 * look-back; a KeyTable of the hosts each source failed on (source, target),
 * in first-probe order per source, each with a list of its failed ports
 * (KeyTable (probed host, port) -> latest time); a KeyTable of each target's
 * failed ports (target, port) -> latest time and source. The lists are Int32
 * link columns, so judging a host walks only its own probes. Bounds: the host
 * tables evict the least recently active host (a source on each attempt, a
 * target on each failed probe), the probe tables the least recently probed
 * entry, all counted in `evicted`; past the per-host caps a probe is dropped
 * (`capped`); states idle for a look-back are dropped at window close. Probes
 * naming a host whose id was evicted and reused (HostTable generation) are
 * dropped when met. A finding for the same source (or target) is re-reported,
 * with updated evidence, at most once per suppressFor seconds (SuppressionTable
 * on (kind, host id, generation)); it is only judged in windows in which it
 * made new attempts, so a scan that stopped is not repeated. Loopback traffic
 * is ignored unless networks.includeLoopback. One byte per flow slot holds
 * what the flow's first segments showed (S_*).
 *
 * Flow-sharded workers (issue 13). A source scanning many hosts, and a target
 * probed by many sources, span workers (a host pair's packets go to one), and
 * the state above depends on the order of their probes (first-probe order of
 * hosts, the latest source of a port, look-back buckets, activity resets,
 * least-recently-used tables): per-key sums cannot rebuild it. So a worker
 * does the per-packet work (slot states, the UDP waits, the allow-lists) and
 * logs each attempt or probe it settles (PortScanPart: with its packet's
 * order, its place among that packet's events and its time), keeping no
 * detection state; at each window close the coordinator replays every
 * worker's records in input order through `note` and judges there, as one
 * pipeline would. Several records of one packet come from different workers
 * when a packet passes several attempts' deadlines (they settle in SYN order,
 * the tracker's queue), when flows end idle at it with their UDP wait open
 * (least recently active first: by their last datagram), or at a window
 * close or the input's end (UDP waits in the order they started): the replay
 * orders them so (R_PHASE). Not so only for an attempt still open when its
 * flow ends idle (a tcpHandshake timeout under 5 s) or is evicted (a full
 * flow table): replayed among the attempts by SYN order, where one pipeline
 * settles it before them. Workers report nothing. Bounds per worker: the UDP
 * wait ring (port_scan.udpPending) and the tracker's queue of attempts
 * (MAX_PENDING) settle their oldest early when full, and each worker's holds
 * only its own flows, so past those bounds the settling differs from one
 * pipeline's; the detection state's bounds (maxKeys, probes) are the
 * coordinator's alone, so evictions there match one pipeline's. A worker's
 * log of a window is bounded by the detector's part of memory.budgetMB
 * (lib/replay-log.ts: about 48,000 records at the default 200): past it the
 * window's oldest records are not replayed, counted in the metric
 * `notReplayed` (present only then); the attempts and outcomes the workers
 * count stay whole (udpUnanswered counts a dropped UDP wait as unanswered,
 * unchecked against ICMP-answered probes), the detection state can differ
 * from one pipeline's.
 */
import type { FindingSeverity } from '../../common/report.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { AttemptEvent, type AttemptEventCode } from '../flow/connection-attempts.js';
import { Dir } from '../flow/flow-table.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { ConfiguredAllowList, thresholdsCrossed, type Crossing } from './lib/allow-list.js';
import { HostTable } from './lib/host-table.js';
import { KeyTable } from './lib/key-table.js';
import { isLoopback, isSpecialAddress } from './lib/networks.js';
import { SuppressionTable } from './lib/suppression.js';
import { BucketReducer } from './lib/time-buckets.js';
import { plural, round2, round3 } from './lib/format.js';
import { LOG_SHARE, ReplayLog, endReplay, replayInOrder, type ReplayLogPart } from './lib/replay-log.js';

/** Failed (host, port) probes remembered per source. */
export const MAX_PAIRS_PER_SOURCE = 4096;
/** Failed ports remembered per target host. */
export const MAX_PORTS_PER_TARGET = 4096;
/** Remembered probes (and target ports) at most, whatever the memory budget. */
export const MAX_REMEMBERED = 1_000_000;
/** UDP traceroute's destination ports (33434 + one per probe): its last hop answers port unreachable, never a scan. */
export const TRACEROUTE_FIRST_PORT = 33434;
export const TRACEROUTE_LAST_PORT = 33534;
/** A UDP flow's first datagram settles as unanswered this long after it (the TCP tracker's SYN timeout). */
export const UDP_ANSWER_TIMEOUT = 5;
/** More client datagrams than this without an answer is a one-way stream (RTP, syslog, a trap sender), not a probe. */
export const UDP_PROBE_MAX_DATAGRAMS = 8;
/**
 * A segment or datagram from a service port to a client port (below 1024 to
 * 1024 and up, or below 32768 to an ephemeral port): a server answering its
 * client, never a probe.
 */
const replyShaped = (sp: number, dp: number): boolean => (sp < 1024 && dp >= 1024) || (sp < 32768 && dp >= 32768);
/**
 * A UDP datagram (answered by port unreachable or by nothing) that is no
 * probe: a reply to a client, or one of traceroute's, whose destination
 * answers each probe that reaches it, a new port each.
 */
const udpNeverProbe = (sp: number, dp: number): boolean => replyShaped(sp, dp) || (dp >= TRACEROUTE_FIRST_PORT && dp <= TRACEROUTE_LAST_PORT);
/** Sources a distributed scan needs. */
export const MIN_DISTRIBUTED_SOURCES = 3;
const SAMPLE = 10;
/** Window ends are exclusive: look-back sums are read this much before. */
const SUM_EPSILON = 1e-3;
/** Buckets of the look-back counts (as BucketCounter's default). */
const BUCKETS = 6;
const MIN_LOOKBACK = 1e-6;
// BucketReducer series.
const ATTEMPTS = 0;
const FAILED = 1;
// Suppression key kinds.
const SOURCE = 0;
const TARGET = 1;
/** A source's small scan: suppressed apart, so the full scan it grows into is still reported. */
const SOURCE_SMALL = 2;
const NIL = -1;

// Probe kinds (per source counts, named in the evidence's probeKinds).
const K_SYN = 0;
const K_FIN = 1;
const K_NULL = 2;
const K_XMAS = 3;
const K_MAIMON = 4;
const K_ACK = 5;
const K_UDP = 6;
const KINDS = 7;
const KIND_NAMES = ['syn', 'fin', 'null', 'xmas', 'maimon', 'ack', 'udp'] as const;

const { FIN, SYN, RST, PSH, ACK, URG } = TcpFlag;
/** The flag bits a stealth probe's shape is read from (ECE and CWR left out). */
const SHAPE = FIN | SYN | RST | PSH | ACK | URG;

// Per flow slot: what its first segments showed. Below S_NEW the flow is settled for this detector
// (one compare per later segment).
/** Not a probe, or already counted. */
const S_DONE = 0;
/** A SYN-started flow whose client then sent an ACK without an answer in sight: the handshake happened out of the capture's sight (one-sided capture). */
const S_HANDSHAKE_UNSEEN = 1;
/** Started; its first segment not seen yet. */
const S_NEW = 2;
/** The client's SYN started it: the attempt tracker settles it; watched for the client's ACK. */
const S_SYN_SENT = 3;
/** A bare ACK (4, 5) or FIN+ACK (6, 7) opened it, sent in direction `state & 1`: a probe only if the peer's next segment is a RST. */
const S_WAIT_ACK = 4;
const S_WAIT_MAIMON = 6;
/** A UDP flow the client opened: settled as an unanswered probe or not UDP_ANSWER_TIMEOUT later or at its end. */
const S_UDP_WAIT = 8;

/** Bytes per source id: HostTable, columns (flags, 4 times, pair count, host list ends, probe kinds), look-back counts, judge scratch, suppression keys (scan, small scan). */
const SOURCE_BYTES = HostTable.bytesPerEntry + 2 + 4 * 8 + 3 * 4 + KINDS * 4 + BucketReducer.bytesPerKey(BUCKETS, 2) + 4 + 2 * SuppressionTable.bytesPerEntry(3);
/** Bytes per target id: HostTable, columns (flags, 4 times, port count, port list head), look-back counts, suppression key. */
const TARGET_BYTES = HostTable.bytesPerEntry + 2 + 4 * 8 + 2 * 4 + BucketReducer.bytesPerKey(BUCKETS, 2) + SuppressionTable.bytesPerEntry(3);
/** Bytes per pending UDP flow: slot, first datagram time. */
const UDP_PENDING_BYTES = 4 + 8;
/** Bytes per remembered probe: one entry in each of the probed-host, probe and target-port tables, with their columns. */
const PROBE_BYTES = 3 * KeyTable.bytesPerEntry(2) + (4 + 4 + 4 + 8) + (8 + 8) + (8 + 4 + 4 + 8);

interface Candidate { rank: number; score: number; draft: FindingDraft; kind: number; id: number }

// Words of a flow-sharded worker's record of a settled attempt or probe (ReplayLog; see PortScanPart).
const R_VERSION = 0;
/** Source and destination, four address words each (IPv4: the first). */
const R_SRC = 1;
const R_DST = 5;
const R_PORT = 9;
/** F_* bits, and the probe kind (K_*) from bit 2. */
const R_FLAGS = 10;
/** Its place among its packet's records (P_*), then the packet order of its SYN or first datagram (two words). */
const R_PHASE = 11;
const R_KEY_HI = 12;
const R_KEY_LO = 13;
const R_WORDS = 14;
/** Bytes of a record: its words, order and time. */
const R_BYTES = R_WORDS * 4 + 16;
const F_FAILED = 1;
/** An unanswered UDP flow: a failed probe unless an ICMP port unreachable already counted it (checked at replay). */
const F_UDP = 2;
// Where in one pipeline's processing of a packet a record comes (pipeline.ts: flows end idle, then attempts
// whose deadline the packet passed settle in SYN order, then the packet's own events). The packet's own
// attempt outcome comes after the deadlines it passed (its SYN is the latest of them), so both are P_ATTEMPT by SYN order.
const P_FLOW_END = 0;
const P_ATTEMPT = 1;
const P_PACKET = 2;
const TWO_32 = 4294967296;

/**
 * A flow-sharded worker's part of a window (windowPart): its window counts
 * (added up, but for suppressed, which the coordinator counts, and
 * udpUnanswered: here the UDP waits it logged, which the coordinator's
 * replay checks against ICMP-answered probes) and the attempts and probes
 * it settled, for the coordinator to replay in input order.
 */
interface PortScanPart { counts: WindowCounts; events: ReplayLogPart }

/** Replay order of two records of the same packet: by phase, then by the order of their SYN or first datagram. */
function recordTie(a: ReplayLogPart, ra: number, b: ReplayLogPart, rb: number): number {
  const x = a.ints;
  const y = b.ints;
  const i = ra * R_WORDS;
  const j = rb * R_WORDS;
  return x[i + R_PHASE]! - y[j + R_PHASE]! || x[i + R_KEY_HI]! - y[j + R_KEY_HI]! || (x[i + R_KEY_LO]! >>> 0) - (y[j + R_KEY_LO]! >>> 0);
}

export function createPortScanAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new PortScanAnalyzer(ctx);
}

class PortScanAnalyzer implements Analyzer {
  readonly id = 'port_scan';
  /** Read on use, so SIGHUP's new thresholds apply at once (the bucket width and suppressFor are fixed at start). */
  private get cfg(): AnalyzerContext['config']['analyzers']['port_scan'] { return this.ctx.config.analyzers.port_scan; }
  private readonly includeLoopback: boolean;

  // Sources, by id in `sources`.
  private readonly sources: HostTable;
  /** 1 while the id holds a source's state (0: never, dropped idle, or evicted). */
  private readonly sActive: Uint8Array;
  /** New attempts since the last judgement. */
  private readonly sDirty: Uint8Array;
  /** Start of the current activity (reset after a look-back of silence), and the latest attempt. */
  private readonly sFirst: Float64Array;
  private readonly sLast: Float64Array;
  /** Time a probe was last dropped for the cap (-Infinity: never). */
  private readonly sCappedAt: Float64Array;
  private readonly sPrunedAt: Float64Array;
  /** Remembered (host, port) pairs. */
  private readonly sPairs: Int32Array;
  /** The source's probed hosts (ids in `probedHosts`), first probed first. */
  private readonly sHostHead: Int32Array;
  private readonly sHostTail: Int32Array;
  /** Attempts and failed probes per source over the look-back. */
  private readonly sCounts: BucketReducer;
  /** Failed probes per kind (K_*) over the source's current activity: KINDS per source. */
  private readonly sKinds: Int32Array;

  // Targets, by id in `targets`.
  private readonly targets: HostTable;
  private readonly tActive: Uint8Array;
  private readonly tDirty: Uint8Array;
  private readonly tFirst: Float64Array;
  private readonly tLast: Float64Array;
  private readonly tCappedAt: Float64Array;
  private readonly tPrunedAt: Float64Array;
  /** Remembered failed ports (ids in `targetPorts`), and the head of their list. */
  private readonly tPorts: Int32Array;
  private readonly tPortHead: Int32Array;
  private readonly tCounts: BucketReducer;

  /** (source id, target id): a host the source failed on. */
  private readonly probedHosts: KeyTable;
  /** Target generation when the entry was made: another host holds the id when it differs. */
  private readonly hGen: Uint32Array;
  private readonly hPortCount: Int32Array;
  private readonly hPortHead: Int32Array;
  /** The source's list of probed hosts. */
  private readonly hPrev: Int32Array;
  private readonly hNext: Int32Array;

  /** (probed host id, port): a failed probe, with the time of the latest. */
  private readonly probes: KeyTable;
  private readonly pTime: Float64Array;
  private readonly pPrev: Int32Array;
  private readonly pNext: Int32Array;

  /** (target id, port): a failed port of a target, with the latest probe's time and source. */
  private readonly targetPorts: KeyTable;
  private readonly tpTime: Float64Array;
  private readonly tpSource: Int32Array;
  private readonly tpSourceGen: Uint32Array;
  private readonly tpPrev: Int32Array;
  private readonly tpNext: Int32Array;

  private readonly suppressor: SuppressionTable;
  /** Rebuilt when a reload replaced the config section. */
  private readonly allow = new ConfiguredAllowList(() => this.cfg, 'analyzers.port_scan');
  /** Per flow slot, S_*. */
  private readonly slotState: Uint8Array;
  /** UDP flows waiting for an answer, oldest first: a ring of (slot, the clock at its first datagram). */
  private readonly udpSlot: Int32Array;
  private readonly udpStart: Float64Array;
  /** Per flow slot: the clock at the first datagram of its UDP wait (tells a reused slot's ring entry apart). */
  private readonly udpSince: Float64Array;
  private udpHead = 0;
  private udpCount = 0;

  // Judge scratch (reset after each use): hosts per port of one source, ports per source of one target.
  private readonly hostsPerPort = new Int32Array(65536);
  private readonly portList = new Int32Array(Math.min(65536, MAX_PAIRS_PER_SOURCE));
  private readonly portsPerSource: Int32Array;
  private readonly sourceList = new Int32Array(MAX_PORTS_PER_TARGET);
  // Per-event scratch: a flow's client and server address words.
  private readonly clientWords = new Uint32Array(4);
  private readonly serverWords = new Uint32Array(4);

  private trackedSources = 0;
  private trackedTargets = 0;
  /** Remembered probes (source pairs + target ports). */
  private remembered = 0;
  /** State dropped for the caps (hosts or probes evicted from a full table), since the start. */
  private evicted = 0;
  private evictedBefore = 0;
  private w = emptyWindow();

  // Flow-sharded analysis (ctx.shardRole): a worker logs what it settles and keeps no detection state; the coordinator replays it.
  private readonly log: ReplayLog | null;
  /** A worker: per flow slot, the packet order of its SYN or first UDP datagram (orders records of one packet). */
  private readonly startOrder: Float64Array;
  /** A worker: per flow slot waiting for a UDP answer, the packet order of its latest datagram (the flow table's idle order). */
  private readonly udpLastOrder: Float64Array;
  private part: PortScanPart | undefined;
  /** The coordinator: UDP waits replayed in the current merge. */
  private udpReplayed = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    const cfg = this.cfg;
    this.includeLoopback = ctx.config.networks.includeLoopback;
    const worker = ctx.shardRole === 'worker';
    // Sized from the detector's part of the budget, which a worker's (empty) detection tables leave unused.
    this.log = worker ? new ReplayLog({ width: R_WORDS, maxRecords: ctx.memory.keys('port_scan.log', R_BYTES, Infinity, LOG_SHARE) }) : null;
    this.startOrder = new Float64Array(worker ? ctx.flows.capacity : 0);
    this.udpLastOrder = new Float64Array(worker ? ctx.flows.capacity : 0);
    const maxKeys = Math.max(1, cfg.maxKeys);
    // A worker's detection tables stay empty (the coordinator replays its records): it takes no memory for them.
    const nSources = worker ? 1 : ctx.memory.keys('port_scan.sources', SOURCE_BYTES, maxKeys, 0.25);
    const nTargets = worker ? 1 : ctx.memory.keys('port_scan.targets', TARGET_BYTES, maxKeys, 0.25);
    const nProbes = worker ? 1 : ctx.memory.keys('port_scan.probes', PROBE_BYTES, MAX_REMEMBERED, 0.5);

    this.sources = new HostTable(nSources, ctx.networks, this.includeLoopback);
    this.sActive = new Uint8Array(nSources);
    this.sDirty = new Uint8Array(nSources);
    this.sFirst = new Float64Array(nSources);
    this.sLast = new Float64Array(nSources);
    this.sCappedAt = new Float64Array(nSources);
    this.sPrunedAt = new Float64Array(nSources);
    this.sPairs = new Int32Array(nSources);
    this.sHostHead = new Int32Array(nSources).fill(NIL);
    this.sHostTail = new Int32Array(nSources).fill(NIL);
    // BucketReducer needs a positive look-back: a (degenerate) 0 becomes a microsecond.
    const lookback = Math.max(cfg.lookback, MIN_LOOKBACK);
    this.sCounts = new BucketReducer(nSources, lookback, BUCKETS, 2);
    this.sKinds = new Int32Array(nSources * KINDS);
    this.portsPerSource = new Int32Array(nSources);

    this.targets = new HostTable(nTargets, ctx.networks, this.includeLoopback);
    this.tActive = new Uint8Array(nTargets);
    this.tDirty = new Uint8Array(nTargets);
    this.tFirst = new Float64Array(nTargets);
    this.tLast = new Float64Array(nTargets);
    this.tCappedAt = new Float64Array(nTargets);
    this.tPrunedAt = new Float64Array(nTargets);
    this.tPorts = new Int32Array(nTargets);
    this.tPortHead = new Int32Array(nTargets).fill(NIL);
    this.tCounts = new BucketReducer(nTargets, lookback, BUCKETS, 2);

    // A probed host has at least one probe, so it never needs more room than the probes.
    this.probedHosts = new KeyTable(nProbes, 2);
    this.hGen = new Uint32Array(nProbes);
    this.hPortCount = new Int32Array(nProbes);
    this.hPortHead = new Int32Array(nProbes);
    this.hPrev = new Int32Array(nProbes);
    this.hNext = new Int32Array(nProbes);

    this.probes = new KeyTable(nProbes, 2);
    this.pTime = new Float64Array(nProbes);
    this.pPrev = new Int32Array(nProbes);
    this.pNext = new Int32Array(nProbes);

    this.targetPorts = new KeyTable(nProbes, 2);
    this.tpTime = new Float64Array(nProbes);
    this.tpSource = new Int32Array(nProbes);
    this.tpSourceGen = new Uint32Array(nProbes);
    this.tpPrev = new Int32Array(nProbes);
    this.tpNext = new Int32Array(nProbes);

    // Two keys per source (scan, small scan) and one per target.
    this.suppressor = new SuppressionTable(cfg.suppressFor, 2 * nSources + nTargets, 3);
    this.slotState = new Uint8Array(ctx.flows.capacity);
    // A slot waits at most once at a time; a full ring settles its oldest early.
    const nPending = ctx.memory.keys('port_scan.udpPending', UDP_PENDING_BYTES, ctx.flows.capacity, 0.05);
    this.udpSlot = new Int32Array(Math.max(1, nPending));
    this.udpStart = new Float64Array(Math.max(1, nPending));
    this.udpSince = new Float64Array(ctx.flows.capacity);
  }

  /** Traffic an operator vouched for: from or to an allowed host, or to an allowed port. Once per settled attempt or probe. */
  private allowed(version: number, src: ArrayLike<number>, dst: ArrayLike<number>, port: number): boolean {
    return this.allow.get().covers(version, src, dst, port);
  }

  onFlowStart(slot: number): void { this.slotState[slot] = S_NEW; }

  /**
   * A UDP flow's first datagram, from its client, starts the wait for an answer, and its next one
   * UDP_ANSWER_TIMEOUT later ends it; other datagrams cost a compare.
   */
  onUdpDatagram(v: PacketView, slot: number, dir: number): void {
    const state = this.slotState[slot];
    if (state === S_UDP_WAIT) {
      if (this.log !== null) this.udpLastOrder[slot] = this.ctx.packetOrder;
      if (this.udpSince[slot]! <= this.ctx.clock.now - UDP_ANSWER_TIMEOUT) this.settleUdp(slot, P_PACKET);
      return;
    }
    if (state !== S_NEW) return;
    this.slotState[slot] = S_DONE;
    if (dir !== Dir.CLIENT_TO_SERVER || isSpecialAddress(v.ipVersion, v.dst)) return;
    const sp = v.srcPort;
    const dp = v.dstPort;
    if (udpNeverProbe(sp, dp)) return;
    if (this.udpCount === this.udpSlot.length) this.settleOldestUdp();
    const i = (this.udpHead + this.udpCount) % this.udpSlot.length;
    // The clock, not the datagram's own time: it never goes back, so the ring stays in deadline order.
    const now = this.ctx.clock.now;
    this.udpSlot[i] = slot;
    this.udpStart[i] = now;
    this.udpCount++;
    this.udpSince[slot] = now;
    if (this.log !== null) this.startOrder[slot] = this.udpLastOrder[slot] = this.ctx.packetOrder;
    this.slotState[slot] = S_UDP_WAIT;
  }

  onFlowEnd(slot: number): void {
    if (this.slotState[slot] === S_UDP_WAIT) this.settleUdp(slot, P_FLOW_END);
  }

  /** End of input: a datagram still unanswered is settled as the TCP tracker settles a SYN then. */
  finish(): void {
    while (this.udpCount > 0) this.settleOldestUdp();
  }

  private settleUdpBefore(deadline: number): void {
    while (this.udpCount > 0 && this.udpStart[this.udpHead]! <= deadline) this.settleOldestUdp();
  }

  private settleOldestUdp(): void {
    const slot = this.udpSlot[this.udpHead]!;
    const start = this.udpStart[this.udpHead]!;
    this.udpHead = (this.udpHead + 1) % this.udpSlot.length;
    this.udpCount--;
    // The wait ended already (its own datagram, the flow's end), and the slot may hold another flow's since.
    if (this.slotState[slot] === S_UDP_WAIT && this.udpSince[slot] === start) this.settleUdp(slot, P_PACKET);
  }

  /**
   * A UDP flow's wait is over: unanswered (no datagram back, a few from the client) it is a failed probe,
   * unless an ICMP port unreachable already counted it. `phase`: where it comes among its packet's records (P_*).
   */
  private settleUdp(slot: number, phase: number): void {
    this.slotState[slot] = S_DONE;
    const flows = this.ctx.flows;
    if (flows.packets[slot * 2 + Dir.SERVER_TO_CLIENT]! > 0 || flows.packets[slot * 2 + Dir.CLIENT_TO_SERVER]! > UDP_PROBE_MAX_DATAGRAMS) return;
    const version = flows.version[slot]!;
    const c = this.clientWords;
    const s = this.serverWords;
    flows.copyEndpoints(slot, c, s);
    if (!this.includeLoopback && (isLoopback(version, c) || isLoopback(version, s))) return;
    const port = flows.serverPort(slot);
    const start = flows.firstTs[slot]!;
    if (this.allowed(version, c, s, port)) { this.w.allowed++; return; }
    if (this.log !== null) {
      // Flows ending idle at one packet end least recently active first; other waits end in the order they started.
      const key = phase === P_FLOW_END ? this.udpLastOrder[slot]! : this.startOrder[slot]!;
      this.logRecord(version, c, s, port, F_FAILED | F_UDP | (K_UDP << 2), start, phase, key);
      this.w.udpUnanswered++;
      return;
    }
    this.udpProbe(version, c, s, port, start);
  }

  /** An unanswered UDP flow's datagram at `start`: a failed probe unless an ICMP port unreachable already counted it. */
  private udpProbe(version: number, c: ArrayLike<number>, s: ArrayLike<number>, port: number, start: number): void {
    if (this.failedSince(version, c, s, port, start)) return;
    this.w.udpUnanswered++;
    this.note(version, c, s, port, true, start, K_UDP);
  }

  /** True when `src` has a failed probe of `dst`:`port` noted at or after `since` (an ICMP-answered datagram). */
  private failedSince(version: number, src: ArrayLike<number>, dst: ArrayLike<number>, port: number, since: number): boolean {
    const s = this.sources.find(version, src);
    if (s < 0 || this.sActive[s] === 0) return false;
    const t = this.targets.find(version, dst);
    if (t < 0 || this.tActive[t] === 0) return false;
    const hosts = this.probedHosts;
    hosts.key[0] = s;
    hosts.key[1] = t;
    const h = hosts.find();
    if (h < 0 || this.hGen[h] !== this.targets.generation[t]) return false;
    const probes = this.probes;
    probes.key[0] = h;
    probes.key[1] = port;
    const p = probes.find();
    return p >= 0 && this.pTime[p]! >= since;
  }

  /**
   * Reads a flow's first segments only: the first one tells a stealth probe
   * (bare FIN, NULL, Xmas, FIN+ACK, ACK) or a SYN; after that a single compare.
   */
  onTcpSegment(v: PacketView, slot: number, dir: number): void {
    const state = this.slotState[slot]!;
    if (state < S_NEW) return;
    const tf = v.tcpFlags;
    if (state === S_NEW) { this.firstSegment(v, slot, dir, tf); return; }
    if (state === S_SYN_SENT) {
      if (dir !== Dir.CLIENT_TO_SERVER) this.slotState[slot] = S_DONE;
      // The client only ACKs a SYN/ACK it got: the server answered where the capture did not see it.
      else if ((tf & (SYN | ACK | RST)) === ACK) this.slotState[slot] = S_HANDSHAKE_UNSEEN;
      return;
    }
    // Waiting for the answer to a bare ACK or FIN+ACK sent in direction state & 1.
    if (dir === (state & 1)) {
      // The same bare segment again is a retransmitted probe; anything else continues a conversation.
      const shape = state >= S_WAIT_MAIMON ? (FIN | ACK) : ACK;
      if ((tf & SHAPE) !== shape || v.payloadLen > 0) this.slotState[slot] = S_DONE;
      return;
    }
    this.slotState[slot] = S_DONE;
    // Only a bare RST answers a probe: data, an ACK or a FIN means a connection the capture joined late.
    if ((tf & RST) === 0 || v.payloadLen > 0) return;
    this.stealthProbe(v.ipVersion, v.dst, v.src, v.srcPort, state >= S_WAIT_MAIMON ? K_MAIMON : K_ACK);
  }

  private firstSegment(v: PacketView, slot: number, dir: number, tf: number): void {
    if ((tf & (SYN | ACK | RST)) === SYN) { this.slotState[slot] = dir === Dir.CLIENT_TO_SERVER ? S_SYN_SENT : S_DONE; return; }
    this.slotState[slot] = S_DONE;
    if ((tf & (SYN | RST)) !== 0 || v.payloadLen > 0) return;
    const shape = tf & SHAPE;
    // No stack sends a segment without ACK outside the handshake: FIN, NULL and Xmas are probes as they stand.
    if (shape === 0) { this.stealthProbe(v.ipVersion, v.src, v.dst, v.dstPort, K_NULL); return; }
    if (shape === FIN) { this.stealthProbe(v.ipVersion, v.src, v.dst, v.dstPort, K_FIN); return; }
    if (shape === (FIN | PSH | URG)) { this.stealthProbe(v.ipVersion, v.src, v.dst, v.dstPort, K_XMAS); return; }
    if (shape !== ACK && shape !== (FIN | ACK)) return;
    // A bare ACK or FIN+ACK is what a connection whose start the capture missed sends too: a service
    // port's segment to a client port is such a connection's server, never a probe.
    const sp = v.srcPort;
    const dp = v.dstPort;
    if (replyShaped(sp, dp)) return;
    this.slotState[slot] = (shape === ACK ? S_WAIT_ACK : S_WAIT_MAIMON) + dir;
  }

  /** A stealth probe from `src` to `dst`:`port`, a failed attempt of its kind. */
  private stealthProbe(version: number, src: ArrayLike<number>, dst: ArrayLike<number>, port: number, kind: number): void {
    if (!this.includeLoopback && (isLoopback(version, src) || isLoopback(version, dst))) return;
    const w = this.w;
    if (this.allowed(version, src, dst, port)) { w.allowed++; return; }
    w.stealth[kind - K_FIN]++;
    this.settled(version, src, dst, port, true, this.ctx.clock.now, kind, P_PACKET, 0);
  }

  onConnectionAttempt(slot: number, event: AttemptEventCode, at: number): void {
    if (event === AttemptEvent.ANSWERED || event === AttemptEvent.RESET || event === AttemptEvent.CLOSED) return;
    if (event === AttemptEvent.STARTED && this.log !== null) this.startOrder[slot] = this.ctx.packetOrder;
    const flows = this.ctx.flows;
    const version = flows.version[slot]!;
    const c = this.clientWords;
    const s = this.serverWords;
    flows.copyEndpoints(slot, c, s);
    if (!this.includeLoopback && (isLoopback(version, c) || isLoopback(version, s))) return;
    const w = this.w;
    const port = flows.serverPort(slot);
    if (this.allowed(version, c, s, port)) { if (event !== AttemptEvent.STARTED) w.allowed++; return; }
    let failed = true;
    switch (event) {
      case AttemptEvent.STARTED: w.attempts++; return;
      case AttemptEvent.COMPLETED: w.completed++; failed = false; break;
      case AttemptEvent.REFUSED: w.refused++; break;
      case AttemptEvent.ABANDONED: w.abandoned++; break;
      default:
        w.unanswered++;
        // The client went on as after a handshake: a connection seen from one side, not a probe.
        if (this.slotState[slot] === S_HANDSHAKE_UNSEEN) { w.handshakeUnseen++; failed = false; }
        break;
    }
    this.settled(version, c, s, port, failed, at, K_SYN, P_ATTEMPT, this.log !== null ? this.startOrder[slot]! : 0);
  }

  onIcmpMessage(v: PacketView): void {
    const portUnreachable = v.transport === Transport.ICMPV6 ? v.icmpType === 1 && v.icmpCode === 4 : v.icmpType === 3 && v.icmpCode === 3;
    if (!portUnreachable || v.innerIpVersion === 0 || v.innerProto !== 17) return;
    const sp = v.innerSrcPort;
    const dp = v.innerDstPort;
    if (udpNeverProbe(sp, dp)) return;
    const version = v.innerIpVersion;
    if (!this.includeLoopback && (isLoopback(version, v.innerSrc) || isLoopback(version, v.innerDst))) return;
    if (this.allowed(version, v.innerSrc, v.innerDst, dp)) { this.w.allowed++; return; }
    this.w.udpUnreachable++;
    this.settled(version, v.innerSrc, v.innerDst, dp, true, this.ctx.clock.now, K_UDP, P_PACKET, 0);
  }

  /**
   * A settled attempt or probe: noted here (one pipeline), or logged for the coordinator's replay (a worker),
   * `phase` and `key` placing it among its packet's records.
   */
  private settled(version: number, src: ArrayLike<number>, dst: ArrayLike<number>, port: number, failed: boolean, at: number, kind: number, phase: number, key: number): void {
    if (this.log === null) this.note(version, src, dst, port, failed, at, kind);
    else this.logRecord(version, src, dst, port, (failed ? F_FAILED : 0) | (kind << 2), at, phase, key);
  }

  private logRecord(version: number, src: ArrayLike<number>, dst: ArrayLike<number>, port: number, flags: number, at: number, phase: number, key: number): void {
    const log = this.log!;
    const r = log.add(this.ctx.packetOrder, at);
    const q = log.ints;
    q[r + R_VERSION] = version;
    for (let i = 0; i < 4; i++) {
      q[r + R_SRC + i] = src[i] ?? 0;
      q[r + R_DST + i] = dst[i] ?? 0;
    }
    q[r + R_PORT] = port;
    q[r + R_FLAGS] = flags;
    q[r + R_PHASE] = phase;
    q[r + R_KEY_HI] = Math.floor(key / TWO_32);
    q[r + R_KEY_LO] = key % TWO_32; // wraps to Int32; compared unsigned
  }

  /** The coordinator: record `i` of a worker's log, noted as the worker would have in one pipeline. */
  private replay(log: ReplayLogPart, i: number): void {
    const q = log.ints;
    const r = i * R_WORDS;
    // Uint32 scratch: the words as the flow table gives them.
    const src = this.clientWords;
    const dst = this.serverWords;
    for (let k = 0; k < 4; k++) {
      src[k] = q[r + R_SRC + k]!;
      dst[k] = q[r + R_DST + k]!;
    }
    const version = q[r + R_VERSION]!;
    const port = q[r + R_PORT]!;
    const flags = q[r + R_FLAGS]!;
    const at = log.times[2 * i + 1]!;
    if ((flags & F_UDP) !== 0) {
      this.udpReplayed++;
      this.udpProbe(version, src, dst, port, at);
    } else {
      this.note(version, src, dst, port, (flags & F_FAILED) !== 0, at, flags >> 2);
    }
  }

  /** One settled attempt (or UDP probe) from `src` to `dst`:`port`. */
  private note(version: number, src: ArrayLike<number>, dst: ArrayLike<number>, port: number, failed: boolean, now: number, kind: number): void {
    const lookback = this.cfg.lookback;
    const s = this.source(version, src, now);
    if (this.sLast[s]! < now - lookback) { this.sFirst[s] = now; this.sKinds.fill(0, s * KINDS, s * KINDS + KINDS); }
    if (now > this.sLast[s]!) this.sLast[s] = now;
    this.sDirty[s] = 1;
    countAt(this.sCounts, s, now, ATTEMPTS);
    let t: number;
    if (failed) {
      t = this.target(version, dst, now);
    } else {
      // A completed attempt counts for a target only once it has failed probes (and does not refresh it).
      t = this.targets.find(version, dst);
      if (t >= 0 && this.tActive[t] === 0) t = -1;
    }
    if (t >= 0) {
      if (this.tLast[t]! < now - lookback) this.tFirst[t] = now;
      if (now > this.tLast[t]!) this.tLast[t] = now;
      countAt(this.tCounts, t, now, ATTEMPTS);
    }
    if (!failed) return;
    this.sKinds[s * KINDS + kind]++;
    countAt(this.sCounts, s, now, FAILED);
    this.addPair(s, t, port, now);
    this.tDirty[t] = 1;
    countAt(this.tCounts, t, now, FAILED);
    this.addTargetPort(t, port, s, now);
  }

  /** The source's id, its state started if new; an active source that lost its id to it is evicted. */
  private source(version: number, words: ArrayLike<number>, now: number): number {
    const id = this.sources.intern(version, words);
    if (this.sActive[id] === 1) {
      if (!this.sources.inserted) return id;
      this.dropSource(id);
      this.evicted++;
    }
    this.sActive[id] = 1;
    this.trackedSources++;
    this.sDirty[id] = 0;
    this.sFirst[id] = now;
    this.sLast[id] = now;
    this.sCappedAt[id] = -Infinity;
    this.sPrunedAt[id] = now;
    this.sPairs[id] = 0;
    this.sHostHead[id] = NIL;
    this.sHostTail[id] = NIL;
    this.sCounts.clear(id);
    this.sKinds.fill(0, id * KINDS, id * KINDS + KINDS);
    return id;
  }

  private target(version: number, words: ArrayLike<number>, now: number): number {
    const id = this.targets.intern(version, words);
    if (this.tActive[id] === 1) {
      if (!this.targets.inserted) return id;
      this.dropTarget(id);
      this.evicted++;
    }
    this.tActive[id] = 1;
    this.trackedTargets++;
    this.tDirty[id] = 0;
    this.tFirst[id] = now;
    this.tLast[id] = now;
    this.tCappedAt[id] = -Infinity;
    this.tPrunedAt[id] = now;
    this.tPorts[id] = 0;
    this.tPortHead[id] = NIL;
    this.tCounts.clear(id);
    return id;
  }

  /** Forgets a source's state and probes. */
  private dropSource(s: number): void {
    for (let h = this.sHostHead[s]!; h !== NIL;) {
      const next = this.hNext[h]!;
      this.removeProbedHost(s, h);
      h = next;
    }
    this.sActive[s] = 0;
    this.trackedSources--;
    this.sCounts.clear(s);
  }

  private dropTarget(t: number): void {
    for (let e = this.tPortHead[t]!; e !== NIL;) {
      const next = this.tpNext[e]!;
      this.targetPorts.remove(e);
      e = next;
    }
    this.remembered -= this.tPorts[t]!;
    this.tPorts[t] = 0;
    this.tPortHead[t] = NIL;
    this.tActive[t] = 0;
    this.trackedTargets--;
    this.tCounts.clear(t);
  }

  private addPair(s: number, t: number, port: number, now: number): void {
    const hosts = this.probedHosts;
    const gen = this.targets.generation[t]!;
    hosts.key[0] = s;
    hosts.key[1] = t;
    let h = hosts.find();
    // The entry names an earlier host that had this target id.
    if (h >= 0 && this.hGen[h] !== gen) { this.removeProbedHost(s, h); h = -1; }
    const probes = this.probes;
    if (h >= 0) {
      probes.key[0] = h;
      probes.key[1] = port;
      const p = probes.find();
      if (p >= 0) { this.pTime[p] = now; probes.touch(p); return; }
    }
    if (this.sPairs[s]! >= MAX_PAIRS_PER_SOURCE) {
      if (now - this.sPrunedAt[s]! >= this.cfg.lookback / 6) this.pruneSource(s, now - this.cfg.lookback, now);
      if (this.sPairs[s]! >= MAX_PAIRS_PER_SOURCE) { this.sCappedAt[s] = now; return; }
    }
    if (probes.size === probes.capacity) this.evictProbe();
    // The prune or the eviction may have removed the host.
    hosts.key[0] = s;
    hosts.key[1] = t;
    h = hosts.find();
    if (h < 0) {
      h = hosts.findOrInsert();
      this.hGen[h] = gen;
      this.hPortCount[h] = 0;
      this.hPortHead[h] = NIL;
      const tail = this.sHostTail[s]!;
      this.hPrev[h] = tail;
      this.hNext[h] = NIL;
      if (tail === NIL) this.sHostHead[s] = h; else this.hNext[tail] = h;
      this.sHostTail[s] = h;
    }
    probes.key[0] = h;
    probes.key[1] = port;
    const p = probes.findOrInsert();
    this.pTime[p] = now;
    const head = this.hPortHead[h]!;
    this.pPrev[p] = NIL;
    this.pNext[p] = head;
    if (head !== NIL) this.pPrev[head] = p;
    this.hPortHead[h] = p;
    this.hPortCount[h]++;
    this.sPairs[s]++;
    this.remembered++;
  }

  private addTargetPort(t: number, port: number, s: number, now: number): void {
    const table = this.targetPorts;
    table.key[0] = t;
    table.key[1] = port;
    let e = table.find();
    if (e >= 0) {
      this.tpTime[e] = now;
      this.tpSource[e] = s;
      this.tpSourceGen[e] = this.sources.generation[s]!;
      table.touch(e);
      return;
    }
    if (this.tPorts[t]! >= MAX_PORTS_PER_TARGET) {
      if (now - this.tPrunedAt[t]! >= this.cfg.lookback / 6) this.pruneTarget(t, now - this.cfg.lookback, now);
      if (this.tPorts[t]! >= MAX_PORTS_PER_TARGET) { this.tCappedAt[t] = now; return; }
    }
    if (table.size === table.capacity) this.evictTargetPort();
    table.key[0] = t;
    table.key[1] = port;
    e = table.findOrInsert();
    this.tpTime[e] = now;
    this.tpSource[e] = s;
    this.tpSourceGen[e] = this.sources.generation[s]!;
    const head = this.tPortHead[t]!;
    this.tpPrev[e] = NIL;
    this.tpNext[e] = head;
    if (head !== NIL) this.tpPrev[head] = e;
    this.tPortHead[t] = e;
    this.tPorts[t]++;
    this.remembered++;
  }

  /** Removes probe `p` of probed host `h` (of source `s`), and the host once it has none left. */
  private removeProbe(s: number, h: number, p: number): void {
    const prev = this.pPrev[p]!;
    const next = this.pNext[p]!;
    if (prev === NIL) this.hPortHead[h] = next; else this.pNext[prev] = next;
    if (next !== NIL) this.pPrev[next] = prev;
    this.probes.remove(p);
    this.sPairs[s]--;
    this.remembered--;
    if (--this.hPortCount[h]! === 0) this.unlinkProbedHost(s, h);
  }

  /** Removes a probed host with all its probes. */
  private removeProbedHost(s: number, h: number): void {
    for (let p = this.hPortHead[h]!; p !== NIL;) {
      const next = this.pNext[p]!;
      this.probes.remove(p);
      p = next;
    }
    const n = this.hPortCount[h]!;
    this.sPairs[s] -= n;
    this.remembered -= n;
    this.unlinkProbedHost(s, h);
  }

  private unlinkProbedHost(s: number, h: number): void {
    const prev = this.hPrev[h]!;
    const next = this.hNext[h]!;
    if (prev === NIL) this.sHostHead[s] = next; else this.hNext[prev] = next;
    if (next === NIL) this.sHostTail[s] = prev; else this.hPrev[next] = prev;
    this.probedHosts.remove(h);
  }

  private removeTargetPort(t: number, e: number): void {
    const prev = this.tpPrev[e]!;
    const next = this.tpNext[e]!;
    if (prev === NIL) this.tPortHead[t] = next; else this.tpNext[prev] = next;
    if (next !== NIL) this.tpPrev[next] = prev;
    this.targetPorts.remove(e);
    this.tPorts[t]--;
    this.remembered--;
  }

  /** The probe table is full: its least recently probed entry goes. */
  private evictProbe(): void {
    const p = this.probes.oldest();
    const h = this.probes.keyWord(p, 0);
    this.removeProbe(this.probedHosts.keyWord(h, 0), h, p);
    this.evicted++;
  }

  private evictTargetPort(): void {
    const e = this.targetPorts.oldest();
    this.removeTargetPort(this.targetPorts.keyWord(e, 0), e);
    this.evicted++;
  }

  /** Drops the source's probes older than `cutoff`, and those on a host whose target id went to another host. */
  private pruneSource(s: number, cutoff: number, now: number): void {
    this.sPrunedAt[s] = now;
    const generation = this.targets.generation;
    for (let h = this.sHostHead[s]!; h !== NIL;) {
      const nextHost = this.hNext[h]!;
      if (this.hGen[h] !== generation[this.probedHosts.keyWord(h, 1)]) {
        this.removeProbedHost(s, h);
      } else {
        for (let p = this.hPortHead[h]!; p !== NIL;) {
          const next = this.pNext[p]!;
          if (this.pTime[p]! < cutoff) this.removeProbe(s, h, p); // may remove h with its last probe
          p = next;
        }
      }
      h = nextHost;
    }
  }

  /** Drops the target's ports last probed before `cutoff`, and those whose source id went to another host. */
  private pruneTarget(t: number, cutoff: number, now: number): void {
    this.tPrunedAt[t] = now;
    const generation = this.sources.generation;
    for (let e = this.tPortHead[t]!; e !== NIL;) {
      const next = this.tpNext[e]!;
      if (this.tpTime[e]! < cutoff || this.tpSourceGen[e] !== generation[this.tpSource[e]!]) this.removeTargetPort(t, e);
      e = next;
    }
  }

  closeWindow(span: WindowSpan): Metrics {
    this.settleUdpBefore(span.relEnd - UDP_ANSWER_TIMEOUT);
    // A worker's records go to the coordinator; its detection state stays empty, so it judges (and reports) nothing below.
    if (this.log !== null) this.part = { counts: this.w, events: this.log.take() };
    return this.judge(span);
  }

  windowPart(): unknown {
    const part = this.part;
    this.part = undefined;
    return part;
  }

  /** The coordinator: every worker's records of the window replayed in input order, then judged as one pipeline's window. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly PortScanPart[];
    const logs = parts.map((p) => p.events);
    replayInOrder(logs, (worker, record) => { this.replay(logs[worker]!, record); }, (wa, ra, wb, rb) => recordTie(logs[wa]!, ra, logs[wb]!, rb));
    // The workers' counts add up; suppressed is the coordinator's (when judging). udpUnanswered: the replay
    // counted the logged UDP waits, checked against ICMP-answered probes; those a full log dropped are counted
    // unanswered unchecked (the workers' logged waits less the replayed ones).
    const w = this.w;
    w.udpUnanswered -= this.udpReplayed;
    this.udpReplayed = 0;
    for (const { counts: c } of parts) {
      w.udpUnanswered += c.udpUnanswered;
      w.attempts += c.attempts;
      w.completed += c.completed;
      w.refused += c.refused;
      w.abandoned += c.abandoned;
      w.unanswered += c.unanswered;
      w.udpUnreachable += c.udpUnreachable;
      w.handshakeUnseen += c.handshakeUnseen;
      w.allowed += c.allowed;
      for (let k = 0; k < w.stealth.length; k++) w.stealth[k]! += c.stealth[k]!;
    }
    return endReplay(logs, this.judge(input.span));
  }

  /** Judges the sources and targets with new attempts at the close of window `span`: its metrics. */
  private judge(span: WindowSpan): Metrics {
    const now = span.relEnd;
    // Attempts due before the window's end were settled by the pipeline. Bucket sums are read just
    // inside the window, so the look-back is the `lookback` seconds ending at its end.
    const at = Math.max(span.relStart, now - SUM_EPSILON);
    const cfg = this.cfg;
    const cutoff = now - cfg.lookback;
    const candidates: Candidate[] = [];
    const minPairs = Math.max(1, Math.min(cfg.minPorts, cfg.minHosts, cfg.minPortsSmall));
    const sb = this.sCounts.bucketOf(at) + 1;
    for (let s = 0; s < this.sActive.length; s++) {
      if (this.sActive[s] === 0) continue;
      if (this.sLast[s]! < cutoff) { this.dropSource(s); continue; }
      if (this.sDirty[s] === 0) continue;
      this.sDirty[s] = 0;
      if (this.sPairs[s]! < minPairs) continue;
      this.pruneSource(s, cutoff, now);
      const c = this.judgeSource(s, now, sb);
      if (c !== null) candidates.push(c);
    }
    const tb = this.tCounts.bucketOf(at) + 1;
    for (let t = 0; t < this.tActive.length; t++) {
      if (this.tActive[t] === 0) continue;
      if (this.tLast[t]! < cutoff) { this.dropTarget(t); continue; }
      if (this.tDirty[t] === 0) continue;
      this.tDirty[t] = 0;
      if (this.tPorts[t]! < Math.max(1, cfg.minPorts)) continue;
      this.pruneTarget(t, cutoff, now);
      const c = this.judgeTarget(t, now, tb);
      if (c !== null) candidates.push(c);
    }
    // The most severe and largest first, so the per-type cap keeps those.
    candidates.sort((a, b) => b.rank - a.rank || b.score - a.score || (a.draft.key < b.draft.key ? -1 : a.draft.key > b.draft.key ? 1 : 0));
    let reported = 0;
    const key = this.suppressor.key;
    for (const c of candidates) {
      key[0] = c.kind;
      key[1] = c.id;
      key[2] = (c.kind === TARGET ? this.targets : this.sources).generation[c.id]!;
      if (!this.suppressor.allow(now)) { this.w.suppressed++; continue; }
      this.ctx.report(c.draft);
      reported++;
    }
    const w = this.w;
    const metrics: Metrics = {
      attempts: w.attempts,
      outcomes: {
        completed: w.completed, refused: w.refused, abandoned: w.abandoned, unanswered: w.unanswered, udpUnreachable: w.udpUnreachable,
        udpUnanswered: w.udpUnanswered,
        handshakeUnseen: w.handshakeUnseen,
      },
      stealthProbes: { fin: w.stealth[0]!, null: w.stealth[1]!, xmas: w.stealth[2]!, maimon: w.stealth[3]!, ack: w.stealth[4]! },
      allowed: w.allowed,
      scanners: candidates.length,
      reported,
      suppressed: w.suppressed,
      trackedSources: this.trackedSources,
      trackedTargets: this.trackedTargets,
      maxKeys: cfg.maxKeys,
      rememberedProbes: this.remembered,
      evicted: this.evicted,
      evictedInWindow: this.evicted - this.evictedBefore,
    };
    this.evictedBefore = this.evicted;
    this.w = emptyWindow();
    return metrics;
  }

  /** `b`: the bucket boundary closing the look-back. O(the source's probes). */
  private judgeSource(s: number, now: number, b: number): Candidate | null {
    const cfg = this.cfg;
    const attempts = this.sCounts.sumBefore(s, ATTEMPTS, b);
    const failed = this.sCounts.sumBefore(s, FAILED, b);
    const ratio = attempts > 0 ? Math.min(1, failed / attempts) : 0;
    if (ratio < cfg.minFailureRatio) return null;
    // The first host (in first-probe order) with the most ports; hosts per port.
    let portsOnHost = 0;
    let topHost = NIL;
    let hostCount = 0;
    let portCount = 0;
    const perPort = this.hostsPerPort;
    const portList = this.portList;
    for (let h = this.sHostHead[s]!; h !== NIL; h = this.hNext[h]!) {
      hostCount++;
      if (this.hPortCount[h]! > portsOnHost) { portsOnHost = this.hPortCount[h]!; topHost = h; }
      for (let p = this.hPortHead[h]!; p !== NIL; p = this.pNext[p]!) {
        const port = this.probes.keyWord(p, 1);
        if (perPort[port]++ === 0) portList[portCount++] = port;
      }
    }
    let hostsOnPort = 0;
    let topPort = -1;
    for (let i = 0; i < portCount; i++) {
      const p = portList[i]!;
      const n = perPort[p]!;
      perPort[p] = 0;
      if (n > hostsOnPort || (n === hostsOnPort && p < topPort)) { hostsOnPort = n; topPort = p; }
    }
    const vertical = portsOnHost >= cfg.minPorts;
    const horizontal = hostsOnPort >= cfg.minHosts;
    // A handful of ports, mostly failed within the look-back (the failure ratio below): nothing a client does.
    const small = !vertical && !horizontal && cfg.minPortsSmall > 0 && portsOnHost >= cfg.minPortsSmall;
    if (!vertical && !horizontal && !small) return null;
    const kind = vertical && horizontal ? 'block' : vertical ? 'vertical' : horizontal ? 'horizontal' : 'small';
    const score = Math.max(portsOnHost / Math.max(1, cfg.minPorts), hostsOnPort / Math.max(1, cfg.minHosts));
    const rate = failed / Math.max(1, Math.min(cfg.lookback, now - this.sFirst[s]!));
    // No host at all only when minPorts is 0.
    const topTarget = topHost === NIL ? NIL : this.probedHosts.keyWord(topHost, 1);
    const sourceInternal = this.sources.isInternal(s);
    const targetInternal = topTarget !== NIL && this.targets.isInternal(topTarget);
    const severity = sourceSeverity(small, sourceInternal && targetInternal, score, rate, ratio);
    const capped = this.sCappedAt[s]! >= now - cfg.lookback;
    const atLeast = capped ? 'at least ' : '';
    const addr = this.sources.name(s);
    const topName = topTarget === NIL ? '' : this.targets.name(topTarget);
    const topPorts: number[] = [];
    if (topHost !== NIL) for (let p = this.hPortHead[topHost]!; p !== NIL; p = this.pNext[p]!) topPorts.push(this.probes.keyWord(p, 1));
    const samplePorts = topPorts.sort((x, y) => x - y).slice(0, SAMPLE).join(',');
    const onTopPort: string[] = [];
    const probes = this.probes;
    for (let h = this.sHostHead[s]!; h !== NIL; h = this.hNext[h]!) {
      probes.key[0] = h;
      probes.key[1] = topPort;
      if (probes.find() >= 0) onTopPort.push(this.targets.name(this.probedHosts.keyWord(h, 1)));
    }
    const sampleHosts = onTopPort.sort().slice(0, SAMPLE).join(',');
    const crossings: Crossing[] = [];
    if (vertical) crossings.push({ measured: 'portsOnTarget', value: portsOnHost, setting: 'minPorts', limit: cfg.minPorts });
    if (horizontal) crossings.push({ measured: 'hostsOnPort', value: hostsOnPort, setting: 'minHosts', limit: cfg.minHosts });
    if (small) crossings.push({ measured: 'portsOnTarget', value: portsOnHost, setting: 'minPortsSmall', limit: cfg.minPortsSmall });
    crossings.push({ measured: 'failureRatio', value: ratio, setting: 'minFailureRatio', limit: cfg.minFailureRatio });
    const kinds: string[] = [];
    let stealthy = false;
    for (let k = 0; k < KINDS; k++) {
      const n = this.sKinds[s * KINDS + k]!;
      if (n === 0) continue;
      kinds.push(`${KIND_NAMES[k]} ${n}`);
      if (k !== K_SYN && k !== K_UDP) stealthy = true;
    }
    const probeKinds = kinds.join(', ');
    const what = kind === 'vertical' || kind === 'small' ? `${atLeast}${plural(portsOnHost, 'port')} on ${topName}`
      : kind === 'horizontal' ? `port ${topPort} on ${atLeast}${plural(hostsOnPort, 'host')}`
        : `${atLeast}${plural(portCount, 'port')} on ${plural(hostCount, 'host')} (up to ${plural(portsOnHost, 'port')} on ${topName}, port ${topPort} on ${plural(hostsOnPort, 'host')})`;
    return {
      rank: SEVERITY_RANK[severity],
      score,
      kind: small ? SOURCE_SMALL : SOURCE,
      id: s,
      draft: {
        type: 'port_scan',
        severity,
        key: `source ${addr}`,
        summary: `${addr} probed ${what} in the last ${cfg.lookback} s (${kind} scan): ${failed} of ${plural(attempts, 'attempt')} failed`
          + ` (${pct(ratio)}), ${rate.toFixed(1)} probes/s${stealthy ? ` (${probeKinds})` : ''}.`,
        evidence: {
          kind,
          source: addr,
          sourceInternal,
          target: kind === 'horizontal' ? null : topName,
          targetInternal,
          port: kind === 'vertical' || kind === 'small' ? null : topPort,
          ports: portCount,
          hosts: hostCount,
          portsOnTarget: portsOnHost,
          hostsOnPort,
          probes: failed,
          attempts,
          failureRatio: round3(ratio),
          probesPerSecond: round2(rate),
          samplePorts,
          sampleHosts,
          probeKinds,
          capped,
          lookbackSeconds: cfg.lookback,
          thresholds: thresholdsCrossed(crossings),
        },
        host: addr,
      },
    };
  }

  /** O(the target's ports). */
  private judgeTarget(t: number, now: number, b: number): Candidate | null {
    const cfg = this.cfg;
    const ports = this.tPorts[t]!;
    if (ports < cfg.minPorts) return null;
    // Ports per source (each port counts for the last source that probed it).
    const perSource = this.portsPerSource;
    const sourceList = this.sourceList;
    let sourceCount = 0;
    for (let e = this.tPortHead[t]!; e !== NIL; e = this.tpNext[e]!) {
      const s = this.tpSource[e]!;
      if (perSource[s]++ === 0) sourceList[sourceCount++] = s;
    }
    let most = 0;
    for (let i = 0; i < sourceCount; i++) {
      const s = sourceList[i]!;
      if (perSource[s]! > most) most = perSource[s]!;
      perSource[s] = 0;
    }
    if (sourceCount < MIN_DISTRIBUTED_SOURCES || most >= cfg.minPorts) return null;
    const attempts = this.tCounts.sumBefore(t, ATTEMPTS, b);
    const failed = this.tCounts.sumBefore(t, FAILED, b);
    const ratio = attempts > 0 ? Math.min(1, failed / attempts) : 0;
    if (ratio < cfg.minFailureRatio) return null;
    const score = ports / Math.max(1, cfg.minPorts);
    const rate = failed / Math.max(1, Math.min(cfg.lookback, now - this.tFirst[t]!));
    const severity = scanSeverity(score, rate, ratio);
    const capped = this.tCappedAt[t]! >= now - cfg.lookback;
    const addr = this.targets.name(t);
    const portNumbers: number[] = [];
    for (let e = this.tPortHead[t]!; e !== NIL; e = this.tpNext[e]!) portNumbers.push(this.targetPorts.keyWord(e, 1));
    const sourceNames: string[] = [];
    for (let i = 0; i < sourceCount; i++) sourceNames.push(this.sources.name(sourceList[i]!));
    return {
      rank: SEVERITY_RANK[severity],
      score,
      kind: TARGET,
      id: t,
      draft: {
        type: 'port_scan',
        severity,
        key: `target ${addr}`,
        summary: `${plural(sourceCount, 'source')} probed ${capped ? 'at least ' : ''}${plural(ports, 'port')} on ${addr} in the last ${cfg.lookback} s, none more than ${most}`
          + ` (distributed scan): ${failed} of ${plural(attempts, 'attempt')} failed (${pct(ratio)}).`,
        evidence: {
          kind: 'distributed',
          target: addr,
          targetInternal: this.targets.isInternal(t),
          ports,
          sources: sourceCount,
          maxPortsFromOneSource: most,
          probes: failed,
          attempts,
          failureRatio: round3(ratio),
          probesPerSecond: round2(rate),
          samplePorts: portNumbers.sort((x, y) => x - y).slice(0, SAMPLE).join(','),
          sampleSources: sourceNames.sort().slice(0, SAMPLE).join(','),
          capped,
          lookbackSeconds: cfg.lookback,
          thresholds: thresholdsCrossed([
            { measured: 'ports', value: ports, setting: 'minPorts', limit: cfg.minPorts },
            { measured: 'failureRatio', value: ratio, setting: 'minFailureRatio', limit: cfg.minFailureRatio },
          ]),
        },
        host: addr,
      },
    };
  }
}

/**
 * Counts one at `t`; a time before the key's newest bucket counts in that
 * bucket (BucketCounter's rule, which the figures have always followed:
 * timeouts settle at their deadline, a little before the packet that passed it).
 */
function countAt(counts: BucketReducer, id: number, t: number, series: number): void {
  const newest = counts.newestBucket(id);
  counts.add(id, counts.bucketOf(t) < newest ? (newest + 0.5) * counts.bucketSeconds : t, series, 1);
}

const SEVERITY_RANK: Record<FindingSeverity, number> = { info: 0, warning: 1, critical: 2 };

function scanSeverity(score: number, rate: number, ratio: number): FindingSeverity {
  if (score >= 10 || (rate >= 100 && score >= 2)) return 'critical';
  if (score < 2 && rate < 1 && ratio < 0.9) return 'info';
  return 'warning';
}

/**
 * A source's scan: a small one is info from outside (the Internet's constant
 * background probing) and warning between internal hosts (reconnaissance from
 * inside); a full-size one as scanSeverity, at least warning between internal hosts.
 */
function sourceSeverity(small: boolean, internalToInternal: boolean, score: number, rate: number, ratio: number): FindingSeverity {
  if (small) return internalToInternal ? 'warning' : 'info';
  const severity = scanSeverity(score, rate, ratio);
  return severity === 'info' && internalToInternal ? 'warning' : severity;
}

interface WindowCounts {
  attempts: number; completed: number; refused: number; abandoned: number; unanswered: number; udpUnreachable: number; suppressed: number;
  /** UDP flows of a few datagrams that got neither an answer nor an ICMP port unreachable. */
  udpUnanswered: number;
  /** Unanswered attempts whose client went on to ACK: counted as completed. */
  handshakeUnseen: number;
  /** Stealth probes counted, per kind from K_FIN. */
  stealth: Int32Array;
  /** Settled attempts and probes not tracked for the allow-lists. */
  allowed: number;
}

function emptyWindow(): WindowCounts {
  return {
    attempts: 0, completed: 0, refused: 0, abandoned: 0, unanswered: 0, udpUnreachable: 0, udpUnanswered: 0, suppressed: 0,
    handshakeUnseen: 0, stealth: new Int32Array(KINDS - 1), allowed: 0,
  };
}

const pct = (r: number): string => `${(r * 100).toFixed(1)} %`;
