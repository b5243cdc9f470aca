/**
 * ICMP and ICMPv6: destination unreachable by code with the quoted original
 * flow, fragmentation needed / packet too big with the MTU, time exceeded.
 * Counters follow Wireshark's icmp.type of the outer ICMP header.
 *
 * A window lists unreachable codes, quoted flows and MTUs in the order first
 * seen, the first MAX_LISTED quoted flows and MTUs only. Flow-sharded
 * workers (issue 13) note where in the input each was first seen
 * (ctx.packetOrder) and give them in their part; the coordinator lists the
 * first of all workers' and reports. A worker keeps up to WORKER_MAX_LISTED
 * of each, so the merge is exact unless a window has more distinct ones than
 * that. Beyond, quoted flows still are: an ICMP error goes to the worker of
 * the host pair it quotes (shard-hash.ts; a fragmented one excepted), so a
 * worker's first hold every one of the first MAX_LISTED overall, with all
 * its messages; an MTU can come from any worker.
 */
import { formatAddress } from '../../common/address.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { plural } from './lib/format.js';

const UNREACHABLE_CODES: Record<number, string> = {
  0: 'network', 1: 'host', 2: 'protocol', 3: 'port', 4: 'fragmentation_needed', 5: 'source_route_failed',
  6: 'network_unknown', 7: 'host_unknown', 9: 'network_prohibited', 10: 'host_prohibited', 13: 'communication_prohibited',
};
const UNREACHABLE6_CODES: Record<number, string> = {
  0: 'no_route', 1: 'prohibited', 2: 'beyond_scope', 3: 'address', 4: 'port', 5: 'policy_failed', 6: 'reject_route',
};
/** Distinct quoted flows and MTUs remembered per window (bounded). */
const MAX_LISTED = 20;
/** Distinct quoted flows and MTUs a flow-sharded worker remembers per window (see above). */
const WORKER_MAX_LISTED = 1024;

/** Counts by key, each with where in the input it was first seen. */
type Listed<K> = Map<K, { n: number; first: number }>;

interface IcmpWindow {
  messages: number; echoRequests: number; echoReplies: number; timeExceeded: number;
  unreachable: Listed<string>; mtus: Listed<number>; quoted: Listed<string>;
}

/** A flow-sharded worker's part of a window: its lists as [key, count, first seen]. */
interface IcmpPart {
  unreachable: Array<[string, number, number]>;
  mtus: Array<[number, number, number]>;
  quoted: Array<[string, number, number]>;
}

export function createIcmpAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new IcmpAnalyzer(ctx);
}

class IcmpAnalyzer implements Analyzer {
  readonly id = 'icmp';
  private type3 = 0;
  private type11 = 0;
  private w = emptyWindow();
  private readonly maxListed: number;
  /** A flow-sharded worker: the closed window's part. */
  private closedPart: IcmpPart | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    this.maxListed = ctx.shardRole === 'worker' ? WORKER_MAX_LISTED : MAX_LISTED;
  }

  onIcmpMessage(v: PacketView): void {
    const t = v.transport;
    const type = v.icmpType;
    const v6 = t === Transport.ICMPV6;
    const w = this.w;
    w.messages++;
    if (!v6) {
      if (type === 3) this.type3++;
      else if (type === 11) this.type11++;
    }
    if (v6 ? type === 128 : type === 8) { w.echoRequests++; return; }
    if (v6 ? type === 129 : type === 0) { w.echoReplies++; return; }
    const unreachable = v6 ? type === 1 : type === 3;
    const tooBig = v6 ? type === 2 : type === 3 && v.icmpCode === 4;
    const exceeded = v6 ? type === 3 : type === 11;
    if (!unreachable && !tooBig && !exceeded) return;
    // Error messages are rare: the allocations below are off the common path.
    const at = this.ctx.packetOrder;
    if (unreachable) count(w.unreachable, (v6 ? UNREACHABLE6_CODES : UNREACHABLE_CODES)[v.icmpCode] ?? `code_${v.icmpCode}`, Infinity, at);
    if (tooBig && v.icmpMtu > 0) count(w.mtus, v.icmpMtu, this.maxListed, at);
    if (exceeded) w.timeExceeded++;
    if (v.innerIpVersion !== 0) {
      const proto = v.innerProto === 6 ? 'tcp' : v.innerProto === 17 ? 'udp' : `ip.proto.${v.innerProto}`;
      const src = formatAddress(v.innerIpVersion, v.innerSrc);
      const dst = formatAddress(v.innerIpVersion, v.innerDst);
      const key = v.innerProto === 6 || v.innerProto === 17 ? `${proto} ${src}:${v.innerSrcPort} -> ${dst}:${v.innerDstPort}` : `${proto} ${src} -> ${dst}`;
      count(w.quoted, key, this.maxListed, at);
    }
  }

  closeWindow(): Metrics {
    const w = this.w;
    // A flow-sharded worker has some of the window's messages: its coordinator reports on all.
    if (this.ctx.shardRole === 'worker') {
      const part = (m: Listed<string | number>): Array<[string | number, number, number]> => [...m].map(([k, e]) => [k, e.n, e.first]);
      this.closedPart = { unreachable: part(w.unreachable) as IcmpPart['unreachable'], mtus: part(w.mtus) as IcmpPart['mtus'], quoted: part(w.quoted) as IcmpPart['quoted'] };
    }
    const metrics = this.endWindow(w, this.ctx.shardRole !== 'worker');
    this.w = emptyWindow();
    return metrics;
  }

  windowPart(): IcmpPart | null {
    return this.closedPart;
  }

  /** Counts add up; each list is all workers' entries by where first seen, the first MAX_LISTED of the quoted flows and MTUs. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly IcmpPart[];
    const sums = sumMetrics(input.metrics);
    const w = emptyWindow();
    w.messages = sums['messages'] as number;
    w.echoRequests = sums['echoRequests'] as number;
    w.echoReplies = sums['echoReplies'] as number;
    w.timeExceeded = sums['timeExceeded'] as number;
    w.unreachable = mergeListed(parts.map((p) => p.unreachable), Infinity);
    w.mtus = mergeListed(parts.map((p) => p.mtus), MAX_LISTED);
    w.quoted = mergeListed(parts.map((p) => p.quoted), MAX_LISTED);
    return this.endWindow(w, true);
  }

  /** The window's metrics, and its findings when `report`. */
  private endWindow(w: IcmpWindow, report: boolean): Metrics {
    const unreachable: Record<string, number> = {};
    for (const [name, e] of w.unreachable) unreachable[name] = e.n;
    const unreachableTotal = Object.values(unreachable).reduce((a, b) => a + b, 0);
    if (report && unreachableTotal > 0) {
      this.ctx.report({
        type: 'icmp_unreachable',
        severity: unreachableTotal >= 100 ? 'warning' : 'info',
        key: Object.keys(unreachable).sort().join(','),
        summary: `${plural(unreachableTotal, 'ICMP destination-unreachable message')} (${Object.entries(unreachable).map(([k, n]) => `${k} ${n}`).join(', ')}).`,
        evidence: { ...prefixed('code.', unreachable), total: unreachableTotal, firstQuotedFlow: [...w.quoted.keys()][0] ?? null },
      });
    }
    if (report && w.mtus.size > 0) {
      const smallest = Math.min(...w.mtus.keys());
      this.ctx.report({
        type: 'path_mtu',
        severity: 'warning',
        key: String(smallest),
        summary: `A router reported that packets must be at most ${smallest} bytes (fragmentation needed / packet too big).`,
        evidence: { smallestMtu: smallest, messages: [...w.mtus.values()].reduce((a, b) => a + b.n, 0) },
      });
    }
    if (report && w.timeExceeded > 0) {
      this.ctx.report({
        type: 'icmp_time_exceeded',
        severity: 'info',
        key: 'window',
        summary: `${plural(w.timeExceeded, 'ICMP time-exceeded message')} (a TTL ran out: a routing loop or a traceroute).`,
        evidence: { messages: w.timeExceeded },
      });
    }
    return {
      messages: w.messages,
      echoRequests: w.echoRequests,
      echoReplies: w.echoReplies,
      unreachable,
      timeExceeded: w.timeExceeded,
      mtus: Object.fromEntries([...w.mtus].map(([mtu, e]) => [mtu, e.n] as const).sort((a, b) => a[0] - b[0])),
      quotedFlows: Object.fromEntries([...w.quoted].map(([k, e]) => [k, e.n])),
    };
  }

  counters(): Record<string, number> {
    return { 'icmp.type.3': this.type3, 'icmp.type.11': this.type11 };
  }
}

function prefixed(prefix: string, counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [`${prefix}${k}`, v]));
}

function emptyWindow(): IcmpWindow {
  return { messages: 0, echoRequests: 0, echoReplies: 0, timeExceeded: 0, unreachable: new Map(), mtus: new Map(), quoted: new Map() };
}

/** Counts one of `key`, first seen at input position `at`, unless `m` already has `max` other keys. */
function count<K>(m: Listed<K>, key: K, max: number, at: number): void {
  const e = m.get(key);
  if (e !== undefined) e.n++;
  else if (m.size < max) m.set(key, { n: 1, first: at });
}

/** Workers' lists as one: counts added up by key, keys by where first seen, the first `max`. */
function mergeListed<K>(lists: ReadonlyArray<ReadonlyArray<[K, number, number]>>, max: number): Listed<K> {
  const all = new Map<K, { n: number; first: number }>();
  for (const list of lists) {
    for (const [k, n, first] of list) {
      const e = all.get(k);
      if (e === undefined) all.set(k, { n, first });
      else { e.n += n; if (first < e.first) e.first = first; }
    }
  }
  return new Map([...all].sort((a, b) => a[1].first - b[1].first).slice(0, max));
}
