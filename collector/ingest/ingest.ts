/**
 * Ingest: a durable JetStream pull consumer feeds the store. Each fetched
 * batch is validated, written in one transaction, and only then
 * acknowledged, so a crash at any moment loses nothing: unacknowledged
 * messages are redelivered and the store skips ids it already holds. A
 * malformed message (bad JSON, unknown schema) is counted, logged with its
 * subject and stream sequence, and terminated: never redelivered forever.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type Consumer, type JsMsg } from '@nats-io/jetstream';
import type { NatsConfig } from '../../common/config.js';
import type { Logger } from '../../common/logging.js';
import { RECONNECT_WAIT_MS, buildConnectOptions, ensureStream, errorText, redactUrl } from '../../common/nats.js';
import { FINDING_SCHEMA, STATUS_SCHEMA, SUBJECT_FILTER, WINDOW_SCHEMA, type FindingMessage, type StatusMessage, type WindowMessage } from '../../common/wire.js';
import type { IngestBatch, Store } from '../store/types.js';

export type MessageKind = 'window' | 'finding' | 'status';

export interface IngestEvents {
  /** A batch was committed: new rows by kind, duplicates, and how long the write took. */
  onCommitted(counts: Record<MessageKind, number>, duplicates: number, seconds: number, batch: IngestBatch): void;
  onRejected(reason: string): void;
}

export interface IngestStatus {
  connected: boolean;
  /** Messages in the stream not yet delivered to this consumer, plus those awaiting an ack. */
  pending: number;
  committed: number;
  rejected: number;
  lastError: string;
}

const FETCH_EXPIRES_MS = 1000;
const BACKOFF_MAX_MS = 5000;

type Parsed = { kind: 'window'; msg: WindowMessage } | { kind: 'finding'; msg: FindingMessage } | { kind: 'status'; msg: StatusMessage };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks what the store relies on; the rest of a message is kept as sent. */
export function parseMessage(data: Uint8Array): Parsed | string {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    return 'bad JSON';
  }
  if (!isObject(body)) return 'not a JSON object';
  const { schema, id, sensor } = body;
  if (typeof id !== 'string' || id === '' || typeof sensor !== 'string' || sensor === '') return 'missing id or sensor';
  if (!isObject(body['source'])) return 'missing source';
  switch (schema) {
    case WINDOW_SCHEMA: {
      const w = body['window'];
      if (!isObject(w) || typeof w['start'] !== 'string' || typeof w['end'] !== 'string' || Number.isNaN(Date.parse(w['start']))) return 'window without start/end';
      return { kind: 'window', msg: body as unknown as WindowMessage };
    }
    case FINDING_SCHEMA: {
      const f = body['finding'];
      if (!isObject(f) || typeof f['type'] !== 'string' || typeof f['severity'] !== 'string' || !isObject(f['window'])) return 'finding without type/severity/window';
      return { kind: 'finding', msg: body as unknown as FindingMessage };
    }
    case STATUS_SCHEMA:
      if (typeof body['time'] !== 'string') return 'status without time';
      return { kind: 'status', msg: body as unknown as StatusMessage };
    default:
      return `unknown schema ${typeof schema === 'string' ? JSON.stringify(schema.slice(0, 60)) : String(typeof schema)}`;
  }
}

export class Ingestor {
  private nc: NatsConnection | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly status: IngestStatus = { connected: false, pending: 0, committed: 0, rejected: 0, lastError: '' };

  constructor(
    private readonly nats: NatsConfig,
    private readonly consumerName: string,
    private readonly batchSize: number,
    /** How long a fetched message may stay unacknowledged before the server redelivers it. */
    private readonly ackWaitSeconds: number,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly events: IngestEvents,
  ) {}

  /** Starts consuming in the background; NATS unreachable is not an error (retried, shown in stats). */
  start(): void {
    this.loop = this.run();
  }

  stats(): IngestStatus {
    return { ...this.status };
  }

  /** Stops after the batch in hand is committed and acknowledged. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.nc?.drain().catch(() => undefined);
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => { clearTimeout(timer); resolve(); };
    });
    this.wake = undefined;
  }

  private async run(): Promise<void> {
    let backoff = RECONNECT_WAIT_MS;
    while (!this.stopped) {
      try {
        const consumer = await this.connectConsumer();
        backoff = RECONNECT_WAIT_MS;
        await this.consume(consumer);
      } catch (err) {
        const text = errorText(err);
        if (text !== this.status.lastError) this.log.warn({ err: text, servers: this.nats.servers.map(redactUrl) }, 'ingest: NATS or consumer unavailable; retrying');
        this.status.lastError = text;
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
        if (this.stopped) break;
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  private async connectConsumer(): Promise<Consumer> {
    if (!this.nc || this.nc.isClosed()) {
      const { connectOptions } = buildConnectOptions(this.nats, 'pcap-analyzer-collector');
      this.nc = await connect(connectOptions);
      void this.watch(this.nc);
      this.status.connected = true;
      this.log.info({ server: redactUrl(this.nc.getServer()) }, 'ingest: connected to NATS');
    }
    const nc = this.nc;
    if (this.nats.manageStream) await ensureStream(nc, this.nats, this.log, 5000);
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.consumers.info(this.nats.stream, this.consumerName);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await jsm.consumers.add(this.nats.stream, {
        durable_name: this.consumerName,
        ack_policy: AckPolicy.Explicit,
        ack_wait: this.ackWaitSeconds * 1e9,
        max_ack_pending: Math.max(1000, this.batchSize * 4),
        filter_subject: SUBJECT_FILTER,
      });
      this.log.info({ stream: this.nats.stream, consumer: this.consumerName }, 'ingest: durable consumer created');
    }
    return jetstream(nc).consumers.get(this.nats.stream, this.consumerName);
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') { this.status.connected = false; this.log.warn('ingest: disconnected from NATS'); }
      if (s.type === 'reconnect') { this.status.connected = true; this.log.info('ingest: reconnected to NATS'); }
    }
    this.status.connected = false;
  }

  private async consume(consumer: Consumer): Promise<void> {
    let lastInfo = 0;
    while (!this.stopped) {
      const messages: JsMsg[] = [];
      const iter = await consumer.fetch({ max_messages: this.batchSize, expires: FETCH_EXPIRES_MS });
      for await (const m of iter) messages.push(m);
      if (messages.length) await this.commit(messages);
      if (Date.now() - lastInfo > 1000) {
        lastInfo = Date.now();
        const info = await consumer.info();
        this.status.pending = info.num_pending + info.num_ack_pending;
      }
    }
  }

  private async commit(messages: JsMsg[]): Promise<void> {
    const batch: IngestBatch = { windows: [], findings: [], statuses: [] };
    const accepted: JsMsg[] = [];
    const counts: Record<MessageKind, number> = { window: 0, finding: 0, status: 0 };
    for (const m of messages) {
      const parsed = parseMessage(m.data);
      if (typeof parsed === 'string') {
        this.status.rejected++;
        this.events.onRejected(parsed.startsWith('unknown schema') ? 'unknown_schema' : parsed === 'bad JSON' ? 'bad_json' : 'invalid');
        this.log.warn({ subject: m.subject, seq: m.seq, reason: parsed }, 'ingest: malformed message terminated');
        m.term(); // no reason: servers before 2.10 ignore "+TERM <reason>"
        continue;
      }
      accepted.push(m);
      counts[parsed.kind]++;
      if (parsed.kind === 'window') batch.windows.push(parsed.msg);
      else if (parsed.kind === 'finding') batch.findings.push(parsed.msg);
      else batch.statuses.push(parsed.msg);
    }
    if (!accepted.length) return;
    const started = process.hrtime.bigint();
    try {
      const result = await this.store.ingest(batch);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      // Committed: now, and only now, the messages may be acknowledged.
      for (const m of accepted) m.ack();
      this.status.committed += accepted.length;
      this.events.onCommitted(counts, result.duplicates, seconds, batch);
    } catch (err) {
      // Not written: ask for redelivery a little later; the store may be restarting.
      for (const m of accepted) m.nak(2000);
      this.status.lastError = errorText(err);
      this.log.error({ err: this.status.lastError, messages: accepted.length }, 'ingest: database write failed; messages will be redelivered');
      await this.sleep(1000);
    }
  }
}
