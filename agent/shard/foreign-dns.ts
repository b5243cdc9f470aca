/**
 * Foreign DNS records (flow sharding): a DNS answer names flows of other host
 * pairs. The response travels between a client and its resolver (one worker),
 * while the flows it names go from that client to the answered addresses
 * (other host pairs, often other workers), which take the name from the
 * services analyzer's answer table when they start. So the reader gives a
 * copy of every frame that may carry DNS answers to every worker but the one
 * it belongs to, as a separate *foreign* record (ShardSink.foreign), in input
 * order: after the mark that moves that worker's clock to the frame, before
 * the worker's next packet. A worker hands it to the analyzers' `onForeignDns`
 * (only services has one): it decodes it with a Decoder of its own and takes
 * the answers into its table, counting nothing. No decoder counter, flow,
 * window or metric of the worker sees the frame. Every worker's answer table
 * then takes the same answers at the same places in the input as one
 * pipeline's, and evicts the same ones.
 *
 * Which frames (a superset of what the services analyzer reads answers from;
 * the worker's decoder decides): UDP from or to port 53 and TCP from or to 53
 * or 5353 (transport.ts hands those to DNS) whose DNS header is captured with
 * the response bit and a non-zero answer count (over TCP after the 2-byte
 * length), and every IP fragment of a UDP, TCP or tunnelled datagram (a DNS
 * response of several fragments is read once reassembled, and fragments after
 * the first show no ports). The check reads what `shardHash` found of the
 * transport (shardTransport) for the frame just hashed: a few byte reads.
 */
import { IpProto } from '../decode/constants.js';
import { shardTransport } from '../decode/shard-hash.js';

const DNS_PORT = 53;
const MDNS_PORT = 5353;

/** Whether the frame `shardHash` last hashed (its bytes `d`) may carry DNS answers: see above. */
export function mayCarryDnsAnswers(d: Uint8Array): boolean {
  const t = shardTransport;
  const proto = t.proto;
  if (t.fragment) return proto === IpProto.UDP || proto === IpProto.TCP || proto === IpProto.IPIP || proto === IpProto.IPV6;
  const off = t.offset;
  const end = t.end;
  let msg: number;
  if (proto === IpProto.UDP) {
    if (end - off < 8) return false;
    const sp = (d[off]! << 8) | d[off + 1]!;
    const dp = (d[off + 2]! << 8) | d[off + 3]!;
    if (sp !== DNS_PORT && dp !== DNS_PORT) return false;
    msg = off + 8;
  } else if (proto === IpProto.TCP) {
    if (end - off < 20) return false;
    const sp = (d[off]! << 8) | d[off + 1]!;
    const dp = (d[off + 2]! << 8) | d[off + 3]!;
    if (sp !== DNS_PORT && dp !== DNS_PORT && sp !== MDNS_PORT && dp !== MDNS_PORT) return false;
    msg = off + (d[off + 12]! >> 4) * 4 + 2;
  } else {
    return false;
  }
  // The header's 12 bytes: QR in byte 2, ANCOUNT in bytes 6-7 (the decoder reads neither from fewer).
  return msg + 12 <= end && (d[msg + 2]! & 0x80) !== 0 && (d[msg + 6]! | d[msg + 7]!) !== 0;
}
