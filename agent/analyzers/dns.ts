/**
 * DNS over UDP and TCP, IPv4 and IPv6: queries matched to responses by
 * transaction id within their flow (the 5-tuple), response times (dns.time,
 * with Wireshark's matching rules so the figures agree with tshark), rcode
 * distribution, queries unanswered after `timeout`, latency per server and
 * repeated queries.
 *
 * State is preallocated once at start from `maxPending` (read then: a SIGHUP
 * can lower the bound, not raise it above the start value) and never grows:
 * a KeyTable (width 2: the flow's conversation, its tcp.stream or udp.stream
 * number, and the transport with the transaction id) maps each remembered
 * query to a dense id, and typed columns indexed
 * by that id hold the time of its first transmission, the packet clock
 * when it was sent and when answered, whether it was answered or timed out,
 * its server and a generation number. FIFO rings of ids (Int32Array, each entry with the
 * generation it was pushed at, so entries of ids freed meanwhile are skipped
 * and compacted away when a ring fills) keep them in time order for expiry:
 * unanswered ones for the timeout; timed-out ones and answered ones (two
 * rings, each in order of the time it is kept from, so a query is forgotten
 * exactly SETTLED_SECONDS after it, whatever other queries there are), kept
 * a while for late and duplicate responses. At `maxPending` the oldest
 * settled query is forgotten first, else the oldest waiting one (counted as
 * dropped). No allocation per packet (the per-window server and name Maps
 * are bounded).
 * mDNS and LLMNR messages take part too, as they carry Wireshark's dns.*
 * fields.
 *
 * Expiry runs on the packet clock (PacketClock.now: it never goes back, and
 * is the same in every flow-sharded worker), dns.time and the retransmission
 * timer on the packets' own stamps. Sweeps run on DNS messages (first, so a
 * message meets its query's state as of its arrival), every EXPIRE_INTERVAL
 * of the clock, and when a window closes (at its last instant): a timeout
 * counts in the window its query's `timeout` runs out in, and a query is
 * forgotten SETTLED_SECONDS after it settled, whatever other traffic there is.
 *
 * Flow-sharded workers (issue 13): a query, its flow and its responses are
 * in one worker; a window's server and name lists are not. Each worker gives
 * its servers and names with where in the input each was first seen, its
 * rcodes and dns.time samples, and the responses and timeouts it could not
 * credit to a server (none of its own queries to that server in the window
 * yet: one pipeline credits them when another worker's query to the server
 * came first). The coordinator merges them as one pipeline lists them, the
 * first MAX_SERVERS servers and MAX_NAMES names, and reports. A worker keeps
 * WORKER_LISTS times as many of each, so the merge is exact unless a window
 * has more servers or names than that, or a worker's query table
 * (maxPending: each worker has it whole) overflows where one pipeline's does
 * not, or the reverse.
 */
import { formatAddress } from '../../common/address.js';
import type { QuantileSketch, ReportDistribution } from '../../common/report.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { KeyTable } from './lib/key-table.js';
import { Quantiles, type QuantileSummary } from './lib/quantiles.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { duration, plural, round9 } from './lib/format.js';

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
/** A flow-sharded worker lists this many times as many servers and names (see above). */
const WORKER_LISTS = 8;
/** Kinds of an uncredited event in a worker's log. */
const ORPHAN_RESPONSE = 0;
const ORPHAN_TIMEOUT = 1;

const DNS_TIME: ReportDistribution = 'dns.time';

/**
 * A server's figures in a window. dns.time's sum is whole nanoseconds plus
 * the rest in whole attoseconds: integers, whose sum is the same in any order
 * (flow-sharded workers' sums add up to one pipeline's).
 */
interface ServerStats {
  key: number; address: string; queries: number; responses: number; nanoseconds: number; attoseconds: number; maxTime: number; timeouts: number;
  /** Where in the input (ctx.packetOrder) and when (the packet clock) its first query of the window was. */
  first: number; firstClock: number;
}

interface DnsWindow {
  queries: number; responses: number; retransmissions: number; unsolicited: number; timeouts: number; duplicateResponses: number; lateResponses: number;
  rcodes: Map<number, number>; time: Quantiles; servers: Map<number, ServerStats>;
  /** Queries per name hash; and, in a flow-sharded worker, where each name was first seen. */
  names: Map<number, number>; nameFirst: Map<number, number>;
  unansweredAtEnd?: number;
}

/** A flow-sharded worker's part of a window. */
interface DnsPart {
  time: QuantileSketch;
  rcodes: Array<[number, number]>;
  /** [name hash, queries, where first seen]. */
  names: Array<[number, number, number]>;
  servers: ServerStats[];
  /** Responses and timeouts not credited to a server: [server key, kind, where (response: ctx.packetOrder) or when its query was sent (timeout: the packet clock), dns.time (response)], flat. */
  orphans: number[];
}

/** The largest double below `x`: the last instant of a window ending at `x`. */
const bits = new Float64Array(1);
const bitsInt = new BigInt64Array(bits.buffer);
function lastInstantBefore(x: number): number {
  if (x === 0) return -Number.MIN_VALUE;
  bits[0] = x;
  bitsInt[0] = x > 0 ? bitsInt[0]! - 1n : bitsInt[0]! + 1n;
  return bits[0];
}

export function createDnsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new DnsAnalyzer(ctx);
}

class DnsAnalyzer implements Analyzer {
  readonly id = 'dns';
  /** Ids handed out, at most maxPending at start. */
  private readonly capacity: number;
  /** (flow slot, transaction id) -> query id. */
  private readonly table: KeyTable;
  /** Per query id: time of the first transmission (dns.time measures from it). */
  private readonly firstTs: Float64Array;
  /** Per query id: the packet clock when it was answered, else when first sent (its timeout and its keeping run from it). */
  private readonly lastTs: Float64Array;
  private readonly answered: Uint8Array;
  private readonly timedOut: Uint8Array;
  /** Per query id: the key of its server (the query's destination) in the window's `servers`. */
  private readonly serverKey: Float64Array;
  /** Per query id: bumped when the id is freed, so ring entries pushed before are recognised as stale. */
  private readonly gen: Uint32Array;
  /** Unanswered queries in order of their first transmission. */
  private readonly waiting: IdRing;
  /** Timed-out queries (in order of their first transmission) and answered ones (in order of answer), kept for late and duplicate responses. */
  private readonly timedOutRing: IdRing;
  private readonly answeredRing: IdRing;
  /** The window's negative dns.time values (timestamps going backwards): the window's set leaves them out, the report's keeps them. */
  private readonly negativeTimes = new Quantiles(true);
  /** The last closed window's dns.time, negative times included: the report's distribution is the merge of the windows' (RangeStats). */
  private closedTime: QuantileSketch = this.negativeTimes.sketch();
  /** Read on use, so SIGHUP's new thresholds apply at once (the table size is fixed at start). */
  private get cfg(): AnalyzerContext['config']['analyzers']['dns'] { return this.ctx.config.analyzers.dns; }
  private dropped = 0;
  private lastExpire = -Infinity;
  private readonly worker: boolean;
  /** Servers and names listed per window, at most. */
  private readonly maxServers: number;
  private readonly maxNames: number;
  /** A flow-sharded worker: uncredited responses and timeouts of the window (see DnsPart.orphans), `nOrphans` values used. */
  private orphans = new Float64Array(256);
  private nOrphans = 0;
  private closedPart: DnsPart | null = null;
  private w = this.emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {
    this.worker = ctx.shardRole === 'worker';
    this.maxServers = this.worker ? MAX_SERVERS * WORKER_LISTS : MAX_SERVERS;
    this.maxNames = this.worker ? MAX_NAMES * WORKER_LISTS : MAX_NAMES;
    // A flow-sharded coordinator sees no DNS message: its query table stays empty.
    const n = this.capacity = ctx.shardRole === 'coordinator' ? 1 : ctx.config.analyzers.dns.maxPending;
    // `add` evicts before inserting (oldest settled, then oldest waiting), so the
    // table never evicts by itself; if it did, the id would be forgotten the same way.
    this.table = new KeyTable(n, 2, (id) => {
      if (this.answered[id] === 0 && this.timedOut[id] === 0) this.dropped++;
      this.gen[id]++;
    });
    this.firstTs = new Float64Array(n);
    this.lastTs = new Float64Array(n);
    this.answered = new Uint8Array(n);
    this.timedOut = new Uint8Array(n);
    this.serverKey = new Float64Array(n);
    this.gen = new Uint32Array(n);
    // An id is live in one ring at most (answered late, its timed-out entry goes stale):
    // the slack bounds compaction to a few moves per push.
    this.waiting = new IdRing(2 * n, this.gen);
    this.timedOutRing = new IdRing(2 * n, this.gen);
    this.answeredRing = new IdRing(2 * n, this.gen);
  }

  private emptyWindow(): DnsWindow {
    return {
      queries: 0, responses: 0, retransmissions: 0, unsolicited: 0, timeouts: 0, duplicateResponses: 0, lateResponses: 0,
      rcodes: new Map(), time: new Quantiles(), servers: new Map(), names: new Map(), nameFirst: new Map(),
    };
  }

  /**
   * Wireshark's transaction rules (packet-dns.c, 4.0): the key is the
   * conversation and the id; a query repeats an unanswered one sent less than 5 s earlier
   * (dns.retransmission, timed from the original); a response answers the
   * latest query with its id, however late; a second response is a
   * retransmission and carries no dns.time.
   */
  onPacket(v: PacketView, slot: number): void {
    // Expiry walks the oldest entries: often enough for timeouts to land in their window, not on every packet.
    const now = this.ctx.clock.now;
    if (v.dnsOff >= 0 || now - this.lastExpire >= EXPIRE_INTERVAL) {
      this.lastExpire = now;
      this.expire(now);
    }
    if (v.dnsOff < 0 || slot < 0) return;
    // A retransmitted or out-of-order TCP segment is not a DNS message in Wireshark.
    if (v.transport === Transport.TCP && this.ctx.tcpSequence.result.payloadRepeated) return;
    const table = this.table;
    // The conversation (tcp.stream or udp.stream), not the slot: it outlives a flow that ended idle and resumed, as in
    // Wireshark, and a slot reused by another flow (which slot depends on every flow, so on the worker) never matches.
    table.key[0] = this.ctx.flows.streamIndex[slot]!;
    table.key[1] = (v.transport === Transport.TCP ? 0x10000 : 0) | v.dnsId;
    const q = table.find();
    const w = this.w;
    if (!v.dnsIsResponse) {
      w.queries++;
      this.countName(v);
      if (q >= 0 && this.answered[q] === 0 && v.ts - this.firstTs[q]! < RETRANSMISSION_TIMER) {
        w.retransmissions++;
        return;
      }
      if (q >= 0) this.release(q);
      this.add(v);
      return;
    }
    w.responses++;
    w.rcodes.set(v.dnsRcode, (w.rcodes.get(v.dnsRcode) ?? 0) + 1);
    if (q < 0) { w.unsolicited++; return; }
    if (this.answered[q] === 1) { w.duplicateResponses++; return; }
    this.answered[q] = 1;
    this.lastTs[q] = this.ctx.clock.now;
    const rtt = v.ts - this.firstTs[q]!;
    // The window's set drops negative times (timestamps going backwards); the report's keeps them.
    if (rtt < 0) this.negativeTimes.add(rtt);
    w.time.add(rtt);
    // For the analyzers that break dns.time down (dimensions): they read it in their own onPacket, after this one.
    const match = this.ctx.dnsMatch;
    match.matched = true;
    match.time = rtt;
    if (this.timedOut[q] === 1) {
      w.lateResponses++;
      // Kept from now on, in the answered ring: its timed-out ring entry goes stale.
      this.gen[q]++;
    }
    const server = w.servers.get(this.serverKey[q]!);
    if (server) {
      server.responses++;
      const ns = Math.round(rtt * 1e9);
      server.nanoseconds += ns;
      server.attoseconds += Math.round((rtt - ns / 1e9) * 1e18);
      if (rtt > server.maxTime) server.maxTime = rtt;
    } else if (this.worker) {
      this.orphan(this.serverKey[q]!, ORPHAN_RESPONSE, this.ctx.packetOrder, rtt);
    }
    // Answered: kept a while so duplicate responses are recognised.
    this.answeredRing.push(q);
  }

  /** Remembers the query in `v`, whose key is in `table.key` and not in the table. */
  private add(v: PacketView): void {
    const table = this.table;
    if (table.size >= Math.min(this.cfg.maxPending, this.capacity)) {
      const t = this.timedOutRing.peek();
      const a = this.answeredRing.peek();
      let oldest = t >= 0 && (a < 0 || this.lastTs[t]! <= this.lastTs[a]!) ? this.timedOutRing.shift() : this.answeredRing.shift();
      if (oldest < 0) oldest = this.waiting.shift();
      if (oldest >= 0) {
        if (this.answered[oldest] === 0 && this.timedOut[oldest] === 0) this.dropped++;
        this.release(oldest);
      }
    }
    const q = table.findOrInsert(); // removals leave `key` as it was
    this.firstTs[q] = v.ts;
    this.lastTs[q] = this.ctx.clock.now;
    this.answered[q] = 0;
    this.timedOut[q] = 0;
    // The server is the destination of the query.
    const words = v.dst;
    const serverKey = (Math.imul(words[0]!, 31) ^ Math.imul(words[1]!, 17) ^ Math.imul(words[2]!, 13) ^ words[3]!) * 8 + v.ipVersion;
    this.serverKey[q] = serverKey;
    let server = this.w.servers.get(serverKey);
    if (server === undefined && this.w.servers.size < this.maxServers) {
      server = {
        key: serverKey, address: formatAddress(v.ipVersion, v.dst), queries: 0, responses: 0, nanoseconds: 0, attoseconds: 0, maxTime: 0, timeouts: 0,
        first: this.ctx.packetOrder, firstClock: this.ctx.clock.now,
      };
      this.w.servers.set(serverKey, server);
    }
    if (server) server.queries++;
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
    const seen = names.get(h);
    if (seen !== undefined) names.set(h, seen + 1);
    else if (names.size < this.maxNames) {
      names.set(h, 1);
      if (this.worker) this.w.nameFirst.set(h, this.ctx.packetOrder);
    }
  }

  /** A flow-sharded worker's response or timeout for a server it has no query to in the window (DnsPart.orphans). */
  private orphan(serverKey: number, kind: number, at: number, rtt: number): void {
    if (this.nOrphans + 4 > this.orphans.length) {
      // Rare (responses and timeouts of queries of an earlier window): grows by doubling.
      const bigger = new Float64Array(this.orphans.length * 2);
      bigger.set(this.orphans);
      this.orphans = bigger;
    }
    const o = this.orphans;
    const i = this.nOrphans;
    o[i] = serverKey;
    o[i + 1] = kind;
    o[i + 2] = at;
    o[i + 3] = rtt;
    this.nOrphans = i + 4;
  }

  /**
   * Queries unanswered for `timeout` are counted as timeouts once, then kept
   * (like answered ones) for SETTLED_SECONDS so a late or duplicate response
   * still matches as in Wireshark, which never forgets a transaction.
   */
  private expire(now: number): void {
    const timeout = this.cfg.timeout;
    for (let q = this.waiting.peek(); q >= 0; q = this.waiting.peek()) {
      if (this.answered[q] === 0 && now - this.lastTs[q]! < timeout) break;
      this.waiting.shift();
      if (this.answered[q] === 1) continue; // already in the answered ring
      this.timedOut[q] = 1;
      this.timeout(q);
      this.timedOutRing.push(q);
    }
    this.forget(this.timedOutRing, now);
    this.forget(this.answeredRing, now);
  }

  /** Forgets the queries of `ring` settled SETTLED_SECONDS before `now`: its oldest first (it is in order of lastTs). */
  private forget(ring: IdRing, now: number): void {
    for (let q = ring.peek(); q >= 0; q = ring.peek()) {
      if (now - this.lastTs[q]! < SETTLED_SECONDS) break;
      ring.shift();
      this.release(q);
    }
  }

  private timeout(q: number): void {
    this.w.timeouts++;
    const server = this.w.servers.get(this.serverKey[q]!);
    if (server) server.timeouts++;
    else if (this.worker) this.orphan(this.serverKey[q]!, ORPHAN_TIMEOUT, this.lastTs[q]!, NaN);
  }

  /** Forgets a live query id: ring entries still holding it are now stale. */
  private release(q: number): void {
    this.table.remove(q);
    this.gen[q]++;
  }

  finish(): void {
    // Queries still unanswered at the end: a timeout if they waited long enough, else simply unknown.
    const end = this.ctx.clock.now;
    let unanswered = 0;
    for (let q = this.waiting.shift(); q >= 0; q = this.waiting.shift()) {
      if (this.answered[q] === 1) continue;
      if (end - this.lastTs[q]! >= this.cfg.timeout) this.timeout(q); else unanswered++;
      this.release(q);
    }
    this.w.unansweredAtEnd = unanswered;
  }

  closeWindow(span: WindowSpan): Metrics {
    // Queries whose timeout ran out before the window's end time out in it, whatever packets came (or went to other workers).
    this.expire(lastInstantBefore(span.relEnd));
    const w = this.w;
    if (this.worker) {
      this.closedPart = {
        time: w.time.sketch(true),
        rcodes: [...w.rcodes],
        names: [...w.names].map(([h, n]) => [h, n, w.nameFirst.get(h)!]),
        servers: [...w.servers.values()],
        orphans: Array.from(this.orphans.subarray(0, this.nOrphans)),
      };
      this.nOrphans = 0;
    }
    const metrics = this.endWindow(w, w.time.summary(), w.names.values(), [...w.servers.values()], !this.worker);
    if (this.negativeTimes.count === 0) {
      this.closedTime = w.time.sketch();
    } else {
      const all = new Quantiles(true);
      all.addAll(w.time);
      all.addAll(this.negativeTimes);
      this.closedTime = all.sketch();
      this.negativeTimes.clear();
    }
    this.w = this.emptyWindow();
    return metrics;
  }

  windowPart(): DnsPart | null {
    return this.closedPart;
  }

  /**
   * Counts add up; dns.time is all workers' samples; a name's queries add up,
   * the first MAX_NAMES names by where first seen; so do a server's, its first
   * query the earliest worker's. A worker's uncredited response counts for a
   * listed server when that server's first query came before it in the input;
   * an uncredited timeout when the first query came while its query was still
   * waiting (the first query's packet would have timed it out first).
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly DnsPart[];
    const sums = sumMetrics(input.metrics);
    const time = new Quantiles();
    const rcodes = new Map<number, number>();
    const names = new Map<number, { n: number; first: number }>();
    const servers = new Map<number, ServerStats>();
    for (const p of parts) {
      time.addSketch(p.time);
      for (const [code, n] of p.rcodes) rcodes.set(code, (rcodes.get(code) ?? 0) + n);
      for (const [h, n, first] of p.names) {
        const have = names.get(h);
        if (have === undefined) names.set(h, { n, first });
        else { have.n += n; if (first < have.first) have.first = first; }
      }
      for (const x of p.servers) {
        const have = servers.get(x.key);
        if (have === undefined) { servers.set(x.key, { ...x }); continue; }
        have.queries += x.queries;
        have.responses += x.responses;
        have.nanoseconds += x.nanoseconds;
        have.attoseconds += x.attoseconds;
        have.timeouts += x.timeouts;
        if (x.maxTime > have.maxTime) have.maxTime = x.maxTime;
        if (x.first < have.first) { have.first = x.first; have.firstClock = x.firstClock; have.address = x.address; }
      }
    }
    const listed = new Map([...servers].sort((a, b) => a[1].first - b[1].first).slice(0, MAX_SERVERS));
    const timeout = this.cfg.timeout;
    for (const p of parts) {
      const o = p.orphans;
      for (let i = 0; i < o.length; i += 4) {
        const server = listed.get(o[i]!);
        if (server === undefined) continue;
        if (o[i + 1] === ORPHAN_RESPONSE) {
          if (o[i + 2]! < server.first) continue;
          const rtt = o[i + 3]!;
          server.responses++;
          const ns = Math.round(rtt * 1e9);
          server.nanoseconds += ns;
          server.attoseconds += Math.round((rtt - ns / 1e9) * 1e18);
          if (rtt > server.maxTime) server.maxTime = rtt;
        } else if (server.firstClock - o[i + 2]! < timeout) {
          server.timeouts++;
        }
      }
    }
    const counted = [...names.values()].sort((a, b) => a.first - b.first).slice(0, MAX_NAMES).map((x) => x.n);
    const w: DnsWindow = {
      queries: sums['queries'] as number,
      responses: sums['responses'] as number,
      retransmissions: sums['retransmissions'] as number,
      unsolicited: sums['unsolicited'] as number,
      timeouts: sums['timeouts'] as number,
      duplicateResponses: sums['duplicateResponses'] as number,
      lateResponses: sums['lateResponses'] as number,
      rcodes, time, servers: listed, names: new Map(), nameFirst: new Map(),
    };
    if (typeof sums['unansweredAtEnd'] === 'number') w.unansweredAtEnd = sums['unansweredAtEnd'];
    return this.endWindow(w, time.summary(), counted, [...listed.values()], true);
  }

  /** The window's metrics from its figures (`w`'s counts and rcodes), and its findings when `report`. */
  private endWindow(w: DnsWindow, s: QuantileSummary, nameCounts: Iterable<number>, serverList: ServerStats[], report: boolean): Metrics {
    const servfail = w.rcodes.get(2) ?? 0;
    const rcodes = Object.fromEntries([...w.rcodes].sort((a, b) => a[0] - b[0]).map(([code, n]) => [RCODE_NAMES[code] ?? `RCODE${code}`, n]));
    let repeatedNames = 0;
    let repeatedQueries = 0;
    for (const n of nameCounts) if (n > 1) { repeatedNames++; repeatedQueries += n; }
    const servers = serverList.sort((a, b) => b.queries - a.queries || (a.address < b.address ? -1 : 1)).slice(0, 10)
      .map((x) => ({
        server: x.address, queries: x.queries, responses: x.responses, timeouts: x.timeouts,
        meanTime: x.responses ? round9((x.nanoseconds / 1e9 + x.attoseconds / 1e18) / x.responses) : null, maxTime: x.responses ? round9(x.maxTime) : null,
      }));
    const c = this.cfg;
    if (report && s.p90 !== null && s.p90 >= c.warning) {
      this.ctx.report({
        type: 'dns_latency', severity: s.p90 >= c.critical ? 'critical' : 'warning', key: 'window',
        summary: `DNS responses are slow: 90 % within ${duration(s.p90)} (${plural(s.count, 'response')}).`,
        evidence: { responses: s.count, p50: s.p50, p90: s.p90, max: s.max },
      });
    }
    if (report && w.timeouts > 0) {
      this.ctx.report({
        type: 'dns_timeout', severity: w.timeouts >= 10 ? 'warning' : 'info', key: 'window',
        summary: `${plural(w.timeouts, 'DNS query', 'DNS queries')} got no answer within ${duration(c.timeout)}.`,
        evidence: { timeouts: w.timeouts, queries: w.queries, server: servers[0]?.server ?? null },
      });
    }
    const failures = servfail + (w.rcodes.get(5) ?? 0);
    if (report && failures > 0) {
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
      repeatedNames,
      repeatedQueries,
      servers,
    };
    if (w.unansweredAtEnd !== undefined) metrics['unansweredAtEnd'] = w.unansweredAtEnd;
    return metrics;
  }

  counters(): Record<string, number> {
    return this.dropped ? { 'dns.pending_dropped': this.dropped } : {};
  }

  rangeInputs(): { stats: Record<string, QuantileSketch> } {
    return { stats: { [DNS_TIME]: this.closedTime } };
  }
}


/**
 * FIFO of query ids, preallocated, that skips entries whose id was freed
 * since they were pushed (the owner's generation column moved on). When full
 * it compacts in place, keeping the live entries in order.
 */
class IdRing {
  private readonly ids: Int32Array;
  /** The generation of each entry's id when pushed. */
  private readonly gens: Uint32Array;
  private head = 0;
  private size = 0;

  constructor(capacity: number, private readonly gen: Uint32Array) {
    this.ids = new Int32Array(Math.max(1, capacity));
    this.gens = new Uint32Array(this.ids.length);
  }

  push(id: number): void {
    const n = this.ids.length;
    if (this.size === n) {
      this.compact();
      if (this.size === n) throw new RangeError('dns: query ring full of live entries');
    }
    let i = this.head + this.size;
    if (i >= n) i -= n;
    this.ids[i] = id;
    this.gens[i] = this.gen[id]!;
    this.size++;
  }

  /** The oldest live id, without removing it; -1 when none. */
  peek(): number {
    const n = this.ids.length;
    while (this.size > 0) {
      const id = this.ids[this.head]!;
      if (this.gens[this.head] === this.gen[id]) return id;
      if (++this.head === n) this.head = 0;
      this.size--;
    }
    return -1;
  }

  /** Removes and returns the oldest live id; -1 when none. */
  shift(): number {
    const id = this.peek();
    if (id >= 0) {
      if (++this.head === this.ids.length) this.head = 0;
      this.size--;
    }
    return id;
  }

  /** Drops the stale entries, keeping the order of the others (from `head` on, wrapping). */
  private compact(): void {
    const n = this.ids.length;
    const ids = this.ids;
    const gens = this.gens;
    let to = this.head;
    let kept = 0;
    for (let k = 0, from = this.head; k < this.size; k++) {
      const id = ids[from]!;
      if (gens[from] === this.gen[id]) {
        ids[to] = id;
        gens[to] = gens[from]!;
        if (++to === n) to = 0;
        kept++;
      }
      if (++from === n) from = 0;
    }
    this.size = kept;
  }
}
