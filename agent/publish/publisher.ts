/**
 * The agent's publishing stage: messages go into the `Spool` (memory, then disk)
 * and one send loop publishes them to JetStream in order, a message leaving the
 * spool only once its PubAck arrived. NATS being away (at start or later) is
 * normal: messages spool meanwhile and are sent when the connection is back.
 *
 * Send loop: at most `maxInFlight` publishes await an ack, and only while the
 * connection is up (a publish made while nats.js is disconnected sits in its
 * outbound buffer, which it discards at the next dial, so it would only time
 * out). On a failure (timeout, no responders, error) sending stops; once every
 * in-flight publish settled, the loop backs off (250 ms doubling to 5 s) and
 * re-sends from the oldest unacknowledged message, one at a time until the
 * first ack, then a full window again. JetStream drops what it already stored
 * (same Nats-Msg-Id within the duplicate window), so re-sending is harmless.
 *
 * Order: the stream holds messages in spool order unless a publish is lost in
 * the middle of a window while later ones in it were stored (a lone timeout):
 * the re-sent one then lands after them. A connection loss loses a suffix, so
 * outages keep the order.
 */
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamPublishOptions, PubAck } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { NatsConfig, SpoolConfig } from '../../common/config.js';
import { RECONNECT_WAIT_MS, buildConnectOptions, ensureStream, errorText, redactUrl, stripUserinfo } from '../../common/nats.js';
import type { OutboundMessage } from './message.js';
import { Spool } from './spool.js';
import type { SpoolEntry } from './spool.js';

export type { OutboundMessage } from './message.js';

export interface PublisherStats {
  connected: boolean;
  /** The spool overflowed within the last stats interval (or the last 10 s), or the disk tier is over 90 % full. */
  degraded: boolean;
  /** Acknowledged by JetStream (including duplicates). */
  published: number;
  /** Acks with duplicate=true. */
  duplicates: number;
  /** Failed attempts (timeouts, no responders, errors). */
  publishFailures: number;
  inFlight: number;
  /** Unacknowledged messages held (memory, in flight, disk) and their payload bytes. */
  spoolMessages: number;
  spoolBytes: number;
  /** Size of the spool's segment files. */
  spoolDiskBytes: number;
  /** Dropped because the spool was full. */
  overflowMessages: number;
  /** Droppable messages skipped while a backlog existed. */
  statusSkipped: number;
  /** Dropped because they exceed the server's max_payload (never publishable: not retried). */
  tooLarge: number;
}

export interface PublisherOptions {
  nats: NatsConfig;
  spool: SpoolConfig;
  /** The spool lives in `<dataDir>/spool/`. */
  dataDir: string;
  logger: Logger;
  /** Client name shown by the server's monitoring. */
  name?: string;
  /** Reply-inbox prefix when `nats.inboxPrefix` is empty (default: nats.js's `_INBOX`). */
  inboxPrefix?: string;
}

export interface EnqueueOptions {
  /** A status message (heartbeat): skipped rather than spooled when a backlog exists or NATS is down. */
  droppable?: boolean;
}

const DEFAULT_NAME = 'pcap-analyzer-agent';
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;
/** Repeated warnings (overflow, publish failures) are logged at most once per interval, with a count. */
const WARN_INTERVAL_MS = 10_000;
/** `degraded` stays true this long after an overflow, even if stats() was just called. */
const DEGRADED_AFTER_OVERFLOW_MS = 10_000;
const DISK_DEGRADED_RATIO = 0.9;

export class Publisher {
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private connected = false;
  private streamReady: boolean;
  private settingUpStream = false;
  private inFlight = 0;
  /** A publish failed: send nothing until all in flight settled and the backoff passed. */
  private failing = false;
  /** One publish at a time until the first ack after a (re)connect or failure. */
  private probing = true;
  private backoffMs = BACKOFF_MIN_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private sleepTimer: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  private closing = false;
  private closePromise: Promise<void> | undefined;
  private lastConnectError = '';

  private published = 0;
  private duplicates = 0;
  private publishFailures = 0;
  private statusSkipped = 0;
  private tooLarge = 0;
  private lastOverflowAt = 0;
  private overflowAtLastStats = 0;
  private readonly drainWaiters = new Set<{ target: number; resolve: (done: boolean) => void; timer: NodeJS.Timeout }>();
  private readonly overflowWarning: RateLimited;
  private readonly failureWarning: RateLimited;
  private readonly tooLargeWarning: RateLimited;
  private lastTooLarge = { subject: '', bytes: 0, maxPayload: 0 };
  private lastFailure = '';

  private readonly ackTimeoutMs: number;

  private constructor(
    private readonly nats: NatsConfig,
    private readonly spoolConfig: SpoolConfig,
    private readonly spool: Spool,
    private readonly log: Logger,
    private readonly connectOptions: NodeConnectionOptions,
    private readonly secrets: string[],
  ) {
    this.streamReady = !nats.manageStream;
    this.ackTimeoutMs = Math.max(1, Math.round(nats.ackTimeoutSeconds * 1000));
    this.overflowWarning = new RateLimited(WARN_INTERVAL_MS, (count) => {
      this.log.warn({ dropped: count, overflowTotal: this.spool.overflowMessages, diskBytes: this.spool.diskBytes }, 'spool full: messages dropped');
    });
    this.failureWarning = new RateLimited(WARN_INTERVAL_MS, (count) => {
      this.log.warn({ failures: count, err: this.lastFailure, spooled: this.spool.messages }, 'publish failed; retrying with backoff');
    });
    this.tooLargeWarning = new RateLimited(WARN_INTERVAL_MS, (count) => {
      this.log.warn({ dropped: count, tooLargeTotal: this.tooLarge, ...this.lastTooLarge }, 'message larger than the server\'s max_payload: dropped');
    });
  }

  /**
   * Opens the spool (loading what an earlier run left) and connects. An unreachable
   * NATS is not an error: one warning, then connection attempts continue in the background.
   * Throws ConfigError when a credentials or TLS file cannot be read.
   */
  static async start(options: PublisherOptions): Promise<Publisher> {
    const log = options.logger.child({ component: 'publish' });
    const { connectOptions, secrets } = buildConnectOptions(options.nats, options.name ?? DEFAULT_NAME, options.inboxPrefix ?? '_INBOX');
    const spool = new Spool({ dataDir: options.dataDir, ...options.spool, logger: log });
    const publisher = new Publisher(options.nats, options.spool, spool, log, connectOptions, secrets);
    if (!(await publisher.tryConnect())) {
      log.warn({ servers: options.nats.servers.map(redactUrl), err: publisher.lastConnectError, spool: join(options.dataDir, 'spool') },
        'NATS unreachable at start; spooling and retrying in the background');
      void publisher.connectLoop();
    }
    return publisher;
  }

  /** Queues a message (synchronous; never waits on the network). False when it was dropped. */
  enqueue(msg: OutboundMessage, options?: EnqueueOptions): boolean {
    if (this.closing) return false;
    if (options?.droppable && this.hasBacklog()) {
      this.statusSkipped++;
      return false;
    }
    if (!this.spool.push(msg)) {
      this.lastOverflowAt = Date.now();
      this.overflowWarning.note();
      return false;
    }
    this.pump();
    return true;
  }

  stats(): PublisherStats {
    const overflow = this.spool.overflowMessages;
    const degraded = overflow > this.overflowAtLastStats
      || (this.lastOverflowAt > 0 && Date.now() - this.lastOverflowAt < DEGRADED_AFTER_OVERFLOW_MS)
      || this.spool.diskBytes > DISK_DEGRADED_RATIO * this.spoolConfig.fileBytes;
    this.overflowAtLastStats = overflow;
    return {
      connected: this.connected,
      degraded,
      published: this.published,
      duplicates: this.duplicates,
      publishFailures: this.publishFailures,
      inFlight: this.inFlight,
      spoolMessages: this.spool.messages,
      spoolBytes: this.spool.bytes,
      spoolDiskBytes: this.spool.diskBytes,
      overflowMessages: overflow,
      statusSkipped: this.statusSkipped,
      tooLarge: this.tooLarge,
    };
  }

  /** Resolves true once everything enqueued so far is acknowledged, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean> {
    const target = this.spool.accepted;
    if (this.spool.acknowledged >= target) return Promise.resolve(true);
    if (this.closing) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        target,
        resolve,
        timer: setTimeout(() => { this.drainWaiters.delete(waiter); resolve(false); }, Math.max(0, timeoutMs)),
      };
      this.drainWaiters.add(waiter);
    });
  }

  /** Stops sending, persists every unacknowledged message to the disk spool (in order), closes the connection. */
  close(options: { quiet?: boolean } = {}): Promise<void> {
    this.closePromise ??= this.shutdown(options.quiet === true);
    return this.closePromise;
  }

  /** `quiet`: the agent never started (a start-up error follows), so the summary line is debug, not info. */
  private async shutdown(quiet: boolean): Promise<void> {
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.sleepTimer) { clearTimeout(this.sleepTimer.timer); this.sleepTimer.wake(); }
    this.overflowWarning.stop();
    this.failureWarning.stop();
    this.tooLargeWarning.stop();
    for (const waiter of this.drainWaiters) { clearTimeout(waiter.timer); waiter.resolve(false); }
    this.drainWaiters.clear();
    const inFlight = this.inFlight;
    this.spool.persist();
    this.spool.close();
    const nc = this.nc;
    this.nc = undefined;
    this.js = undefined;
    this.connected = false;
    if (nc) {
      try {
        await nc.close();
      } catch (err) {
        this.log.debug({ err: this.sanitize(errorText(err)) }, 'closing the NATS connection failed');
      }
    }
    this.log[quiet ? 'debug' : 'info']({ spooled: this.spool.messages, diskBytes: this.spool.diskBytes, abandonedInFlight: inFlight, published: this.published },
      'publisher closed');
  }

  // --- connection ---

  /** One connection attempt; true when connected (or closing). */
  private async tryConnect(): Promise<boolean> {
    try {
      const nc = await connect(this.connectOptions);
      if (this.closing) { await nc.close().catch(() => undefined); return true; }
      this.attach(nc);
      return true;
    } catch (err) {
      this.lastConnectError = this.sanitize(errorText(err));
      return false;
    }
  }

  /** Retries until connected; nats.js reconnects by itself only after a first connection. */
  private async connectLoop(): Promise<void> {
    while (!this.closing) {
      await this.sleep(RECONNECT_WAIT_MS);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
      if (this.closing) return;
      if (await this.tryConnect()) return;
      this.log.debug({ err: this.lastConnectError }, 'NATS connection attempt failed');
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => { this.sleepTimer = undefined; resolve(); };
      this.sleepTimer = { timer: setTimeout(wake, ms), wake };
    });
  }

  private attach(nc: NatsConnection): void {
    this.nc = nc;
    this.js = jetstream(nc, { timeout: this.ackTimeoutMs });
    this.connected = true;
    this.probing = true;
    this.log.info({ server: redactUrl(nc.getServer()) }, 'connected to NATS');
    void this.watchStatus(nc);
    void nc.closed().then((err) => this.onClosed(nc, err));
    this.resume();
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    try {
      for await (const status of nc.status()) {
        if (nc !== this.nc) return;
        switch (status.type) {
          case 'disconnect':
            if (this.connected) this.log.warn({ server: redactUrl(status.server) }, 'disconnected from NATS; spooling');
            this.connected = false;
            this.probing = true;
            break;
          case 'reconnect':
            this.connected = true;
            this.probing = true;
            this.log.info({ server: redactUrl(status.server) }, 'reconnected to NATS');
            this.resume();
            break;
          case 'error':
            this.log.warn({ err: this.sanitize(errorText(status.error)) }, 'NATS connection error');
            break;
          case 'ldm':
            this.log.info({ server: redactUrl(status.server) }, 'NATS server entering lame duck mode');
            break;
          case 'staleConnection':
            this.log.warn('NATS connection stale (pings unanswered); reconnecting');
            break;
          default:
            break;
        }
      }
    } catch (err) {
      this.log.debug({ err: this.sanitize(errorText(err)) }, 'NATS status stream ended');
    }
  }

  private onClosed(nc: NatsConnection, err: void | Error): void {
    if (nc !== this.nc) return; // ours: close() already detached it
    this.nc = undefined;
    this.js = undefined;
    this.connected = false;
    if (this.closing) return;
    this.log.warn({ err: err ? this.sanitize(errorText(err)) : undefined }, 'NATS connection closed; connecting again');
    void this.connectLoop();
  }

  // --- stream ---

  /** After a (re)connect or a backoff: make sure the stream exists, then send. */
  private resume(): void {
    if (this.closing || !this.connected) return;
    if (this.streamReady) { this.pump(); return; }
    if (this.settingUpStream) return;
    this.settingUpStream = true;
    void this.setupStream().then((ok) => {
      this.settingUpStream = false;
      if (ok) { this.streamReady = true; this.pump(); } else this.scheduleRetry();
    });
  }

  /** Creates or updates the stream (manageStream only); false on failure (logged). */
  private async setupStream(): Promise<boolean> {
    const nc = this.nc;
    if (!nc) return false;
    try {
      await ensureStream(nc, this.nats, this.log, this.ackTimeoutMs);
      return true;
    } catch (err) {
      this.log.warn({ stream: this.nats.stream, err: this.sanitize(errorText(err)) }, 'cannot create or update the stream; will retry');
      return false;
    }
  }

  // --- send loop ---

  private hasBacklog(): boolean {
    return !this.connected || this.failing || !this.streamReady || this.spool.messages > this.inFlight;
  }

  private pump(): void {
    const js = this.js;
    if (this.closing || !this.connected || this.failing || !this.streamReady || !js) return;
    const limit = this.probing ? 1 : this.nats.maxInFlight;
    const maxPayload = this.nc?.info?.max_payload ?? Infinity;
    while (this.inFlight < limit) {
      const entry = this.spool.take(this.nats.maxInFlight);
      if (!entry) break;
      if (publishedSize(entry.message) > maxPayload) this.dropTooLarge(entry, maxPayload);
      else this.send(js, entry);
    }
  }

  /**
   * The server refuses a message over its max_payload every time: retrying would block the
   * spool behind it for ever. It leaves the spool as if acknowledged, counted and logged.
   */
  private dropTooLarge(entry: SpoolEntry, maxPayload: number): void {
    this.tooLarge++;
    this.lastTooLarge = { subject: entry.message.subject, bytes: publishedSize(entry.message), maxPayload };
    this.tooLargeWarning.note();
    this.spool.ack(entry);
    this.settleDrains();
  }

  private send(js: JetStreamClient, entry: SpoolEntry): void {
    this.inFlight++;
    const { subject, msgId, data } = entry.message;
    const options: Partial<JetStreamPublishOptions> = { msgID: msgId, timeout: this.ackTimeoutMs };
    js.publish(subject, data, options).then(
      (ack) => this.onAck(entry, ack),
      (err: unknown) => this.onFailure(err),
    );
  }

  private onAck(entry: SpoolEntry, ack: PubAck): void {
    this.inFlight--;
    this.published++;
    if (ack.duplicate) this.duplicates++;
    if (this.closing) return;
    this.spool.ack(entry);
    this.backoffMs = BACKOFF_MIN_MS;
    this.probing = false;
    this.settleDrains();
    if (!this.failing) this.pump();
    else if (this.inFlight === 0) this.retryAfterFailure();
  }

  private onFailure(err: unknown): void {
    this.inFlight--;
    if (this.closing) return;
    this.publishFailures++;
    this.lastFailure = this.sanitize(errorText(err));
    this.failureWarning.note();
    this.failing = true;
    if (this.nats.manageStream) this.streamReady = false; // it may have been deleted: check again before resending
    if (this.inFlight === 0) this.retryAfterFailure();
  }

  /** Every in-flight publish settled after a failure: re-send from the oldest unacknowledged, after a backoff. */
  private retryAfterFailure(): void {
    this.spool.rewind();
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closing) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.failing = false;
      this.probing = true;
      this.resume();
    }, wait);
  }

  private settleDrains(): void {
    if (this.drainWaiters.size === 0) return;
    const acknowledged = this.spool.acknowledged;
    for (const waiter of this.drainWaiters) {
      if (acknowledged < waiter.target) continue;
      clearTimeout(waiter.timer);
      this.drainWaiters.delete(waiter);
      waiter.resolve(true);
    }
  }

  /** Error text fit for a log line: no URL userinfo, no token or password. */
  private sanitize(text: string): string {
    let out = stripUserinfo(text);
    for (const secret of this.secrets) out = out.split(secret).join('********');
    return out;
  }
}

/** Bytes the server counts against max_payload: the payload and the Nats-Msg-Id header block. */
function publishedSize(m: OutboundMessage): number {
  return m.data.length + Buffer.byteLength(`NATS/1.0\r\nNats-Msg-Id: ${m.msgId}\r\n\r\n`);
}

/** Logs the first event at once, then at most one line per interval with the count since. */
class RateLimited {
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly intervalMs: number, private readonly emit: (count: number) => void) {}

  note(): void {
    if (this.stopped) return;
    if (this.timer) { this.pending++; return; }
    this.emit(1);
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.pending === 0) return;
      const count = this.pending;
      this.pending = 0;
      this.emit(count);
      this.arm();
    }, this.intervalMs);
    this.timer.unref();
  }
}
