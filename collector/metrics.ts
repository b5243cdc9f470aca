/**
 * The collector's Prometheus metrics. Per-sensor series (up, health score,
 * findings) are labelled by sensor id: bounded by the number of sensors.
 * No addresses or ports in labels.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FindingMessage } from '../common/wire.js';
import type { SensorRecord } from './store/types.js';

const PREFIX = 'pcap_analyzer_';

export class CollectorMetrics {
  readonly registry = new Registry();
  readonly ingested: Counter<'kind'>;
  readonly rejected: Counter<'reason'>;
  readonly duplicates: Counter<string>;
  readonly consumerPending: Gauge<string>;
  readonly natsConnected: Gauge<string>;
  readonly dbWriteSeconds: Histogram<string>;
  readonly sensorUp: Gauge<'sensor'>;
  readonly sensorHealth: Gauge<'sensor'>;
  readonly sensorDrops: Gauge<'sensor' | 'where'>;
  readonly findings: Counter<'sensor' | 'type' | 'severity'>;
  readonly queueDepth: Gauge<'state'>;
  readonly analyses: Counter<'outcome'>;
  readonly retentionDeleted: Counter<string>;

  constructor(version: string) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: `${PREFIX}collector_` });
    new Gauge({ name: `${PREFIX}collector_info`, help: 'Collector version (always 1).', labelNames: ['version'], registers: [r] }).set({ version }, 1);
    this.ingested = new Counter({ name: `${PREFIX}collector_messages_ingested_total`, help: 'Messages committed to the database, by kind (duplicates included).', labelNames: ['kind'], registers: [r] });
    this.rejected = new Counter({ name: `${PREFIX}collector_messages_rejected_total`, help: 'Malformed messages terminated, by reason.', labelNames: ['reason'], registers: [r] });
    this.duplicates = new Counter({ name: `${PREFIX}collector_messages_duplicate_total`, help: 'Messages whose id was already stored (redeliveries).', registers: [r] });
    this.consumerPending = new Gauge({ name: `${PREFIX}collector_consumer_pending`, help: 'Messages in the stream not yet delivered to or acknowledged by the durable consumer (consumer lag).', registers: [r] });
    this.natsConnected = new Gauge({ name: `${PREFIX}collector_nats_connected`, help: '1 when connected to NATS.', registers: [r] });
    this.dbWriteSeconds = new Histogram({
      name: `${PREFIX}collector_db_write_seconds`, help: 'Time to commit one ingest batch.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [r],
    });
    this.sensorUp = new Gauge({ name: `${PREFIX}sensor_up`, help: '1 when the sensor sent a heartbeat within collector.sensorDownSeconds.', labelNames: ['sensor'], registers: [r] });
    this.sensorHealth = new Gauge({ name: `${PREFIX}sensor_health_score`, help: 'Health score of the sensor\'s latest window.', labelNames: ['sensor'], registers: [r] });
    this.sensorDrops = new Gauge({ name: `${PREFIX}sensor_capture_drops`, help: 'Packets the sensor reported missed since it started, by where (from its last heartbeat).', labelNames: ['sensor', 'where'], registers: [r] });
    this.findings = new Counter({ name: `${PREFIX}collector_findings_total`, help: 'Findings ingested, by sensor, type and severity.', labelNames: ['sensor', 'type', 'severity'], registers: [r] });
    this.queueDepth = new Gauge({ name: `${PREFIX}collector_upload_queue`, help: 'Capture analyses by state.', labelNames: ['state'], registers: [r] });
    this.analyses = new Counter({ name: `${PREFIX}collector_analyses_total`, help: 'Capture analyses by outcome.', labelNames: ['outcome'], registers: [r] });
    this.retentionDeleted = new Counter({ name: `${PREFIX}collector_retention_deleted_total`, help: 'Windows and findings removed by retention.', registers: [r] });
  }

  onFindings(findings: readonly FindingMessage[]): void {
    for (const f of findings) this.findings.inc({ sensor: f.sensor, type: f.finding.type, severity: f.finding.severity });
  }

  onSensors(sensors: readonly SensorRecord[], isUp: (s: SensorRecord) => boolean): void {
    for (const s of sensors) {
      this.sensorUp.set({ sensor: s.id }, isUp(s) ? 1 : 0);
      if (s.lastHealthScore !== null) this.sensorHealth.set({ sensor: s.id }, s.lastHealthScore);
      const drops = s.lastStatus?.capture.drops;
      if (drops) for (const [where, n] of Object.entries(drops)) this.sensorDrops.set({ sensor: s.id, where }, n);
    }
  }
}
