/**
 * The agent's Prometheus metrics. Counters follow the capture thread's
 * running totals (we add the difference), gauges take the latest window's
 * figures. Labels carry only bounded values (reasons, finding types,
 * severities, results): never addresses or ports.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { collectStandardMetrics } from '../../common/default-metrics.js';
import { FINDING_SEVERITIES, FINDING_TYPES, type CaptureDrops, type Finding, type WindowSummary } from '../../common/report.js';
import { ANOMALY_NAMES } from '../decode/anomaly.js';
import type { PublisherStats } from '../publish/index.js';
import type { CaptureCounters } from './protocol.js';

const PREFIX = 'pcap_analyzer_';

/** Where packets are missed: the `where` label's values. */
const DROP_PLACES: ReadonlyArray<keyof CaptureDrops> = ['kernel', 'interface', 'agent'];
const PUBLISH_RESULTS = ['ok', 'duplicate', 'failed', 'too_large'] as const;

/** A dimension value label: a VLAN or interface id, "untagged" or "other". */
const DIMENSION_VALUE = /^(\d{1,5}|untagged|other)$/;
/** Values per dimension exported at most (analyzers.dimensions.maxValues' bound, plus "other"). */
const MAX_DIMENSION_VALUES = 1025;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const finite = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** p50, p90 and p99 of a quantile summary ({count, p50, ...}) as `quantile` series, when it has samples. */
function setQuantiles(g: Gauge<string>, source: unknown, labels: Record<string, string>): void {
  if (!isRecord(source) || !finite(source['count'])) return;
  for (const q of ['p50', 'p90', 'p99'] as const) {
    const v = finite(source[q]);
    if (v !== undefined) g.set({ ...labels, quantile: `0.${q.slice(1)}` }, v);
  }
}

/** A counter fed from a running total: adds what the total grew by. */
class TotalCounter {
  private last = new Map<string, number>();
  /** `known`: the label sets that exist from the start, exported as 0 so `rate()` sees them before the first event. */
  constructor(private readonly counter: Counter<string>, known: ReadonlyArray<Record<string, string>> = []) {
    for (const labels of known) counter.inc(labels, 0);
  }
  /** A label set learnt after start, exported as 0 from now on. */
  declare(labels: Record<string, string>): void {
    this.counter.inc(labels, 0);
  }
  set(total: number, labels: Record<string, string> = {}): void {
    const key = JSON.stringify(labels);
    const before = this.last.get(key) ?? 0;
    if (total > before) this.counter.inc(labels, total - before);
    this.last.set(key, Math.max(before, total));
  }
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly packets: TotalCounter;
  private readonly bytes: TotalCounter;
  private readonly received: TotalCounter;
  private readonly drops: TotalCounter;
  private readonly decodeErrors: TotalCounter;
  private readonly flowsEvicted: TotalCounter;
  private readonly conversationsForgotten: TotalCounter;
  private readonly tableEvictions: TotalCounter;
  private readonly published: TotalCounter;
  private readonly spoolOverflow: TotalCounter;
  private readonly flowsActive: Gauge<string>;
  private readonly windowLag: Gauge<string>;
  private readonly windows: Counter<string>;
  private readonly findings: Counter<string>;
  private readonly spoolMessages: Gauge<string>;
  private readonly spoolBytes: Gauge<string>;
  private readonly natsConnected: Gauge<string>;
  private readonly ready: Gauge<string>;
  private readonly retransmissionRate: Gauge<string>;
  private readonly rtt: Gauge<string>;
  private readonly dnsLatency: Gauge<string>;
  private readonly dnsFailureRatio: Gauge<string>;
  private readonly healthScore: Gauge<string>;
  private readonly windowDrops: Gauge<string>;
  private readonly dimensionPackets: Gauge<string>;
  private readonly dimensionBytes: Gauge<string>;
  private readonly dimensionRetransmissions: Gauge<string>;
  private readonly dimensionRtt: Gauge<string>;
  private readonly dimensionDnsLatency: Gauge<string>;
  private readonly workerPackets: TotalCounter;
  private readonly workerRingDrops: TotalCounter;
  private readonly workerRingBytes: Gauge<string>;

  constructor(labels: { sensor: string; version: string; source: string }) {
    const r = this.registry;
    r.setDefaultLabels({ sensor: labels.sensor });
    collectStandardMetrics(r); // process_*, nodejs_*: the names Node.js dashboards and alerts use
    const counter = (name: string, help: string, labelNames: string[] = []): Counter<string> =>
      new Counter({ name: PREFIX + name, help, labelNames, registers: [r] });
    const gauge = (name: string, help: string, labelNames: string[] = []): Gauge<string> =>
      new Gauge({ name: PREFIX + name, help, labelNames, registers: [r] });
    gauge('info', 'Agent version and source kind (always 1).', ['version', 'source']).set({ version: labels.version, source: labels.source }, 1);
    this.packets = new TotalCounter(counter('packets_total', 'Packets analyzed.'));
    this.bytes = new TotalCounter(counter('bytes_total', 'Bytes on the wire of the packets analyzed.'));
    this.received = new TotalCounter(counter('capture_received_total', 'Packets libpcap received (pcap_stats ps_recv; on loopback it counts each packet twice), or read in a replay.'));
    this.drops = new TotalCounter(counter('capture_drops_total', 'Packets missed: kernel (buffer full, pcap_stats ps_drop), interface (driver, ps_ifdrop), agent (delivered but the analysis failed on it, or an analysis worker\'s ring was full).', ['where']),
      DROP_PLACES.map((where) => ({ where })));
    this.decodeErrors = new TotalCounter(counter('decode_errors_total', 'Malformed or undecodable layers, by reason.', ['reason']),
      ANOMALY_NAMES.filter((reason) => reason !== 'none').map((reason) => ({ reason })));
    this.flowsEvicted = new TotalCounter(counter('flows_evicted_total', 'Flows evicted because the flow table was full.'));
    this.conversationsForgotten = new TotalCounter(counter('conversations_forgotten_total', 'Ended TCP/UDP conversations dropped from flows.endedConversations before they resumed (a resumption then gets a new stream number).'));
    this.tableEvictions = new TotalCounter(counter('table_evictions_total', 'Keys evicted from an analyzer\'s bounded tables because they were full, by analyzer.', ['table']));
    this.published = new TotalCounter(counter('publish_total', 'JetStream publish results: ok, duplicate (dropped by the server), failed (retried) or too_large (over the server\'s max_payload: dropped, never retried).', ['result']),
      PUBLISH_RESULTS.map((result) => ({ result })));
    this.spoolOverflow = new TotalCounter(counter('spool_overflow_total', 'Messages dropped because the spool was full.'));
    this.flowsActive = gauge('flows_active', 'Flows in the flow table.');
    this.workerPackets = new TotalCounter(counter('worker_packets_total', 'Packets handed to each flow-sharded analysis worker (pipeline.workers above 1).', ['worker']));
    this.workerRingDrops = new TotalCounter(counter('worker_ring_full_drops_total', 'Packets dropped because an analysis worker\'s ring was full (also in capture_drops_total{where="agent"}).', ['worker']));
    this.workerRingBytes = gauge('worker_ring_bytes', 'Bytes waiting in each analysis worker\'s ring.', ['worker']);
    this.windowLag = gauge('window_lag_seconds', 'Seconds from the end of the last closed window to its closing.');
    this.windows = counter('windows_total', 'Windows closed.');
    this.findings = counter('findings_total', 'Findings reported, by type and severity.', ['type', 'severity']);
    for (const type of FINDING_TYPES) for (const severity of FINDING_SEVERITIES) this.findings.inc({ type, severity }, 0);
    this.spoolMessages = gauge('spool_messages', 'Messages waiting to be published (memory and disk).');
    this.spoolBytes = gauge('spool_bytes', 'Bytes waiting to be published (memory and disk).');
    this.natsConnected = gauge('nats_connected', '1 when connected to NATS.');
    this.ready = gauge('ready', '1 when capturing and publishing (or spooling) within limits, as /readyz.');
    this.retransmissionRate = gauge('window_retransmission_rate_percent', 'TCP retransmissions as % of data segments in the last window.');
    this.rtt = gauge('window_rtt_seconds', 'TCP ACK round-trip time in the last window.', ['quantile']);
    this.dnsLatency = gauge('window_dns_latency_seconds', 'DNS response time in the last window.', ['quantile']);
    this.dnsFailureRatio = gauge('window_dns_failure_ratio', 'DNS queries answered with an error or not at all, over queries, in the last window.');
    this.healthScore = gauge('window_health_score', 'Health score (0-100) of the last window.');
    this.windowDrops = gauge('window_drops', 'Packets missed during the last window.', ['where']);
    const dimension = ['dimension', 'value'];
    const dimensionHelp = 'by VLAN (outer tag, "untagged") or capture interface (frame.interface_id), at most analyzers.dimensions.maxValues values and "other"';
    this.dimensionPackets = gauge('window_dimension_packets', `Packets in the last window, ${dimensionHelp}.`, dimension);
    this.dimensionBytes = gauge('window_dimension_bytes', `Bytes on the wire in the last window, ${dimensionHelp}.`, dimension);
    this.dimensionRetransmissions = gauge('window_dimension_retransmissions', `TCP retransmissions (tcp.analysis.retransmission frames) in the last window, ${dimensionHelp}.`, dimension);
    this.dimensionRtt = gauge('window_dimension_rtt_seconds', `TCP ACK round-trip time in the last window, ${dimensionHelp}.`, [...dimension, 'quantile']);
    this.dimensionDnsLatency = gauge('window_dimension_dns_latency_seconds', `DNS response time in the last window, ${dimensionHelp}.`, [...dimension, 'quantile']);
  }

  /** The analyzers whose tables can evict (known once the capture thread built them): their series start at 0. */
  onTables(analyzerIds: readonly string[]): void {
    for (const table of analyzerIds) this.tableEvictions.declare({ table });
  }

  onCounters(c: CaptureCounters): void {
    this.packets.set(c.packets);
    this.bytes.set(c.bytes);
    this.received.set(c.received);
    for (const [where, n] of Object.entries(c.drops)) this.drops.set(n, { where });
    for (const [reason, n] of Object.entries(c.decodeErrors)) this.decodeErrors.set(n, { reason });
    this.flowsEvicted.set(c.flowsEvicted);
    this.conversationsForgotten.set(c.conversationsForgotten);
    this.flowsActive.set(c.flowsActive);
    this.windowLag.set(c.windowLagSeconds);
    c.workers?.forEach((w, i) => {
      const labels = { worker: String(i + 1) };
      this.workerPackets.set(w.packets, labels);
      this.workerRingDrops.set(w.ringFullDrops, labels);
      this.workerRingBytes.set(labels, w.ringBytes);
    });
  }

  onWindow(summary: WindowSummary, findings: readonly Finding[]): void {
    this.windows.inc();
    for (const f of findings) this.findings.inc({ type: f.type, severity: f.severity });
    const m = summary.metrics;
    const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    const rate = num(m['tcp']?.['retransmissionRate']);
    if (rate !== undefined) this.retransmissionRate.set(rate);
    this.rtt.reset();
    setQuantiles(this.rtt, m['rtt'], {});
    this.dnsLatency.reset();
    setQuantiles(this.dnsLatency, m['dns'], {});
    const dns = m['dns'];
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    const queries = num(dns?.['queries']);
    if (queries) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      const failed = (num(dns?.['serverFailures']) ?? 0) + (num(dns?.['timeouts']) ?? 0);
      this.dnsFailureRatio.set(failed / queries);
    } else {
      this.dnsFailureRatio.set(0);
    }
    // Detectors report their tables' evictions since the start as `evicted` (dns_tunneling as
    // `evictedKeys`, beside its hot-key cache's own figure).
    for (const [id, metrics] of Object.entries(m)) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
      const evicted = num(metrics?.['evicted']) ?? num(metrics?.['evictedKeys']);
      if (evicted !== undefined) this.tableEvictions.set(evicted, { table: id });
    }
    this.onDimensions(m['dimensions']);
    if (summary.healthScore !== null) this.healthScore.set(summary.healthScore);
    if (summary.capture) for (const [where, n] of Object.entries(summary.capture.drops)) this.windowDrops.set({ where }, n);
  }

  /**
   * The dimensions analyzer's rows of the last window. The series are replaced each window, so at
   * any time there are at most maxValues + 1 values per dimension; a value label is a VLAN id or an
   * interface id (digits), "untagged" or "other", never anything else.
   */
  private onDimensions(d: Record<string, unknown> | undefined): void {
    for (const g of [this.dimensionPackets, this.dimensionBytes, this.dimensionRetransmissions, this.dimensionRtt, this.dimensionDnsLatency]) g.reset();
    if (!isRecord(d)) return;
    for (const dimension of ['vlan', 'interface'] as const) {
      const rows = d[dimension];
      if (!isRecord(rows)) continue;
      let n = 0;
      for (const [value, row] of Object.entries(rows)) {
        if (++n > MAX_DIMENSION_VALUES || !DIMENSION_VALUE.test(value) || !isRecord(row)) continue;
        const labels = { dimension, value };
        const packets = finite(row['packets']);
        if (packets !== undefined) this.dimensionPackets.set(labels, packets);
        const bytes = finite(row['bytes']);
        if (bytes !== undefined) this.dimensionBytes.set(labels, bytes);
        const retransmissions = finite(row['retransmissions']);
        if (retransmissions !== undefined) this.dimensionRetransmissions.set(labels, retransmissions);
        setQuantiles(this.dimensionRtt, row['rtt'], labels);
        setQuantiles(this.dimensionDnsLatency, row['dnsTime'], labels);
      }
    }
  }

  onPublisher(s: PublisherStats, ready: boolean): void {
    this.published.set(s.published - s.duplicates, { result: 'ok' });
    this.published.set(s.duplicates, { result: 'duplicate' });
    this.published.set(s.publishFailures, { result: 'failed' });
    this.published.set(s.tooLarge, { result: 'too_large' });
    this.spoolOverflow.set(s.overflowMessages);
    this.spoolMessages.set(s.spoolMessages);
    this.spoolBytes.set(s.spoolBytes);
    this.natsConnected.set(s.connected ? 1 : 0);
    this.ready.set(ready ? 1 : 0);
  }
}
