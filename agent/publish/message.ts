/** A message to publish: what the publisher sends and the spool keeps (its own module, so neither imports the other). */
export interface OutboundMessage {
  subject: string;
  /** Sent as Nats-Msg-Id: JetStream stores one message per id within the duplicate window. */
  msgId: string;
  /** UTF-8 JSON. */
  data: Uint8Array;
}
