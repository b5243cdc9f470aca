/**
 * Lateral movement (finding type `lateral_movement`): an internal host opening
 * connections to many internal hosts on administrative ports (SMB, RPC, RDP,
 * WinRM, SSH: analyzers.lateral_movement.ports) within the look-back
 * (lookback, 300 s of packet time).
 *
 * Internal means inside networks.internal (RFC 1918 + ULA by default); with
 * networks.includeLoopback, loopback addresses count as internal too, else
 * loopback traffic is ignored. A connection attempt is a client SYN that
 * starts a TCP flow from an internal host to another internal host on a
 * watched port; it succeeded when the handshake completed (SYN/ACK, then the
 * client's ACK). Attempts count whether they succeed or not: probing hosts
 * that refuse is as telling as reaching them; the evidence says how many hosts
 * were reached.
 *
 * At each window close a source with new attempts in the window fires when it
 * tried >= minHosts distinct internal hosts over the look-back. Severity:
 * critical from 3x minHosts; info when only SSH (22) was used and every host
 * was reached (an administrator or configuration tool at work, most likely);
 * warning otherwise.
 *
 * Bounded: sources in a BoundedMap of maxKeys (LRU, evictions counted in the
 * metrics), at most MAX_HOSTS_PER_SOURCE (4096) hosts remembered per source
 * (past that the count is a lower bound: `capped`) and MAX_REMEMBERED in all
 * (the least recently active sources go first, counted as evictions); sources
 * idle for a look-back are dropped at window close. Re-reported, with updated
 * evidence, at most once per suppressFor seconds, and only in windows with new
 * attempts.
 */
import { formatAddress } from '../../common/address.js';
import type { FindingSeverity } from '../../common/report.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowSpan } from './analyzer.js';
import { BoundedMap, BucketCounter } from './lib/bounded-map.js';
import { isLoopback } from './lib/networks.js';
import { Suppressor } from './lib/suppressor.js';

const { SYN, ACK, RST } = TcpFlag;

/** Destination hosts remembered per source. */
export const MAX_HOSTS_PER_SOURCE = 4096;
/** Destination hosts remembered over all sources. */
export const MAX_REMEMBERED = 1_000_000;
const SAMPLE = 10;
/** Window ends are exclusive: look-back sums are read this much before. */
const SUM_EPSILON = 1e-3;

// Per-slot state.
const NONE = 0;
const WAIT_SYNACK = 1;
const WAIT_ACK = 2;
const OVER = 3;

interface HostRecord { t: number; ok: boolean }

interface Source {
  addr: string;
  attempts: BucketCounter;
  /** Internal hosts tried -> latest attempt and whether a connection to it completed. */
  hosts: Map<string, HostRecord>;
  /** Watched ports used -> latest attempt. */
  ports: Map<number, number>;
  cappedAt: number;
  prunedAt: number;
  first: number;
  last: number;
  dirty: boolean;
}

interface Candidate { rank: number; hosts: number; draft: FindingDraft }

export function createLateralMovementAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new LateralMovementAnalyzer(ctx);
}

class LateralMovementAnalyzer implements Analyzer {
  readonly id = 'lateral_movement';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['lateral_movement'] { return this.ctx.config.analyzers.lateral_movement; }
  private readonly includeLoopback: boolean;
  private readonly watched = new Uint8Array(65536);
  private readonly state: Uint8Array;
  private readonly sources: BoundedMap<string, Source>;
  private readonly suppressor: Suppressor;
  private remembered = 0;
  private evicted = 0;
  private evictedBefore = 0;
  private w = emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {
    this.includeLoopback = ctx.config.networks.includeLoopback;
    for (const p of this.cfg.ports) if (Number.isInteger(p) && p >= 0 && p < 65536) this.watched[p] = 1;
    this.state = new Uint8Array(ctx.flows.capacity);
    const maxKeys = Math.max(1, this.cfg.maxKeys);
    this.sources = new BoundedMap<string, Source>(maxKeys, (_k, s) => { this.remembered -= s.hosts.size; this.evicted++; });
    this.suppressor = new Suppressor(this.cfg.suppressFor, maxKeys);
  }

  onFlowStart(slot: number): void {
    this.state[slot] = NONE;
  }

  onFlowEnd(slot: number): void {
    this.state[slot] = OVER;
  }

  onPacket(v: PacketView, slot: number, dir: number): void {
    if (slot < 0 || v.transport !== Transport.TCP) return;
    const s = this.state[slot]!;
    if (s === OVER) return;
    const tf = v.tcpFlags;
    if (s === NONE) {
      const flows = this.ctx.flows;
      if ((tf & (SYN | ACK | RST)) !== SYN || dir !== Dir.CLIENT_TO_SERVER || !this.watched[v.dstPort]
        || flows.packets[slot * 2]! !== 1 || flows.packets[slot * 2 + 1]! !== 0
        || !this.internal(v.ipVersion, v.src) || !this.internal(v.ipVersion, v.dst) || sameAddress(v.src, v.dst)) {
        this.state[slot] = OVER;
        return;
      }
      this.state[slot] = WAIT_SYNACK;
      this.attempt(v, this.ctx.clock.now);
      return;
    }
    const fromServer = dir === Dir.SERVER_TO_CLIENT;
    if (tf & RST) { this.state[slot] = OVER; return; }
    if (s === WAIT_SYNACK) {
      if (fromServer && (tf & (SYN | ACK)) === (SYN | ACK)) this.state[slot] = WAIT_ACK;
    } else if (!fromServer && tf & ACK && !(tf & SYN)) {
      this.state[slot] = OVER;
      this.succeeded(slot);
    }
  }

  private internal(version: number, words: ArrayLike<number>): boolean {
    if (isLoopback(version, words)) return this.includeLoopback;
    return this.ctx.networks.isInternal(version, words);
  }

  private attempt(v: PacketView, now: number): void {
    const w = this.w;
    w.attempts++;
    const src = formatAddress(v.ipVersion, v.src);
    const dst = formatAddress(v.ipVersion, v.dst);
    const lookback = this.cfg.lookback;
    let s = this.sources.get(src);
    if (s === undefined) {
      s = {
        addr: src, attempts: new BucketCounter(lookback), hosts: new Map(), ports: new Map(),
        cappedAt: -Infinity, prunedAt: now, first: now, last: now, dirty: false,
      };
      this.sources.set(src, s);
    } else if (s.last < now - lookback) {
      s.first = now;
    }
    s.last = Math.max(s.last, now);
    s.dirty = true;
    s.attempts.add(now);
    s.ports.set(v.dstPort, now);
    const h = s.hosts.get(dst);
    if (h !== undefined) { h.t = now; return; }
    if (s.hosts.size >= MAX_HOSTS_PER_SOURCE) {
      if (now - s.prunedAt >= lookback / 6) this.prune(s, now - lookback, now);
      if (s.hosts.size >= MAX_HOSTS_PER_SOURCE) { s.cappedAt = now; return; }
    }
    s.hosts.set(dst, { t: now, ok: false });
    this.remembered++;
    if (this.remembered > MAX_REMEMBERED) this.trim();
  }

  private succeeded(slot: number): void {
    this.w.succeeded++;
    const flows = this.ctx.flows;
    const version = flows.version[slot]!;
    const s = this.sources.peek(formatAddress(version, flows.clientAddr(slot)));
    const h = s?.hosts.get(formatAddress(version, flows.serverAddr(slot)));
    if (h !== undefined) h.ok = true;
  }

  private prune(s: Source, cutoff: number, now: number): void {
    s.prunedAt = now;
    for (const [host, h] of s.hosts) if (h.t < cutoff) { s.hosts.delete(host); this.remembered--; }
    for (const [port, t] of s.ports) if (t < cutoff) s.ports.delete(port);
  }

  /** Over MAX_REMEMBERED: drops the least recently active sources. */
  private trim(): void {
    for (const [key, s] of this.sources.entries()) {
      if (this.remembered <= MAX_REMEMBERED) return;
      this.sources.delete(key);
      this.remembered -= s.hosts.size;
      this.evicted++;
    }
  }

  closeWindow(span: WindowSpan): Metrics {
    const now = span.relEnd;
    // Bucket sums are read just inside the window, so the look-back is the `lookback` seconds ending at its end.
    const at = Math.max(span.relStart, now - SUM_EPSILON);
    const cfg = this.cfg;
    const cutoff = now - cfg.lookback;
    const candidates: Candidate[] = [];
    for (const [key, s] of this.sources.entries()) {
      if (s.last < cutoff) { this.sources.delete(key); this.remembered -= s.hosts.size; continue; }
      if (!s.dirty) continue;
      s.dirty = false;
      if (s.hosts.size < cfg.minHosts) continue;
      this.prune(s, cutoff, now);
      const c = this.judge(s, now, at);
      if (c !== null) candidates.push(c);
    }
    candidates.sort((a, b) => b.rank - a.rank || b.hosts - a.hosts || (a.draft.key < b.draft.key ? -1 : a.draft.key > b.draft.key ? 1 : 0));
    let reported = 0;
    for (const c of candidates) {
      if (!this.suppressor.allow(c.draft.key, now)) { this.w.suppressed++; continue; }
      this.ctx.report(c.draft);
      reported++;
    }
    const w = this.w;
    const metrics: Metrics = {
      attempts: w.attempts,
      succeeded: w.succeeded,
      sources: candidates.length,
      reported,
      suppressed: w.suppressed,
      trackedKeys: this.sources.size,
      maxKeys: cfg.maxKeys,
      rememberedHosts: this.remembered,
      evicted: this.evicted,
      evictedInWindow: this.evicted - this.evictedBefore,
    };
    this.evictedBefore = this.evicted;
    this.w = emptyWindow();
    return metrics;
  }

  private judge(s: Source, now: number, at: number): Candidate | null {
    const cfg = this.cfg;
    const hosts = s.hosts.size;
    if (hosts < cfg.minHosts || hosts === 0) return null;
    let reached = 0;
    for (const h of s.hosts.values()) if (h.ok) reached++;
    const ports = [...s.ports.keys()].sort((a, b) => a - b);
    const sshOnly = ports.length === 1 && ports[0] === 22;
    const severity: FindingSeverity = hosts >= 3 * Math.max(1, cfg.minHosts) ? 'critical' : sshOnly && reached === hosts ? 'info' : 'warning';
    const capped = s.cappedAt >= now - cfg.lookback;
    const attempts = s.attempts.sum(at);
    const all = [...s.hosts.keys()].sort();
    return {
      rank: severity === 'critical' ? 2 : severity === 'warning' ? 1 : 0,
      hosts,
      draft: {
        type: 'lateral_movement',
        severity,
        key: `source ${s.addr}`,
        summary: `Internal host ${s.addr} tried ${capped ? 'at least ' : ''}${hosts} internal hosts on administrative ports (${ports.join(', ')})`
          + ` in the last ${cfg.lookback} s: ${reached} reached, ${hosts - reached} not (refused, unanswered or still pending).`,
        evidence: {
          source: s.addr,
          hosts,
          hostsSucceeded: reached,
          hostsFailed: hosts - reached,
          attempts,
          ports: ports.join(','),
          sampleHosts: all.slice(0, SAMPLE).join(','),
          sampleSucceeded: all.filter((h) => s.hosts.get(h)!.ok).slice(0, SAMPLE).join(','),
          capped,
          lookbackSeconds: cfg.lookback,
        },
        host: s.addr,
      },
    };
  }
}

function sameAddress(a: Uint32Array, b: Uint32Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3];
}

function emptyWindow(): { attempts: number; succeeded: number; suppressed: number } {
  return { attempts: 0, succeeded: 0, suppressed: 0 };
}
