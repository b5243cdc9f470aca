/**
 * Decoder against frames built with the capture-writer helper and frames
 * copied from real captures (`tshark -x`, kept with file and frame number).
 * Every frame is placed at a non-zero offset inside a larger buffer whose other
 * bytes are 0xee, so a decoder reading before `offset` or past `capLen` shows.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameRecord } from '../agent/capture/index.js';
import { Anomaly, Decoder, Proto, Transport, TcpFlag, readDnsName, type PacketView } from '../agent/decode/index.js';
import { formatAddress } from '../common/address.js';
import {
  ByteWriter, EtherTypes, Proto as IpProto, TcpFlags, concat, dns, dnsName, dnsOverTcp, ethernet, icmpEcho, icmpError,
  icmpv6Error, ipv4, ipv6, nullHeader, sll, sll2, tcp, tsharkHex, udp,
} from './helpers/capture-writer.js';

const newDecoder = (): Decoder => new Decoder({ maxFragmentDatagrams: 16, fragmentTimeout: 30 });

const FRAME_OFFSET = 7;
let frameNo = 0;

/** A record holding `frame` at offset 7 of a buffer padded with 0xee; `capLen` cuts the capture short. */
function record(frame: Uint8Array, linkType = 1, opts: { capLen?: number; tsSec?: number } = {}): FrameRecord {
  const data = new Uint8Array(FRAME_OFFSET + frame.length + 32).fill(0xee);
  data.set(frame, FRAME_OFFSET);
  const r = new FrameRecord();
  r.data = data;
  r.offset = FRAME_OFFSET;
  r.capLen = opts.capLen ?? frame.length;
  r.wireLen = frame.length;
  r.linkType = linkType;
  r.tsSec = opts.tsSec ?? 1700000000;
  r.tsNsec = 250000000;
  r.number = ++frameNo;
  return r;
}

/** Decodes one frame with a fresh decoder; returns the view and the decoder (for its counters). */
function decodeOne(frame: Uint8Array, linkType = 1, opts: { capLen?: number } = {}): { v: PacketView; d: Decoder } {
  const d = newDecoder();
  return { v: d.decode(record(frame, linkType, opts)), d };
}

const has = (v: PacketView, bits: number): boolean => (v.present & bits) === bits;
const src = (v: PacketView): string => formatAddress(v.ipVersion, v.src);
const dst = (v: PacketView): string => formatAddress(v.ipVersion, v.dst);
const innerSrc = (v: PacketView): string => formatAddress(v.innerIpVersion, v.innerSrc);
const innerDst = (v: PacketView): string => formatAddress(v.innerIpVersion, v.innerDst);
/** The question name of the frame's own DNS message. */
const qname = (v: PacketView): string | null => readDnsName(v.l4Data, v.dnsOff, v.dnsQnameOff, v.dnsOff + v.dnsLen);

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const udpDatagram = (payload: Uint8Array = Buffer.from('hello')): Buffer =>
  ipv4({ src: '192.0.2.10', dst: '198.51.100.20', proto: IpProto.UDP, payload: udp({ srcPort: 40000, dstPort: 9000, payload }) });

// ---------------------------------------------------------------------------
// Real frames

/** wssample_dns.cap, frame 1: Standard query 0x1032 TXT google.com (192.168.170.8 -> 192.168.170.20). */
const REAL_DNS_QUERY = tsharkHex(`
0000  00 c0 9f 32 41 8c 00 e0 18 b1 0c ad 08 00 45 00   ...2A.........E.
0010  00 38 00 00 40 00 40 11 65 47 c0 a8 aa 08 c0 a8   .8..@.@.eG......
0020  aa 14 80 1b 00 35 00 24 85 ed 10 32 01 00 00 01   .....5.$...2....
0030  00 00 00 00 00 00 06 67 6f 6f 67 6c 65 03 63 6f   .......google.co
0040  6d 00 00 10 00 01                                 m.....
`);

/** wssample_dns.cap, frame 2: Standard query response 0x1032 TXT google.com TXT (answer name is a pointer to 0x0c). */
const REAL_DNS_RESPONSE = tsharkHex(`
0000  00 e0 18 b1 0c ad 00 c0 9f 32 41 8c 08 00 45 00   .........2A...E.
0010  00 54 cb ec 00 00 80 11 99 3e c0 a8 aa 14 c0 a8   .T.......>......
0020  aa 08 00 35 80 1b 00 40 c7 25 10 32 81 80 00 01   ...5...@.%.2....
0030  00 01 00 00 00 00 06 67 6f 6f 67 6c 65 03 63 6f   .......google.co
0040  6d 00 00 10 00 01 c0 0c 00 10 00 01 00 00 01 0e   m...............
0050  00 10 0f 76 3d 73 70 66 31 20 70 74 72 20 3f 61   ...v=spf1 ptr ?a
0060  6c 6c                                             ll
`);

/**
 * ppa1e_destunreachable.pcap, frame 2: ICMP Destination unreachable (Host
 * unreachable) 10.2.99.99 -> 10.2.10.2 quoting an echo request 10.2.10.2 ->
 * 10.4.88.88. A 74-byte frame whose IP total length is 56: 4 bytes of padding.
 */
const REAL_ICMP_HOST_UNREACHABLE = tsharkHex(`
0000  00 20 78 e1 5a 80 00 10 7b 81 43 e3 08 00 45 00   . x.Z...{.C...E.
0010  00 38 00 5a 00 00 ff 01 3a 02 0a 02 63 63 0a 02   .8.Z....:...cc..
0020  0a 02 03 01 a7 a2 00 00 00 00 45 00 00 3c 27 00   ..........E..<'.
0030  00 00 1f 01 fe 61 0a 02 0a 02 0a 04 58 58 08 00   .....a......XX..
0040  26 5c 02 00 25 00 00 00 00 00                     &\\..%.....
`);

/** zeek_linux_dlt_sll2.pcap, frame 1 (LINKTYPE_LINUX_SLL2): ICMP echo request 192.0.2.1 -> 192.0.2.1, id 0x0008, seq 1. */
const REAL_SLL2_PING = tsharkHex(`
0000  08 00 00 00 00 00 00 01 03 04 00 06 00 00 00 00   ................
0010  00 00 00 00 45 00 00 54 af 8c 40 00 40 01 07 1a   ....E..T..@.@...
0020  c0 00 02 01 c0 00 02 01 08 00 66 b4 00 08 00 01   ..........f.....
0030  e9 bd f9 62 00 00 00 00 e2 4e 0d 00 00 00 00 00   ...b.....N......
0040  10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f   ................
0050  20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f    !"#$%&'()*+,-./
0060  30 31 32 33 34 35 36 37                           01234567
`);

describe('real frames', () => {
  test('hex dumps parse to the frame lengths tshark shows', () => {
    assert.deepEqual([REAL_DNS_QUERY.length, REAL_DNS_RESPONSE.length, REAL_ICMP_HOST_UNREACHABLE.length, REAL_SLL2_PING.length],
      [70, 98, 74, 104]);
  });

  test('DNS query (wssample_dns.cap #1)', () => {
    const { v, d } = decodeOne(REAL_DNS_QUERY);
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.UDP | Proto.DNS));
    assert.equal(v.transport, Transport.UDP);
    assert.deepEqual([src(v), dst(v), v.srcPort, v.dstPort, v.ttl], ['192.168.170.8', '192.168.170.20', 32795, 53, 64]);
    assert.deepEqual([v.dnsId, v.dnsIsResponse, v.dnsRcode, v.dnsQdCount, v.dnsAnCount, v.dnsQtype, v.dnsQclass],
      [0x1032, false, 0, 1, 0, 16, 1]);
    assert.equal(v.dnsOff, FRAME_OFFSET + 42);
    assert.equal(qname(v), 'google.com');
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('DNS response (wssample_dns.cap #2)', () => {
    const { v, d } = decodeOne(REAL_DNS_RESPONSE);
    assert.deepEqual([v.dnsId, v.dnsIsResponse, v.dnsRcode, v.dnsQdCount, v.dnsAnCount, v.dnsQtype], [0x1032, true, 0, 1, 1, 16]);
    assert.equal(v.dnsLen, 56);
    assert.equal(qname(v), 'google.com');
    // The answer's name is a compression pointer back to the question.
    assert.equal(readDnsName(v.l4Data, v.dnsOff, v.dnsOff + 28, v.dnsOff + v.dnsLen), 'google.com');
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('ICMP host unreachable with Ethernet padding (ppa1e_destunreachable.pcap #2)', () => {
    const { v, d } = decodeOne(REAL_ICMP_HOST_UNREACHABLE);
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.ICMP));
    assert.equal(v.transport, Transport.ICMP);
    assert.deepEqual([src(v), dst(v), v.icmpType, v.icmpCode], ['10.2.99.99', '10.2.10.2', 3, 1]);
    // 56-byte datagram: 20 IP + 8 ICMP + 28 quoted; the 4 padding bytes are not payload.
    assert.deepEqual([v.ipPayloadLen, v.payloadLen, v.payloadCapLen], [36, 28, 28]);
    assert.equal(v.truncated, false);
    assert.deepEqual([v.innerIpVersion, innerSrc(v), innerDst(v), v.innerProto], [4, '10.2.10.2', '10.4.88.88', 1]);
    assert.equal(v.present & (Proto.TCP | Proto.UDP | Proto.DNS), 0);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('Linux cooked v2 ping (zeek_linux_dlt_sll2.pcap #1)', () => {
    const { v, d } = decodeOne(REAL_SLL2_PING, 276);
    assert.ok(has(v, Proto.SLL | Proto.IP | Proto.ICMP));
    assert.equal(v.present & Proto.ETH, 0);
    assert.deepEqual([src(v), dst(v), v.ipId, v.icmpType, v.icmpId, v.icmpSeq], ['192.0.2.1', '192.0.2.1', 0xaf8c, 8, 8, 1]);
    assert.equal(v.l3Off, FRAME_OFFSET + 20);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });
});

// ---------------------------------------------------------------------------

describe('link layers', () => {
  test('Ethernet II', () => {
    const { v, d: decoder } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, udpDatagram()));
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.UDP));
    assert.equal(v.present & (Proto.VLAN | Proto.SLL | Proto.NULL), 0);
    assert.deepEqual([v.vlan, v.l3Off, v.capLen, v.frameOff], [-1, FRAME_OFFSET + 14, 14 + 33, FRAME_OFFSET]);
    // view.ts counts from decoder.timeBase (a multiple of 10^6 s from the first frame) to keep nanoseconds exact.
    assert.deepEqual([v.tsSec, v.tsNsec, decoder.timeBase, v.ts], [1700000000, 250000000, 1700000000, 0.25]);
  });

  test('802.1Q tag', () => {
    const { v } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, udpDatagram(), [{ tpid: 0x8100, vid: 100, pcp: 5 }]));
    assert.ok(has(v, Proto.ETH | Proto.VLAN | Proto.IP | Proto.UDP));
    assert.equal(v.vlan, 100);
    assert.equal(v.l3Off, FRAME_OFFSET + 18);
  });

  test('QinQ: 802.1ad S-tag then 802.1Q C-tag; the outer id is kept', () => {
    const frame = ethernet(MAC_A, MAC_B, EtherTypes.IPV6,
      ipv6({ src: '2001:db8::1', dst: '2001:db8::2', proto: IpProto.UDP, payload: udp({ srcPort: 1, dstPort: 2 }) }),
      [{ tpid: 0x88a8, vid: 3000 }, { tpid: 0x8100, vid: 42 }]);
    const { v } = decodeOne(frame);
    assert.ok(has(v, Proto.ETH | Proto.VLAN | Proto.IPV6 | Proto.UDP));
    assert.equal(v.vlan, 3000);
    assert.equal(v.l3Off, FRAME_OFFSET + 22);
    assert.deepEqual([src(v), dst(v)], ['2001:db8::1', '2001:db8::2']);
  });

  test('Linux cooked v1 (113) and v2 (276)', () => {
    const ip = udpDatagram();
    const one = decodeOne(sll(EtherTypes.IPV4, ip), 113).v;
    assert.ok(has(one, Proto.SLL | Proto.IP | Proto.UDP));
    assert.equal(one.l3Off, FRAME_OFFSET + 16);
    const two = decodeOne(sll2(EtherTypes.IPV4, ip), 276).v;
    assert.ok(has(two, Proto.SLL | Proto.IP | Proto.UDP));
    assert.equal(two.l3Off, FRAME_OFFSET + 20);
    for (const v of [one, two]) assert.deepEqual([src(v), v.srcPort, v.dstPort], ['192.0.2.10', 40000, 9000]);
    const short = decodeOne(sll(EtherTypes.IPV4, ip).subarray(0, 15), 113);
    assert.deepEqual(short.d.anomalies.toRecord(), { 'sll.truncated': 1 });
  });

  test('raw IP link types 101 (by version nibble), 228 (IPv4) and 229 (IPv6)', () => {
    const v4 = udpDatagram();
    const v6 = ipv6({ src: 'fe80::1', dst: 'ff02::fb', proto: IpProto.UDP, payload: udp({ srcPort: 5353, dstPort: 5353 }) });
    const cases: Array<[Uint8Array, number, number, string]> = [
      [v4, 101, 4, '192.0.2.10'],
      [v6, 101, 6, 'fe80::1'],
      [v4, 228, 4, '192.0.2.10'],
      [v6, 229, 6, 'fe80::1'],
    ];
    for (const [frame, linkType, version, from] of cases) {
      const { v, d } = decodeOne(frame, linkType);
      assert.equal(v.ipVersion, version, `link type ${linkType}`);
      assert.equal(src(v), from);
      assert.equal(v.l3Off, FRAME_OFFSET);
      assert.ok(has(v, Proto.UDP));
      assert.equal(v.present & (Proto.ETH | Proto.SLL | Proto.NULL), 0);
      assert.deepEqual(d.anomalies.toRecord(), {});
    }
  });

  test('NULL (0) in either byte order and LOOP (108) in network order', () => {
    const v4 = udpDatagram();
    const v6 = ipv6({ src: '::1', dst: '::1', proto: IpProto.UDP, payload: udp({ srcPort: 7, dstPort: 8 }) });
    const le4 = decodeOne(nullHeader(2, 'le', v4), 0).v;
    assert.ok(has(le4, Proto.NULL | Proto.IP | Proto.UDP));
    assert.equal(le4.l3Off, FRAME_OFFSET + 4);
    const be6 = decodeOne(nullHeader(30, 'be', v6), 0).v; // AF_INET6 on macOS
    assert.ok(has(be6, Proto.NULL | Proto.IPV6 | Proto.UDP));
    assert.equal(dst(be6), '::1');
    const le6 = decodeOne(nullHeader(10, 'le', v6), 0).v; // AF_INET6 on Linux
    assert.equal(le6.ipVersion, 6);
    const loop4 = decodeOne(nullHeader(2, 'be', v4), 108).v;
    assert.ok(has(loop4, Proto.NULL | Proto.IP | Proto.UDP));
    const loop6 = decodeOne(nullHeader(24, 'be', v6), 108).v;
    assert.ok(has(loop6, Proto.NULL | Proto.IPV6));
    // An unknown family: the link layer only.
    const odd = decodeOne(nullHeader(99, 'le', v4), 0);
    assert.equal(odd.v.present, Proto.NULL);
    assert.deepEqual(odd.d.anomalies.toRecord(), {});
  });

  test('an unknown link type is counted as undecoded, not as an error', () => {
    const d = newDecoder();
    const v = d.decode(record(udpDatagram(), 147));
    assert.equal(v.present, 0);
    assert.equal(v.anomaly, 0);
    d.decode(record(udpDatagram(), 147));
    assert.deepEqual([...d.undecodedLinkTypes], [[147, 2]]);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });
});

// ---------------------------------------------------------------------------

describe('IP', () => {
  test('IPv4 options (IHL 6) and Ethernet padding trimmed to the total length', () => {
    const payload = udp({ srcPort: 1234, dstPort: 5678, payload: Buffer.from('abcd') });
    const ip = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: IpProto.UDP, payload, options: Buffer.from([0x94, 0x04, 0x00, 0x00]), ttl: 1 });
    assert.equal(ip[0], 0x46);
    const frame = concat(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ip), Buffer.alloc(60 - 14 - ip.length, 0xff)); // padded to 60
    const { v, d } = decodeOne(frame);
    assert.equal(v.capLen, 60);
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.UDP));
    assert.deepEqual([v.ttl, v.ipPayloadLen, v.l4Off - v.l3Off], [1, 12, 24]);
    assert.deepEqual([v.payloadLen, v.payloadCapLen, v.payloadOff - v.l3Off], [4, 4, 32]);
    assert.equal(v.truncated, false);
    assert.deepEqual(d.anomalies.toRecord(), {});

    // A TCP SYN padded to 60 bytes has no payload.
    const syn = ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: IpProto.TCP, payload: tcp({ srcPort: 5000, dstPort: 80, flags: TcpFlags.SYN }) });
    const padded = decodeOne(concat(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, syn), Buffer.alloc(6, 0xaa))).v;
    assert.deepEqual([padded.transport, padded.payloadLen, padded.payloadCapLen], [Transport.TCP, 0, 0]);
  });

  test('IPv6 with hop-by-hop, destination options and routing headers, then TCP', () => {
    const seg = tcp({ srcPort: 443, dstPort: 50000, seq: 1, ack: 2, flags: TcpFlags.ACK | TcpFlags.PSH, payload: Buffer.from('data') });
    const ip = ipv6({
      src: '2001:db8:1::10', dst: '2001:db8:2::20', proto: IpProto.TCP, payload: seg, hopLimit: 33,
      ext: [{ kind: 'hop' }, { kind: 'dst', units: 1 }, { kind: 'routing', routingType: 0, addresses: ['2001:db8:3::30'] }],
    });
    const { v, d } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV6, ip));
    assert.ok(has(v, Proto.ETH | Proto.IPV6 | Proto.TCP));
    assert.equal(v.present & Proto.IP, 0);
    assert.deepEqual([v.ipVersion, v.ipProto, v.ttl, src(v), dst(v)], [6, 6, 33, '2001:db8:1::10', '2001:db8:2::20']);
    // 40 fixed + 8 hop-by-hop + 16 destination options + 24 routing.
    assert.equal(v.l4Off - v.l3Off, 40 + 8 + 16 + 24);
    assert.equal(v.ipPayloadLen, seg.length);
    assert.deepEqual([v.transport, v.srcPort, v.dstPort, v.payloadLen], [Transport.TCP, 443, 50000, 4]);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('IPv6 extension header cut by the capture is flagged', () => {
    const ip = ipv6({ src: '::1', dst: '::2', proto: IpProto.TCP, payload: tcp({ srcPort: 1, dstPort: 2 }), ext: [{ kind: 'hop' }] });
    const { v, d } = decodeOne(ip, 229, { capLen: 44 });
    assert.ok(has(v, Proto.IPV6));
    assert.equal(v.truncated, true);
    assert.deepEqual(d.anomalies.toRecord(), { 'ipv6.ext_truncated': 1 });
  });

  test('IP-in-IP: the inner addresses key the packet', () => {
    const inner = udpDatagram();
    const outer = ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 4, payload: inner });
    const { v } = decodeOne(outer, 228);
    assert.deepEqual([src(v), dst(v), v.transport, v.dstPort], ['192.0.2.10', '198.51.100.20', Transport.UDP, 9000]);
  });
});

// ---------------------------------------------------------------------------

describe('transport', () => {
  test('TCP header and options: MSS, window scale, SACK permitted, timestamps', () => {
    const seg = tcp({
      srcPort: 51000, dstPort: 443, seq: 0xfffffff0, ack: 0, flags: TcpFlags.SYN | TcpFlags.ECE | TcpFlags.CWR, window: 64240,
      options: [{ kind: 'mss', value: 1460 }, { kind: 'sackPermitted' }, { kind: 'timestamps', val: 0xdeadbeef, ecr: 0 },
        { kind: 'nop' }, { kind: 'wscale', shift: 7 }],
    });
    assert.equal(seg.length, 40);
    const { v, d } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV4,
      ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.TCP, payload: seg })));
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.TCP));
    assert.equal(v.transport, Transport.TCP);
    assert.deepEqual([v.srcPort, v.dstPort, v.seq, v.ack, v.window, v.tcpHeaderLen], [51000, 443, 0xfffffff0, 0, 64240, 40]);
    assert.equal(v.tcpFlags, TcpFlag.SYN | TcpFlag.ECE | TcpFlag.CWR);
    assert.deepEqual([v.mss, v.wscale, v.sackPermitted, v.tsVal, v.tsEcr, v.sackCount], [1460, 7, true, 0xdeadbeef, 0, 0]);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('TCP SACK blocks and timestamps on an ACK; options reset between frames', () => {
    const d = newDecoder();
    const ack = tcp({
      srcPort: 443, dstPort: 51000, seq: 100, ack: 5000, flags: TcpFlags.ACK,
      options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamps', val: 7, ecr: 9 },
        { kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks: [[6000, 7000], [8000, 9000]] }],
    });
    const v = d.decode(record(ipv4({ src: '192.0.2.2', dst: '192.0.2.1', proto: IpProto.TCP, payload: ack }), 228));
    assert.deepEqual([v.tsVal, v.tsEcr, v.sackCount, ...v.sack.subarray(0, 4)], [7, 9, 2, 6000, 7000, 8000, 9000]);
    assert.deepEqual([v.mss, v.wscale, v.sackPermitted], [-1, -1, false]);
    const plain = d.decode(record(ipv4({ src: '192.0.2.2', dst: '192.0.2.1', proto: IpProto.TCP, payload: tcp({ srcPort: 1, dstPort: 2 }) }), 228));
    assert.deepEqual([plain.tsVal, plain.tsEcr, plain.sackCount, plain.mss], [-1, -1, 0, -1]);
  });

  test('UDP', () => {
    const { v } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, udpDatagram(Buffer.from('0123456789'))));
    assert.deepEqual([v.transport, v.srcPort, v.dstPort, v.payloadLen, v.payloadCapLen], [Transport.UDP, 40000, 9000, 10, 10]);
    assert.equal(Buffer.from(v.l4Data.subarray(v.payloadOff, v.payloadOff + v.payloadCapLen)).toString(), '0123456789');
    assert.equal(v.present & Proto.DNS, 0);
  });

  test('ICMP echo request and reply', () => {
    const d = newDecoder();
    const req = d.decode(record(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.ICMP, payload: icmpEcho(0x1234, 77) }), 228));
    assert.deepEqual([req.transport, req.icmpType, req.icmpCode, req.icmpId, req.icmpSeq], [Transport.ICMP, 8, 0, 0x1234, 77]);
    assert.equal(req.innerIpVersion, 0);
    const rep = d.decode(record(ipv4({ src: '192.0.2.2', dst: '192.0.2.1', proto: IpProto.ICMP, payload: icmpEcho(0x1234, 78, true) }), 228));
    assert.deepEqual([rep.icmpType, rep.icmpSeq], [0, 78]);
  });

  test('ICMP port unreachable quoting a UDP DNS query', () => {
    const query = ipv4({ src: '192.0.2.1', dst: '192.0.2.53', proto: IpProto.UDP, ttl: 63,
      payload: udp({ srcPort: 33333, dstPort: 53, payload: dns({ id: 0xabcd, qname: 'www.example.com' }) }) });
    const err = ipv4({ src: '192.0.2.53', dst: '192.0.2.1', proto: IpProto.ICMP, payload: icmpError(3, 3, query) });
    const { v, d } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, err));
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.ICMP | Proto.UDP | Proto.DNS));
    assert.equal(v.transport, Transport.ICMP);
    assert.deepEqual([v.icmpType, v.icmpCode, src(v), dst(v)], [3, 3, '192.0.2.53', '192.0.2.1']);
    assert.deepEqual([v.innerIpVersion, innerSrc(v), innerDst(v), v.innerProto, v.innerSrcPort, v.innerDstPort],
      [4, '192.0.2.1', '192.0.2.53', IpProto.UDP, 33333, 53]);
    // A quoted message is not the frame's own DNS message.
    assert.equal(v.dnsOff, -1);
    assert.equal(v.dnsQtype, -1);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('ICMP fragmentation needed carries the next-hop MTU', () => {
    const quoted = ipv4({ src: '10.10.1.4', dst: '192.0.2.80', proto: IpProto.TCP, df: true,
      payload: tcp({ srcPort: 1025, dstPort: 25, payload: Buffer.alloc(1000) }) }).subarray(0, 28);
    const { v } = decodeOne(ipv4({ src: '192.168.1.1', dst: '10.10.1.4', proto: IpProto.ICMP, payload: icmpError(3, 4, quoted, 1400) }), 228);
    assert.deepEqual([v.icmpType, v.icmpCode, v.icmpMtu], [3, 4, 1400]);
    assert.ok(has(v, Proto.ICMP | Proto.TCP));
    assert.deepEqual([v.innerSrcPort, v.innerDstPort, v.transport], [1025, 25, Transport.ICMP]);
    // Another unreachable code has no MTU.
    const other = decodeOne(ipv4({ src: '192.168.1.1', dst: '10.10.1.4', proto: IpProto.ICMP, payload: icmpError(3, 1, quoted, 1400) }), 228).v;
    assert.equal(other.icmpMtu, 0);
  });

  test('ICMPv6 packet too big carries the MTU and quotes IPv6/UDP', () => {
    const quoted = ipv6({ src: '2001:db8::1', dst: '2001:db8::99', proto: IpProto.UDP, payload: udp({ srcPort: 4000, dstPort: 4001, payload: Buffer.alloc(1400) }) })
      .subarray(0, 1232);
    const ptb = ipv6({ src: '2001:db8::fe', dst: '2001:db8::1', proto: IpProto.ICMPV6, payload: icmpv6Error(2, 0, quoted, 1280) });
    const { v, d } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV6, ptb));
    assert.ok(has(v, Proto.IPV6 | Proto.ICMPV6 | Proto.UDP));
    assert.deepEqual([v.transport, v.icmpType, v.icmpCode, v.icmpMtu], [Transport.ICMPV6, 2, 0, 1280]);
    assert.deepEqual([v.innerIpVersion, innerSrc(v), innerDst(v), v.innerSrcPort, v.innerDstPort], [6, '2001:db8::1', '2001:db8::99', 4000, 4001]);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });
});

// ---------------------------------------------------------------------------

describe('DNS', () => {
  const overUdp = (message: Uint8Array, fromServer = false): Buffer =>
    ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: '192.0.2.1', dst: '192.0.2.53', proto: IpProto.UDP,
      payload: udp(fromServer ? { srcPort: 53, dstPort: 40001, payload: message } : { srcPort: 40001, dstPort: 53, payload: message }) }));

  test('query and NXDOMAIN response fields', () => {
    const d = newDecoder();
    const q = d.decode(record(overUdp(dns({ id: 0x4242, qname: 'Mail.Example.COM', qtype: 28 }))));
    assert.ok(has(q, Proto.UDP | Proto.DNS));
    assert.deepEqual([q.dnsId, q.dnsIsResponse, q.dnsRcode, q.dnsQdCount, q.dnsAnCount, q.dnsQtype, q.dnsQclass],
      [0x4242, false, 0, 1, 0, 28, 1]);
    assert.equal(qname(q), 'mail.example.com');
    const r = d.decode(record(overUdp(dns({ id: 0x4242, response: true, rcode: 3, qname: 'nope.example', qtype: 1 }), true)));
    assert.deepEqual([r.dnsId, r.dnsIsResponse, r.dnsRcode, r.dnsAnCount, r.dnsQtype], [0x4242, true, 3, 0, 1]);
    assert.equal(qname(r), 'nope.example');
    const ok = d.decode(record(overUdp(dns({ id: 9, response: true, qname: 'a.example', answers: 2 }), true)));
    assert.deepEqual([ok.dnsRcode, ok.dnsAnCount], [0, 2]);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('DNS over TCP: the 2-byte length prefix is skipped', () => {
    const msg = dns({ id: 0x0777, response: true, qname: 'big.example.net', qtype: 255, answers: 3 });
    const seg = tcp({ srcPort: 53, dstPort: 41000, flags: TcpFlags.ACK | TcpFlags.PSH, payload: dnsOverTcp(msg) });
    const { v, d } = decodeOne(ipv4({ src: '192.0.2.53', dst: '192.0.2.1', proto: IpProto.TCP, payload: seg }), 228);
    assert.ok(has(v, Proto.TCP | Proto.DNS));
    assert.equal(v.dnsOff, v.payloadOff + 2);
    assert.deepEqual([v.dnsId, v.dnsIsResponse, v.dnsAnCount, v.dnsQtype, v.dnsLen], [0x0777, true, 3, 255, msg.length]);
    assert.equal(qname(v), 'big.example.net');
    assert.deepEqual(d.anomalies.toRecord(), {});
    // A segment holding only part of the message is not decoded as DNS.
    const part = tcp({ srcPort: 53, dstPort: 41000, payload: dnsOverTcp(msg).subarray(0, 20) });
    const partial = decodeOne(ipv4({ src: '192.0.2.53', dst: '192.0.2.1', proto: IpProto.TCP, payload: part }), 228).v;
    assert.equal(partial.present & Proto.DNS, 0);
  });

  /** A query header (id 1, one question) followed by hand-made question name bytes, type A, class IN. */
  const rawQuestion = (nameBytes: number[]): Buffer =>
    new ByteWriter().u16(1).u16(0x0100).u16(1).u16(0).u16(0).u16(0).bytes(nameBytes).u16(1).u16(1).build();

  const badNames: Array<[string, number[]]> = [
    ['a pointer to itself', [0xc0, 0x0c]],
    ['a label then a pointer back to it (loop)', [0x01, 0x61, 0xc0, 0x0c]],
    ['two labels pointing at each other', [0x01, 0x61, 0x01, 0x62, 0xc0, 0x0e]],
    ['a forward pointer', [0xc0, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x63, 0x6f, 0x6d, 0x00]],
    ['an obsolete 0x40 label type', [0x41, 0x61, 0x00]],
  ];
  for (const [what, name] of badNames) {
    test(`question name with ${what} is flagged dns.bad_name without hanging`, () => {
      const { v, d } = decodeOne(overUdp(rawQuestion(name)));
      assert.ok(has(v, Proto.UDP | Proto.DNS));
      assert.deepEqual(d.anomalies.toRecord(), { 'dns.bad_name': 1 });
      assert.equal(v.anomaly, Anomaly['dns.bad_name']);
      assert.equal(v.dnsId, 1);
      assert.equal(v.dnsQtype, -1);
      assert.equal(readDnsName(v.l4Data, v.dnsOff, v.dnsOff + 12, v.dnsOff + v.dnsLen), null);
    });
  }

  test('a backward pointer to an earlier name is fine', () => {
    // Question 1 is "example.com"; a second name at the end points into it.
    const msg = concat(rawQuestion([...dnsName('example.com')]), [0x03, 0x77, 0x77, 0x77, 0xc0, 0x0c]);
    const { v } = decodeOne(overUdp(msg));
    assert.equal(qname(v), 'example.com');
    assert.equal(readDnsName(v.l4Data, v.dnsOff, v.dnsOff + msg.length - 6, v.dnsOff + v.dnsLen), 'www.example.com');
  });

  test('a message shorter than its header is dns.truncated', () => {
    const { v, d } = decodeOne(overUdp(Buffer.from([0, 1, 2, 3, 4, 5])));
    assert.ok(has(v, Proto.UDP | Proto.DNS));
    assert.deepEqual(d.anomalies.toRecord(), { 'dns.truncated': 1 });
  });
});

// ---------------------------------------------------------------------------

describe('IP reassembly', () => {
  /** A DNS response over UDP split into IPv4 fragments of `size` payload bytes. */
  function v4Fragments(size: number): { fragments: Buffer[]; udpLen: number } {
    const datagram = udp({ srcPort: 53, dstPort: 45000, payload: dns({ id: 0x5151, response: true, qname: 'fragmented.example.org', answers: 3 }) });
    const fragments: Buffer[] = [];
    for (let off = 0; off < datagram.length; off += size) {
      const piece = datagram.subarray(off, off + size);
      fragments.push(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: '192.0.2.53', dst: '192.0.2.1', proto: IpProto.UDP, id: 0x7777,
        fragOffset: off, mf: off + size < datagram.length, payload: piece })));
    }
    return { fragments, udpLen: datagram.length };
  }

  test('IPv4: three fragments out of order; only the completing frame has UDP', () => {
    const { fragments, udpLen } = v4Fragments(32);
    assert.equal(fragments.length, 3);
    const d = newDecoder();
    for (const i of [1, 2]) {
      const v = d.decode(record(fragments[i]!));
      assert.ok(has(v, Proto.ETH | Proto.IP | Proto.IP_FRAGMENT), `fragment ${i}`);
      assert.equal(v.present & (Proto.UDP | Proto.DNS), 0, `fragment ${i} has no transport`);
      assert.notEqual(v.transport, Transport.UDP);
      assert.equal(v.reassembled, false);
      assert.deepEqual([v.fragOffset, v.moreFragments, v.ipId], [i * 32, i === 1, 0x7777]);
    }
    assert.equal(d.reassembler.size, 1);
    const last = d.decode(record(fragments[0]!));
    assert.ok(has(last, Proto.IP | Proto.IP_FRAGMENT | Proto.UDP | Proto.DNS));
    assert.equal(last.reassembled, true);
    assert.equal(last.transport, Transport.UDP);
    assert.notEqual(last.l4Data, last.data);
    assert.deepEqual([last.srcPort, last.dstPort, last.payloadLen], [53, 45000, udpLen - 8]);
    assert.deepEqual([last.dnsId, last.dnsIsResponse, last.dnsAnCount], [0x5151, true, 3]);
    assert.equal(qname(last), 'fragmented.example.org');
    assert.equal(d.reassembler.size, 0);
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('IPv4: an unfinished datagram times out after fragmentTimeout seconds of packet time', () => {
    const { fragments } = v4Fragments(32);
    const d = newDecoder();
    d.decode(record(fragments[0]!, 1, { tsSec: 1000 }));
    d.decode(record(fragments[1]!, 1, { tsSec: 1031 }));
    assert.deepEqual(d.anomalies.toRecord(), { 'ip.reassembly_timeout': 1 });
    const v = d.decode(record(fragments[2]!, 1, { tsSec: 1032 }));
    assert.equal(v.present & Proto.UDP, 0);
  });

  /** A UDP datagram split by IPv6 fragment headers. */
  function v6Fragments(src: string, id: number, size = 48): Buffer[] {
    const datagram = udp({ srcPort: 5000, dstPort: 53, payload: dns({ id: id & 0xffff, qname: 'six.example', qtype: 28 }) });
    const out: Buffer[] = [];
    for (let off = 0; off < datagram.length; off += size) {
      const more = off + size < datagram.length;
      out.push(ipv6({ src, dst: '2001:db8::53', proto: IpProto.UDP, payload: datagram.subarray(off, off + size),
        ext: [{ kind: 'fragment', offset: off, more, id }] }));
    }
    return out;
  }

  test('IPv6 fragment header: reassembled on the last missing fragment', () => {
    const frags = v6Fragments('2001:db8::1', 0xcafef00d, 16);
    assert.equal(frags.length, 3);
    const d = newDecoder();
    for (const i of [2, 0]) {
      const v = d.decode(record(frags[i]!, 229));
      assert.ok(has(v, Proto.IPV6 | Proto.IPV6_FRAGMENT));
      assert.equal(v.present & Proto.UDP, 0);
      assert.deepEqual([v.ipProto, v.ipId, v.fragOffset, v.moreFragments], [IpProto.UDP, 0xcafef00d, i * 16, i !== 2]);
    }
    const v = d.decode(record(frags[1]!, 229));
    assert.ok(has(v, Proto.IPV6 | Proto.IPV6_FRAGMENT | Proto.UDP | Proto.DNS));
    assert.deepEqual([v.reassembled, v.transport, v.dstPort, v.dnsQtype], [true, Transport.UDP, 53, 28]);
    assert.equal(qname(v), 'six.example');
    assert.deepEqual(d.anomalies.toRecord(), {});
  });

  test('IPv6 atomic fragment (offset 0, no more fragments) is a whole datagram', () => {
    const [only] = v6Fragments('2001:db8::1', 1, 1000);
    const { v } = decodeOne(only!, 229);
    assert.equal(v.present & Proto.IPV6_FRAGMENT, 0);
    assert.deepEqual([v.transport, v.reassembled], [Transport.UDP, false]);
  });

  /**
   * The reassembler keys pending datagrams by a 32-bit hash with linear
   * probing. IPv6 fragment ids are 32 bits chosen by the sender, so two
   * datagrams can be made to share a hash. This inverts the hash (a chain of
   * bijections) to build such a pair, then completes the first one while the
   * second is pending: the second must still reassemble.
   */
  test('IPv6: two datagrams whose reassembly keys collide both complete', () => {
    const words = (addr: string): number[] => {
      const b = ipv6({ src: addr, dst: '::', proto: 59, payload: new Uint8Array(0) });
      return [0, 1, 2, 3].map((i) => b.readUInt32BE(8 + i * 4));
    };
    const dstW = words('2001:db8::53');
    const hash = (srcW: number[], id: number): number => {
      let h = (id * 31 + IpProto.UDP + 6 * 7) | 0;
      for (let i = 0; i < 4; i++) h = (Math.imul(h, 16777619) ^ srcW[i]! ^ Math.imul(dstW[i]!, 3)) | 0;
      return h;
    };
    const inverse = (a: number): number => { let x = a; for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(a, x)); return x; };
    const idFor = (srcW: number[], target: number): number => {
      let h = target;
      for (let i = 3; i >= 0; i--) h = Math.imul(h ^ srcW[i]! ^ Math.imul(dstW[i]!, 3), inverse(16777619));
      return Math.imul((h - IpProto.UDP - 6 * 7) | 0, inverse(31)) >>> 0;
    };
    const srcA = '2001:db8::a';
    const srcB = '2001:db8::b';
    const idA = 0x01020304;
    const idB = idFor(words(srcB), hash(words(srcA), idA));
    assert.equal(hash(words(srcB), idB), hash(words(srcA), idA), 'test setup: the keys collide');

    const a = v6Fragments(srcA, idA, 24);
    const b = v6Fragments(srcB, idB, 24);
    assert.equal(a.length, 2);
    assert.equal(b.length, 2);
    const d = newDecoder();
    d.decode(record(a[0]!, 229));
    d.decode(record(b[0]!, 229));
    assert.equal(d.reassembler.size, 2);
    const doneA = d.decode(record(a[1]!, 229));
    assert.deepEqual([doneA.reassembled, doneA.transport, src(doneA)], [true, Transport.UDP, srcA]);
    const doneB = d.decode(record(b[1]!, 229));
    assert.deepEqual([doneB.reassembled, doneB.transport, src(doneB)], [true, Transport.UDP, srcB]);
    assert.equal(d.reassembler.size, 0);
  });

  test('a fragment cut by the snapshot length: first fragment decodes its transport, no reassembly', () => {
    const { fragments } = v4Fragments(32);
    const { v, d } = decodeOne(fragments[0]!, 1, { capLen: 14 + 20 + 12 });
    assert.ok(has(v, Proto.IP_FRAGMENT | Proto.UDP));
    assert.equal(v.reassembled, false);
    assert.equal(d.reassembler.size, 0);
  });
});

// ---------------------------------------------------------------------------

describe('malformed layers are counted by name; outer layers stay present', () => {
  const ipFrame = (ip: Uint8Array): Buffer => ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ip);

  test('truncated Ethernet', () => {
    const { v, d } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, udpDatagram()).subarray(0, 13));
    assert.equal(v.present, 0);
    assert.equal(v.anomaly, Anomaly['eth.truncated']);
    assert.deepEqual(d.anomalies.toRecord(), { 'eth.truncated': 1 });
  });

  test('truncated VLAN tag', () => {
    const { v, d } = decodeOne(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, new Uint8Array(0), [{ tpid: 0x8100, vid: 5 }]).subarray(0, 16));
    assert.ok(has(v, Proto.ETH));
    assert.deepEqual(d.anomalies.toRecord(), { 'vlan.truncated': 1 });
  });

  test('IPv4 header length below 20 (IHL 4)', () => {
    const { v, d } = decodeOne(ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.UDP, payload: udp({ srcPort: 1, dstPort: 2 }), ihl: 4 })));
    assert.ok(has(v, Proto.ETH | Proto.IP));
    assert.equal(v.present & Proto.UDP, 0);
    assert.deepEqual(d.anomalies.toRecord(), { 'ip.bad_header_length': 1 });
  });

  test('IPv4 total length below the header length', () => {
    const { v, d } = decodeOne(ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.UDP, payload: udp({ srcPort: 1, dstPort: 2 }), totalLength: 12 })));
    assert.ok(has(v, Proto.ETH | Proto.IP));
    assert.equal(v.transport, Transport.NONE);
    assert.deepEqual(d.anomalies.toRecord(), { 'ip.bad_total_length': 1 });
  });

  test('IPv4 shorter than its header, and a bad version', () => {
    const short = decodeOne(ipFrame(udpDatagram()).subarray(0, 14 + 19));
    assert.ok(has(short.v, Proto.ETH));
    assert.deepEqual(short.d.anomalies.toRecord(), { 'ip.truncated': 1 });
    const v5 = decodeOne(ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: 17, payload: udp({ srcPort: 1, dstPort: 2 }), version: 5 })));
    assert.equal(v5.v.present, Proto.ETH);
    assert.deepEqual(v5.d.anomalies.toRecord(), { 'ip.bad_version': 1 });
  });

  test('TCP data offset below 5', () => {
    const seg = tcp({ srcPort: 1111, dstPort: 2222, dataOffset: 4 });
    const { v, d } = decodeOne(ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.TCP, payload: seg })));
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.TCP));
    assert.deepEqual([v.srcPort, v.dstPort, v.transport], [1111, 2222, Transport.NONE]);
    assert.deepEqual(d.anomalies.toRecord(), { 'tcp.bad_data_offset': 1 });
  });

  test('TCP data offset past the IP payload', () => {
    const seg = tcp({ srcPort: 1111, dstPort: 2222, dataOffset: 15 });
    const { d } = decodeOne(ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.TCP, payload: seg })));
    assert.deepEqual(d.anomalies.toRecord(), { 'tcp.bad_data_offset': 1 });
  });

  test('TCP options cut by the capture', () => {
    const seg = tcp({ srcPort: 1, dstPort: 2, flags: TcpFlags.SYN,
      options: [{ kind: 'mss', value: 1400 }, { kind: 'timestamps', val: 1, ecr: 0 }, { kind: 'nop' }, { kind: 'wscale', shift: 2 }] });
    const frame = ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.TCP, payload: seg }));
    // Captured up to 6 bytes into the options: the MSS fits, the timestamps do not.
    const { v, d } = decodeOne(frame, 1, { capLen: 14 + 20 + 20 + 6 });
    assert.ok(has(v, Proto.ETH | Proto.IP | Proto.TCP));
    assert.equal(v.truncated, true);
    assert.deepEqual([v.transport, v.mss, v.tsVal, v.wscale], [Transport.TCP, 1400, -1, -1]);
    assert.deepEqual(d.anomalies.toRecord(), { 'tcp.options_truncated': 1 });
  });

  test('TCP option whose length runs past the header', () => {
    const seg = tcp({ srcPort: 1, dstPort: 2, options: [{ kind: 'raw', bytes: Buffer.from([2, 8, 5, 0xb4]) }] });
    const { v, d } = decodeOne(ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.TCP, payload: seg })));
    assert.equal(v.transport, Transport.TCP);
    assert.equal(v.mss, -1);
    assert.deepEqual(d.anomalies.toRecord(), { 'tcp.options_truncated': 1 });
  });

  test('UDP length below 8 and past the IP payload', () => {
    for (const length of [4, 200]) {
      const { v, d } = decodeOne(ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.UDP,
        payload: udp({ srcPort: 3000, dstPort: 53, payload: Buffer.from('xyz'), length }) })));
      assert.ok(has(v, Proto.ETH | Proto.IP | Proto.UDP), `length ${length}`);
      assert.deepEqual([v.srcPort, v.dstPort], [3000, 53]);
      assert.deepEqual(d.anomalies.toRecord(), { 'udp.bad_length': 1 });
      if (length > 8) {
        // The payload is what the IP header allows.
        assert.equal(v.transport, Transport.UDP);
        assert.equal(v.payloadLen, 3);
      } else {
        // tshark 4.0.17 stops there: no udp.stream, no payload dissected (here DNS), so no transport for the flow table.
        assert.equal(v.transport, Transport.NONE);
        assert.equal(v.dnsOff, -1);
      }
    }
  });

  test('truncated UDP and ICMP headers', () => {
    const u = decodeOne(udpDatagram(), 228, { capLen: 25 });
    assert.ok(has(u.v, Proto.IP));
    assert.equal(u.v.present & Proto.UDP, 0);
    assert.deepEqual(u.d.anomalies.toRecord(), { 'udp.truncated': 1 });
    const i = decodeOne(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.ICMP, payload: icmpEcho(1, 1) }), 228, { capLen: 22 });
    assert.deepEqual(i.d.anomalies.toRecord(), { 'icmp.truncated': 1 });
  });

  test('counts accumulate per decoder across frames', () => {
    const d = newDecoder();
    const bad = ipFrame(ipv4({ src: '192.0.2.1', dst: '192.0.2.2', proto: IpProto.UDP, payload: udp({ srcPort: 1, dstPort: 2 }), ihl: 3 }));
    d.decode(record(bad));
    d.decode(record(bad));
    const good = d.decode(record(ipFrame(udpDatagram())));
    assert.equal(good.anomaly, 0);
    assert.deepEqual(d.anomalies.toRecord(), { 'ip.bad_header_length': 2 });
  });
});
