/**
 * The collector's Prometheus metrics. Label values never come straight from
 * message content: finding types and severities outside the known sets are
 * `other`, drop counters only `kernel`, `interface` and `agent`, and at most
 * `collector.maxSensorSeries` sensors get series of their own (the rest share
 * `sensor="_other"`). A sensor removed by retention loses its series. No
 * addresses or ports in labels.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { collectStandardMetrics } from '../common/default-metrics.js';
import { FINDING_SEVERITIES, FINDING_TYPES } from '../common/report.js';
import type { FindingMessage, MessageKind } from '../common/wire.js';
import type { QueueOutcome } from './uploads/queue.js';
import type { SensorRecord } from './store/types.js';
import { BOUND_REASONS, REJECT_REASONS } from './ingest/validate.js';

const PREFIX = 'pcap_analyzer_';
/** The label of everything outside a known set. */
export const OTHER = 'other';
/** The shared `sensor` label of sensors over the cap. */
export const OTHER_SENSOR = '_other';
const DROP_WHERE = ['kernel', 'interface', 'agent'] as const;
const KNOWN_TYPES: ReadonlySet<string> = new Set(FINDING_TYPES);
const KNOWN_SEVERITIES: ReadonlySet<string> = new Set(FINDING_SEVERITIES);

export class CollectorMetrics {
  readonly registry = new Registry();
  readonly ingested: Counter<'kind'>;
  readonly rejected: Counter<'reason'>;
  readonly clamped: Counter<'kind'>;
  readonly duplicates: Counter<string>;
  readonly consumerPending: Gauge<string>;
  readonly natsConnected: Gauge<string>;
  readonly dbWriteSeconds: Histogram<string>;
  readonly sensorUp: Gauge<'sensor'>;
  readonly sensorHealth: Gauge<'sensor'>;
  readonly sensorDrops: Gauge<'sensor' | 'where'>;
  readonly sensorsOverCap: Gauge<string>;
  readonly findings: Counter<'sensor' | 'type' | 'severity'>;
  readonly queueDepth: Gauge<'state'>;
  readonly analyses: Counter<'outcome'>;
  readonly retentionDeleted: Counter<string>;
  /** Sensors with series of their own, in the order they were first seen. */
  private readonly listed = new Set<string>();

  constructor(version: string, private readonly maxSensorSeries = 1000) {
    const r = this.registry;
    collectStandardMetrics(r); // process_*, nodejs_*: the standard names
    new Gauge({ name: `${PREFIX}collector_info`, help: 'Collector version (always 1).', labelNames: ['version'], registers: [r] }).set({ version }, 1);
    this.ingested = new Counter({ name: `${PREFIX}collector_messages_ingested_total`, help: 'Messages committed to the database, by kind (duplicates included).', labelNames: ['kind'], registers: [r] });
    for (const kind of ['window', 'finding', 'status'] satisfies MessageKind[]) this.ingested.inc({ kind }, 0);
    this.rejected = new Counter({ name: `${PREFIX}collector_messages_rejected_total`, help: 'Messages refused, by reason: terminated unstored (too_large, bad_json, unknown_schema, invalid, bad_subject, sensor_mismatch, id_mismatch), or stored with a value bounded (time_clamped: a time past now + clockSkewSeconds; unknown_type: a finding type or severity outside the known set).', labelNames: ['reason'], registers: [r] });
    for (const reason of [...REJECT_REASONS, ...BOUND_REASONS]) this.rejected.inc({ reason }, 0);
    this.clamped = new Counter({ name: `${PREFIX}collector_times_clamped_total`, help: 'Status times and window starts later than now + collector.clockSkewSeconds, counted as that bound.', labelNames: ['kind'], registers: [r] });
    this.duplicates = new Counter({ name: `${PREFIX}collector_messages_duplicate_total`, help: 'Messages whose id was already stored (redeliveries).', registers: [r] });
    this.consumerPending = new Gauge({ name: `${PREFIX}collector_consumer_pending`, help: 'Messages in the stream not yet delivered to or acknowledged by the durable consumer (consumer lag).', registers: [r] });
    this.natsConnected = new Gauge({ name: `${PREFIX}collector_nats_connected`, help: '1 when connected to NATS.', registers: [r] });
    this.dbWriteSeconds = new Histogram({
      name: `${PREFIX}collector_db_write_seconds`, help: 'Time to commit one ingest batch.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [r],
    });
    this.sensorUp = new Gauge({ name: `${PREFIX}sensor_up`, help: '1 when the sensor\'s last heartbeat (its own time, no later than its arrival) is within collector.sensorDownSeconds (or 3 of its heartbeat intervals, if longer) and was not the last of an orderly stop.', labelNames: ['sensor'], registers: [r] });
    this.sensorHealth = new Gauge({ name: `${PREFIX}sensor_health_score`, help: 'Health score of the sensor\'s latest window.', labelNames: ['sensor'], registers: [r] });
    this.sensorDrops = new Gauge({ name: `${PREFIX}sensor_capture_drops`, help: 'Packets the sensor reported missed since it started, by where (from its last heartbeat; only while the sensor is up).', labelNames: ['sensor', 'where'], registers: [r] });
    this.sensorsOverCap = new Gauge({ name: `${PREFIX}collector_sensors_unlisted`, help: 'Known sensors without series of their own (over collector.maxSensorSeries).', registers: [r] });
    this.findings = new Counter({ name: `${PREFIX}collector_findings_total`, help: 'Findings ingested, by sensor, type and severity (unknown types and severities: other).', labelNames: ['sensor', 'type', 'severity'], registers: [r] });
    this.queueDepth = new Gauge({ name: `${PREFIX}collector_upload_queue`, help: 'Capture analyses by state.', labelNames: ['state'], registers: [r] });
    this.analyses = new Counter({ name: `${PREFIX}collector_analyses_total`, help: 'Capture analyses by outcome.', labelNames: ['outcome'], registers: [r] });
    for (const outcome of ['done', 'failed', 'timeout', 'rejected', 'cancelled'] satisfies QueueOutcome[]) this.analyses.inc({ outcome }, 0);
    this.retentionDeleted = new Counter({ name: `${PREFIX}collector_retention_deleted_total`, help: 'Windows, findings and sensors removed by retention.', registers: [r] });
  }

  /** The `sensor` label of a sensor: its id while there is room for its series, else `_other`. */
  private sensorLabel(id: string): string {
    if (this.listed.has(id)) return id;
    if (this.listed.size >= this.maxSensorSeries) return OTHER_SENSOR;
    this.listed.add(id);
    return id;
  }

  onFindings(findings: readonly FindingMessage[]): void {
    for (const f of findings) {
      const type = KNOWN_TYPES.has(f.finding.type) ? f.finding.type : OTHER;
      const severity = KNOWN_SEVERITIES.has(f.finding.severity) ? f.finding.severity : OTHER;
      if (type === OTHER || severity === OTHER) this.rejected.inc({ reason: 'unknown_type' });
      this.findings.inc({ sensor: this.sensorLabel(f.sensor), type, severity });
    }
  }

  /** Per-sensor gauges from the stored sensors; series of sensors no longer stored are removed. */
  onSensors(sensors: readonly SensorRecord[], isUp: (s: SensorRecord) => boolean): void {
    const stored = new Set(sensors.map((s) => s.id));
    this.forgetSensors([...this.listed].filter((id) => !stored.has(id)));
    let unlisted = 0;
    for (const s of sensors) {
      const sensor = this.sensorLabel(s.id);
      if (sensor === OTHER_SENSOR) { unlisted++; continue; }
      const up = isUp(s);
      this.sensorUp.set({ sensor }, up ? 1 : 0);
      const score = s.lastHealthScore;
      if (typeof score === 'number' && Number.isFinite(score)) this.sensorHealth.set({ sensor }, score);
      // A sensor that is not up has no current drop figures: its last heartbeat's are not exported as if they were.
      if (!up) {
        for (const where of DROP_WHERE) this.sensorDrops.remove({ sensor, where });
        continue;
      }
      // Stored content is not trusted to have the shape of today's schema (rows from before validation).
      const drops: unknown = (s.lastStatus as { capture?: { drops?: unknown } } | null)?.capture?.drops;
      if (typeof drops !== 'object' || drops === null) continue;
      for (const where of DROP_WHERE) {
        const n: unknown = (drops as Record<string, unknown>)[where];
        if (typeof n === 'number' && Number.isFinite(n)) this.sensorDrops.set({ sensor, where }, n);
      }
    }
    this.sensorsOverCap.set(unlisted);
  }

  /** Removes every series of these sensors (removed by retention), freeing their places. */
  forgetSensors(ids: readonly string[]): void {
    for (const sensor of ids) {
      if (!this.listed.delete(sensor)) continue;
      this.sensorUp.remove({ sensor });
      this.sensorHealth.remove({ sensor });
      for (const where of DROP_WHERE) this.sensorDrops.remove({ sensor, where });
      for (const type of [...FINDING_TYPES, OTHER]) {
        for (const severity of [...FINDING_SEVERITIES, OTHER]) this.findings.remove({ sensor, type, severity });
      }
    }
  }
}
