/**
 * Reads what agents published: every message of a JetStream stream through a durable consumer,
 * acknowledged; and publishes window messages as an agent would, for tests that need windows
 * no capture gives (a month old, from an older agent).
 */
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { WindowSummary } from '../../common/report.js';
import { WINDOW_SCHEMA, subjectFor, type WindowMessage } from '../../common/wire.js';
import { waitFor } from './agent-process.js';

export interface StoredMessage {
  subject: string;
  msgId: string;
  /** Delivered more than once to this consumer (should never happen after an ack). */
  redelivered: boolean;
  body: Record<string, unknown>;
}

/** Reads every message now in `stream` (durable consumer `durable`, explicit acks); stops after `idleMs` without one. */
export async function readStream(url: string, stream: string, durable = 'test-reader', idleMs = 1500): Promise<StoredMessage[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit });
    const consumer = await jetstream(nc).consumers.get(stream, durable);
    const out: StoredMessage[] = [];
    for (;;) {
      const msg = await consumer.next({ expires: idleMs });
      if (msg === null) break;
      out.push({
        subject: msg.subject,
        msgId: msg.headers?.get('Nats-Msg-Id') ?? '',
        redelivered: msg.redelivered,
        body: msg.json<Record<string, unknown>>(),
      });
      msg.ack();
    }
    return out;
  } finally {
    await nc.drain();
  }
}

/** An ISO-8601 time with microseconds, as windows carry it. */
export const isoMicros = (epochSeconds: number): string => new Date(epochSeconds * 1000).toISOString().replace('.000Z', '.000000Z');

/**
 * Publishes `windows` of `sensor` to the PCAP_ANALYZER stream once it exists (the collector
 * makes it), with ids `<sensor>.w.<index>`, as an agent with `source` would.
 */
export async function publishWindows(url: string, sensor: string, source: WindowMessage['source'], windows: readonly WindowSummary[]): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await waitFor('the stream', async () => { await jsm.streams.info('PCAP_ANALYZER'); return true; }, 10_000, 100);
    const js = jetstream(nc);
    for (const [j, window] of windows.entries()) {
      const msg: WindowMessage = { schema: WINDOW_SCHEMA, id: `${sensor}.w.${j}`, sensor, source, window };
      await js.publish(subjectFor(sensor, 'window'), JSON.stringify(msg), { msgID: msg.id });
    }
  } finally {
    await nc.drain();
  }
}
