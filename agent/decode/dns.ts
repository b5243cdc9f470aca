/**
 * DNS message header and first question, by offset (no strings on the packet
 * path). Names are walked with a cap on compression pointers and length, so a
 * hostile message cannot loop. `readDnsName` turns a name into text when an
 * analyzer needs it (off the per-packet path).
 */
import { Anomaly } from './anomaly.js';
import { u16 } from './bytes.js';
import { Proto } from './constants.js';
import { flagAnomaly, type DecodeContext } from './context.js';

/** RFC 1035: names are at most 255 bytes; more pointers than labels means a loop. */
const MAX_NAME_BYTES = 255;
const MAX_POINTERS = 32;

/**
 * Marks DNS present and, for the frame's own message (not one quoted in an ICMP
 * error), fills the view's dns* fields. `capEnd` is the end of captured bytes.
 * mDNS and LLMNR share DNS's format and Wireshark's dns.* fields but are other
 * protocols for the `dns` filter: `isDns` is false for them. Like Wireshark, a
 * message needs its 4 bytes of id and flags to count as DNS.
 */
export function decodeDns(ctx: DecodeContext, d: Uint8Array, off: number, capEnd: number, len: number, own: boolean, isDns = true): void {
  const view = ctx.view;
  const end = Math.min(capEnd, off + len);
  if (end - off < 4) return;
  if (isDns) view.present |= Proto.DNS;
  // dns.flags.rcode exists on responses only.
  if (d[off + 2]! & 0x80) {
    view.present |= Proto.DNS_RESPONSE;
    if ((d[off + 3]! & 0x0f) === 3) view.present |= Proto.DNS_NXDOMAIN;
  }
  if (!own) return;
  if (end - off < 12) { flagAnomaly(ctx, Anomaly['dns.truncated']); return; }
  view.dnsOff = off;
  view.dnsLen = len;
  view.dnsId = u16(d, off);
  view.dnsFlags = u16(d, off + 2);
  view.dnsQdCount = u16(d, off + 4);
  view.dnsAnCount = u16(d, off + 6);
  view.dnsNsCount = u16(d, off + 8);
  view.dnsArCount = u16(d, off + 10);
  if (view.dnsQdCount === 0) return;
  const q = off + 12;
  const after = skipName(d, off, q, end);
  if (after < 0) { flagAnomaly(ctx, after === -1 ? Anomaly['dns.truncated'] : Anomaly['dns.bad_name']); return; }
  view.dnsQnameOff = q;
  if (after + 4 > end) { flagAnomaly(ctx, Anomaly['dns.truncated']); return; }
  view.dnsQtype = u16(d, after);
  view.dnsQclass = u16(d, after + 2);
}

/**
 * Returns the offset just past the name at `pos` (in the message starting at
 * `msg`), -1 if it runs past `end`, -2 if it is malformed.
 */
export function skipName(d: Uint8Array, msg: number, pos: number, end: number): number {
  let p = pos;
  let after = -1;
  let total = 0;
  for (let pointers = 0; ;) {
    if (p >= end) return -1;
    const b = d[p]!;
    if (b === 0) return after >= 0 ? after : p + 1;
    const kind = b & 0xc0;
    if (kind === 0xc0) {
      if (p + 1 >= end) return -1;
      if (++pointers > MAX_POINTERS) return -2;
      if (after < 0) after = p + 2;
      const target = msg + (((b & 0x3f) << 8) | d[p + 1]!);
      if (target >= p) return -2; // pointers must go backwards; forward ones allow loops
      p = target;
      continue;
    }
    if (kind !== 0) return -2; // 0x40 / 0x80 label types are obsolete
    total += b + 1;
    if (total > MAX_NAME_BYTES) return -2;
    p += b + 1;
  }
}

/** Decodes the name at `pos` as dotted text (lower-cased), or null when malformed. Allocates: not for the packet path. */
export function readDnsName(d: Uint8Array, msg: number, pos: number, end: number): string | null {
  const labels: string[] = [];
  let p = pos;
  for (let pointers = 0; ;) {
    if (p >= end) return null;
    const b = d[p]!;
    if (b === 0) return labels.join('.');
    if ((b & 0xc0) === 0xc0) {
      if (p + 1 >= end || ++pointers > MAX_POINTERS) return null;
      const target = msg + (((b & 0x3f) << 8) | d[p + 1]!);
      if (target >= p) return null;
      p = target;
      continue;
    }
    if (b & 0xc0 || p + 1 + b > end) return null;
    let label = '';
    for (let i = p + 1; i <= p + b; i++) {
      const c = d[i]!;
      label += c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 32) : c > 0x20 && c < 0x7f && c !== 0x2e ? String.fromCharCode(c) : `\\${c.toString(8).padStart(3, '0')}`;
    }
    labels.push(label);
    if (labels.join('.').length > MAX_NAME_BYTES) return null;
    p += b + 1;
  }
}
