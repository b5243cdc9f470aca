/**
 * The dns, icmp, ip_fragments and health analyzers. Crafted captures check
 * the definitions at their edges (Wireshark's DNS matching rules, the
 * documented finding thresholds and health bands); the shared captures check
 * figures against tshark 4.0.17's, hard-coded here with the command that gave
 * them (tests never need tshark at run time).
 *
 * Set PCAP_ANALYZER_TEST_KEEP_CRAFTED=<dir> to keep the crafted captures there, to
 * look at them with tshark.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildConfig } from '../common/config.js';
import type { Finding, HealthComponent, Report } from '../common/report.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import { healthClass, scoreHealth } from '../agent/analyzers/lib/health-score.js';
import { EtherTypes, Proto, TcpFlags, dns, dnsOverTcp, ethernet, icmpEcho, icmpError, icmpv6Error, ipv4, ipv6, tcp, udp, type PcapRecordSpec } from './helpers/capture-writer.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { assertShardedSame, workersOf } from './helpers/assert-sharded.js';
import { MAC_A, MAC_B, at, tcp4, udp4, udp6 } from './helpers/crafted-frames.js';

// ---------------------------------------------------------------------------
// Crafting



/** Not DNS: moves packet time on (expiry, end of input). */
const filler = (): Buffer => udp4('10.0.0.99', 9999, '10.0.0.98', 9998, Buffer.alloc(16));

const query = (id: number, qname = 'www.example.com', qtype = 1): Buffer => dns({ id, qname, qtype });
const answer = (id: number, rcode = 0, qname = 'www.example.com', qtype = 1): Buffer =>
  dns({ id, response: true, rcode, qname, qtype, answers: rcode === 0 ? 1 : 0 });

const CLIENT = '10.0.0.1';
const SERVER = '10.0.0.53';

const analyze = analyzeCrafted;

async function analyzeShared(file: string): Promise<Report> {
  const { report, warnings } = await analyzeCapture(join(SHARED_PCAPS, file), buildConfig(undefined));
  assert.deepEqual(warnings, []);
  return report;
}

type Row = Record<string, unknown>;
/** One analyzer's metrics in window `i`. */
function metrics(r: Report, id: string, i = 0): Row {
  const w = r.windows[i];
  assert.ok(w, `window ${i} exists`);
  const m = w.metrics[id];
  assert.ok(m, `metrics.${id} in window ${i}`);
  return m;
}
/** Sums one numeric metric of an analyzer over all windows. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
const total = (r: Report, id: string, key: string): number => r.windows.reduce((s, w) => s + ((w.metrics[id]?.[key] as number | undefined) ?? 0), 0);
/** Sums a map-valued metric (e.g. icmp.unreachable) over all windows. */
function totalMap(r: Report, id: string, key: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const w of r.windows) {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    const m = w.metrics[id]?.[key] as Record<string, number> | undefined;
    for (const [k, n] of Object.entries(m ?? {})) out[k] = (out[k] ?? 0) + n;
  }
  return out;
}
const findings = (r: Report, type: string): Finding[] => r.findings.filter((f) => f.type === type);
const dnsTime = (r: Report): { count: number; p50: number | null; p90: number | null; max: number | null } => {
  const s = r.stats?.['dns.time'];
  assert.ok(s, 'stats dns.time');
  return { count: s.count, p50: s.p50, p90: s.p90, max: s.max };
};
/** Subset of a window's dns metrics, for one deepEqual. */
function dnsCounts(m: Row): Row {
  const keys = ['queries', 'responses', 'retransmissions', 'unsolicited', 'duplicateResponses', 'timeouts', 'lateResponses', 'count'];
  return Object.fromEntries(keys.map((k) => [k, m[k]]));
}
/** Each window's health score is the health analyzer's score of that window. */
function assertWindowScores(r: Report): void {
  assert.ok(r.windows.length > 0);
  for (const [i, w] of r.windows.entries()) {
    const h = w.metrics['health'];
    assert.ok(h, `metrics.health in window ${i}`);
    assert.equal(typeof w.healthScore, 'number');
    assert.equal(w.healthScore, h['score'], `window ${i}`);
    assert.equal(h['class'], healthClass(w.healthScore!));
  }
}

// ---------------------------------------------------------------------------
// DNS: crafted

test('dns: a response matches its query by id and 5-tuple; another server, client port or id is unsolicited; a second response is a duplicate', async () => {
  // tshark on this file (PCAP_ANALYZER_TEST_KEEP_CRAFTED): `-T fields -e frame.number -e dns.time -e dns.unsolicited -e dns.retransmission`
  // gives frames 2, 3, 4 unsolicited, frame 5 dns.time 0.030000000, frame 6 retransmission (no dns.time).
  const r = await analyze([
    at(100_000, udp4(CLIENT, 40000, SERVER, 53, query(0x1111))),
    at(110_000, udp4('10.0.0.54', 53, CLIENT, 40000, answer(0x1111))), // another server address
    at(120_000, udp4(SERVER, 53, CLIENT, 40001, answer(0x1111))), // another client port
    at(125_000, udp4(SERVER, 53, CLIENT, 40000, answer(0x2222))), // another id, right flow
    at(130_000, udp4(SERVER, 53, CLIENT, 40000, answer(0x1111))), // the answer
    at(140_000, udp4(SERVER, 53, CLIENT, 40000, answer(0x1111))), // duplicate
  ], {}, 'dns-matching');
  const m = metrics(r, 'dns');
  assert.deepEqual(dnsCounts(m), { queries: 1, responses: 5, retransmissions: 0, unsolicited: 3, duplicateResponses: 1, timeouts: 0, lateResponses: 0, count: 1 });
  assert.equal(m['p50'], 0.03);
  assert.deepEqual(dnsTime(r), { count: 1, p50: 0.03, p90: 0.03, max: 0.03 });
  assert.equal(r.counters['dns'], 6);
  assert.equal(r.counters['dns.flags.response'], 5);
});

test('dns: a query repeated within 5 s is a retransmission and dns.time runs from the original; the 5 s run from the original too', async () => {
  // tshark: frames 2, 3 and 7 are dns.retransmission (retransmit_request_in 1, 1 and 6); frame 4 dns.time 2.500000000
  // (from frame 1, not from its copies); frame 8 (6 s after frame 6, 2 s after its copy) is a new query;
  // frame 9 dns.time 0.500000000 (from frame 8).
  const r = await analyze([
    at(0, udp4(CLIENT, 40000, SERVER, 53, query(0x3333))),
    at(1_000_000, udp4(CLIENT, 40000, SERVER, 53, query(0x3333))),
    at(2_000_000, udp4(CLIENT, 40000, SERVER, 53, query(0x3333))),
    at(2_500_000, udp4(SERVER, 53, CLIENT, 40000, answer(0x3333))),
    at(2_600_000, udp4(SERVER, 53, CLIENT, 40000, answer(0x3333))), // duplicate: no time, count stays
    at(3_000_000, udp4(CLIENT, 40010, SERVER, 53, query(0x4444))),
    at(7_000_000, udp4(CLIENT, 40010, SERVER, 53, query(0x4444))),
    at(9_000_000, udp4(CLIENT, 40010, SERVER, 53, query(0x4444))),
    at(9_500_000, udp4(SERVER, 53, CLIENT, 40010, answer(0x4444))),
  ], {}, 'dns-retransmissions');
  const m = metrics(r, 'dns');
  // 0x4444's original went unanswered for 5 s before it was sent again: one timeout, and the answer is to the new query, not late.
  assert.deepEqual(dnsCounts(m), { queries: 6, responses: 3, retransmissions: 3, unsolicited: 0, duplicateResponses: 1, timeouts: 1, lateResponses: 0, count: 2 });
  assert.deepEqual(dnsTime(r), { count: 2, p50: 1.5, p90: 2.5, max: 2.5 });
  // The same name asked 6 times (3 + 3 with the same question) is a repeated name.
  assert.equal(m['repeatedNames'], 1);
  assert.equal(m['repeatedQueries'], 6);
});

test('dns: a response after the 5 s timeout still gets its dns.time and is late; the query times out once, retransmissions or not', async () => {
  // tshark: frame 5 (the answer to frame 1) dns.time 7.000000000: Wireshark matches a response however late;
  // frames 3 and 4 are retransmissions of frame 2.
  const r = await analyze([
    at(500_000, udp4(CLIENT, 40000, SERVER, 53, query(0x5555))),
    at(7_500_000, udp4(SERVER, 53, CLIENT, 40000, answer(0x5555))),
    // Unanswered, sent three times: one timeout.
    at(1_000_000, udp4(CLIENT, 40020, SERVER, 53, query(0x6666, 'other.example.com'))),
    at(2_000_000, udp4(CLIENT, 40020, SERVER, 53, query(0x6666, 'other.example.com'))),
    at(3_000_000, udp4(CLIENT, 40020, SERVER, 53, query(0x6666, 'other.example.com'))),
    at(9_000_000, filler()),
  ].sort((a, b) => a.tsSec - b.tsSec || a.tsSub - b.tsSub), {}, 'dns-late');
  const m = metrics(r, 'dns');
  assert.deepEqual(dnsCounts(m), { queries: 4, responses: 1, retransmissions: 2, unsolicited: 0, duplicateResponses: 0, timeouts: 2, lateResponses: 1, count: 1 });
  assert.deepEqual(dnsTime(r), { count: 1, p50: 7, p90: 7, max: 7 });
  assert.equal(m['unansweredAtEnd'], 0);
  const late = findings(r, 'dns_latency');
  assert.equal(late.length, 1);
  assert.equal(late[0]!.severity, 'critical');
  const timeout = findings(r, 'dns_timeout');
  assert.equal(timeout.length, 1);
  assert.equal(timeout[0]!.severity, 'info'); // under 10 timeouts
  assert.equal(timeout[0]!.evidence['timeouts'], 2);
  assert.equal(timeout[0]!.evidence['queries'], 4);
});

test('dns: queries unanswered at the end of input are timeouts if they waited the timeout, else counted as unanswered', async () => {
  const records = [
    at(0, udp4(CLIENT, 40000, SERVER, 53, query(1))), // waited 6 s at the end
    at(3_000_000, udp4(CLIENT, 40001, SERVER, 53, query(2))), // waited 3 s
    at(6_000_000, filler()),
  ];
  const defaults = metrics(await analyze(records), 'dns');
  assert.equal(defaults['timeouts'], 1);
  assert.equal(defaults['unansweredAtEnd'], 1);
  // With a 2 s timeout both waited long enough.
  const short = metrics(await analyze(records, { analyzers: { dns: { timeout: 2 } } }), 'dns');
  assert.equal(short['timeouts'], 2);
  assert.equal(short['unansweredAtEnd'], 0);
  // With 10 s neither did.
  const long = metrics(await analyze(records, { analyzers: { dns: { timeout: 10 } } }), 'dns');
  assert.equal(long['timeouts'], 0);
  assert.equal(long['unansweredAtEnd'], 2);
});

test('dns: rcode distribution, dns_errors for SERVFAIL and REFUSED, and the failure share in the health score', async () => {
  const codes = [0, 3, 2, 5, 2];
  const records: PcapRecordSpec[] = [];
  codes.forEach((rcode, i) => {
    records.push(at(100_000 + i * 100_000, udp4(CLIENT, 40000, SERVER, 53, query(0x100 + i, `n${i}.example.com`))));
    records.push(at(101_000 + i * 100_000, udp4(SERVER, 53, CLIENT, 40000, answer(0x100 + i, rcode, `n${i}.example.com`))));
  });
  const r = await analyze(records, {}, 'dns-rcodes');
  const m = metrics(r, 'dns');
  assert.deepEqual(m['rcodes'], { NOERROR: 1, SERVFAIL: 2, NXDOMAIN: 1, REFUSED: 1 });
  assert.equal(m['serverFailures'], 2);
  assert.equal(m['nxdomain'], 1);
  assert.equal(r.counters['dns.flags.rcode.nxdomain'], 1);
  const errors = findings(r, 'dns_errors');
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.severity, 'warning');
  assert.deepEqual(errors[0]!.evidence, { servfail: 2, refused: 1, responses: 5 });
  assert.equal(findings(r, 'dns_latency').length, 0); // 1 ms answers
  // Health: 2 SERVFAIL of 5 queries = 40 % ≥ 5 %: the whole DNS weight (15); one warning finding: 0.3 × 10.
  const h = metrics(r, 'health');
  const comp = (h['components'] as HealthComponent[]).find((c) => c.name === 'dns')!;
  assert.equal(comp.penalty, 15);
  assert.equal(h['score'], 82);
  assertWindowScores(r);
  assert.equal(r.windows[0]!.healthScore, 82);
});

test('dns: dns_latency at the 100 ms warning and 1 s critical boundaries (p90 of dns.time)', async () => {
  const one = async (us: number, config: Record<string, unknown> = {}): Promise<Finding[]> => {
    // The query at 2.2 s: 2.3 - 2.2 is not exactly 0.1 in floating point, yet dns.time is 0.1 to the nanosecond, as in tshark.
    const r = await analyze([
      at(2_200_000, udp4(CLIENT, 40000, SERVER, 53, query(7))),
      at(2_200_000 + us, udp4(SERVER, 53, CLIENT, 40000, answer(7))),
    ], config);
    assert.equal(dnsTime(r).p90, us / 1e6);
    return findings(r, 'dns_latency');
  };
  assert.deepEqual(await one(99_999), []);
  const atWarning = await one(100_000);
  assert.equal(atWarning.length, 1);
  assert.equal(atWarning[0]!.severity, 'warning');
  assert.equal(atWarning[0]!.evidence['p90'], 0.1);
  assert.equal((await one(999_999))[0]!.severity, 'warning');
  const atCritical = await one(1_000_000);
  assert.equal(atCritical.length, 1);
  assert.equal(atCritical[0]!.severity, 'critical');
  // The thresholds come from the config.
  assert.equal((await one(60_000, { analyzers: { dns: { warning: 0.05 } } }))[0]!.severity, 'warning');
  assert.deepEqual(await one(600_000, { analyzers: { dns: { critical: 2, warning: 0.7 } } }), []);
});

test('dns: over TCP, length-prefixed messages are matched within the TCP connection', async () => {
  // tshark: frame 5 (the response) dns.time 0.050000000; `-Y dns` matches frames 4 and 5.
  const q = dnsOverTcp(query(0x7070));
  const a = dnsOverTcp(answer(0x7070));
  const r = await analyze([
    at(0, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1000, flags: TcpFlags.SYN })),
    at(10_000, tcp4(SERVER, 53, CLIENT, 50000, { seq: 5000, ack: 1001, flags: TcpFlags.SYN | TcpFlags.ACK })),
    at(20_000, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1001, ack: 5001 })),
    at(30_000, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1001, ack: 5001, flags: TcpFlags.PSH | TcpFlags.ACK, payload: q })),
    at(80_000, tcp4(SERVER, 53, CLIENT, 50000, { seq: 5001, ack: 1001 + q.length, flags: TcpFlags.PSH | TcpFlags.ACK, payload: a })),
    at(90_000, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1001 + q.length, ack: 5001 + a.length })),
  ], {}, 'dns-tcp');
  const m = metrics(r, 'dns');
  assert.deepEqual(dnsCounts(m), { queries: 1, responses: 1, retransmissions: 0, unsolicited: 0, duplicateResponses: 0, timeouts: 0, lateResponses: 0, count: 1 });
  assert.deepEqual(dnsTime(r), { count: 1, p50: 0.05, p90: 0.05, max: 0.05 });
  assert.equal(r.counters['dns'], 2);
  assert.equal(r.counters['dns.flags.response'], 1);
});

test('dns: a TCP segment retransmitted on timeout is not seen by DNS (as in Wireshark), so it is no DNS retransmission', async () => {
  // tshark on this file: frame 5 is tcp.analysis.retransmission and not dns (Wireshark does not hand
  // retransmitted segment data to DNS); -Y dns.flags.response==0: 1 frame; frame 6 dns.time 1.050000000 (from frame 4).
  const q = dnsOverTcp(query(0x7171));
  const a = dnsOverTcp(answer(0x7171));
  const r = await analyze([
    at(0, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1000, flags: TcpFlags.SYN })),
    at(10_000, tcp4(SERVER, 53, CLIENT, 50000, { seq: 5000, ack: 1001, flags: TcpFlags.SYN | TcpFlags.ACK })),
    at(20_000, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1001, ack: 5001 })),
    at(30_000, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1001, ack: 5001, flags: TcpFlags.PSH | TcpFlags.ACK, payload: q })),
    at(1_030_000, tcp4(CLIENT, 50000, SERVER, 53, { seq: 1001, ack: 5001, flags: TcpFlags.PSH | TcpFlags.ACK, payload: q })),
    at(1_080_000, tcp4(SERVER, 53, CLIENT, 50000, { seq: 5001, ack: 1001 + q.length, flags: TcpFlags.PSH | TcpFlags.ACK, payload: a })),
  ], {}, 'dns-tcp-retransmission');
  assert.equal(r.counters['tcp.analysis.retransmission'], 1);
  assert.equal(r.counters['dns'], 2, 'tshark -Y dns: frames 4 and 6, not the retransmitted frame 5');
  const m = metrics(r, 'dns');
  assert.deepEqual(dnsCounts(m), { queries: 1, responses: 1, retransmissions: 0, unsolicited: 0, duplicateResponses: 0, timeouts: 0, lateResponses: 0, count: 1 });
  assert.deepEqual(dnsTime(r), { count: 1, p50: 1.05, p90: 1.05, max: 1.05 });
});

test('dns: IPv6 queries match like IPv4 ones; a response from another IPv6 server is unsolicited', async () => {
  // tshark: frame 2 dns.unsolicited, frame 3 dns.time 0.050000000.
  const c6 = '2001:db8::10';
  const s6 = '2001:db8::53';
  const r = await analyze([
    at(100_000, udp6(c6, 40000, s6, 53, query(0x6006, 'www.example.com', 28))),
    at(120_000, udp6('2001:db8::54', 53, c6, 40000, answer(0x6006, 0, 'www.example.com', 28))),
    at(150_000, udp6(s6, 53, c6, 40000, answer(0x6006, 0, 'www.example.com', 28))),
  ], {}, 'dns-ipv6');
  const m = metrics(r, 'dns');
  assert.deepEqual(dnsCounts(m), { queries: 1, responses: 2, retransmissions: 0, unsolicited: 1, duplicateResponses: 0, timeouts: 0, lateResponses: 0, count: 1 });
  assert.deepEqual(dnsTime(r), { count: 1, p50: 0.05, p90: 0.05, max: 0.05 });
  assert.deepEqual(m['servers'], [{ server: s6, queries: 1, responses: 1, timeouts: 0, meanTime: 0.05, maxTime: 0.05 }]);
  assert.equal(r.counters['ipv6'], 3);
  assert.equal(r.counters['dns'], 3);
});

test('dns: mDNS (UDP 5353) responses count for dns.flags.response but not for dns, and are matched per conversation as tshark does', async () => {
  // tshark on this file: `-Y dns` matches 2 frames (4, 5), `-Y dns.flags.response==1` 3 frames (2, 3, 5);
  // frame 2 (another host's answer to the multicast group) is dns.unsolicited, frame 3 (the asker's own
  // announcement, same 4-tuple and id) gets dns.time 0.200000000, frame 5 dns.time 0.020000000.
  const r = await analyze([
    at(0, udp4('192.168.1.10', 5353, '224.0.0.251', 5353, query(0, 'printer.local', 12))),
    at(50_000, udp4('192.168.1.20', 5353, '224.0.0.251', 5353, answer(0, 0, 'printer.local', 12))),
    at(200_000, udp4('192.168.1.10', 5353, '224.0.0.251', 5353, answer(0, 0, 'printer.local', 12))),
    at(1_000_000, udp4('192.168.1.10', 40000, '192.168.1.1', 53, query(0x7777))),
    at(1_020_000, udp4('192.168.1.1', 53, '192.168.1.10', 40000, answer(0x7777))),
  ], {}, 'dns-mdns');
  assert.equal(r.counters['dns'], 2);
  assert.equal(r.counters['dns.flags.response'], 3);
  const m = metrics(r, 'dns');
  assert.deepEqual(dnsCounts(m), { queries: 2, responses: 3, retransmissions: 0, unsolicited: 1, duplicateResponses: 0, timeouts: 0, lateResponses: 0, count: 2 });
  assert.deepEqual(dnsTime(r), { count: 2, p50: 0.11, p90: 0.2, max: 0.2 });
});

test('dns: per-server latency list (queries, responses, timeouts, mean and max time), busiest first', async () => {
  const r = await analyze([
    at(100_000, udp4(CLIENT, 40000, SERVER, 53, query(1))),
    at(110_000, udp4(SERVER, 53, CLIENT, 40000, answer(1))),
    at(200_000, udp4(CLIENT, 40000, SERVER, 53, query(2))),
    at(230_000, udp4(SERVER, 53, CLIENT, 40000, answer(2))),
    at(300_000, udp4(CLIENT, 40000, SERVER, 53, query(3))), // never answered
    at(400_000, udp4(CLIENT, 40001, '10.0.0.54', 53, query(4))),
    at(405_000, udp4('10.0.0.54', 53, CLIENT, 40001, answer(4))),
    at(9_000_000, filler()),
  ]);
  const m = metrics(r, 'dns');
  assert.deepEqual(m['servers'], [
    { server: SERVER, queries: 3, responses: 2, timeouts: 1, meanTime: 0.02, maxTime: 0.03 },
    { server: '10.0.0.54', queries: 1, responses: 1, timeouts: 0, meanTime: 0.005, maxTime: 0.005 },
  ]);
  // Health: 1 timeout of 4 queries (25 %) costs the whole DNS weight; dns_timeout is only info, so no anomaly.
  assert.equal(findings(r, 'dns_timeout')[0]!.severity, 'info');
  assert.equal(r.windows[0]!.healthScore, 85);
  assertWindowScores(r);
});

// ---------------------------------------------------------------------------
// DNS: shared captures

test('dns: wssample_dns.cap: 19 matched pairs, dns.time median and max as tshark', async () => {
  const r = await analyzeShared('wssample_dns.cap');
  // tshark -r wssample_dns.cap -Y dns.time -T fields -e frame.number -e dns.time
  //   19 values; sorted, the 10th is 0.018287000 (frame 29); the largest 0.832133000 (frame 4).
  assert.deepEqual(dnsTime(r), { count: 19, p50: 0.018287, p90: 0.237668, max: 0.832133 });
  assert.equal(total(r, 'dns', 'queries'), 19);
  assert.equal(total(r, 'dns', 'responses'), 19);
  assert.equal(total(r, 'dns', 'unsolicited'), 0);
  assert.equal(total(r, 'dns', 'retransmissions'), 0);
  assert.equal(total(r, 'dns', 'duplicateResponses'), 0);
  assert.equal(total(r, 'dns', 'timeouts'), 0);
  // tshark -Y dns: 38; -Y dns.flags.response==1: 19; -Y dns.flags.rcode==3: 6 (frames 22, 30, 32, 34, 36, 38).
  assert.equal(r.counters['dns'], 38);
  assert.equal(r.counters['dns.flags.response'], 19);
  assert.equal(r.counters['dns.flags.rcode.nxdomain'], 6);
  assert.equal(total(r, 'dns', 'nxdomain'), 6);
  // Four windows have a lone answer ≥ 100 ms (0.832133 with 0.139024, 0.237668, 0.233143, 0.212992).
  assert.deepEqual(findings(r, 'dns_latency').map((f) => [f.severity, f.evidence['p90']]),
    [['warning', 0.832133], ['warning', 0.237668], ['warning', 0.233143], ['warning', 0.212992]]);
});

test('dns: ppa_nowebaccess1.pcapng: 7 queries, no responses, 3 retransmissions, 2 timeouts, 2 unanswered at the end', async () => {
  const r = await analyzeShared('ppa_nowebaccess1.pcapng');
  // tshark -r ppa_nowebaccess1.pcapng -T fields -e frame.number -e frame.time_relative -e ip.dst -e dns.id -e dns.retransmit_request_in
  //   id 0x80d1 from port 55870 to 4.2.2.2 (frames 3, 5, 7, 9) and 4.2.2.1 (4, 6, 8); 5 and 7 retransmit 3, 6 retransmits 4;
  //   8 and 9 (7.9996 s) are ≥ 5 s after their originals: new queries, 0.00002 s before the end.
  assert.equal(r.windows.length, 1);
  const m = metrics(r, 'dns');
  assert.deepEqual(dnsCounts(m), { queries: 7, responses: 0, retransmissions: 3, unsolicited: 0, duplicateResponses: 0, timeouts: 2, lateResponses: 0, count: 0 });
  assert.equal(m['unansweredAtEnd'], 2);
  assert.deepEqual(dnsTime(r), { count: 0, p50: null, p90: null, max: null });
  assert.deepEqual(m['servers'], [
    { server: '4.2.2.1', queries: 2, responses: 0, timeouts: 1, meanTime: null, maxTime: null },
    { server: '4.2.2.2', queries: 2, responses: 0, timeouts: 1, meanTime: null, maxTime: null },
  ]);
  const t = findings(r, 'dns_timeout');
  assert.equal(t.length, 1);
  assert.deepEqual(t[0]!.evidence, { timeouts: 2, queries: 7, server: '4.2.2.1' });
  // 2 timeouts per 7 queries ≥ 5 %: the whole DNS weight.
  assert.equal(r.healthScore?.score, 85);
  assert.equal(r.healthScore.components.find((c) => c.name === 'dns')?.penalty, 15);
});

test('dns: ppa_dns_query_nonexistent.pcapng: one NXDOMAIN answer in 29.678 ms', async () => {
  const r = await analyzeShared('ppa_dns_query_nonexistent.pcapng');
  // tshark -r ppa_dns_query_nonexistent.pcapng -T fields -e frame.number -e dns.flags.rcode -e dns.time
  //   frame 2: rcode 3, dns.time 0.029678000
  assert.deepEqual(dnsTime(r), { count: 1, p50: 0.029678, p90: 0.029678, max: 0.029678 });
  const m = metrics(r, 'dns');
  assert.deepEqual(m['rcodes'], { NXDOMAIN: 1 });
  assert.equal(m['nxdomain'], 1);
  assert.equal(m['serverFailures'], 0);
  assert.equal(r.counters['dns.flags.rcode.nxdomain'], 1);
  assert.equal(findings(r, 'dns_errors').length, 0); // NXDOMAIN is an answer, not a server failure
  assert.equal(r.healthScore?.score, 100);
});

test('dns: ndpi_1kxun.pcap: queries captured twice are retransmissions, LLMNR counts for dns.* but not for dns', async () => {
  const r = await analyzeShared('ndpi_1kxun.pcap');
  // tshark -r ndpi_1kxun.pcap -Y dns.time -T fields -e frame.number -e dns.time
  //   21 0.018975, 56 0.003730, 59 1.053505, 71 0.049553, 474 0.034576, 859 0.006326: median 0.0267755.
  assert.deepEqual(dnsTime(r), { count: 6, p50: 0.0267755, p90: 1.053505, max: 1.053505 });
  // tshark -Y dns.flags.response==0: 103 (11 DNS, 91 LLMNR, 1 mDNS); ==1: 6; -Y dns: 17;
  // -Y dns.retransmission: 48 (5 DNS copies 44–57 µs after the original, 43 LLMNR).
  assert.equal(total(r, 'dns', 'queries'), 103);
  assert.equal(total(r, 'dns', 'responses'), 6);
  assert.equal(total(r, 'dns', 'retransmissions'), 48);
  assert.equal(total(r, 'dns', 'unsolicited'), 0);
  assert.equal(total(r, 'dns', 'duplicateResponses'), 0);
  assert.equal(r.counters['dns'], 17);
  assert.equal(r.counters['dns.flags.response'], 6);
  // 103 - 48 = 55 transactions, 6 answered: the 49 others (mostly LLMNR, never answered) all waited 5 s.
  assert.equal(total(r, 'dns', 'timeouts'), 49);
  assert.equal(total(r, 'dns', 'lateResponses'), 0);
  // LLMNR's multicast groups appear as servers with queries and no responses.
  const first = metrics(r, 'dns', 0);
  const servers = first['servers'] as Row[];
  const llmnr4 = servers.find((s) => s['server'] === '224.0.0.252');
  const llmnr6 = servers.find((s) => s['server'] === 'ff02::1:3');
  assert.ok(llmnr4 && llmnr6);
  assert.equal(llmnr4['responses'], 0);
  assert.equal(llmnr6['responses'], 0);
  // Frame 59 answers frame 35 (8.8.8.8) after 1.053505 s: the slowest; the same id to 168.95.1.1 is another transaction (0.003730).
  assert.deepEqual(servers.find((s) => s['server'] === '8.8.8.8'), { server: '8.8.8.8', queries: 3, responses: 3, timeouts: 0, meanTime: 0.374011, maxTime: 1.053505 });
  assert.deepEqual(servers.find((s) => s['server'] === '168.95.1.1'), { server: '168.95.1.1', queries: 1, responses: 1, timeouts: 0, meanTime: 0.00373, maxTime: 0.00373 });
  assert.equal(findings(r, 'dns_latency')[0]!.severity, 'critical');
});

// ---------------------------------------------------------------------------
// ICMP

const icmp4 = (src: string, dst: string, message: Uint8Array): Buffer =>
  ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.ICMP, payload: message }));
const icmp6 = (src: string, dst: string, message: Uint8Array): Buffer =>
  ethernet(MAC_B, MAC_A, EtherTypes.IPV6, ipv6({ src, dst, proto: Proto.ICMPV6, payload: message }));
/** The IP header and the first 8 bytes after it (RFC 792's minimum quote). */
const quote4 = (packet: Buffer): Buffer => packet.subarray(0, 28);

test('icmp: unreachable and time exceeded counted by type, quoted flows listed, the smallest fragmentation-needed MTU reported', async () => {
  // tshark on this file: -Y icmp.type==3: 3 frames, -Y icmp.type==11: 1; -T fields -e icmp.mtu: 1400 and 1280 (frames 3, 4).
  const udpOut = ipv4({ src: CLIENT, dst: '10.9.9.9', proto: Proto.UDP, payload: udp({ srcPort: 40000, dstPort: 33434, payload: Buffer.alloc(8) }) });
  const tcpOut = ipv4({ src: CLIENT, dst: '10.9.9.9', proto: Proto.TCP, payload: tcp({ srcPort: 50000, dstPort: 443, seq: 1, flags: TcpFlags.ACK, payload: Buffer.alloc(1400) }), df: true });
  const traceroute = ipv4({ src: CLIENT, dst: '10.9.9.9', proto: Proto.UDP, ttl: 1, payload: udp({ srcPort: 40001, dstPort: 33435, payload: Buffer.alloc(8) }) });
  const r = await analyze([
    at(0, icmp4(CLIENT, '10.9.9.9', icmpEcho(1, 1))),
    at(100_000, icmp4('10.9.9.9', CLIENT, icmpError(3, 3, udpOut))), // port unreachable
    at(200_000, icmp4('10.0.0.254', CLIENT, icmpError(3, 4, quote4(tcpOut), 1400))), // fragmentation needed
    at(300_000, icmp4('10.0.0.253', CLIENT, icmpError(3, 4, quote4(tcpOut), 1280))),
    at(400_000, icmp4('10.0.0.254', CLIENT, icmpError(11, 0, quote4(traceroute)))), // TTL exceeded in transit
  ], {}, 'icmp');
  assert.equal(r.counters['icmp.type.3'], 3);
  assert.equal(r.counters['icmp.type.11'], 1);
  assert.equal(r.counters['icmp'], 5);
  const m = metrics(r, 'icmp');
  assert.equal(m['messages'], 5);
  assert.equal(m['echoRequests'], 1);
  assert.deepEqual(m['unreachable'], { port: 1, fragmentation_needed: 2 });
  assert.equal(m['timeExceeded'], 1);
  assert.deepEqual(m['mtus'], { 1280: 1, 1400: 1 });
  assert.deepEqual(m['quotedFlows'], {
    'udp 10.0.0.1:40000 -> 10.9.9.9:33434': 1,
    'tcp 10.0.0.1:50000 -> 10.9.9.9:443': 2,
    'udp 10.0.0.1:40001 -> 10.9.9.9:33435': 1,
  });
  const mtu = findings(r, 'path_mtu');
  assert.equal(mtu.length, 1);
  assert.equal(mtu[0]!.severity, 'warning');
  assert.deepEqual(mtu[0]!.evidence, { smallestMtu: 1280, messages: 2 });
  assert.match(mtu[0]!.summary, /at most 1280 bytes/);
  const exceeded = findings(r, 'icmp_time_exceeded');
  assert.equal(exceeded.length, 1);
  assert.deepEqual(exceeded[0]!.evidence, { messages: 1 });
  const unreachable = findings(r, 'icmp_unreachable');
  assert.equal(unreachable.length, 1);
  assert.equal(unreachable[0]!.severity, 'info');
  assert.deepEqual(unreachable[0]!.evidence, { 'code.port': 1, 'code.fragmentation_needed': 2, total: 3, firstQuotedFlow: 'udp 10.0.0.1:40000 -> 10.9.9.9:33434' });
});

test('icmp: ICMPv6 packet too big gives the MTU and path_mtu; ICMPv6 errors do not count as icmp.type', async () => {
  // tshark on this file: -T fields -e icmpv6.type -e icmpv6.mtu: 2 1280, 1 (code 4), 3 (code 0); -Y icmp: 0 frames.
  const c6 = '2001:db8::10';
  const tcpOut = ipv6({ src: c6, dst: '2001:db8::99', proto: Proto.TCP, payload: tcp({ srcPort: 50001, dstPort: 443, seq: 1, payload: Buffer.alloc(1400) }) });
  const udpOut = ipv6({ src: c6, dst: '2001:db8::99', proto: Proto.UDP, payload: udp({ srcPort: 40000, dstPort: 33434, payload: Buffer.alloc(8) }) });
  const r = await analyze([
    at(0, icmp6('2001:db8::fe', c6, icmpv6Error(2, 0, tcpOut.subarray(0, 1232), 1280))),
    at(100_000, icmp6('2001:db8::99', c6, icmpv6Error(1, 4, udpOut))),
    at(200_000, icmp6('2001:db8::fe', c6, icmpv6Error(3, 0, udpOut))),
  ], {}, 'icmpv6');
  assert.equal(r.counters['icmpv6'], 3);
  assert.equal(r.counters['icmp.type.3'], 0);
  assert.equal(r.counters['icmp.type.11'], 0);
  const m = metrics(r, 'icmp');
  assert.deepEqual(m['mtus'], { 1280: 1 });
  assert.deepEqual(m['unreachable'], { port: 1 });
  assert.equal(m['timeExceeded'], 1);
  assert.deepEqual(m['quotedFlows'], {
    'tcp 2001:db8::10:50001 -> 2001:db8::99:443': 1,
    'udp 2001:db8::10:40000 -> 2001:db8::99:33434': 2,
  });
  assert.deepEqual(findings(r, 'path_mtu').map((f) => f.evidence), [{ smallestMtu: 1280, messages: 1 }]);
  assert.equal(findings(r, 'icmp_time_exceeded').length, 1);
});

test('icmp: ppa1e_destunreachable.pcap: three host unreachables quoting the echo requests', async () => {
  const r = await analyzeShared('ppa1e_destunreachable.pcap');
  // tshark -r ppa1e_destunreachable.pcap -Y icmp.type==3 -T fields -e icmp.code: 3 frames (2, 4, 6), code 1.
  assert.equal(r.counters['icmp.type.3'], 3);
  assert.equal(r.counters['icmp.type.11'], 0);
  assert.deepEqual(totalMap(r, 'icmp', 'unreachable'), { host: 3 });
  assert.equal(total(r, 'icmp', 'echoRequests'), 3);
  assert.equal(total(r, 'icmp', 'echoReplies'), 0);
  assert.deepEqual(totalMap(r, 'icmp', 'quotedFlows'), { 'ip.proto.1 10.2.10.2 -> 10.4.88.88': 3 });
  const f = findings(r, 'icmp_unreachable');
  assert.equal(f.length, 2); // one per window (1 + 2)
  assert.deepEqual(f.map((x) => x.evidence['code.host']), [1, 2]);
  assert.equal(findings(r, 'path_mtu').length, 0);
});

test('icmp: wssample_smtp_icmp_fragneeded.pcap: four fragmentation-needed with MTU 1492 for the SMTP flow', async () => {
  const r = await analyzeShared('wssample_smtp_icmp_fragneeded.pcap');
  // tshark -r wssample_smtp_icmp_fragneeded.pcap -Y icmp -T fields -e icmp.type -e icmp.code -e icmp.mtu
  //   frames 26, 28, 29, 30: 3 4 1492, quoting 10.10.1.4:1470 -> 74.53.140.153:25.
  assert.equal(r.counters['icmp.type.3'], 4);
  assert.deepEqual(totalMap(r, 'icmp', 'mtus'), { 1492: 4 });
  assert.deepEqual(totalMap(r, 'icmp', 'unreachable'), { fragmentation_needed: 4 });
  assert.deepEqual(totalMap(r, 'icmp', 'quotedFlows'), { 'tcp 10.10.1.4:1470 -> 74.53.140.153:25': 4 });
  assert.deepEqual(findings(r, 'path_mtu').map((f) => [f.severity, f.evidence]), [['warning', { smallestMtu: 1492, messages: 4 }]]);
});

test('icmp: zeek_linux_dlt_sll2.pcap: ICMP and ICMPv6 echoes over SLL2, no errors', async () => {
  const r = await analyzeShared('zeek_linux_dlt_sll2.pcap');
  // tshark: frames 1-2 ICMP echo request/reply, 3-4 ICMPv6 echo request/reply, 5-6 ARP/RARP.
  assert.equal(r.counters['icmp'], 2);
  assert.equal(r.counters['icmpv6'], 2);
  assert.equal(r.counters['icmp.type.3'], 0);
  assert.equal(r.counters['icmp.type.11'], 0);
  assert.equal(total(r, 'icmp', 'messages'), 4);
  assert.equal(total(r, 'icmp', 'echoRequests'), 2);
  assert.equal(total(r, 'icmp', 'echoReplies'), 2);
  assert.deepEqual(totalMap(r, 'icmp', 'quotedFlows'), {});
  assert.equal(r.findings.filter((f) => f.type.startsWith('icmp') || f.type === 'path_mtu').length, 0);
});

// ---------------------------------------------------------------------------
// IP fragments

/** Fragments of one IPv4 datagram: [byte offset, length] pieces of the IP payload `payload`. */
function fragments4(id: number, payload: Buffer, pieces: ReadonlyArray<readonly [number, number]>): Buffer[] {
  return pieces.map(([off, len]) => ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({
    src: CLIENT, dst: SERVER, proto: Proto.UDP, id, fragOffset: off, mf: off + len < payload.length, payload: payload.subarray(off, off + len),
  })));
}
/** A UDP datagram (header included) of 8 + n bytes. */
const udpDatagram = (n: number, sport = 40000): Buffer => udp({ srcPort: sport, dstPort: 7000, payload: Buffer.alloc(n, 0x61) });

test('ip_fragments: three fragments out of order reassemble one datagram, decoded once', async () => {
  // tshark on this file: -Y "ip.flags.mf==1 or ip.frag_offset>0": 3; -Y ip.reassembled.length: 1 (frame 3); -Y udp: 1.
  const [f0, f1, f2] = fragments4(0x1000, udpDatagram(40), [[0, 16], [16, 16], [32, 16]]);
  const r = await analyze([at(0, f2!), at(1000, f0!), at(2000, f1!)], {}, 'frag-ooo');
  assert.deepEqual(metrics(r, 'ip_fragments'), { fragments: 3, reassembled: 1, incomplete: 0, overlapping: 0 });
  assert.equal(r.counters['ip.fragments'], 3);
  assert.equal(r.counters['udp'], 1);
  assert.equal(findings(r, 'ip_fragmentation').length, 0);
});

test('ip_fragments: a datagram missing a fragment is incomplete, at the timeout or at the end of input', async () => {
  const [a0, , a2] = fragments4(0x2000, udpDatagram(40), [[0, 16], [16, 16], [32, 16]]);
  const atEnd = await analyze([at(0, a0!), at(1000, a2!)]);
  assert.deepEqual(metrics(atEnd, 'ip_fragments'), { fragments: 2, reassembled: 0, incomplete: 1, overlapping: 0 });
  const f = findings(atEnd, 'ip_fragmentation');
  assert.equal(f.length, 1);
  assert.equal(f[0]!.severity, 'info');
  // Past flows.fragmentTimeout (30 s) a new fragmented datagram drops the old one, counted in that window.
  const [b0, b1] = fragments4(0x3000, udpDatagram(24, 40001), [[0, 16], [16, 16]]);
  const timedOut = await analyze([at(0, a0!), at(1000, a2!), at(35_000_000, b0!), at(35_001_000, b1!)]);
  assert.equal(timedOut.windows.length, 2);
  assert.deepEqual(metrics(timedOut, 'ip_fragments', 0), { fragments: 2, reassembled: 0, incomplete: 0, overlapping: 0 });
  assert.deepEqual(metrics(timedOut, 'ip_fragments', 1), { fragments: 2, reassembled: 1, incomplete: 1, overlapping: 0 });
  assert.equal(timedOut.capture.decodeErrors['ip.reassembly_timeout'], 1);
  assert.equal(findings(timedOut, 'ip_fragmentation')[0]!.window.start, '2023-11-14T22:13:50.000000Z'); // T0 + 30 s
  // 5 s later it is still pending (counted at the end), unless flows.fragmentTimeout is shorter.
  const later = [at(0, a0!), at(1000, a2!), at(5_000_000, b0!), at(5_001_000, b1!)];
  const pending = await analyze(later);
  assert.deepEqual(metrics(pending, 'ip_fragments'), { fragments: 4, reassembled: 1, incomplete: 1, overlapping: 0 });
  assert.equal(pending.capture.decodeErrors['ip.reassembly_timeout'], undefined);
  const expired = await analyze(later, { flows: { fragmentTimeout: 3 } });
  assert.deepEqual(metrics(expired, 'ip_fragments'), { fragments: 4, reassembled: 1, incomplete: 1, overlapping: 0 });
  assert.equal(expired.capture.decodeErrors['ip.reassembly_timeout'], 1);
});

test('ip_fragments: overlapping fragments are counted and reported as a warning', async () => {
  // tshark on this file: frame 2 reassembles the datagram with ip.fragment.overlap on one fragment.
  const [o0, o1] = fragments4(0x4000, udpDatagram(24), [[0, 24], [16, 16]]);
  const r = await analyze([at(0, o0!), at(1000, o1!)], {}, 'frag-overlap');
  assert.deepEqual(metrics(r, 'ip_fragments'), { fragments: 2, reassembled: 1, incomplete: 0, overlapping: 1 });
  const f = findings(r, 'ip_fragmentation');
  assert.equal(f.length, 1);
  assert.equal(f[0]!.severity, 'warning');
  // An overlap on the first packet of a window belongs to that window, with the reassembly it completes.
  const split = await analyze([at(0, o0!), at(12_000_000, o1!)]);
  assert.deepEqual(metrics(split, 'ip_fragments', 0), { fragments: 1, reassembled: 0, incomplete: 0, overlapping: 0 });
  assert.deepEqual(metrics(split, 'ip_fragments', 1), { fragments: 1, reassembled: 1, incomplete: 0, overlapping: 1 });
});

test('ip_fragments: shared captures agree with tshark', async () => {
  // tshark -r pcpp_ip4_fragments.pcap: -Y "ip.flags.mf==1 or ip.frag_offset>0": 50; -Y ip.fragment.count: 6
  // reassembled (frames 6, 12, 18, 28, 40, 53); ip.fragment.overlap on 4 fragments of each of 28, 40, 53: 12.
  // Frames 30 and 42 are late copies of the last fragment of 0x1ea3 and 0x1ea4, after those were reassembled:
  // they start datagrams that never complete (tshark shows them as lone "Fragmented IP protocol").
  const pcpp = await analyzeShared('pcpp_ip4_fragments.pcap');
  assert.deepEqual(metrics(pcpp, 'ip_fragments'), { fragments: 50, reassembled: 6, incomplete: 2, overlapping: 12 });
  assert.equal(pcpp.counters['ip.fragments'], 50);
  assert.equal(findings(pcpp, 'ip_fragmentation')[0]?.severity, 'warning');
  // tshark -r ppa_ip_frag_source.pcapng: 6 fragments, -Y ip.reassembled.length: 2 (two large echoes).
  const frag = await analyzeShared('ppa_ip_frag_source.pcapng');
  assert.deepEqual(metrics(frag, 'ip_fragments'), { fragments: 6, reassembled: 2, incomplete: 0, overlapping: 0 });
  assert.equal(frag.counters['icmp'], 2);
  // tshark -r ppa_ipv6_fragments.pcapng: -Y ipv6.fraghdr: 20, -Y ipv6.reassembled.length: 10, no overlap.
  const v6 = await analyzeShared('ppa_ipv6_fragments.pcapng');
  assert.deepEqual(metrics(v6, 'ip_fragments'), { fragments: 20, reassembled: 10, incomplete: 0, overlapping: 0 });
  assert.equal(v6.counters['ip.fragments'], 0); // the IPv4 field
  assert.equal(v6.counters['icmpv6'], 12);
});

// ---------------------------------------------------------------------------
// Health

type HealthInputs = Parameters<typeof scoreHealth>[0];
const NO_DATA: HealthInputs = { retransmissionRate: null, lossRate: null, rttP90: null, dnsP90: null, dnsFailureRate: null, jitterP90: null, anomalies: 0 };
const DEFAULTS = buildConfig(undefined);
const penalty = (x: Partial<HealthInputs>, name: string): number => {
  const c = scoreHealth({ ...NO_DATA, ...x }, DEFAULTS).components.find((k) => k.name === name);
  assert.ok(c, name);
  return c.penalty;
};

/** docs/analyzers.md "Health score": the documented bands, [edge, penalty in points] per component. */
const BANDS: Record<string, { input: keyof HealthInputs; weight: number; edges: ReadonlyArray<readonly [number, number]> }> = {
  retransmissions: { input: 'retransmissionRate', weight: 25, edges: [[1, 0.3], [3, 0.6], [5, 1]] },
  packet_loss: { input: 'lossRate', weight: 20, edges: [[0.5, 0.25], [1, 0.5], [2, 0.75], [5, 1]] },
  rtt: { input: 'rttP90', weight: 20, edges: [[0.1, 0.5], [0.5, 1]] },
  dns_latency: { input: 'dnsP90', weight: 15, edges: [[0.1, 0.5], [1, 1]] },
  dns_failures: { input: 'dnsFailureRate', weight: 15, edges: [[1, 0.5], [5, 1]] },
  jitter: { input: 'jitterP90', weight: 10, edges: [[0.03, 0.5], [0.1, 1]] },
  anomalies: { input: 'anomalies', weight: 10, edges: [[1, 0.3], [3, 0.6], [6, 1]] },
};
/** The documented penalty (points) of one component for a value. */
function documented(band: string, value: number | null): number {
  const b = BANDS[band]!;
  if (value === null) return 0;
  let f = 0;
  for (const [edge, fraction] of b.edges) if (value >= edge) f = fraction;
  return Math.round(b.weight * f * 100) / 100;
}

test('health: each component just below and at each documented band edge', () => {
  for (const [band, b] of Object.entries(BANDS)) {
    const component = band.startsWith('dns') ? 'dns' : band;
    let previous = 0;
    for (const [edge, fraction] of b.edges) {
      const below = b.input === 'anomalies' ? edge - 1 : edge * (1 - 1e-6);
      assert.equal(penalty({ [b.input]: below }, component), previous, `${band} just below ${edge}`);
      const expected = Math.round(b.weight * fraction * 100) / 100;
      assert.equal(penalty({ [b.input]: edge }, component), expected, `${band} at ${edge}`);
      assert.equal(documented(band, edge), expected);
      previous = expected;
    }
    assert.equal(penalty({ [b.input]: b.edges.at(-1)![0] * 1000 }, component), b.weight, `${band} far above`);
  }
  // Exact points: retransmissions 7.5 / 15 / 25, loss 5 / 10 / 15 / 20, RTT 10 / 20, DNS 7.5 / 15, jitter 5 / 10, anomalies 3 / 6 / 10.
  assert.equal(penalty({ retransmissionRate: 1 }, 'retransmissions'), 7.5);
  assert.equal(penalty({ lossRate: 2 }, 'packet_loss'), 15);
  assert.equal(penalty({ anomalies: 6 }, 'anomalies'), 10);
  // DNS is the worse of latency and failures.
  assert.equal(penalty({ dnsP90: 0.1, dnsFailureRate: 5 }, 'dns'), 15);
  assert.equal(penalty({ dnsP90: 1, dnsFailureRate: 0 }, 'dns'), 15);
  assert.equal(penalty({ dnsP90: 0.05, dnsFailureRate: 1 }, 'dns'), 7.5);
  // The bands with a config key follow it.
  const strict = buildConfig({ analyzers: { rtt: { warning: 0.05, critical: 0.2 }, tcp: { retransmissionRate: [0.5, 1, 2] } } });
  const rtt = (v: number): number => scoreHealth({ ...NO_DATA, rttP90: v }, strict).components.find((c) => c.name === 'rtt')!.penalty;
  assert.deepEqual([rtt(0.049), rtt(0.05), rtt(0.2)], [0, 10, 20]);
  assert.equal(scoreHealth({ ...NO_DATA, retransmissionRate: 2 }, strict).components[0]!.penalty, 25);
});

test('health: no data costs nothing (score 100); everything bad scores 0; classes at 90 / 75 / 65 / 50', () => {
  const none = scoreHealth(NO_DATA, DEFAULTS);
  assert.equal(none.score, 100);
  assert.equal(none.class, 'excellent');
  assert.deepEqual(none.components.map((c) => [c.name, c.value, c.penalty, c.weight]), [
    ['retransmissions', null, 0, 25], ['packet_loss', null, 0, 20], ['rtt', null, 0, 20],
    ['dns', null, 0, 15], ['jitter', null, 0, 10], ['anomalies', 0, 0, 10],
  ]);
  const worst = scoreHealth({ retransmissionRate: 50, lossRate: 50, rttP90: 5, dnsP90: 5, dnsFailureRate: 50, jitterP90: 1, anomalies: 50 }, DEFAULTS);
  assert.equal(worst.score, 0);
  assert.equal(worst.class, 'critical');
  // Penalties add up: RTT 10 + jitter 5 + anomalies 3 = 18 → 82.
  assert.equal(scoreHealth({ ...NO_DATA, rttP90: 0.2, jitterP90: 0.05, anomalies: 1 }, DEFAULTS).score, 82);
  for (const [score, cls] of [[100, 'excellent'], [90, 'excellent'], [89.9, 'good'], [75, 'good'], [74.9, 'fair'], [65, 'fair'], [64.9, 'poor'], [50, 'poor'], [49.9, 'critical'], [0, 'critical']] as const) {
    assert.equal(healthClass(score), cls, String(score));
  }
  // Scores land on those classes: 100 - 10 = 90; 100 - 25 = 75; 100 - 25 - 10 = 65; 100 - 25 - 20 - 5 = 50.
  assert.equal(scoreHealth({ ...NO_DATA, rttP90: 0.1 }, DEFAULTS).class, 'excellent');
  assert.equal(scoreHealth({ ...NO_DATA, retransmissionRate: 5 }, DEFAULTS).class, 'good');
  assert.equal(scoreHealth({ ...NO_DATA, retransmissionRate: 5, rttP90: 0.1 }, DEFAULTS).class, 'fair');
  assert.equal(scoreHealth({ ...NO_DATA, retransmissionRate: 5, rttP90: 0.5, jitterP90: 0.03 }, DEFAULTS).class, 'poor');
  assert.equal(scoreHealth({ ...NO_DATA, retransmissionRate: 5, rttP90: 0.5, jitterP90: 0.03, anomalies: 1 }, DEFAULTS).class, 'critical');
});

test('health: troubled captures score lower than a clean one, with the documented bands', async () => {
  const check = (r: Report): Record<string, [number | null, number]> => {
    assertWindowScores(r);
    const h = r.healthScore;
    assert.ok(h);
    assert.equal(h.class, healthClass(h.score));
    const out: Record<string, [number | null, number]> = {};
    for (const c of h.components) {
      out[c.name] = [c.value, c.penalty];
      if (c.name !== 'dns') assert.equal(c.penalty, documented(c.name, c.value), c.name);
    }
    assert.equal(h.score, Math.round((100 - h.components.reduce((s, c) => s + c.penalty, 0)) * 10) / 10);
    return out;
  };
  // tshark -r ppa1e_email-troubles.pcap: tcp.analysis.retransmission 18, tcp.len>0 218, tcp.analysis.lost_segment 7.
  const email = await analyzeShared('ppa1e_email-troubles.pcap');
  assert.deepEqual(check(email), {
    retransmissions: [8.256881, 25], // 18 / 218 = 8.26 % ≥ 5 %
    packet_loss: [3.211009, 15], // 7 / 218 = 3.21 % ≥ 2 %
    rtt: [0.264814, 10], // mean of the windows' p90s weighted by samples (one window's p90 is 0.998 s) ≥ 100 ms
    dns: [null, 0],
    jitter: [null, 0],
    anomalies: [2, 3], // tcp_retransmissions and high_rtt in the last window
  });
  assert.equal(email.healthScore!.score, 47);
  assert.equal(email.healthScore!.class, 'critical');
  // tshark -r zeek_tcp_ssh-dups.pcap: tcp.analysis.retransmission 166 of tcp.len>0 216, no lost segment.
  const ssh = await analyzeShared('zeek_tcp_ssh-dups.pcap');
  assert.deepEqual(check(ssh), {
    retransmissions: [76.851852, 25], packet_loss: [0, 0], rtt: [0.000158, 0], dns: [null, 0], jitter: [null, 0], anomalies: [1, 3],
  });
  assert.equal(ssh.healthScore!.score, 72);
  assert.equal(ssh.healthScore!.class, 'fair');
  // tshark -r ppa_tcp_handshake.pcapng -T fields -e tcp.analysis.ack_rtt: 0.132627 (SYN/ACK), 0.000141. No data segments.
  // The handshake's 133 ms costs the RTT band and two warnings (slow_handshake, high_rtt); nothing else.
  const clean = await analyzeShared('ppa_tcp_handshake.pcapng');
  assert.deepEqual(check(clean), {
    retransmissions: [null, 0], packet_loss: [null, 0], rtt: [0.132627, 10], dns: [null, 0], jitter: [null, 0], anomalies: [2, 3],
  });
  assert.equal(clean.healthScore!.score, 87);
  assert.equal(clean.healthScore!.class, 'good');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the scores are computed at run time; their declared types are the fixtures' literals
  assert.ok(clean.healthScore!.score > ssh.healthScore!.score);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the scores are computed at run time; their declared types are the fixtures' literals
  assert.ok(ssh.healthScore!.score > email.healthScore!.score);
  // The troubled captures lose the retransmission weight; the clean one does not.
  for (const r of [email, ssh]) assert.equal(r.healthScore!.components.find((c) => c.name === 'retransmissions')!.penalty, 25);
  assert.equal(clean.healthScore!.components.find((c) => c.name === 'retransmissions')!.penalty, 0);
});

// ---------------------------------------------------------------------------
// Flow-sharded workers (issue 13): host pairs spread over workers, reports byte for byte one pipeline's

/** The first of `candidates` whose frame `frame(candidate)` goes to another worker than `other` does, for 2, 3 and 4 workers. */
function apart(other: Buffer, candidates: readonly string[], frame: (c: string) => Buffer): string {
  const found = candidates.find((c) => [2, 3, 4].every((n) => workersOf([other, frame(c)], n).size === 2));
  assert.ok(found, 'a host pair in another worker');
  return found;
}
const clients = Array.from({ length: 200 }, (_, i) => `10.1.0.${i + 1}`);

test('dns, flow-sharded: a server and a name queried from host pairs in several workers; responses and timeouts of an earlier window\'s queries credited as one pipeline does; the server list bound', async () => {
  const S1 = '10.0.0.53';
  const S2 = '10.0.0.54';
  const S3 = '10.0.0.55'; // never answers
  const q = (c: string, port: number, server: string, id: number, name = 'www.example.com'): Buffer => udp4(c, port, server, 53, query(id, name));
  const a = (c: string, port: number, server: string, id: number, rcode = 0): Buffer => udp4(server, 53, c, port, answer(id, rcode));
  const c1 = clients[0]!;
  // c2's queries go to another worker than c1's, c4's than c3's, c9's than c6's (S3's timeouts are credited by other workers' queries).
  const c2 = apart(q(c1, 40000, S1, 1), clients.slice(1), (c) => q(c, 40000, S1, 1));
  const c3 = clients[50]!;
  const c4 = apart(q(c3, 40000, S3, 1), clients.slice(51), (c) => q(c, 40000, S3, 1));
  const c6 = clients[100]!;
  const c9 = apart(q(c6, 40000, S3, 1), clients.slice(101), (c) => q(c, 40000, S3, 1));
  const [c5, c7, c8, c10] = [clients[150]!, clients[151]!, clients[152]!, clients[153]!];
  const many = Array.from({ length: 1004 }, (_, i) => `10.2.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  const records: PcapRecordSpec[] = [
    // Window [0, 10).
    at(1_000_000, q(c7, 40000, S2, 7)),
    at(1_500_000, a(c7, 40000, S2, 7, 2)), // SERVFAIL in 500 ms
    at(2_000_000, q(c8, 40000, S2, 8, 'nowhere.example')),
    at(2_010_000, a(c8, 40000, S2, 8, 3)), // NXDOMAIN
    at(8_000_000, q(c3, 40000, S3, 3)), // times out at 13 s
    at(9_900_000, q(c1, 40000, S1, 1)), // answered in the next window
    // Window [10, 20): S1's first query (c2's) comes before c1's answer, S3's (c4's) before c3's query times out.
    at(10_050_000, q(c2, 40000, S1, 2)),
    at(10_060_000, a(c2, 40000, S1, 2)),
    at(10_200_000, a(c1, 40000, S1, 1)),
    at(12_000_000, q(c4, 40000, S3, 4)),
    at(13_500_000, q(c5, 40000, S3, 5)),
    at(19_990_000, q(c6, 40000, S3, 6)), // times out at 24.99 s
    // Window [20, 30): S3's first query comes after c6's timed out.
    at(26_000_000, q(c9, 40000, S3, 9)),
    // Window [40, 50): S1 first, then 1,004 more servers (the last, past the list's 1,000, queried 4 times), then S1 again.
    at(40_000_000, q(c1, 40001, S1, 11)),
    at(40_001_000, a(c1, 40001, S1, 11)),
    ...many.map((server, i) => at(40_100_000 + i * 1000, q(c10, 40000 + i, server, 100 + i, `n${i}.example`))),
    ...[1, 2, 3].map((k) => at(45_000_000 + k * 1000, q(c10, 50000 + k, many[1003]!, 5000 + k, `n${1003 + k}.example`))),
    at(49_000_000, q(c2, 40001, S1, 12)),
    at(49_010_000, a(c2, 40001, S1, 12)),
    at(58_000_000, filler()),
    // Window [60, 70): c6's query is stamped 3.5 s before c9's, which came first: both time out 5 s of the packet clock
    // after they came (73 s), in [70, 80), not c6's at its stamp's 69.5 s in one worker and behind c9's in another.
    at(68_000_000, q(c9, 40001, S3, 20)),
    at(64_500_000, q(c6, 40001, S3, 21)),
    at(69_500_000, filler()),
    at(74_000_000, filler()),
  ];
  assert.ok(workersOf(records.map((r) => r.data)).size === 4, 'packets in all 4 workers');
  const r = await assertShardedSame(records, ['dns']);
  const w1 = metrics(r, 'dns', 1);
  assert.deepEqual(dnsCounts(w1), { queries: 4, responses: 2, retransmissions: 0, unsolicited: 0, duplicateResponses: 0, timeouts: 3, lateResponses: 0, count: 2 });
  assert.deepEqual(w1['servers'], [
    { server: S3, queries: 3, responses: 0, timeouts: 3, meanTime: null, maxTime: null },
    { server: S1, queries: 1, responses: 2, timeouts: 0, meanTime: 0.155, maxTime: 0.3 },
  ]);
  assert.deepEqual([w1['repeatedNames'], w1['repeatedQueries']], [1, 4]);
  const w2 = metrics(r, 'dns', 2);
  assert.equal(w2['timeouts'], 1);
  assert.deepEqual(w2['servers'], [{ server: S3, queries: 1, responses: 0, timeouts: 0, meanTime: null, maxTime: null }]);
  const w4 = metrics(r, 'dns', 3); // [40, 50): no packets in [30, 40)
  assert.equal(w4['queries'], 1009);
  const listed = w4['servers'] as Array<{ server: string; queries: number }>;
  assert.deepEqual(listed[0], { server: S1, queries: 2, responses: 2, timeouts: 0, meanTime: 0.0055, maxTime: 0.01 });
  assert.ok(!listed.some((s) => s.server === many[1003]), 'a server past the first 1,000 is not listed');
  assert.deepEqual([metrics(r, 'dns', 5)['timeouts'], metrics(r, 'dns', 6)['timeouts']], [0, 2]);
  assert.deepEqual(metrics(r, 'dns', 0)['rcodes'], { SERVFAIL: 1, NXDOMAIN: 1 });
  assert.deepEqual(findings(r, 'dns_errors').map((f) => f.evidence), [{ servfail: 1, refused: 0, responses: 2 }]);
  assert.equal(findings(r, 'dns_latency').length, 2); // 500 ms in [0, 10), 300 ms in [10, 20)
});

test('icmp, flow-sharded: codes, quoted flows and MTUs first seen in different workers are listed in input order, the first 20', async () => {
  const records: PcapRecordSpec[] = [];
  for (let i = 0; i < 26; i++) {
    const c = clients[i]!;
    const out = ipv4({ src: c, dst: '10.9.9.9', proto: Proto.TCP, payload: tcp({ srcPort: 50000, dstPort: 443, seq: 1, flags: TcpFlags.ACK, payload: Buffer.alloc(1400) }), df: true });
    const probe = ipv4({ src: c, dst: '10.9.9.9', proto: Proto.UDP, payload: udp({ srcPort: 40000 + i, dstPort: 53, payload: Buffer.alloc(8) }) });
    const t = 100_000 + i * 100_000;
    // MTUs in no order, each from another host pair; codes first seen in several workers.
    records.push(at(t, icmp4('10.0.0.254', c, icmpError(3, 4, quote4(out), 1500 - ((i * 7) % 26)))));
    records.push(at(t + 10_000, icmp4('10.9.9.9', c, icmpError(3, i % 3 === 0 ? 3 : i % 3 === 1 ? 1 : 13, quote4(probe)))));
    if (i % 5 === 0) records.push(at(t + 20_000, icmp4('10.0.0.253', c, icmpError(11, 0, quote4(probe)))));
  }
  records.push(at(9_000_000, icmp4(clients[0]!, '10.9.9.9', icmpEcho(1, 1))));
  assert.ok(workersOf(records.map((r) => r.data)).size === 4, 'errors in all 4 workers');
  const r = await assertShardedSame(records, ['icmp']);
  const m = metrics(r, 'icmp');
  assert.deepEqual(Object.keys(m['unreachable'] as Row), ['fragmentation_needed', 'port', 'host', 'communication_prohibited']);
  assert.equal(Object.keys(m['mtus'] as Row).length, 20);
  assert.equal(Object.keys(m['quotedFlows'] as Row).length, 20);
  assert.deepEqual(findings(r, 'path_mtu').map((f) => f.evidence), [{ smallestMtu: 1475, messages: 20 }]);
  assert.equal(findings(r, 'icmp_unreachable')[0]!.evidence['firstQuotedFlow'], `tcp ${clients[0]}:50000 -> 10.9.9.9:443`);
  assert.equal(findings(r, 'icmp_time_exceeded')[0]!.evidence['messages'], 6);
});

test('ip_fragments, flow-sharded: datagrams time out with their own host pair\'s new datagrams or at a window\'s end, not another pair\'s, in every worker as in one pipeline', async () => {
  const frag = (src: string, id: number, payload: Buffer, off: number, len: number): Buffer => ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({
    src, dst: SERVER, proto: Proto.UDP, id, fragOffset: off, mf: off + len < payload.length, payload: payload.subarray(off, off + len),
  }));
  const d = udpDatagram(40);
  const records: PcapRecordSpec[] = [];
  // Eight host pairs each start a datagram they never complete, and a second one 30.5 s later (the first then times out at
  // once: in the window that has the second) or 45 s later (the first times out at the end of the window its 30 s run out in).
  for (let i = 0; i < 8; i++) {
    const c = clients[i]!;
    const t = 1_000_000 + i * 3_000_000;
    const again = t + (i % 2 === 0 ? 30_500_000 : 45_000_000);
    records.push(at(t, frag(c, 0x100 + i, d, 0, 16)));
    records.push(at(again, frag(c, 0x200 + i, d, 0, 16)));
    if (i % 4 === 0) records.push(at(again + 50_000, frag(c, 0x200 + i, d, 8, 16))); // overlaps both others
    records.push(at(again + 100_000, frag(c, 0x200 + i, d, 16, 32)));
  }
  records.push(at(80_000_000, frag(clients[9]!, 0x300, d, 0, 16))); // pending at the end
  records.sort((x, y) => (x.tsSec - y.tsSec) || (x.tsSub - y.tsSub));
  // A fragment stamped a day ahead (the clock does not take it): it times out no other host pair's datagram.
  records.push(at(80_000_000 + 86_400_000_000, frag(clients[10]!, 0x301, d, 0, 16)), at(81_000_000, frag(clients[11]!, 0x302, d, 0, 16)));
  assert.ok(workersOf(records.map((r) => r.data)).size === 4, 'fragments in all 4 workers');
  const r = await assertShardedSame(records, ['ip_fragments']);
  assert.equal(total(r, 'ip_fragments', 'incomplete'), 11);
  assert.equal(total(r, 'ip_fragments', 'reassembled'), 8);
  assert.equal(total(r, 'ip_fragments', 'overlapping'), 4);
  assert.equal(r.capture.decodeErrors['ip.reassembly_timeout'], 8);
});
