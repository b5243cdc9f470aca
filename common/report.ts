/**
 * The JSON report (`pcap-analyzer/report@1`) written by `analyze` and served by
 * the collector. Later versions add keys, never rename. Text: report-text.ts.
 */
export const REPORT_SCHEMA = 'pcap-analyzer/report@1';

/** How a report names its source: `analyze -` read standard input (source.path stays "-" in the JSON). */
export function sourceLabel(path: string): string {
  return path === '-' ? 'standard input' : path;
}

export interface ReportSource {
  /** The capture file, or `sensor:<id>` for a collector's report of a time range. */
  path: string;
  /** `sensor`: built by the collector from the windows a sensor published. */
  format: 'pcap' | 'pcapng' | 'sensor';
  compressed: boolean;
  /** libpcap names of the link types present (EN10MB, LINUX_SLL, ...). */
  linkTypes: string[];
}

export interface ReportCapture {
  packets: number;
  /** Sum of frame lengths on the wire (frame.len). */
  bytes: number;
  /** Earliest and latest packet time, ISO-8601 UTC; null without packets. */
  first: string | null;
  last: string | null;
  durationSeconds: number;
  /** Records cut off by the end of the input (0 or 1). */
  truncatedRecords: number;
  /** Malformed layers and records, by reason. */
  decodeErrors: Record<string, number>;
  /** Frames of link types the decoder does not know, by link type: counted, not errors. */
  undecoded: Record<string, number>;
  /** Flows ended early because the flow table was full (flows.maxFlows). */
  flowsEvicted: number;
  /**
   * Ended TCP/UDP conversations forgotten because more ended than flows.endedConversations remembers: one that
   * resumed afterwards got a new tcp.stream / udp.stream number where Wireshark keeps the old one. Absent in
   * reports written before it was counted.
   */
  conversationsForgotten?: number;
}

/** Frame counts named after Wireshark display-filter fields: a frame counts once where the protocol is present. */
export type ReportCounters = Record<string, number>;

/**
 * The counters every report lists, zeros included (the default analyzers); others
 * (tcp.analysis.untracked_segments, dns.pending_dropped) are listed when not 0.
 */
export const REPORT_COUNTERS: readonly string[] = [
  'frames', 'eth', 'vlan', 'ip', 'ipv6', 'tcp', 'udp', 'icmp', 'icmpv6', 'dns', 'ip.fragments', 'tcp.flags.syn', 'tcp.flags.reset',
  'dns.flags.response', 'dns.flags.rcode.nxdomain', 'tcp.streams', 'udp.streams', 'tcp.analysis.retransmission',
  'tcp.analysis.fast_retransmission', 'tcp.analysis.spurious_retransmission', 'tcp.analysis.out_of_order', 'tcp.analysis.duplicate_ack',
  'tcp.analysis.lost_segment', 'tcp.analysis.ack_lost_segment', 'tcp.analysis.keep_alive', 'tcp.analysis.keep_alive_ack',
  'tcp.analysis.window_update', 'tcp.analysis.zero_window', 'tcp.analysis.zero_window_probe', 'tcp.analysis.window_full',
  'icmp.type.3', 'icmp.type.11', 'http.request', 'http.response',
];

export interface ReportFlow {
  proto: string;
  client: string;
  clientPort: number;
  server: string;
  serverPort: number;
  packets: number;
  bytes: number;
  first: string;
  last: string;
  state: string;
  /** tcp.stream / udp.stream index, in order of first packet. */
  stream: number;
  /** The server name the traffic proved (serverName), else the IANA service name of serverPort; absent when neither. */
  service?: string;
  /** The server's name proved by the flow's payload or a DNS answer the client received. */
  serverName?: string;
  /** Where serverName came from: tls.sni, http.host or dns. */
  serverNameSource?: string;
  /** Behaviour class at the flow's end: interactive, bulk, streaming, control or unknown (docs/analyzers.md). */
  behaviour?: string;
}

export const FINDING_SEVERITIES = ['info', 'warning', 'critical'] as const;
export type FindingSeverity = typeof FINDING_SEVERITIES[number];

/**
 * Every finding type an analyzer reports (the agent's drafts are typed by it, so a new
 * type is added here). The collector labels its metrics only with these: a message may
 * name any type, and label values driven by message content would be unbounded.
 */
export const FINDING_TYPES = [
  'beaconing', 'brute_force', 'capture_gap', 'connection_refused', 'connection_reset', 'dns_errors', 'dns_latency',
  'dns_timeout', 'dns_tunneling', 'exfiltration', 'failed_handshake', 'flood', 'high_jitter', 'high_rtt', 'http_errors', 'http_slow',
  'icmp_time_exceeded', 'icmp_unreachable', 'ip_fragmentation', 'lateral_movement', 'one_way_flow', 'path_mtu',
  'port_scan', 'slow_handshake', 'syn_retransmission', 'tcp_retransmissions', 'timestamps_backwards', 'tls_deprecated_version',
  'tls_handshake_failure', 'traffic_burst',
  'zero_window', 'zombie_flows',
] as const;
export type FindingType = typeof FINDING_TYPES[number];

/** Finding types of the security detectors (attacks, not network performance). */
export const SECURITY_FINDING_TYPES: ReadonlySet<string> = new Set(['beaconing', 'brute_force', 'dns_tunneling', 'exfiltration', 'flood', 'lateral_movement', 'port_scan']);

/** Security findings above info, by severity: what the reports show beside the health score. */
export function securityFindingCounts(findings: ReadonlyArray<Pick<Finding, 'type' | 'severity'>>): { critical: number; warning: number } {
  const counts = { critical: 0, warning: 0 };
  for (const f of findings) {
    if (!SECURITY_FINDING_TYPES.has(f.type)) continue;
    if (f.severity === 'critical') counts.critical++;
    else if (f.severity === 'warning') counts.warning++;
  }
  return counts;
}

/**
 * What the health score rates, said wherever a score is shown (text and HTML
 * reports, the collector's pages): a capture with a critical port scan can score
 * "excellent", because the score is about how well the network carries traffic.
 */
export const HEALTH_SCOPE = 'The health score rates network performance only (retransmissions, packet loss, RTT, DNS, jitter;'
  + ' findings cost it at most 10 points): it does not rate security; the security findings do.';

export interface FlowRef {
  proto: string;
  client: string;
  clientPort: number;
  server: string;
  serverPort: number;
  /** As in ReportFlow: the proved server name else the port's IANA service name. */
  service?: string;
  serverName?: string;
  serverNameSource?: string;
}

export interface Finding {
  /** Stable hash of the finding's identity (type, window, key): the same input gives the same ids. */
  id: string;
  type: string;
  severity: FindingSeverity;
  window: { start: string; end: string };
  flow?: FlowRef;
  host?: string;
  /** One sentence. */
  summary: string;
  evidence: Record<string, number | string | boolean | null>;
}

export interface QuantileStat {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

/**
 * One window's samples of a distribution, mergeable with other windows' (agent/analyzers/lib/quantiles.ts):
 * up to 256 samples as they are (at most 6.2 KB of JSON), or log buckets 1 % wide (±0.5 % relative error), at most
 * 1,024 of them (at most 17.4 KB), the lowest folded into the lowest kept.
 */
export interface QuantileSketch {
  count: number;
  /** The largest sample; null without samples. */
  max: number | null;
  /** The samples, ascending (at most 256): a set this small merges without error. */
  exact?: number[];
  /** Else buckets: [exponent e, samples] for values in (1.01^(e-1), 1.01^e], positive and negative values apart. */
  positive?: Array<[number, number]>;
  negative?: Array<[number, number]>;
  /** Samples within ±1e-9 of 0. */
  zero?: number;
}

/** The report's distributions, by name: `stats` in every report (tcp.analysis.ack_rtt, dns.time, http.first_byte_time). */
export const REPORT_DISTRIBUTIONS = ['tcp.analysis.ack_rtt', 'dns.time', 'http.first_byte_time'] as const;
export type ReportDistribution = typeof REPORT_DISTRIBUTIONS[number];

/**
 * One window's inputs of the whole-capture health score: counts are summed over
 * windows; a percentile is averaged over windows weighted by its samples.
 */
export interface HealthTotals {
  dataSegments: number;
  retransmissions: number;
  lostSegments: number;
  dnsQueries: number;
  /** DNS timeouts and server failures. */
  dnsFailures: number;
  /** Findings above info. */
  anomalies: number;
  /** The window's p90 and its weight (samples, at least 1); null without samples. */
  rttP90: [number, number] | null;
  dnsP90: [number, number] | null;
  jitterP90: [number, number] | null;
}

/**
 * What a report of a range of windows merges besides counters (agent windows): the
 * window's distributions as sketches and its health inputs. Merged over windows, they
 * give `stats` and `healthScore` as `analyze` gives them (it merges the same).
 */
export interface RangeInputs {
  stats: Record<string, QuantileSketch>;
  health: HealthTotals | null;
}

export interface HealthComponent { name: string; value: number | null; penalty: number; weight: number }
export interface HealthScore { score: number; class: string; components: HealthComponent[] }

export interface WindowSummary {
  start: string;
  end: string;
  packets: number;
  bytes: number;
  flows: { active: number; new: number; closed: number };
  /** Packets stamped earlier than the window they were attributed to. */
  outOfOrderTimestamps: number;
  /** Each analyzer's metrics, by analyzer id. */
  metrics: Record<string, Record<string, unknown>>;
  healthScore: number | null;
  /** Findings over report.maxFindingsPerType in this window, by type: counted, not listed. */
  findingsSuppressed?: Record<string, number>;
  /** The agent's capture during this window (absent in `analyze`): how complete the window is. */
  capture?: WindowCapture;
  /** The report's counters for this window alone (agent): summed over windows, they give a report's `counters`. */
  counters?: Record<string, number>;
  /** What `stats` and `healthScore` of a range are merged from (agent; absent from windows of agents before it). */
  rangeInputs?: RangeInputs;
}

/** Packets missed while capturing, by where they were lost. */
export interface CaptureDrops {
  /** Dropped by the kernel: the capture buffer was full (pcap_stats ps_drop). */
  kernel: number;
  /** Dropped by the interface or its driver (pcap_stats ps_ifdrop). */
  interface: number;
  /** Delivered by libpcap but not analyzed: the agent's own losses, counted as they happen (an internal error on a packet). */
  agent: number;
}

export interface WindowCapture {
  /**
   * Packets libpcap reported received during the window (pcap_stats ps_recv; replay: packets read).
   * Not a count of packets delivered: on loopback libpcap counts each packet twice.
   */
  received: number;
  drops: CaptureDrops;
  // The rest: the report's `capture` for this window alone, merged over windows into a range report's (absent from agents before them).
  /** Earliest and latest packet time of the window's packets, [epoch seconds, nanoseconds]; absent without packets. */
  first?: [number, number];
  last?: [number, number];
  /** Malformed layers and records, undecoded link types, flows evicted, conversations forgotten, cut-short inputs: during the window. */
  decodeErrors?: Record<string, number>;
  undecoded?: Record<string, number>;
  flowsEvicted?: number;
  conversationsForgotten?: number;
  truncatedRecords?: number;
  /** libpcap names of the link types of the source so far (EN10MB, ...). */
  linkTypes?: string[];
}

export interface Report {
  schema: typeof REPORT_SCHEMA;
  source: ReportSource;
  capture: ReportCapture;
  counters: ReportCounters;
  flows: ReportFlow[];
  windows: WindowSummary[];
  findings: Finding[];
  /** Distributions in seconds, named after Wireshark fields (tcp.analysis.ack_rtt, dns.time). */
  stats?: Record<string, QuantileStat>;
  healthScore?: HealthScore;
  /**
   * Parts of the report a collector could not compute for the range, with why (e.g. windows
   * published by an agent that did not send the inputs of `stats`). Absent when nothing is missing.
   */
  missing?: Record<string, string>;
}

type ReportLists = 'windows' | 'findings';

/** The report's JSON text in pieces, with a marker where each long list's items go. */
function* reportJsonLayout(r: Report): Generator<string | { list: ReportLists; comma: string }> {
  const keys = Object.keys(r) as Array<keyof Report>;
  yield '{\n';
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k]!;
    const comma = k < keys.length - 1 ? ',' : '';
    if (key === 'windows' || key === 'findings') yield { list: key, comma };
    else yield `  ${JSON.stringify(key)}: ${JSON.stringify(r[key], null, 2).replace(/\n/g, '\n  ')}${comma}\n`;
  }
  yield '}\n';
}

/** One element of a long list: the list's opening before the first. */
const listItem = (list: ReportLists, first: boolean, item: unknown): string => `${first ? `  ${JSON.stringify(list)}: [\n` : ',\n'}    ${JSON.stringify(item)}`;
const listEnd = (list: ReportLists, empty: boolean, comma: string): string => (empty ? `  ${JSON.stringify(list)}: []${comma}\n` : `\n  ]${comma}\n`);

/**
 * The report as JSON text, in pieces: small parts pretty-printed, `windows`
 * and `findings` one compact element per line, so a long capture's report is
 * written without ever holding the whole text in memory.
 */
export function* reportJsonChunks(r: Report, lists: { windows?: Iterable<WindowSummary>; findings?: Iterable<Finding> } = {}): Generator<string> {
  for (const part of reportJsonLayout(r)) {
    if (typeof part === 'string') { yield part; continue; }
    let first = true;
    for (const item of (lists[part.list] ?? r[part.list]) as Iterable<unknown>) { yield listItem(part.list, first, item); first = false; }
    yield listEnd(part.list, first, part.comma);
  }
}

/** reportJsonChunks with lists read as they are written (from a database, in pages). */
export async function* reportJsonChunksAsync(r: Report, lists: { windows: AsyncIterable<WindowSummary>; findings: AsyncIterable<Finding> }): AsyncGenerator<string> {
  for (const part of reportJsonLayout(r)) {
    if (typeof part === 'string') { yield part; continue; }
    let first = true;
    for await (const item of lists[part.list]) { yield listItem(part.list, first, item); first = false; }
    yield listEnd(part.list, first, part.comma);
  }
}
