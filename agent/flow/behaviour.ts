/**
 * A flow's behaviour class, from its counters when it ends (the original tool's
 * classes). The rules, first match wins (P packets, B bytes, D seconds from
 * first to last packet, S the seconds of packet time in which the flow had a
 * packet, "main direction" the one that sent more bytes):
 *
 * - `control`: at most 10 packets and at most 4 KiB: DNS and NTP exchanges,
 *   handshakes and refusals, keep-alives.
 * - `bulk`: the main direction sent at least 512 KiB in packets of 1000 bytes
 *   or more on average (mostly full-size: data one way, acknowledgements back).
 * - `streaming`: D >= 10 s at 10 packets/s or more, with a packet in at least
 *   80 % of its seconds (S >= 0.8 (floor(D) + 1)): a sustained, steady rate
 *   such as media or RTP.
 * - `interactive`: D >= 10 s, packets of 400 bytes or less on average, under
 *   10 packets/s: typing, chat, remote shells.
 * - `unknown`: anything else.
 *
 * Byte figures are the flow table's (frame lengths on the wire).
 */

export const Behaviour = {
  UNKNOWN: 0,
  INTERACTIVE: 1,
  BULK: 2,
  STREAMING: 3,
  CONTROL: 4,
} as const;
export type BehaviourCode = (typeof Behaviour)[keyof typeof Behaviour];
export const BEHAVIOUR_NAMES = ['unknown', 'interactive', 'bulk', 'streaming', 'control'] as const;
export type BehaviourName = (typeof BEHAVIOUR_NAMES)[number];

export const CONTROL_MAX_PACKETS = 10;
export const CONTROL_MAX_BYTES = 4096;
export const BULK_MIN_BYTES = 512 * 1024;
export const BULK_MIN_MEAN_SIZE = 1000;
export const LONG_LIVED_SECONDS = 10;
export const STREAMING_MIN_RATE = 10;
export const STREAMING_MIN_ACTIVE_SHARE = 0.8;
export const INTERACTIVE_MAX_MEAN_SIZE = 400;

/**
 * The class of a flow with `packetsC`/`bytesC` from the client, `packetsS`/`bytesS`
 * from the server, `duration` seconds from first to last packet and
 * `activeSeconds` seconds of packet time with a packet.
 */
export function classifyFlow(packetsC: number, bytesC: number, packetsS: number, bytesS: number, duration: number, activeSeconds: number): BehaviourCode {
  const packets = packetsC + packetsS;
  const bytes = bytesC + bytesS;
  if (packets === 0) return Behaviour.UNKNOWN;
  if (packets <= CONTROL_MAX_PACKETS && bytes <= CONTROL_MAX_BYTES) return Behaviour.CONTROL;
  const mainBytes = bytesC >= bytesS ? bytesC : bytesS;
  const mainPackets = bytesC >= bytesS ? packetsC : packetsS;
  if (mainBytes >= BULK_MIN_BYTES && mainBytes / mainPackets >= BULK_MIN_MEAN_SIZE) return Behaviour.BULK;
  if (duration < LONG_LIVED_SECONDS) return Behaviour.UNKNOWN;
  const rate = packets / duration;
  if (rate >= STREAMING_MIN_RATE && activeSeconds >= STREAMING_MIN_ACTIVE_SHARE * (Math.floor(duration) + 1)) return Behaviour.STREAMING;
  if (rate < STREAMING_MIN_RATE && bytes / packets <= INTERACTIVE_MAX_MEAN_SIZE) return Behaviour.INTERACTIVE;
  return Behaviour.UNKNOWN;
}
