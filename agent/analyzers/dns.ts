/**
 * DNS over UDP and TCP, IPv4 and IPv6: queries matched to responses by
 * transaction id within their flow (the 5-tuple), response times (dns.time,
 * with Wireshark's matching rules so the figures agree with tshark), rcode
 * distribution, queries unanswered after `timeout`, latency per server and
 * repeated queries.
 *
 * Queries live in one Map keyed by flow slot and id, bounded by `maxPending`
 * (oldest dropped and counted), with two FIFO rings in time order for expiry
 * (unanswered ones for the timeout; answered or timed-out ones, kept a while
 * for late and duplicate responses). Entries are pooled; a generation number
 * lets the rings skip entries released meanwhile. mDNS and LLMNR messages take part too, as they carry Wireshark's
 * dns.* fields.
 */
import { formatAddress } from '../../common/address.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Quantiles } from './lib/quantiles.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';
import { round9 } from './lib/format.js';

const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 6: 'YXDOMAIN', 7: 'YXRRSET', 8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE',
};
/** TCP segments Wireshark does not hand to DNS: retransmitted, spurious or out-of-order data (fast retransmissions it does). */
/** Wireshark's dns.retransmission_timer default: a query with the same id within it is a retransmission. */
const RETRANSMISSION_TIMER = 5;
/** Seconds an answered or timed-out query is remembered for late and duplicate responses. */
const SETTLED_SECONDS = 60;
/** Seconds of packet time between expiry sweeps when no DNS message arrives. */
const EXPIRE_INTERVAL = 0.1;
/** Servers and repeated names listed per window, at most. */
const MAX_SERVERS = 1000;
const MAX_NAMES = 10000;

class PendingQuery {
  /** Bumped on release, so stale ring entries are recognised. */
  gen = 0;
  key = 0;
  slot = 0;
  id = 0;
  /** Time of the first transmission (dns.time measures from it). */
  firstTs = 0;
  /** When it was answered or timed out (settled entries expire from it). */
  lastTs = 0;
  answered = false;
  timedOut = false;
  serverKey = 0;
}

interface ServerStats { address: string; queries: number; responses: number; totalTime: number; maxTime: number; timeouts: number }

export function createDnsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new DnsAnalyzer(ctx);
}

class DnsAnalyzer implements Analyzer {
  readonly id = 'dns';
  private readonly byKey = new Map<number, PendingQuery>();
  /** Unanswered queries in order of their first transmission. */
  private readonly waiting = new QueryRing();
  /** Answered or timed-out queries in order of settling, kept for late and duplicate responses. */
  private readonly settled = new QueryRing();
  private readonly pool: PendingQuery[] = [];
  private readonly time = new Quantiles(true);
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['dns'] { return this.ctx.config.analyzers.dns; }
  private dropped = 0;
  private lastExpire = -Infinity;
  private w = this.emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {
  }

  private emptyWindow(): {
    queries: number; responses: number; retransmissions: number; unsolicited: number; timeouts: number; duplicateResponses: number; lateResponses: number;
    rcodes: Map<number, number>; time: Quantiles; servers: Map<number, ServerStats>; names: Map<number, number>; unansweredAtEnd?: number;
  } {
    return { queries: 0, responses: 0, retransmissions: 0, unsolicited: 0, timeouts: 0, duplicateResponses: 0, lateResponses: 0, rcodes: new Map(), time: new Quantiles(), servers: new Map(), names: new Map() };
  }

  /**
   * Wireshark's transaction rules (packet-dns.c, 4.0): the key is the flow and
   * the id; a query repeats an unanswered one sent less than 5 s earlier
   * (dns.retransmission, timed from the original); a response answers the
   * latest query with its id, however late; a second response is a
   * retransmission and carries no dns.time.
   */
  onPacket(v: PacketView, slot: number): void {
    // Expiry walks the oldest entries: often enough for timeouts to land in their window, not on every packet.
    if (v.dnsOff >= 0 || v.ts - this.lastExpire >= EXPIRE_INTERVAL || v.ts < this.lastExpire) {
      this.lastExpire = v.ts;
      this.expire(v.ts);
    }
    if (v.dnsOff < 0 || slot < 0) return;
    // A retransmitted or out-of-order TCP segment is not a DNS message in Wireshark.
    if (v.transport === Transport.TCP && this.ctx.tcpSequence.result.payloadRepeated) return;
    const key = slot * 65536 + v.dnsId;
    const w = this.w;
    const q = this.byKey.get(key);
    if (!v.dnsIsResponse) {
      w.queries++;
      this.countName(v);
      if (q !== undefined && !q.answered && v.ts - q.firstTs < RETRANSMISSION_TIMER) {
        w.retransmissions++;
        return;
      }
      if (q !== undefined) this.release(q);
      this.add(key, slot, v);
      return;
    }
    w.responses++;
    w.rcodes.set(v.dnsRcode, (w.rcodes.get(v.dnsRcode) ?? 0) + 1);
    if (q === undefined) { w.unsolicited++; return; }
    if (q.answered) { w.duplicateResponses++; return; }
    q.answered = true;
    q.lastTs = v.ts;
    const rtt = v.ts - q.firstTs;
    this.time.add(rtt);
    w.time.add(rtt);
    if (q.timedOut) w.lateResponses++;
    const server = w.servers.get(q.serverKey);
    if (server) {
      server.responses++;
      server.totalTime += rtt;
      if (rtt > server.maxTime) server.maxTime = rtt;
    }
    // Answered: kept a while so duplicate responses are recognised.
    this.settled.push(q);
  }

  private add(key: number, slot: number, v: PacketView): void {
    if (this.byKey.size >= this.cfg.maxPending) {
      const oldest = this.settled.shift() ?? this.waiting.shift();
      if (oldest) {
        if (!oldest.answered && !oldest.timedOut) this.dropped++;
        this.release(oldest);
      }
    }
    const q = this.pool.pop() ?? new PendingQuery();
    q.key = key;
    q.slot = slot;
    q.id = v.dnsId;
    q.firstTs = q.lastTs = v.ts;
    q.answered = false;
    q.timedOut = false;
    // The server is the destination of the query.
    const words = v.dst;
    q.serverKey = (Math.imul(words[0]!, 31) ^ Math.imul(words[1]!, 17) ^ Math.imul(words[2]!, 13) ^ words[3]!) * 8 + v.ipVersion;
    let server = this.w.servers.get(q.serverKey);
    if (server === undefined && this.w.servers.size < MAX_SERVERS) {
      server = { address: formatAddress(v.ipVersion, v.dst), queries: 0, responses: 0, totalTime: 0, maxTime: 0, timeouts: 0 };
      this.w.servers.set(q.serverKey, server);
    }
    if (server) server.queries++;
    this.byKey.set(key, q);
    this.waiting.push(q);
  }

  /** Counts queries per name (hash of the lower-cased question bytes) for repeated-query detection. */
  private countName(v: PacketView): void {
    if (v.dnsQnameOff < 0) return;
    const d = v.l4Data;
    let h = 0x811c9dc5 ^ v.dnsQtype;
    for (let p = v.dnsQnameOff, n = 0; p < d.length && n < 255; p++, n++) {
      const c = d[p]!;
      if (c === 0) break;
      h = Math.imul(h ^ (c >= 0x41 && c <= 0x5a ? c + 32 : c), 16777619);
    }
    const names = this.w.names;
    if (names.has(h) || names.size < MAX_NAMES) names.set(h, (names.get(h) ?? 0) + 1);
  }

  /**
   * Queries unanswered for `timeout` are counted as timeouts once, then kept
   * (like answered ones) for SETTLED_SECONDS so a late or duplicate response
   * still matches as in Wireshark, which never forgets a transaction.
   */
  private expire(now: number): void {
    for (let q = this.waiting.peek(); q !== undefined; q = this.waiting.peek()) {
      if (!q.answered && now - q.firstTs < this.cfg.timeout) break;
      this.waiting.shift();
      if (q.answered) continue; // already in `settled`
      q.timedOut = true;
      this.timeout(q);
      this.settled.push(q);
    }
    for (let q = this.settled.peek(); q !== undefined; q = this.settled.peek()) {
      if (now - q.lastTs < SETTLED_SECONDS) break;
      this.settled.shift();
      this.release(q);
    }
  }

  private timeout(q: PendingQuery): void {
    this.w.timeouts++;
    const server = this.w.servers.get(q.serverKey);
    if (server) server.timeouts++;
  }

  private release(q: PendingQuery): void {
    if (this.byKey.get(q.key) === q) this.byKey.delete(q.key);
    q.gen++; // ring entries still pointing at it are now stale
    if (this.pool.length < 1024) this.pool.push(q);
  }

  finish(): void {
    // Queries still unanswered at the end: a timeout if they waited long enough, else simply unknown.
    const end = this.ctx.clock.now;
    let unanswered = 0;
    for (let q = this.waiting.shift(); q !== undefined; q = this.waiting.shift()) {
      if (q.answered) continue;
      if (end - q.firstTs >= this.cfg.timeout) this.timeout(q); else unanswered++;
      this.release(q);
    }
    this.w.unansweredAtEnd = unanswered;
  }

  closeWindow(): Metrics {
    const w = this.w;
    const s = w.time.summary();
    const servfail = w.rcodes.get(2) ?? 0;
    const rcodes = Object.fromEntries([...w.rcodes].sort((a, b) => a[0] - b[0]).map(([code, n]) => [RCODE_NAMES[code] ?? `RCODE${code}`, n]));
    const repeated = [...w.names.values()].filter((n) => n > 1);
    const servers = [...w.servers.values()].sort((a, b) => b.queries - a.queries || (a.address < b.address ? -1 : 1)).slice(0, 10)
      .map((x) => ({ server: x.address, queries: x.queries, responses: x.responses, timeouts: x.timeouts, meanTime: x.responses ? round9(x.totalTime / x.responses) : null, maxTime: x.responses ? round9(x.maxTime) : null }));
    const c = this.cfg;
    if (s.p90 !== null && s.p90 >= c.warning) {
      this.ctx.report({
        type: 'dns_latency', severity: s.p90 >= c.critical ? 'critical' : 'warning', key: 'window',
        summary: `DNS responses are slow: 90 % within ${(s.p90 * 1000).toFixed(0)} ms (${s.count} responses).`,
        evidence: { responses: s.count, p50: s.p50, p90: s.p90, max: s.max },
      });
    }
    if (w.timeouts > 0) {
      this.ctx.report({
        type: 'dns_timeout', severity: w.timeouts >= 10 ? 'warning' : 'info', key: 'window',
        summary: `${w.timeouts} DNS queries got no answer within ${c.timeout} s.`,
        evidence: { timeouts: w.timeouts, queries: w.queries, server: servers[0]?.server ?? null },
      });
    }
    const failures = servfail + (w.rcodes.get(5) ?? 0);
    if (failures > 0) {
      this.ctx.report({
        type: 'dns_errors', severity: 'warning', key: 'window',
        summary: `${failures} DNS responses reported server failure or refusal.`,
        evidence: { servfail, refused: w.rcodes.get(5) ?? 0, responses: w.responses },
      });
    }
    const metrics: Metrics = {
      queries: w.queries,
      responses: w.responses,
      retransmissions: w.retransmissions,
      unsolicited: w.unsolicited,
      duplicateResponses: w.duplicateResponses,
      timeouts: w.timeouts,
      lateResponses: w.lateResponses,
      serverFailures: servfail,
      nxdomain: w.rcodes.get(3) ?? 0,
      count: s.count, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max,
      rcodes,
      repeatedNames: repeated.length,
      repeatedQueries: repeated.reduce((a, b) => a + b, 0),
      servers,
    };
    if (w.unansweredAtEnd !== undefined) metrics['unansweredAtEnd'] = w.unansweredAtEnd;
    this.w = this.emptyWindow();
    return metrics;
  }

  counters(): Record<string, number> {
    return this.dropped ? { 'dns.pending_dropped': this.dropped } : {};
  }

  stats(): Record<string, ReturnType<Quantiles['summary']>> {
    return { 'dns.time': this.time.summary() };
  }
}


/**
 * FIFO of queries that skips entries released since they were pushed (their
 * generation changed). Grows by doubling; never shrinks below its peak.
 */
class QueryRing {
  private items: PendingQuery[] = new Array<PendingQuery>(64);
  private gens = new Float64Array(64);
  private head = 0;
  private size = 0;

  push(q: PendingQuery): void {
    if (this.size === this.items.length) this.grow();
    const i = (this.head + this.size) % this.items.length;
    this.items[i] = q;
    this.gens[i] = q.gen;
    this.size++;
  }

  /** The oldest live entry, without removing it. */
  peek(): PendingQuery | undefined {
    while (this.size > 0) {
      const q = this.items[this.head]!;
      if (q.gen === this.gens[this.head]) return q;
      this.drop();
    }
    return undefined;
  }

  shift(): PendingQuery | undefined {
    const q = this.peek();
    if (q !== undefined) this.drop();
    return q;
  }

  private drop(): void {
    this.head = (this.head + 1) % this.items.length;
    this.size--;
  }

  private grow(): void {
    const n = this.items.length;
    const items = new Array<PendingQuery>(n * 2);
    const gens = new Float64Array(n * 2);
    for (let k = 0; k < this.size; k++) {
      items[k] = this.items[(this.head + k) % n]!;
      gens[k] = this.gens[(this.head + k) % n]!;
    }
    this.items = items;
    this.gens = gens;
    this.head = 0;
  }
}
