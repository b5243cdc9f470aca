/**
 * Named decode anomalies. A malformed layer sets one of these and is counted;
 * the packet keeps its valid outer layers. Names are `<layer>.<reason>` and
 * appear as keys of the report's `capture.decodeErrors`.
 */
export const ANOMALY_NAMES = [
  'none',
  'eth.truncated',
  'vlan.truncated',
  'sll.truncated',
  'null.truncated',
  'pppoe.truncated',
  'mpls.truncated',
  'ip.truncated',
  'ip.bad_version',
  'ip.bad_header_length',
  'ip.bad_total_length',
  'ipv6.truncated',
  'ipv6.ext_truncated',
  'ipv6.bad_payload_length',
  'tcp.truncated',
  'tcp.bad_data_offset',
  'tcp.options_truncated',
  'udp.truncated',
  'udp.bad_length',
  'icmp.truncated',
  'icmpv6.truncated',
  'icmp.quoted_truncated',
  'dns.truncated',
  'dns.bad_name',
  'ip.reassembly_evicted',
  'ip.reassembly_timeout',
  'ip.fragment_overlap',
  'ip.fragment_too_many',
  'tunnel.too_deep',
] as const;

export type AnomalyName = (typeof ANOMALY_NAMES)[number];

export const Anomaly = Object.fromEntries(ANOMALY_NAMES.map((name, id) => [name, id])) as { readonly [K in AnomalyName]: number };

/** Counts per anomaly id; one array per decoder, never reallocated. */
export class AnomalyCounters {
  readonly counts = new Float64Array(ANOMALY_NAMES.length);
  add(id: number): void { this.counts[id]++; }
  /** Non-zero counts by name, for reports. */
  toRecord(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 1; i < ANOMALY_NAMES.length; i++) if (this.counts[i]) out[ANOMALY_NAMES[i]!] = this.counts[i]!;
    return out;
  }
}
