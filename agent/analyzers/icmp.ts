/**
 * ICMP and ICMPv6: destination unreachable by code with the quoted original
 * flow, fragmentation needed / packet too big with the MTU, time exceeded.
 * Counters follow Wireshark's icmp.type of the outer ICMP header.
 */
import { formatAddress } from '../../common/address.js';
import { Transport } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';
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

export function createIcmpAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new IcmpAnalyzer(ctx);
}

class IcmpAnalyzer implements Analyzer {
  readonly id = 'icmp';
  private type3 = 0;
  private type11 = 0;
  private w = this.emptyWindow();

  constructor(private readonly ctx: AnalyzerContext) {}

  private emptyWindow(): { messages: number; echoRequests: number; echoReplies: number; unreachable: Record<string, number>; timeExceeded: number; mtus: Map<number, number>; quoted: Map<string, number>; } {
    return { messages: 0, echoRequests: 0, echoReplies: 0, unreachable: {}, timeExceeded: 0, mtus: new Map(), quoted: new Map() };
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
    if (unreachable) {
      const name = (v6 ? UNREACHABLE6_CODES : UNREACHABLE_CODES)[v.icmpCode] ?? `code_${v.icmpCode}`;
      w.unreachable[name] = (w.unreachable[name] ?? 0) + 1;
    }
    if (tooBig && v.icmpMtu > 0 && (w.mtus.has(v.icmpMtu) || w.mtus.size < MAX_LISTED)) w.mtus.set(v.icmpMtu, (w.mtus.get(v.icmpMtu) ?? 0) + 1);
    if (exceeded) w.timeExceeded++;
    if (v.innerIpVersion !== 0) {
      const proto = v.innerProto === 6 ? 'tcp' : v.innerProto === 17 ? 'udp' : `ip.proto.${v.innerProto}`;
      const src = formatAddress(v.innerIpVersion, v.innerSrc);
      const dst = formatAddress(v.innerIpVersion, v.innerDst);
      const key = v.innerProto === 6 || v.innerProto === 17 ? `${proto} ${src}:${v.innerSrcPort} -> ${dst}:${v.innerDstPort}` : `${proto} ${src} -> ${dst}`;
      if (w.quoted.has(key) || w.quoted.size < MAX_LISTED) w.quoted.set(key, (w.quoted.get(key) ?? 0) + 1);
    }
  }

  closeWindow(): Metrics {
    const w = this.w;
    const unreachableTotal = Object.values(w.unreachable).reduce((a, b) => a + b, 0);
    if (unreachableTotal > 0) {
      this.ctx.report({
        type: 'icmp_unreachable',
        severity: unreachableTotal >= 100 ? 'warning' : 'info',
        key: Object.keys(w.unreachable).sort().join(','),
        summary: `${plural(unreachableTotal, 'ICMP destination-unreachable message')} (${Object.entries(w.unreachable).map(([k, n]) => `${k} ${n}`).join(', ')}).`,
        evidence: { ...prefixed('code.', w.unreachable), total: unreachableTotal, firstQuotedFlow: [...w.quoted.keys()][0] ?? null },
      });
    }
    if (w.mtus.size > 0) {
      const smallest = Math.min(...w.mtus.keys());
      this.ctx.report({
        type: 'path_mtu',
        severity: 'warning',
        key: String(smallest),
        summary: `A router reported that packets must be at most ${smallest} bytes (fragmentation needed / packet too big).`,
        evidence: { smallestMtu: smallest, messages: [...w.mtus.values()].reduce((a, b) => a + b, 0) },
      });
    }
    if (w.timeExceeded > 0) {
      this.ctx.report({
        type: 'icmp_time_exceeded',
        severity: 'info',
        key: 'window',
        summary: `${plural(w.timeExceeded, 'ICMP time-exceeded message')} (a TTL ran out: a routing loop or a traceroute).`,
        evidence: { messages: w.timeExceeded },
      });
    }
    const metrics: Metrics = {
      messages: w.messages,
      echoRequests: w.echoRequests,
      echoReplies: w.echoReplies,
      unreachable: w.unreachable,
      timeExceeded: w.timeExceeded,
      mtus: Object.fromEntries([...w.mtus].sort((a, b) => a[0] - b[0])),
      quotedFlows: Object.fromEntries(w.quoted),
    };
    this.w = this.emptyWindow();
    return metrics;
  }

  counters(): Record<string, number> {
    return { 'icmp.type.3': this.type3, 'icmp.type.11': this.type11 };
  }
}

function prefixed(prefix: string, counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [`${prefix}${k}`, v]));
}
