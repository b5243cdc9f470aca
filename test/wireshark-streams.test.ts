/**
 * tcp.stream / udp.stream counts on crafted captures, each expected figure the
 * one tshark 4.0.17 gives on the same capture (PCAP_ANALYZER_TEST_KEEP_CRAFTED=<dir>
 * keeps them; `tshark -r F -T fields -e frame.number -e tcp.stream -e udp.stream`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import {
  EtherTypes, Proto, TcpFlags, ethernet, icmpError, icmpv6Error, ipv4, ipv6, tcp, udp, type PcapRecordSpec,
} from './helpers/capture-writer.js';

const T0 = 1_700_000_000;
const at = (s: number, data: Buffer): PcapRecordSpec => ({ tsSec: T0 + Math.floor(s), tsSub: Math.round((s % 1) * 1e6), data });
const eth4 = (p: Buffer): Buffer => ethernet('00:00:00:00:00:02', '00:00:00:00:00:01', EtherTypes.IPV4, p);
const eth6 = (p: Buffer): Buffer => ethernet('00:00:00:00:00:02', '00:00:00:00:00:01', EtherTypes.IPV6, p);
/** A UDP datagram in IPv4; `length` overrides the UDP length field, `ipLength` the IP total length (a quote cut short). */
const udp4 = (src: string, dst: string, sport: number, dport: number, o: { length?: number; payload?: number; ipLength?: number } = {}): Buffer =>
  ipv4({ src, dst, proto: Proto.UDP, payload: udp({ srcPort: sport, dstPort: dport, length: o.length, payload: Buffer.alloc(o.payload ?? 4, 1) }), totalLength: o.ipLength });
const tcp4 = (src: string, dst: string, sport: number, dport: number, flags: number, seq: number, ack = 0, payload = 0): Buffer =>
  ipv4({ src, dst, proto: Proto.TCP, payload: tcp({ srcPort: sport, dstPort: dport, flags, seq, ack, payload: Buffer.alloc(payload, 0x41) }) });
const icmp4 = (dst: string, message: Buffer): Buffer => eth4(ipv4({ src: '10.0.0.254', dst, proto: Proto.ICMP, payload: message }));
const { SYN, ACK, PSH } = TcpFlags;
/** Non-DNS ports, so no DNS decoding is involved. */
const P = 7000;

test('a UDP header quoted in an ICMP or ICMPv6 error opens a udp.stream when none exists (tshark 4.0.17: 7 streams here)', async () => {
  const report = await analyzeCrafted([
    at(1, eth4(udp4('10.0.0.1', '10.0.0.2', 5000, P))), // stream 0
    // Port unreachable quoting a datagram nobody saw: tshark gives the ICMP frame udp.stream 1, and the reply below too.
    at(2, icmp4('10.0.0.3', icmpError(3, 3, udp4('10.0.0.3', '10.0.0.4', 6000, P, { length: 100, payload: 0, ipLength: 128 })))),
    at(3, eth4(udp4('10.0.0.4', '10.0.0.3', P, 6000))),
    // Quoting stream 0: found, nothing new.
    at(4, icmp4('10.0.0.1', icmpError(3, 3, udp4('10.0.0.1', '10.0.0.2', 5000, P)))),
    // Time exceeded, redirect, ICMPv6 destination unreachable: streams 2, 3, 4.
    at(5, icmp4('10.0.0.3', icmpError(11, 0, udp4('10.0.0.3', '10.0.0.7', 6003, 33434, { payload: 12 })))),
    at(6, icmp4('10.0.0.3', icmpError(5, 1, udp4('10.0.0.3', '10.0.0.8', 6004, P, { payload: 12 })))),
    at(7, eth6(ipv6({ src: '2001:db8::9', dst: '2001:db8::3', proto: Proto.ICMPV6,
      payload: icmpv6Error(1, 4, ipv6({ src: '2001:db8::3', dst: '2001:db8::4', proto: Proto.UDP, payload: udp({ srcPort: 6005, dstPort: P, payload: Buffer.alloc(4) }) })) }))),
    // No stream in tshark: a UDP length field below 8, or only 6 bytes of the UDP header quoted.
    at(8, icmp4('10.0.0.3', icmpError(3, 3, udp4('10.0.0.3', '10.0.0.5', 6001, P, { length: 4, payload: 0 })))),
    at(9, icmp4('10.0.0.3', icmpError(3, 3, udp4('10.0.0.3', '10.0.0.6', 6002, P, { payload: 0 }).subarray(0, 26)))),
    at(10, eth4(udp4('10.0.0.12', '10.0.0.13', P, P))), // stream 5
    at(11, eth4(udp4('10.0.0.5', '10.0.0.3', P, 6001))), // stream 6: frame 8 opened none
  ], {}, 'quoted-udp-streams');
  assert.equal(report.counters['udp.streams'], 7);
  assert.equal(report.counters['tcp.streams'] ?? 0, 0);
});

test('an ICMPv4 error quoting a known UDP or TCP conversation after an ICMPv6 error finds it: no new stream (tshark 4.0.17: 2 UDP, 1 TCP streams)', async () => {
  // Found by the differential test (test/helpers/difftest.ts): the quoted IPv4 addresses kept the last words of the
  // IPv6 addresses quoted before, so the lookup missed and opened a stream tshark does not have.
  const quote6 = (sport: number): Buffer => eth6(ipv6({ src: '2001:db8::9', dst: '2001:db8::3', proto: Proto.ICMPV6,
    payload: icmpv6Error(1, 4, ipv6({ src: '2001:db8::3', dst: '2001:db8::4', proto: Proto.UDP, payload: udp({ srcPort: sport, dstPort: P, payload: Buffer.alloc(4) }) })) }));
  const report = await analyzeCrafted([
    at(1, eth4(udp4('10.0.0.1', '10.0.0.2', 5000, P))), // udp.stream 0
    at(1.5, eth4(tcp4('10.0.0.1', '10.0.0.2', 5001, 80, SYN, 1000))), // tcp.stream 0
    at(2, eth6(ipv6({ src: '2001:db8::3', dst: '2001:db8::4', proto: Proto.UDP, payload: udp({ srcPort: 6005, dstPort: P, payload: Buffer.alloc(4) }) }))), // udp.stream 1
    at(3, quote6(6005)),
    at(4, icmp4('10.0.0.1', icmpError(3, 3, udp4('10.0.0.1', '10.0.0.2', 5000, P)))),
    at(5, quote6(6005)),
    at(6, icmp4('10.0.0.1', icmpError(3, 3, tcp4('10.0.0.1', '10.0.0.2', 5001, 80, SYN, 1000)))),
  ], {}, 'quoted-after-ipv6-quote');
  assert.deepEqual([report.counters['udp.streams'], report.counters['tcp.streams']], [2, 1]);
});

test('a UDP datagram whose length field is below 8 is in no udp.stream and its payload is not dissected, even when its conversation exists (tshark 4.0.17)', async () => {
  const query = Buffer.from('123401000001000000000000076578616d706c6503636f6d0000010001', 'hex');
  const dns4 = (length?: number): Buffer => eth4(ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: Proto.UDP,
    payload: udp({ srcPort: 5000, dstPort: 53, length, payload: query }) }));
  const report = await analyzeCrafted([at(1, dns4(4)), at(2, dns4()), at(3, dns4(7))], {}, 'udp-bad-length');
  assert.deepEqual([report.counters['udp'], report.counters['dns'], report.counters['udp.streams']], [3, 1, 1]);
  assert.equal(report.capture.decodeErrors['udp.bad_length'], 2);
});

test('a UDP length of 0 over IPv6 is read as a jumbogram\'s, in a datagram or quoted in an ICMPv6 error: the datagram has a udp.stream; over IPv4 it has none (tshark 4.0.17: 4 streams)', async () => {
  // Found by the differential test (test/helpers/difftest.ts). tshark flags "Length is zero but payload < 65536" and
  // takes the IPv6 payload length as the datagram's.
  const udp6 = (sport: number, length?: number, payload = 4): Buffer => ipv6({ src: '2001:db8::1', dst: '2001:db8::2', proto: Proto.UDP,
    payload: udp({ srcPort: sport, dstPort: P, length, payload: Buffer.alloc(payload, 1) }) });
  const error6 = (quoted: Buffer): Buffer => eth6(ipv6({ src: '2001:db8::2', dst: '2001:db8::1', proto: Proto.ICMPV6, payload: icmpv6Error(1, 4, quoted) }));
  const report = await analyzeCrafted([
    at(1, eth6(udp6(5000, 0))), // stream 0
    at(2, eth4(udp4('10.0.0.1', '10.0.0.2', 5001, P, { length: 0 }))), // none
    at(3, error6(udp6(5002, 0))), // stream 1
    at(4, eth6(udp6(5004, 0, 0))), // stream 2: the header alone
    at(5, eth6(udp6(5005, 4))), // none: 4 < 8
    at(6, eth6(udp6(5006, 200))), // stream 3: past the payload
  ], {}, 'udp6-length-zero');
  assert.equal(report.counters['udp.streams'], 4);
  assert.equal(report.capture.decodeErrors['udp.bad_length'], 5);
});

test('a UDP and a TCP conversation resuming after the idle timeout keep their stream numbers; a SYN with a new ISN starts a new tcp.stream (tshark 4.0.17)', async () => {
  const records: PcapRecordSpec[] = [
    at(0, eth4(udp4('10.0.0.1', '10.0.0.2', 5000, P))), // udp.stream 0
    at(0.1, eth4(tcp4('10.0.0.1', '10.0.0.2', 40000, 80, SYN, 100))), // tcp.stream 0
    at(0.2, eth4(tcp4('10.0.0.2', '10.0.0.1', 80, 40000, SYN | ACK, 900, 101))),
    at(0.3, eth4(tcp4('10.0.0.1', '10.0.0.2', 40000, 80, ACK, 101, 901))),
  ];
  // One packet a minute of another UDP conversation (udp.stream 1) moves the clock, so both conversations above expire.
  for (let m = 1; m <= 100; m++) records.push(at(m * 60, eth4(udp4('10.0.0.9', '10.0.0.10', 9000, P))));
  records.push(
    at(6001, eth4(udp4('10.0.0.2', '10.0.0.1', P, 5000))), // udp.stream 0 again
    at(6002, eth4(tcp4('10.0.0.1', '10.0.0.2', 40000, 80, ACK | PSH, 101, 901, 10))), // tcp.stream 0 again
    at(6003, eth4(tcp4('10.0.0.2', '10.0.0.1', 80, 40000, ACK, 901, 111))),
  );
  for (let m = 102; m <= 200; m++) records.push(at(m * 60, eth4(udp4('10.0.0.9', '10.0.0.10', 9000, P))));
  records.push(
    at(12001, eth4(tcp4('10.0.0.1', '10.0.0.2', 40000, 80, SYN, 100))), // the remembered ISN: a retransmission in tcp.stream 0
    at(12002, eth4(tcp4('10.0.0.1', '10.0.0.2', 40000, 80, SYN, 5555))), // a new ISN: tcp.stream 1, port numbers reused
  );
  const report = await analyzeCrafted(records, { flows: { timeouts: { udp: 120, tcpEstablished: 3600, tcpHandshake: 60 } } }, 'resumed-streams');
  assert.equal(report.counters['udp.streams'], 2);
  assert.equal(report.counters['tcp.streams'], 2);
  // Difference kept: tshark marks the SYN at 12001 (the remembered ISN) a retransmission. Only the stream number, client
  // side and base_seq outlive an expired flow, not its sequence analysis, so that SYN is the first segment ours sees.
  assert.equal(report.counters['tcp.analysis.retransmission'], 0);
  assert.equal(report.capture.conversationsForgotten, 0);
});

test('more expired conversations than flows.endedConversations remembers: the oldest are forgotten, counted, and get new streams when they resume', async () => {
  // Six UDP conversations expire; a table of 4 keeps the last 4. All six resume: the first two get new numbers where
  // tshark (which forgets nothing) would count 6 udp.streams: this is the bound's cost, and it is counted.
  const records: PcapRecordSpec[] = [];
  for (let i = 0; i < 6; i++) records.push(at(i, eth4(udp4('10.0.0.1', '10.0.0.2', 5000 + i, P))));
  for (let s = 10; s <= 30; s += 2) records.push(at(s, eth4(udp4('10.0.0.9', '10.0.0.10', 9000, P))));
  for (let i = 0; i < 6; i++) records.push(at(31 + i, eth4(udp4('10.0.0.2', '10.0.0.1', P, 5000 + i))));
  const report = await analyzeCrafted(records, { flows: { endedConversations: 4, timeouts: { udp: 5 } } }, 'forgotten-streams');
  assert.equal(report.capture.conversationsForgotten, 2);
  assert.equal(report.counters['udp.streams'], 6 + 1 + 2);
});
