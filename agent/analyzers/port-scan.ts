/**
 * Port scans (finding type `port_scan`), per source over the look-back
 * (analyzers.port_scan.lookback, 60 s of packet time).
 *
 * A connection attempt is a client SYN that starts a TCP flow. It is settled
 * as one of:
 *   completed   SYN/ACK, then the client's ACK: a connection, not a probe;
 *   refused     the server's RST before any SYN/ACK (a closed port);
 *   abandoned   a SYN/ACK the client resets or never ACKs (a half-open
 *               SYN scan of an open port);
 *   unanswered  no SYN/ACK within PROBE_TIMEOUT (5 s) of the SYN, by the end
 *               of its flow, or by the end of the input (filtered port).
 * Refused, abandoned and unanswered attempts are failed probes. A UDP datagram
 * answered by ICMP port unreachable (ICMPv6 type 1 code 4) is a failed probe
 * too, attributed through the quoted header (its source probed its destination
 * port); a quoted datagram from a port below 1024 to one at or above 1024, or
 * from below 32768 to an ephemeral port (>= 32768), is a late reply to a client
 * (a DNS answer after the resolver gave up), not a probe, and is ignored.
 *
 * Per source, failed probes are remembered as (host, port) pairs with their
 * latest time, up to MAX_PAIRS_PER_SOURCE (4096): past that, counts are lower
 * bounds (`capped` in the evidence). At each window close, a source with new
 * attempts in the window is judged over the look-back:
 *   vertical    >= minPorts distinct ports failed on one host;
 *   horizontal  one port failed on >= minHosts distinct hosts;
 *   block       both at once;
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
 * otherwise.
 *
 * Bounded: sources and targets are BoundedMaps of analyzers.port_scan.maxKeys
 * (LRU, evictions counted in the metrics), remembered probes at most
 * MAX_PAIRS_PER_SOURCE per source, MAX_PORTS_PER_TARGET per target and
 * MAX_REMEMBERED in all (the least recently active keys go first, counted as
 * evictions); states idle for a look-back are dropped at window close. A
 * finding for the same source (or target) is re-reported, with updated
 * evidence, at most once per suppressFor seconds; it is only judged in windows
 * in which it made new attempts, so a scan that stopped is not repeated.
 * Loopback traffic is ignored unless networks.includeLoopback.
 */
import { formatAddress } from '../../common/address.js';
import type { FindingSeverity } from '../../common/report.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowSpan } from './analyzer.js';
import { BoundedMap, BucketCounter } from './lib/bounded-map.js';
import { isLoopback } from './lib/networks.js';
import { SlotDeadlines } from './lib/slot-deadlines.js';
import { Suppressor } from './lib/suppressor.js';
import { round2, round3 } from './lib/format.js';

const { SYN, ACK, RST } = TcpFlag;

/** Attempts awaiting their deadline at once; past it the oldest is settled early. */
export const MAX_PENDING = 32_768;
/** Seconds after its SYN an attempt without SYN/ACK is unanswered (or, SYN/ACKed but not ACKed, abandoned). */
export const PROBE_TIMEOUT = 5;
/** Failed (host, port) probes remembered per source. */
export const MAX_PAIRS_PER_SOURCE = 4096;
/** Failed ports remembered per target host. */
export const MAX_PORTS_PER_TARGET = 4096;
/** Remembered probes over all sources and targets. */
export const MAX_REMEMBERED = 1_000_000;
/** Sources a distributed scan needs. */
export const MIN_DISTRIBUTED_SOURCES = 3;
const SAMPLE = 10;
/** Window ends are exclusive: look-back sums are read this much before. */
const SUM_EPSILON = 1e-3;

// Per-slot attempt state.
const NONE = 0;
const WAIT_SYNACK = 1;
const WAIT_ACK = 2;
const OVER = 3;

// Outcomes.
const COMPLETED = 0;
const REFUSED = 1;
const ABANDONED = 2;
const UNANSWERED = 3;

interface Source {
  addr: string;
  internal: boolean;
  attempts: BucketCounter;
  failed: BucketCounter;
  /** Failed probes: target host -> port -> time of the latest. */
  probes: Map<string, Map<number, number>>;
  pairs: number;
  /** Time a probe was last dropped for the cap (-Infinity: never). */
  cappedAt: number;
  prunedAt: number;
  /** Start of the current activity (reset after a look-back of silence), and the latest attempt. */
  first: number;
  last: number;
  dirty: boolean;
}

interface PortProbe { t: number; src: string }

interface Target {
  addr: string;
  internal: boolean;
  attempts: BucketCounter;
  failed: BucketCounter;
  /** Failed ports -> the latest probe (time, source). */
  ports: Map<number, PortProbe>;
  cappedAt: number;
  prunedAt: number;
  first: number;
  last: number;
  dirty: boolean;
}

interface Candidate { rank: number; score: number; draft: FindingDraft }

export function createPortScanAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new PortScanAnalyzer(ctx);
}

class PortScanAnalyzer implements Analyzer {
  readonly id = 'port_scan';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['port_scan'] { return this.ctx.config.analyzers.port_scan; }
  private readonly includeLoopback: boolean;
  private readonly state: Uint8Array;
  private readonly deadlines: SlotDeadlines;
  private readonly sources: BoundedMap<string, Source>;
  private readonly targets: BoundedMap<string, Target>;
  private readonly suppressor: Suppressor;
  /** Remembered probes (source pairs + target ports). */
  private remembered = 0;
  /** Keys dropped for the caps (maxKeys or MAX_REMEMBERED), since the start. */
  private evicted = 0;
  private evictedBefore = 0;
  private w = emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {
    this.includeLoopback = ctx.config.networks.includeLoopback;
    const n = ctx.flows.capacity;
    this.state = new Uint8Array(n);
    this.deadlines = new SlotDeadlines(Math.min(n, MAX_PENDING));
    const maxKeys = Math.max(1, this.cfg.maxKeys);
    this.sources = new BoundedMap<string, Source>(maxKeys, (_k, s) => { this.remembered -= s.pairs; this.evicted++; });
    this.targets = new BoundedMap<string, Target>(maxKeys, (_k, t) => { this.remembered -= t.ports.size; this.evicted++; });
    this.suppressor = new Suppressor(this.cfg.suppressFor, maxKeys * 2);
  }

  /** The flow's tcp.stream number (mod 2^32): tells a deadline entry of an ended flow from one of the slot's next flow. */
  private stream(slot: number): number {
    return this.ctx.flows.streamIndex[slot]! >>> 0;
  }

  onFlowStart(slot: number): void {
    this.state[slot] = NONE;
  }

  onFlowEnd(slot: number): void {
    if (this.state[slot] === WAIT_SYNACK || this.state[slot] === WAIT_ACK) this.expire(slot, this.ctx.clock.now);
    this.state[slot] = OVER;
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    const now = this.ctx.clock.now;
    if (now >= this.deadlines.headDue) this.expireDue(now);
    const t = v.transport;
    if (t === Transport.TCP) {
      if (slot >= 0) this.onTcp(v, slot, dir, now);
    } else if (t === Transport.ICMP || t === Transport.ICMPV6) {
      this.onIcmp(v, t === Transport.ICMPV6, now);
    }
  }

  private onTcp(v: PacketView, slot: number, dir: number, now: number): void {
    const s = this.state[slot]!;
    if (s === OVER) return;
    const tf = v.tcpFlags;
    if (s === NONE) {
      // Only flows whose first packet is the client's SYN are attempts.
      const flows = this.ctx.flows;
      if ((tf & (SYN | ACK | RST)) !== SYN || dir !== Dir.CLIENT_TO_SERVER || flows.packets[slot * 2]! !== 1 || flows.packets[slot * 2 + 1]! !== 0
        || (!this.includeLoopback && (isLoopback(v.ipVersion, v.src) || isLoopback(v.ipVersion, v.dst)))) {
        this.state[slot] = OVER;
        return;
      }
      this.state[slot] = WAIT_SYNACK;
      this.w.attempts++;
      const q = this.deadlines;
      if (q.full && q.shift() && this.stream(q.slot) === q.gen) this.expire(q.slot, now);
      q.push(slot, this.stream(slot), now + PROBE_TIMEOUT);
      return;
    }
    const fromServer = dir === Dir.SERVER_TO_CLIENT;
    if (s === WAIT_SYNACK) {
      if (tf & RST) this.settle(slot, fromServer ? REFUSED : UNANSWERED, now);
      else if (fromServer && (tf & (SYN | ACK)) === (SYN | ACK)) this.state[slot] = WAIT_ACK;
      else if (fromServer) this.settle(slot, COMPLETED, now); // the server talks: the handshake happened out of sight
    } else if (s === WAIT_ACK) {
      if (tf & RST) this.settle(slot, fromServer ? REFUSED : ABANDONED, now);
      else if (!fromServer && tf & ACK && !(tf & SYN)) this.settle(slot, COMPLETED, now);
    }
  }

  private onIcmp(v: PacketView, v6: boolean, now: number): void {
    const portUnreachable = v6 ? v.icmpType === 1 && v.icmpCode === 4 : v.icmpType === 3 && v.icmpCode === 3;
    if (!portUnreachable || v.innerIpVersion === 0 || v.innerProto !== 17) return;
    const sp = v.innerSrcPort;
    const dp = v.innerDstPort;
    if ((sp < 1024 && dp >= 1024) || (sp < 32768 && dp >= 32768)) return;
    const version = v.innerIpVersion;
    if (!this.includeLoopback && (isLoopback(version, v.innerSrc) || isLoopback(version, v.innerDst))) return;
    this.w.udpUnreachable++;
    this.note(formatAddress(version, v.innerSrc), this.ctx.networks.isInternal(version, v.innerSrc),
      formatAddress(version, v.innerDst), this.ctx.networks.isInternal(version, v.innerDst), dp, true, now);
  }

  private expireDue(until: number): void {
    const q = this.deadlines;
    while (q.headDue <= until && q.shift()) {
      if (this.stream(q.slot) === q.gen) this.expire(q.slot, q.dueTime);
    }
  }

  /** An attempt still open at its deadline (or at its flow's end, or the input's). */
  private expire(slot: number, now: number): void {
    const s = this.state[slot];
    if (s === WAIT_SYNACK) this.settle(slot, UNANSWERED, now);
    else if (s === WAIT_ACK) this.settle(slot, ABANDONED, now);
  }

  private settle(slot: number, outcome: number, now: number): void {
    this.state[slot] = OVER;
    const w = this.w;
    if (outcome === COMPLETED) w.completed++;
    else if (outcome === REFUSED) w.refused++;
    else if (outcome === ABANDONED) w.abandoned++;
    else w.unanswered++;
    const flows = this.ctx.flows;
    const version = flows.version[slot]!;
    const client = flows.clientAddr(slot);
    const server = flows.serverAddr(slot);
    const nets = this.ctx.networks;
    this.note(formatAddress(version, client), nets.isInternal(version, client), formatAddress(version, server), nets.isInternal(version, server),
      flows.serverPort(slot), outcome !== COMPLETED, now);
  }

  /** One settled attempt from `src` to `dst`:`port`. */
  private note(src: string, srcInternal: boolean, dst: string, dstInternal: boolean, port: number, failed: boolean, now: number): void {
    const lookback = this.cfg.lookback;
    let s = this.sources.get(src);
    if (s === undefined) {
      s = {
        addr: src, internal: srcInternal, attempts: new BucketCounter(lookback), failed: new BucketCounter(lookback),
        probes: new Map(), pairs: 0, cappedAt: -Infinity, prunedAt: now, first: now, last: now, dirty: false,
      };
      this.sources.set(src, s);
    } else if (s.last < now - lookback) {
      s.first = now;
    }
    s.last = Math.max(s.last, now);
    s.dirty = true;
    s.attempts.add(now);
    let target = failed ? this.targets.get(dst) : this.targets.peek(dst);
    if (failed && target === undefined) {
      target = {
        addr: dst, internal: dstInternal, attempts: new BucketCounter(lookback), failed: new BucketCounter(lookback),
        ports: new Map(), cappedAt: -Infinity, prunedAt: now, first: now, last: now, dirty: false,
      };
      this.targets.set(dst, target);
    }
    if (target !== undefined) {
      if (target.last < now - lookback) target.first = now;
      target.last = Math.max(target.last, now);
      target.attempts.add(now);
    }
    if (!failed) return;
    s.failed.add(now);
    this.addPair(s, dst, port, now);
    if (target !== undefined) {
      target.dirty = true;
      target.failed.add(now);
      this.addTargetPort(target, port, src, now);
    }
    if (this.remembered > MAX_REMEMBERED) this.trim();
  }

  private addPair(s: Source, host: string, port: number, now: number): void {
    let ports = s.probes.get(host);
    if (ports !== undefined && ports.has(port)) { ports.set(port, now); return; }
    if (s.pairs >= MAX_PAIRS_PER_SOURCE) {
      if (now - s.prunedAt >= this.cfg.lookback / 6) this.pruneSource(s, now - this.cfg.lookback, now);
      if (s.pairs >= MAX_PAIRS_PER_SOURCE) { s.cappedAt = now; return; }
      ports = s.probes.get(host);
    }
    if (ports === undefined) { ports = new Map(); s.probes.set(host, ports); }
    ports.set(port, now);
    s.pairs++;
    this.remembered++;
  }

  private addTargetPort(t: Target, port: number, src: string, now: number): void {
    const p = t.ports.get(port);
    if (p !== undefined) { p.t = now; p.src = src; return; }
    if (t.ports.size >= MAX_PORTS_PER_TARGET) {
      if (now - t.prunedAt >= this.cfg.lookback / 6) this.pruneTarget(t, now - this.cfg.lookback, now);
      if (t.ports.size >= MAX_PORTS_PER_TARGET) { t.cappedAt = now; return; }
    }
    t.ports.set(port, { t: now, src });
    this.remembered++;
  }

  private pruneSource(s: Source, cutoff: number, now: number): void {
    s.prunedAt = now;
    for (const [host, ports] of s.probes) {
      for (const [port, t] of ports) if (t < cutoff) { ports.delete(port); s.pairs--; this.remembered--; }
      if (ports.size === 0) s.probes.delete(host);
    }
  }

  private pruneTarget(t: Target, cutoff: number, now: number): void {
    t.prunedAt = now;
    for (const [port, p] of t.ports) if (p.t < cutoff) { t.ports.delete(port); this.remembered--; }
  }

  /** Over MAX_REMEMBERED: drops the least recently active sources, then targets. */
  private trim(): void {
    for (const [key, s] of this.sources.entries()) {
      if (this.remembered <= MAX_REMEMBERED) return;
      this.sources.delete(key);
      this.remembered -= s.pairs;
      this.evicted++;
    }
    for (const [key, t] of this.targets.entries()) {
      if (this.remembered <= MAX_REMEMBERED) return;
      this.targets.delete(key);
      this.remembered -= t.ports.size;
      this.evicted++;
    }
  }

  finish(): void {
    // End of input: attempts still waiting are settled now (unanswered, or abandoned after a SYN/ACK).
    const q = this.deadlines;
    const now = this.ctx.clock.now;
    while (q.shift()) if (this.stream(q.slot) === q.gen) this.expire(q.slot, Math.min(now, q.dueTime));
  }

  closeWindow(span: WindowSpan): Metrics {
    const now = span.relEnd;
    // Bucket sums are read just inside the window, so the look-back is the `lookback` seconds ending at its end.
    const at = Math.max(span.relStart, now - SUM_EPSILON);
    this.expireDue(at);
    const cfg = this.cfg;
    const cutoff = now - cfg.lookback;
    const candidates: Candidate[] = [];
    const minPairs = Math.max(1, Math.min(cfg.minPorts, cfg.minHosts));
    for (const [key, s] of this.sources.entries()) {
      if (s.last < cutoff) { this.sources.delete(key); this.remembered -= s.pairs; continue; }
      if (!s.dirty) continue;
      s.dirty = false;
      if (s.pairs < minPairs) continue;
      this.pruneSource(s, cutoff, now);
      const c = this.judgeSource(s, now, at);
      if (c !== null) candidates.push(c);
    }
    for (const [key, t] of this.targets.entries()) {
      if (t.last < cutoff) { this.targets.delete(key); this.remembered -= t.ports.size; continue; }
      if (!t.dirty) continue;
      t.dirty = false;
      if (t.ports.size < Math.max(1, cfg.minPorts)) continue;
      this.pruneTarget(t, cutoff, now);
      const c = this.judgeTarget(t, now, at);
      if (c !== null) candidates.push(c);
    }
    // The most severe and largest first, so the per-type cap keeps those.
    candidates.sort((a, b) => b.rank - a.rank || b.score - a.score || (a.draft.key < b.draft.key ? -1 : a.draft.key > b.draft.key ? 1 : 0));
    let reported = 0;
    for (const c of candidates) {
      if (!this.suppressor.allow(c.draft.key, now)) { this.w.suppressed++; continue; }
      this.ctx.report(c.draft);
      reported++;
    }
    const w = this.w;
    const metrics: Metrics = {
      attempts: w.attempts,
      outcomes: { completed: w.completed, refused: w.refused, abandoned: w.abandoned, unanswered: w.unanswered, udpUnreachable: w.udpUnreachable },
      scanners: candidates.length,
      reported,
      suppressed: w.suppressed,
      trackedSources: this.sources.size,
      trackedTargets: this.targets.size,
      maxKeys: cfg.maxKeys,
      rememberedProbes: this.remembered,
      evicted: this.evicted,
      evictedInWindow: this.evicted - this.evictedBefore,
    };
    this.evictedBefore = this.evicted;
    this.w = emptyWindow();
    return metrics;
  }

  private judgeSource(s: Source, now: number, at: number): Candidate | null {
    const cfg = this.cfg;
    const attempts = s.attempts.sum(at);
    const failed = s.failed.sum(at);
    const ratio = attempts > 0 ? Math.min(1, failed / attempts) : 0;
    if (ratio < cfg.minFailureRatio) return null;
    let portsOnHost = 0;
    let topHost = '';
    const hostsPerPort = new Map<number, number>();
    for (const [host, ports] of s.probes) {
      if (ports.size > portsOnHost) { portsOnHost = ports.size; topHost = host; }
      for (const p of ports.keys()) hostsPerPort.set(p, (hostsPerPort.get(p) ?? 0) + 1);
    }
    let hostsOnPort = 0;
    let topPort = -1;
    for (const [p, n] of hostsPerPort) if (n > hostsOnPort || (n === hostsOnPort && p < topPort)) { hostsOnPort = n; topPort = p; }
    const vertical = portsOnHost >= cfg.minPorts;
    const horizontal = hostsOnPort >= cfg.minHosts;
    if (!vertical && !horizontal) return null;
    const kind = vertical && horizontal ? 'block' : vertical ? 'vertical' : 'horizontal';
    const score = Math.max(portsOnHost / Math.max(1, cfg.minPorts), hostsOnPort / Math.max(1, cfg.minHosts));
    const rate = failed / Math.max(1, Math.min(cfg.lookback, now - s.first));
    const severity = scanSeverity(score, rate, ratio);
    const capped = s.cappedAt >= now - cfg.lookback;
    const atLeast = capped ? 'at least ' : '';
    const samplePorts = [...(s.probes.get(topHost)?.keys() ?? [])].sort((a, b) => a - b).slice(0, SAMPLE).join(',');
    const sampleHosts = [...s.probes.entries()].filter(([, ports]) => ports.has(topPort)).map(([h]) => h).sort().slice(0, SAMPLE).join(',');
    const what = kind === 'vertical' ? `${atLeast}${portsOnHost} ports on ${topHost}`
      : kind === 'horizontal' ? `port ${topPort} on ${atLeast}${hostsOnPort} hosts`
        : `${atLeast}${hostsPerPort.size} ports on ${s.probes.size} hosts (up to ${portsOnHost} ports on ${topHost}, port ${topPort} on ${hostsOnPort} hosts)`;
    return {
      rank: SEVERITY_RANK[severity],
      score,
      draft: {
        type: 'port_scan',
        severity,
        key: `source ${s.addr}`,
        summary: `${s.addr} probed ${what} in the last ${cfg.lookback} s (${kind} scan): ${failed} of ${attempts} attempts failed`
          + ` (${pct(ratio)}), ${rate.toFixed(1)} probes/s.`,
        evidence: {
          kind,
          source: s.addr,
          sourceInternal: s.internal,
          target: kind === 'horizontal' ? null : topHost,
          port: kind === 'vertical' ? null : topPort,
          ports: hostsPerPort.size,
          hosts: s.probes.size,
          portsOnTarget: portsOnHost,
          hostsOnPort,
          probes: failed,
          attempts,
          failureRatio: round3(ratio),
          probesPerSecond: round2(rate),
          samplePorts,
          sampleHosts,
          capped,
          lookbackSeconds: cfg.lookback,
        },
        host: s.addr,
      },
    };
  }

  private judgeTarget(t: Target, now: number, at: number): Candidate | null {
    const cfg = this.cfg;
    const ports = t.ports.size;
    if (ports < cfg.minPorts) return null;
    const perSource = new Map<string, number>();
    for (const p of t.ports.values()) perSource.set(p.src, (perSource.get(p.src) ?? 0) + 1);
    let most = 0;
    for (const n of perSource.values()) most = Math.max(most, n);
    if (perSource.size < MIN_DISTRIBUTED_SOURCES || most >= cfg.minPorts) return null;
    const attempts = t.attempts.sum(at);
    const failed = t.failed.sum(at);
    const ratio = attempts > 0 ? Math.min(1, failed / attempts) : 0;
    if (ratio < cfg.minFailureRatio) return null;
    const score = ports / Math.max(1, cfg.minPorts);
    const rate = failed / Math.max(1, Math.min(cfg.lookback, now - t.first));
    const severity = scanSeverity(score, rate, ratio);
    const capped = t.cappedAt >= now - cfg.lookback;
    return {
      rank: SEVERITY_RANK[severity],
      score,
      draft: {
        type: 'port_scan',
        severity,
        key: `target ${t.addr}`,
        summary: `${perSource.size} sources probed ${capped ? 'at least ' : ''}${ports} ports on ${t.addr} in the last ${cfg.lookback} s, none more than ${most}`
          + ` (distributed scan): ${failed} of ${attempts} attempts failed (${pct(ratio)}).`,
        evidence: {
          kind: 'distributed',
          target: t.addr,
          targetInternal: t.internal,
          ports,
          sources: perSource.size,
          maxPortsFromOneSource: most,
          probes: failed,
          attempts,
          failureRatio: round3(ratio),
          probesPerSecond: round2(rate),
          samplePorts: [...t.ports.keys()].sort((a, b) => a - b).slice(0, SAMPLE).join(','),
          sampleSources: [...perSource.keys()].sort().slice(0, SAMPLE).join(','),
          capped,
          lookbackSeconds: cfg.lookback,
        },
        host: t.addr,
      },
    };
  }
}

const SEVERITY_RANK: Record<FindingSeverity, number> = { info: 0, warning: 1, critical: 2 };

function scanSeverity(score: number, rate: number, ratio: number): FindingSeverity {
  if (score >= 10 || (rate >= 100 && score >= 2)) return 'critical';
  if (score < 2 && rate < 1 && ratio < 0.9) return 'info';
  return 'warning';
}

function emptyWindow(): { attempts: number; completed: number; refused: number; abandoned: number; unanswered: number; udpUnreachable: number; suppressed: number } {
  return { attempts: 0, completed: 0, refused: 0, abandoned: 0, unanswered: 0, udpUnreachable: 0, suppressed: 0 };
}

const pct = (r: number): string => `${(r * 100).toFixed(1)} %`;
