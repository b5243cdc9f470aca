/** Reads what agents published: every message of a JetStream stream through a durable consumer, acknowledged. */
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';

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
