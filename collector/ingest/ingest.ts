/**
 * Ingest: a durable JetStream pull consumer feeds the store. Messages stream in
 * (`consume`, at most `collector.batchSize` requested at a time) and are
 * committed in batches: a batch closes at `collector.batchSize` messages or
 * `collector.batchBytes` bytes, or as soon as no more messages are waiting, so
 * a trickle is committed at once and a burst in large transactions (group
 * commit: what arrives during one commit makes the next batch). Up to the
 * store's `writers` batches commit at once (PostgreSQL: the next batch's rows
 * go in while the previous one's COMMIT waits for its WAL flush). Only committed
 * messages are acknowledged, so a crash at any moment loses nothing:
 * unacknowledged messages are redelivered and the store skips ids it already
 * holds. A message that fails the checks of validate.ts (too large, bad JSON,
 * unknown schema, invalid, not matching its subject) is counted by reason,
 * logged with its subject and stream sequence, and terminated: never
 * redelivered forever.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy, jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError,
  type Consumer, type ConsumerMessages, type JsMsg,
} from '@nats-io/jetstream';
import type { CollectorConfig, NatsConfig } from '../../common/config.js';
import type { Logger } from '../../common/logging.js';
import { COLLECTOR_INBOX_PREFIX, RECONNECT_WAIT_MS, buildConnectOptions, ensureStream, errorText, redactUrl } from '../../common/nats.js';
import { SUBJECT_FILTER, type MessageKind } from '../../common/wire.js';
import type { IngestBatch, Store } from '../store/types.js';
import { parseMessage, type RejectReason } from './validate.js';

export interface IngestEvents {
  /** A batch was committed: new rows by kind, duplicates, and how long the write took. */
  onCommitted(counts: Record<MessageKind, number>, duplicates: number, seconds: number, batch: IngestBatch): void;
  onRejected(reason: RejectReason): void;
  /** A sensor's time (status time, window start) was later than now + collector.clockSkewSeconds. */
  onClamped(kind: 'status' | 'window'): void;
}

export interface IngestStatus {
  connected: boolean;
  /** Messages in the stream not yet delivered to this consumer, plus those awaiting an ack. */
  pending: number;
  committed: number;
  rejected: number;
  lastError: string;
}

export type IngestSettings = Pick<CollectorConfig, 'consumer' | 'batchSize' | 'batchBytes' | 'maxMessageBytes' | 'ackWaitSeconds' | 'clockSkewSeconds'>;

const BACKOFF_MAX_MS = 5000;
const PENDING_REFRESH_MS = 1000;

/**
 * Unacknowledged deliveries the server allows the consumer: bounds what the
 * collector holds in memory. Room for every writer's batch and one being built.
 */
export function maxAckPending(batchSize: number, writers: number): number {
  return Math.max(1000, batchSize * (writers + 1));
}

export class Ingestor {
  private nc: NatsConnection | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private messages: ConsumerMessages | undefined;
  /** Fetched, not yet committed: the batch being built. */
  private pending: JsMsg[] = [];
  private pendingBytes = 0;
  /** Commits in progress: at most the store's `writers`. */
  private readonly committing = new Set<Promise<void>>();
  private flushScheduled = false;
  private readonly status: IngestStatus = { connected: false, pending: 0, committed: 0, rejected: 0, lastError: '' };

  constructor(
    private readonly nats: NatsConfig,
    private readonly settings: IngestSettings,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly events: IngestEvents,
    /** Wall clock in ms (tests move it). */
    private readonly now: () => number = Date.now,
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
    this.messages?.stop();
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
      const { connectOptions } = buildConnectOptions(this.nats, 'pcap-analyzer-collector', COLLECTOR_INBOX_PREFIX);
      this.nc = await connect(connectOptions);
      void this.watch(this.nc);
      this.status.connected = true;
      this.log.info({ server: redactUrl(this.nc.getServer()) }, 'ingest: connected to NATS');
    }
    const nc = this.nc;
    if (this.nats.manageStream) await ensureStream(nc, this.nats, this.log, 5000);
    const jsm = await jetstreamManager(nc);
    const { stream } = this.nats;
    const name = this.settings.consumer;
    const wanted = { ack_wait: this.settings.ackWaitSeconds * 1e9, max_ack_pending: maxAckPending(this.settings.batchSize, this.store.writers) };
    try {
      const info = await jsm.consumers.info(stream, name);
      if (info.config.ack_wait !== wanted.ack_wait || info.config.max_ack_pending !== wanted.max_ack_pending) {
        await jsm.consumers.update(stream, name, wanted);
        this.log.info({ stream, consumer: name, ...wanted }, 'ingest: durable consumer updated');
      }
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.Explicit, filter_subject: SUBJECT_FILTER, ...wanted });
      this.log.info({ stream, consumer: name }, 'ingest: durable consumer created');
    }
    return jetstream(nc).consumers.get(stream, name);
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') { this.status.connected = false; this.log.warn('ingest: disconnected from NATS'); }
      if (s.type === 'reconnect') { this.status.connected = true; this.log.info('ingest: reconnected to NATS'); }
    }
    this.status.connected = false;
  }

  /** Until stopped: messages into batches; returns (throws) when the subscription ends otherwise. */
  private async consume(consumer: Consumer): Promise<void> {
    // Pulls by count: nats.js 3.3 stalls a byte-limited pull (until two heartbeats are missed,
    // 30 s) whenever the server ends one with 409 "Message Size Exceeds MaxBytes" while the
    // iterator is empty, which a fast consumer makes the rule. Memory stays bounded by the
    // consumer's max_ack_pending (unacknowledged deliveries) times the largest message.
    const messages = await consumer.consume({ max_messages: this.settings.batchSize });
    this.messages = messages;
    const refresh = setInterval(() => { void this.refreshPending(consumer); }, PENDING_REFRESH_MS);
    try {
      for await (const m of messages) {
        this.pending.push(m);
        this.pendingBytes += m.data.length;
        if (this.pending.length >= this.settings.batchSize || this.pendingBytes >= this.settings.batchBytes) await this.flush();
        else this.scheduleFlush();
        if (this.stopped) break;
      }
    } finally {
      clearInterval(refresh);
      this.messages = undefined;
      messages.stop();
      await this.flush();
      await Promise.all(this.committing);
    }
    if (!this.stopped) throw new Error('consumer subscription ended');
  }

  private async refreshPending(consumer: Consumer): Promise<void> {
    try {
      const info = await consumer.info();
      this.status.pending = info.num_pending + info.num_ack_pending;
    } catch {
      // NATS away: the status says so (connected false); the figure is kept.
    }
  }

  /** A commit once the messages delivered so far were taken (the iterator's queue is empty). */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  /**
   * Starts committing what is pending, one batch per free writer; resolves once
   * every pending message is in a commit (the consume loop waits here, so a
   * burst waits for the store instead of piling up).
   */
  private async flush(): Promise<void> {
    while (this.pending.length) {
      if (this.committing.size >= this.store.writers) {
        await Promise.race(this.committing);
        continue;
      }
      const taken = this.take();
      const commit: Promise<void> = this.commit(taken).catch((err: unknown) => {
        // An ack or term on a connection that just closed: unacknowledged, these come back
        // after ackWaitSeconds. Later batches must still commit.
        this.status.lastError = errorText(err);
        this.log.warn({ err: this.status.lastError, messages: taken.length }, 'ingest: batch not settled; it will be redelivered');
      }).finally(() => this.committing.delete(commit));
      this.committing.add(commit);
    }
  }

  /** Up to one batch from the pending messages, by count and bytes. */
  private take(): JsMsg[] {
    let bytes = 0;
    let n = 0;
    while (n < this.pending.length && n < this.settings.batchSize && (n === 0 || bytes + this.pending[n]!.data.length <= this.settings.batchBytes)) {
      bytes += this.pending[n]!.data.length;
      n++;
    }
    const taken = this.pending.splice(0, n);
    this.pendingBytes -= bytes;
    return taken;
  }

  private reject(m: JsMsg, reason: RejectReason, detail: string): void {
    this.status.rejected++;
    this.events.onRejected(reason);
    this.log.warn({ subject: m.subject, seq: m.seq, reason: detail }, 'ingest: malformed message terminated');
    m.term(); // no reason: servers before 2.10 ignore "+TERM <reason>"
  }

  private async commit(messages: JsMsg[]): Promise<void> {
    const now = this.now();
    const latest = new Date(now + this.settings.clockSkewSeconds * 1000);
    const batch: IngestBatch = { windows: [], findings: [], statuses: [], latest: latest.toISOString() };
    const accepted: JsMsg[] = [];
    const counts: Record<MessageKind, number> = { window: 0, finding: 0, status: 0 };
    for (const m of messages) {
      if (m.data.length > this.settings.maxMessageBytes) {
        this.reject(m, 'too_large', `${m.data.length} bytes, over collector.maxMessageBytes (${this.settings.maxMessageBytes})`);
        continue;
      }
      const parsed = parseMessage(m.subject, m.data);
      if ('reason' in parsed) {
        this.reject(m, parsed.reason, parsed.detail);
        continue;
      }
      accepted.push(m);
      counts[parsed.kind]++;
      if (parsed.kind === 'window') {
        batch.windows.push(parsed.msg);
        if (Date.parse(parsed.msg.window.start) > latest.getTime()) this.events.onClamped('window');
      } else if (parsed.kind === 'finding') {
        batch.findings.push(parsed.msg);
      } else {
        batch.statuses.push(parsed.msg);
        if (Date.parse(parsed.msg.time) > latest.getTime()) this.events.onClamped('status');
      }
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
