/**
 * The traffic analyzers: jitter, bursts, throughput, talkers, protocols,
 * asymmetry, capture, sack. Crafted captures check the definitions at their
 * boundaries; the shared captures check figures against tshark's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../common/config.js';
import { reportJsonChunks, type Finding, type Report } from '../common/report.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import { analyzeCaptureSharded } from '../agent/analyze/analyze-sharded.js';
import { shardHash, shardOf } from '../agent/decode/shard-hash.js';
import {
  EtherTypes, Proto, TcpFlags, ethernet, icmpEcho, ipv4, pcapFile, tcp, udp,
  type PcapRecordSpec, type TcpSpec,
} from './helpers/capture-writer.js';
import { SHARED_PCAPS, readTsv } from './helpers/paths.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { assertShardedSame, workersOf } from './helpers/assert-sharded.js';
import { topIndices } from '../agent/analyzers/window-flows.js';

// ---------------------------------------------------------------------------
// Crafting

/** Window-aligned (a multiple of 10 s and of the decoder's time base), so offsets are exact packet times. */
const T0 = 1_700_000_000;
const MAC_A = '02:00:00:00:00:01';
const MAC_B = '02:00:00:00:00:02';

const udpFrame = (src: string, sport: number, dst: string, dport: number, payload = 32): Buffer =>
  ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.UDP, payload: udp({ srcPort: sport, dstPort: dport, payload: Buffer.alloc(payload) }) }));

const tcpFrame = (src: string, sport: number, dst: string, dport: number, spec: Partial<TcpSpec> = {}): Buffer =>
  ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.TCP, payload: tcp({ srcPort: sport, dstPort: dport, ...spec }) }));

/** A record `us` microseconds after T0. */
const at = (us: number, data: Buffer): PcapRecordSpec => ({ tsSec: T0 + Math.floor(us / 1e6), tsSub: us % 1e6, data });

const analyze = analyzeCrafted;

type Row = Record<string, unknown>;
/** One analyzer's metrics in window `i`. */
function metrics(r: Report, id: string, i = 0): Row {
  const w = r.windows[i];
  assert.ok(w, `window ${i} exists`);
  const m = w.metrics[id];
  assert.ok(m, `metrics.${id} in window ${i}`);
  return m;
}
const num = (row: Row, key: string): number => {
  const v = row[key];
  assert.equal(typeof v, 'number', key);
  return v as number;
};
const rows = (row: Row, key: string): Row[] => {
  const v = row[key];
  assert.ok(Array.isArray(v), key);
  return v as Row[];
};
const findings = (r: Report, type: string): Finding[] => r.findings.filter((f) => f.type === type);
/** Sums one numeric metric of an analyzer over all windows. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
const total = (r: Report, id: string, key: string): number => r.windows.reduce((s, w) => s + ((w.metrics[id]?.[key] as number | undefined) ?? 0), 0);

/** RFC 3550's estimator, computed by hand on integer microsecond arrival times (sender spacing = previous arrival spacing). */
function handJitter(arrivalsUs: readonly number[]): number {
  let j = 0;
  for (let i = 2; i < arrivalsUs.length; i++) {
    const d = (arrivalsUs[i]! - arrivalsUs[i - 1]!) - (arrivalsUs[i - 1]! - arrivalsUs[i - 2]!);
    j += (Math.abs(d) / 1e6 - j) / 16;
  }
  return j;
}

const stream = (arrivalsUs: readonly number[], src = '10.0.0.1', dst = '10.0.0.2'): PcapRecordSpec[] =>
  arrivalsUs.map((us) => at(us, udpFrame(src, 5000, dst, 6000)));

// ---------------------------------------------------------------------------
// jitter

test('jitter: a perfectly periodic UDP stream has jitter 0', async () => {
  const arrivals = Array.from({ length: 30 }, (_, i) => 1_000_000 + i * 20_000);
  const r = await analyze(stream(arrivals));
  const m = metrics(r, 'jitter');
  assert.equal(num(m, 'udpFlows'), 1);
  assert.equal(num(m, 'flows'), 1);
  assert.equal(num(m, 'streams'), 1);
  assert.equal(m['p50'], 0);
  assert.equal(m['p90'], 0);
  assert.equal(m['max'], 0);
  assert.equal(findings(r, 'high_jitter').length, 0);
});

test('jitter: alternating 10 ms / 90 ms spacing matches the hand computation (0.08 x (1 - (15/16)^20))', async () => {
  const arrivals: number[] = [1_000_000];
  for (let i = 1; i < 22; i++) arrivals.push(arrivals[i - 1]! + (i % 2 ? 10_000 : 90_000));
  const expected = handJitter(arrivals);
  assert.ok(Math.abs(expected - 0.08 * (1 - (15 / 16) ** 20)) < 1e-12);
  assert.ok(Math.abs(expected - 0.0579952968) < 1e-9);
  const r = await analyze(stream(arrivals));
  const m = metrics(r, 'jitter');
  assert.equal(num(m, 'streams'), 1);
  assert.ok(Math.abs(num(m, 'max') - expected) < 2e-9, `${String(m['max'])} vs ${expected}`);
  assert.equal(m['p50'], m['max']);
  assert.equal(num(m, 'highJitter'), 1);
  const [f, ...more] = findings(r, 'high_jitter');
  assert.equal(more.length, 0);
  assert.equal(f!.severity, 'warning'); // 0.058 > warning 0.03, below critical 0.1
  assert.deepEqual(f!.flow, { proto: 'udp', client: '10.0.0.1', clientPort: 5000, server: '10.0.0.2', serverPort: 6000 });
  assert.equal(f!.evidence['direction'], 'client_to_server');
  assert.equal(f!.evidence['packetsInWindow'], 22);
  // minPackets: 22 packets in the window are too few for minPackets 23.
  const fewer = await analyze(stream(arrivals), { analyzers: { jitter: { minPackets: 23 } } });
  assert.equal(num(metrics(fewer, 'jitter'), 'streams'), 0);
  assert.equal(metrics(fewer, 'jitter')['p90'], null);
  assert.equal(findings(fewer, 'high_jitter').length, 0);
});

test('jitter: a silence longer than sessionGap starts a new session instead of counting as an interarrival', async () => {
  // 25 packets every 20 ms, 10 s of silence, 25 more every 20 ms; one 60 s window.
  const arrivals = [...Array.from({ length: 25 }, (_, i) => i * 20_000), ...Array.from({ length: 25 }, (_, i) => 10_480_000 + i * 20_000)];
  const split = await analyze(stream(arrivals), { windows: { seconds: 60 }, analyzers: { jitter: { sessionGap: 5 } } });
  assert.equal(split.windows.length, 1);
  const m = metrics(split, 'jitter');
  assert.equal(num(m, 'sessionSplits'), 1);
  assert.equal(num(m, 'streams'), 1);
  assert.equal(m['max'], 0);
  assert.equal(findings(split, 'high_jitter').length, 0);
  // Without the split the 10 s gap enters the estimate: 0.2739 s by hand, critical.
  const joined = await analyze(stream(arrivals), { windows: { seconds: 60 }, analyzers: { jitter: { sessionGap: 20 } } });
  const j = metrics(joined, 'jitter');
  assert.equal(num(j, 'sessionSplits'), 0);
  const expected = handJitter(arrivals);
  assert.ok(Math.abs(expected - 0.27389974) < 1e-8);
  assert.ok(Math.abs(num(j, 'max') - expected) < 2e-9);
  assert.equal(findings(joined, 'high_jitter')[0]!.severity, 'critical');
});

test('jitter, flow-sharded: high-jitter streams of host pairs in several workers, ending mid-window or not, give one pipeline\'s first 10 findings', async () => {
  const records: PcapRecordSpec[] = [];
  // 16 host pairs: 30 packets spaced 10 ms / 90 ms (scaled: four levels of jitter, four streams each) from about 0 s
  // (their flows end idle mid-window, several at one packet) or from 14 s (judged at the window's close): 8 + 8
  // candidates for 10 findings, the 2 worst of the latter.
  for (let i = 0; i < 16; i++) {
    const src = `10.0.2.${i + 1}`;
    const scale = 1 + (i % 4) * 0.5;
    let t = (i % 2 ? 14_000_000 : 0) + i * 10_000;
    for (let k = 0; k < 30; k++) {
      records.push(at(t, udpFrame(src, 5000, '10.0.0.2', 6000)));
      t += Math.round((k % 2 ? 90_000 : 10_000) * scale);
    }
  }
  // Another host pair's packets move the clock on: the idle flows end at them.
  for (let s = 0; s < 20; s++) records.push(at(s * 1_000_000 + 500_000, udpFrame('10.0.3.1', 7000, '10.0.3.2', 7000)));
  records.sort((a, b) => a.tsSec - b.tsSec || a.tsSub - b.tsSub);
  assert.equal(workersOf(records.map((r) => r.data)).size, 4);
  const r = await assertShardedSame(records, ['jitter'], { windows: { seconds: 20 }, flows: { timeouts: { udp: 5 } } });
  const m = metrics(r, 'jitter');
  assert.equal(num(m, 'highJitter'), 16);
  assert.equal(num(m, 'findingsSuppressed'), 6);
  const f = findings(r, 'high_jitter');
  assert.equal(f.length, 10);
  // Two of the four worst judged at the close (the streams of the largest spacing, i % 4 === 3).
  const atClose = f.filter((x) => Number(x.flow!.client.split('.')[3]) % 2 === 0);
  assert.deepEqual(atClose.map((x) => [Number(x.flow!.client.split('.')[3]) % 4, x.evidence['jitterSeconds']]), [[0, 0.167173413], [0, 0.167173413]]);
});

// ---------------------------------------------------------------------------
// bursts

/** 95 buckets of 100 ms with 2 packets each and bucket 97 with `peak` packets; `extra` more packets in bucket 95. */
function burstRecords(peak: number, extra: number): PcapRecordSpec[] {
  const recs: PcapRecordSpec[] = [];
  const frame = udpFrame('10.0.0.1', 5000, '10.0.0.2', 6000);
  const fill = (bucket: number, n: number): void => {
    for (let k = 0; k < n; k++) recs.push(at(bucket * 100_000 + 50_000 + k * 1000, frame));
  };
  for (let b = 0; b < 95; b++) fill(b, 2);
  fill(95, extra);
  fill(97, peak);
  return recs;
}

test('bursts: a bucket of exactly factor x the window average is a burst; one packet more in the window and it is not', async () => {
  // 200 packets over 100 buckets: average 2, factor 5: threshold 10.
  const r = await analyze(burstRecords(10, 0));
  assert.equal(r.windows.length, 1);
  const m = metrics(r, 'bursts');
  assert.equal(num(m, 'buckets'), 100);
  assert.equal(num(m, 'packets'), 200);
  assert.equal(num(m, 'averagePerBucket'), 2);
  assert.equal(num(m, 'burstThreshold'), 10);
  assert.equal(num(m, 'maxBucketPackets'), 10);
  assert.equal(num(m, 'bursts'), 1);
  assert.equal(num(m, 'peakPps'), 100);
  const [f] = findings(r, 'traffic_burst');
  assert.equal(f!.severity, 'info');
  assert.equal(f!.evidence['bursts'], 1);
  assert.equal(f!.evidence['peakOffsetSeconds'], 9.7);
  // 202 packets: threshold 10.1, the 10-packet bucket is no longer a burst.
  const below = await analyze(burstRecords(10, 2));
  const b = metrics(below, 'bursts');
  assert.equal(num(b, 'burstThreshold'), 10.1);
  assert.equal(num(b, 'maxBucketPackets'), 10);
  assert.equal(num(b, 'bursts'), 0);
  assert.equal(findings(below, 'traffic_burst').length, 0);
});

// ---------------------------------------------------------------------------
// capture

test('capture: a gap is a silence strictly longer than gapSeconds', async () => {
  const frame = udpFrame('10.0.0.1', 5000, '10.0.0.2', 6000);
  // Steps: 1 s (not a gap), 1.25 s (gap), 1 s (not), 1.000001 s (gap).
  const recs = [0, 1_000_000, 2_250_000, 3_250_000, 4_250_001].map((us) => at(us, frame));
  const r = await analyze(recs);
  const m = metrics(r, 'capture');
  assert.equal(num(m, 'gaps'), 2);
  assert.equal(num(m, 'longestGap'), 1.25);
  assert.equal(num(m, 'totalGap'), 2.250001);
  assert.equal(num(m, 'backwards'), 0);
  const [f] = findings(r, 'capture_gap');
  assert.equal(f!.evidence['gaps'], 2);
  assert.equal(f!.evidence['longestFrom'], '2023-11-14T22:13:21.000000Z');
  // With gapSeconds 1.25 the 1.25 s silence is at the threshold: no gap at all.
  const at125 = await analyze(recs, { analyzers: { capture: { gapSeconds: 1.25 } } });
  assert.equal(num(metrics(at125, 'capture'), 'gaps'), 0);
  assert.equal(findings(at125, 'capture_gap').length, 0);
});

test('capture: timestamps going backwards are counted against the previous packet, and make no gap', async () => {
  const frame = udpFrame('10.0.0.1', 5000, '10.0.0.2', 6000);
  const recs = [0, 500_000, 300_000, 600_000, 100_000, 700_000].map((us) => at(us, frame));
  const r = await analyze(recs, { analyzers: { capture: { gapSeconds: 0.2 } } });
  const m = metrics(r, 'capture');
  assert.equal(num(m, 'backwards'), 2);
  assert.equal(num(m, 'largestStepBack'), 0.5);
  // The clock steps 0.5, then 0.1 (0.5 -> 0.6) and 0.1 (0.6 -> 0.7): one gap. Packet to packet, 0.3 -> 0.6 and
  // 0.1 -> 0.7 would have been gaps too.
  assert.equal(num(m, 'gaps'), 1);
  assert.equal(num(m, 'longestGap'), 0.5);
  const [f] = findings(r, 'timestamps_backwards');
  assert.equal(f!.evidence['packets'], 2);
  assert.equal(f!.severity, 'info');
});

// ---------------------------------------------------------------------------
// sack

test('sack: SACK-permitted SYNs, SACK blocks and D-SACKs (RFC 2883) in crafted packets', async () => {
  const c = '10.0.0.1';
  const s = '10.0.0.2';
  const { SYN, ACK } = TcpFlags;
  const ackWithSack = (ack: number, blocks: ReadonlyArray<readonly [number, number]>): Buffer =>
    tcpFrame(c, 40000, s, 80, { seq: 101, ack, flags: ACK, options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'sack', blocks }] });
  const recs = [
    tcpFrame(c, 40000, s, 80, { seq: 100, flags: SYN, options: [{ kind: 'mss', value: 1460 }, { kind: 'sackPermitted' }] }),
    tcpFrame(s, 80, c, 40000, { seq: 999, ack: 101, flags: SYN | ACK, options: [{ kind: 'mss', value: 1460 }, { kind: 'sackPermitted' }] }),
    tcpFrame(c, 40000, s, 80, { seq: 101, ack: 1000, flags: ACK }),
    ackWithSack(1000, [[1500, 2000]]), // plain SACK: data above a hole
    ackWithSack(2000, [[1000, 1500]]), // D-SACK: first block below the cumulative ACK
    ackWithSack(1000, [[1200, 1300], [1100, 1500]]), // D-SACK: first block inside the second
    ackWithSack(1000, [[3000, 3500], [1500, 2000]]), // plain SACK, two blocks
    ackWithSack(0x100, [[0xffffff00, 0x10]]), // D-SACK across the 2^32 wrap
  ].map((frame, i) => at(i * 1000, frame));
  const r = await analyze(recs);
  assert.deepEqual(metrics(r, 'sack'), {
    syns: 1, synSackPermitted: 1, synAcks: 1, synAckSackPermitted: 1, sackPermitted: 2,
    sackPackets: 5, sackBlocks: 7, dsackPackets: 3, flowsWithSack: 1,
  });
});

// ---------------------------------------------------------------------------
// asymmetry, throughput

test('asymmetry: one-way flows from minPackets on, strongly asymmetric flows, and findings per flow', async () => {
  const recs: PcapRecordSpec[] = [];
  let t = 0;
  const add = (frame: Buffer): void => { recs.push(at(t, frame)); t += 1000; };
  for (let i = 0; i < 10; i++) add(udpFrame('10.0.1.1', 5000, '10.0.1.2', 7000)); // one-way: 10 packets
  for (let i = 0; i < 9; i++) add(udpFrame('10.0.1.3', 5000, '10.0.1.4', 7000)); // 9: too few to judge
  for (let i = 0; i < 10; i++) add(tcpFrame('10.0.2.1', 40001, '10.0.2.2', 443, { seq: 7, flags: TcpFlags.SYN })); // unanswered SYNs
  const { SYN, ACK } = TcpFlags;
  add(tcpFrame('10.0.3.1', 40002, '10.0.3.2', 80, { seq: 1, flags: SYN }));
  add(tcpFrame('10.0.3.2', 80, '10.0.3.1', 40002, { seq: 1000, ack: 2, flags: SYN | ACK }));
  add(tcpFrame('10.0.3.1', 40002, '10.0.3.2', 80, { seq: 2, ack: 1001, flags: ACK }));
  for (let i = 0; i < 8; i++) add(tcpFrame('10.0.3.2', 80, '10.0.3.1', 40002, { seq: 1001 + i * 1400, ack: 2, flags: ACK, payload: Buffer.alloc(1400) }));
  add(tcpFrame('10.0.3.1', 40002, '10.0.3.2', 80, { seq: 2, ack: 1001 + 8 * 1400, flags: ACK }));
  const r = await analyze(recs);
  assert.deepEqual(metrics(r, 'asymmetry'), {
    flows: 4, checked: 3, oneWay: 2, oneWayClientToServer: 2, oneWayServerToClient: 0, asymmetric: 1,
  });
  const oneWay = findings(r, 'one_way_flow');
  assert.equal(oneWay.length, 2);
  const byProto = Object.fromEntries(oneWay.map((f) => [f.flow!.proto, f]));
  assert.equal(byProto['tcp']!.severity, 'warning');
  assert.deepEqual(byProto['tcp']!.flow, { proto: 'tcp', client: '10.0.2.1', clientPort: 40001, server: '10.0.2.2', serverPort: 443, service: 'https' });
  assert.equal(byProto['udp']!.severity, 'info');
  assert.equal(byProto['udp']!.evidence['packets'], 10);
  assert.equal(byProto['udp']!.evidence['direction'], 'client_to_server');
});

test('asymmetry: every one-way flow is reported, the window engine keeps report.maxFindingsPerType of them, the most packets first', async () => {
  const recs: PcapRecordSpec[] = [];
  // Flow f: 10 + f one-way packets, all still open when the window closes.
  for (let f = 0; f < 12; f++) for (let i = 0; i < 10 + f; i++) recs.push(at(f * 30_000 + i * 1000, udpFrame(`10.0.9.${f + 1}`, 5000, '10.0.9.200', 7000)));
  const r = await analyze(recs, { report: { maxFindingsPerType: 5 } });
  assert.equal(num(metrics(r, 'asymmetry'), 'oneWay'), 12);
  assert.deepEqual(r.windows[0]!.findingsSuppressed, { one_way_flow: 7 });
  assert.deepEqual(findings(r, 'one_way_flow').map((f) => f.evidence['packets']), [21, 20, 19, 18, 17]);
});

test('throughput and asymmetry: a flow that ends mid-window (its slot reused) keeps its bytes and its finding', async () => {
  const recs: PcapRecordSpec[] = [];
  // Flow A: 20 one-way packets of 1042 bytes in the first 0.2 s.
  for (let i = 0; i < 20; i++) recs.push(at(i * 10_000, udpFrame('10.0.4.1', 5000, '10.0.4.2', 7000, 1000)));
  // At 3 s flow A has been idle past flows.timeouts.udp (1 s) and ends; flow B (142-byte requests, 242-byte answers) starts.
  for (let i = 0; i < 5; i++) {
    recs.push(at(3_000_000 + i * 20_000, udpFrame('10.0.4.3', 5001, '10.0.4.4', 7001, 100)));
    recs.push(at(3_010_000 + i * 20_000, udpFrame('10.0.4.4', 7001, '10.0.4.3', 5001, 200)));
  }
  const r = await analyze(recs, { flows: { timeouts: { udp: 1 } } });
  assert.equal(r.windows.length, 1);
  const m = metrics(r, 'throughput');
  assert.equal(num(m, 'bytes'), 20 * 1042 + 5 * 142 + 5 * 242);
  assert.equal(num(m, 'bitsPerSecond'), (22760 * 8) / 10);
  assert.deepEqual(m['clientToServer'], { packets: 25, bytes: 21550, bitsPerSecond: 17240 });
  assert.deepEqual(m['serverToClient'], { packets: 5, bytes: 1210, bitsPerSecond: 968 });
  assert.equal(num(m, 'flows'), 2);
  assert.deepEqual(rows(m, 'topFlows'), [
    { proto: 'udp', client: '10.0.4.1', clientPort: 5000, server: '10.0.4.2', serverPort: 7000, packets: 20, bytes: 20840,
      bytesClientToServer: 20840, bytesServerToClient: 0, bitsPerSecondClientToServer: 16672, bitsPerSecondServerToClient: 0 },
    { proto: 'udp', client: '10.0.4.3', clientPort: 5001, server: '10.0.4.4', serverPort: 7001, packets: 10, bytes: 1920,
      bytesClientToServer: 710, bytesServerToClient: 1210, bitsPerSecondClientToServer: 568, bitsPerSecondServerToClient: 968 },
  ]);
  const [f, ...more] = findings(r, 'one_way_flow');
  assert.equal(more.length, 0);
  assert.deepEqual(f!.flow, { proto: 'udp', client: '10.0.4.1', clientPort: 5000, server: '10.0.4.2', serverPort: 7000, service: 'afs3-fileserver' });
  assert.equal(f!.evidence['packets'], 20);
});

// ---------------------------------------------------------------------------
// protocols, talkers (crafted)

test('protocols: packets and bytes per transport and per service of the flow\'s server port', async () => {
  const { SYN, ACK } = TcpFlags;
  const frames: Array<[Buffer, string, string | null]> = [
    [tcpFrame('10.0.6.1', 40000, '10.0.6.2', 80, { flags: SYN }), 'tcp', 'http'],
    [tcpFrame('10.0.6.2', 80, '10.0.6.1', 40000, { flags: SYN | ACK }), 'tcp', 'http'],
    [udpFrame('10.0.6.1', 53000, '10.0.6.3', 53), 'udp', 'dns'],
    [udpFrame('10.0.6.3', 53, '10.0.6.1', 53000), 'udp', 'dns'],
    [udpFrame('10.0.6.3', 53, '10.0.6.1', 53001), 'udp', 'dns'], // an answer seen first: still the server's port
    [tcpFrame('10.0.6.1', 40001, '10.0.6.2', 79, { flags: SYN }), 'tcp', 'tcp/79'],
    [tcpFrame('10.0.6.1', 40002, '10.0.6.2', 8081, { flags: SYN }), 'tcp', 'tcp/other'],
    [udpFrame('10.0.6.1', 40000, '10.0.6.2', 7000), 'udp', 'udp/other'],
    [ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src: '10.0.6.1', dst: '10.0.6.2', proto: Proto.ICMP, payload: icmpEcho(1, 1) })), 'icmp', null],
    [ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src: '10.0.6.1', dst: '10.0.6.2', proto: 47, payload: Buffer.alloc(8) })), 'other', null],
    [ethernet('ff:ff:ff:ff:ff:ff', MAC_A, EtherTypes.ARP, Buffer.alloc(28)), 'non-ip', null],
  ];
  const r = await analyze(frames.map(([frame], i) => at(i * 1000, frame)));
  const expectTransports: Record<string, { packets: number; bytes: number }> = {};
  for (const name of ['tcp', 'udp', 'icmp', 'icmpv6', 'other', 'non-ip']) expectTransports[name] = { packets: 0, bytes: 0 };
  const expectServices: Record<string, { packets: number; bytes: number }> = {};
  for (const [frame, transport, service] of frames) {
    expectTransports[transport]!.packets++;
    expectTransports[transport]!.bytes += frame.length;
    if (service) {
      const s = (expectServices[service] ??= { packets: 0, bytes: 0 });
      s.packets++;
      s.bytes += frame.length;
    }
  }
  const m = metrics(r, 'protocols');
  assert.deepEqual(m['transports'], expectTransports);
  assert.deepEqual(m['services'], expectServices);
  assert.deepEqual(Object.keys(m['services'] as Row), ['dns', 'http', 'udp/other', 'tcp/79', 'tcp/other']); // by bytes
});

test('talkers: hosts past maxHosts in a window are not tracked and are counted', async () => {
  // 12 senders to one receiver, one packet each; maxHosts 10 (the receiver and the first 9 senders).
  const recs = Array.from({ length: 12 }, (_, i) => at(i * 1000, udpFrame(`10.0.5.${i + 1}`, 5000, '10.0.5.100', 7000)));
  const r = await analyze(recs, { analyzers: { talkers: { maxHosts: 10, top: 3 } } });
  const m = metrics(r, 'talkers');
  assert.equal(num(m, 'hosts'), 10);
  assert.equal(num(m, 'pairs'), 9);
  assert.equal(num(m, 'untracked'), 3);
  assert.equal(num(m, 'untrackedBytes'), 3 * 74);
  const top = rows(m, 'topHosts');
  assert.equal(top.length, 3);
  assert.deepEqual(top[0], { host: '10.0.5.100', packets: 12, bytes: 12 * 74, packetsSent: 0, bytesSent: 0, packetsReceived: 12, bytesReceived: 12 * 74 });
  assert.deepEqual(top.slice(1).map((h) => h['host']), ['10.0.5.1', '10.0.5.2']); // ties by address
});

test('talkers, throughput, protocols: a flow spanning two windows counts in each only its packets there; packets without a flow count one by one', async () => {
  const req = udpFrame('10.0.7.1', 5000, '10.0.7.2', 53);
  const ans = udpFrame('10.0.7.2', 53, '10.0.7.1', 5000);
  // A non-first fragment has no transport header, so no flow; ARP is not IP.
  const frag = ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src: '10.0.7.3', dst: '10.0.7.1', proto: Proto.UDP, fragOffset: 8, payload: Buffer.alloc(16) }));
  const arp = ethernet('ff:ff:ff:ff:ff:ff', MAC_A, EtherTypes.ARP, Buffer.alloc(28));
  const r = await analyze([
    at(0, req), at(1000, ans), at(2000, frag), at(3000, arp), at(4000, req),
    at(10_000_000, req), at(10_001_000, ans), at(10_002_000, ans),
  ]);
  assert.equal(r.windows.length, 2);
  const [u, f, a] = [req.length, frag.length, arp.length];
  // Window 0.
  let t = metrics(r, 'talkers', 0);
  assert.equal(num(t, 'ipPackets'), 4);
  assert.equal(num(t, 'ipBytes'), 3 * u + f);
  assert.deepEqual(rows(t, 'topHosts'), [
    { host: '10.0.7.1', packets: 4, bytes: 3 * u + f, packetsSent: 2, bytesSent: 2 * u, packetsReceived: 2, bytesReceived: u + f },
    { host: '10.0.7.2', packets: 3, bytes: 3 * u, packetsSent: 1, bytesSent: u, packetsReceived: 2, bytesReceived: 2 * u },
    { host: '10.0.7.3', packets: 1, bytes: f, packetsSent: 1, bytesSent: f, packetsReceived: 0, bytesReceived: 0 },
  ]);
  assert.deepEqual(rows(t, 'topPairs'), [
    { a: '10.0.7.1', b: '10.0.7.2', packets: 3, bytes: 3 * u, packetsAToB: 2, bytesAToB: 2 * u, packetsBToA: 1, bytesBToA: u },
    { a: '10.0.7.1', b: '10.0.7.3', packets: 1, bytes: f, packetsAToB: 0, bytesAToB: 0, packetsBToA: 1, bytesBToA: f },
  ]);
  let th = metrics(r, 'throughput', 0);
  assert.equal(num(th, 'packets'), 5);
  assert.equal(num(th, 'bytes'), 3 * u + f + a);
  assert.equal(num(th, 'nonFlowBytes'), f + a);
  assert.deepEqual(rows(th, 'topFlows').map((x) => [x['packets'], x['bytesClientToServer'], x['bytesServerToClient']]), [[3, 2 * u, u]]);
  let p = metrics(r, 'protocols', 0);
  const transports = (udpPackets: number, other: number, nonIp: number): Row => ({
    tcp: { packets: 0, bytes: 0 }, udp: { packets: udpPackets, bytes: udpPackets * u }, icmp: { packets: 0, bytes: 0 }, icmpv6: { packets: 0, bytes: 0 },
    other: { packets: other, bytes: other * f }, 'non-ip': { packets: nonIp, bytes: nonIp * a },
  });
  assert.deepEqual(p['transports'], transports(3, 1, 1));
  assert.deepEqual(p['services'], { dns: { packets: 3, bytes: 3 * u } });
  // Window 1: the same flow, only its packets of this window; equal bytes, so hosts in order of first sight.
  t = metrics(r, 'talkers', 1);
  assert.equal(num(t, 'ipPackets'), 3);
  assert.deepEqual(rows(t, 'topHosts').map((h) => [h['host'], h['packetsSent'], h['packetsReceived']]), [['10.0.7.1', 1, 2], ['10.0.7.2', 2, 1]]);
  assert.deepEqual(rows(t, 'topPairs').map((x) => [x['a'], x['packetsAToB'], x['packetsBToA']]), [['10.0.7.1', 1, 2]]);
  th = metrics(r, 'throughput', 1);
  assert.deepEqual(rows(th, 'topFlows').map((x) => [x['packets'], x['bytesClientToServer'], x['bytesServerToClient']]), [[3, u, 2 * u]]);
  assert.deepEqual(th['clientToServer'], { packets: 1, bytes: u, bitsPerSecond: (u * 8) / 10 });
  p = metrics(r, 'protocols', 1);
  assert.deepEqual(p['transports'], transports(3, 0, 0));
  assert.deepEqual(r.windows[1]!.flows, { active: 1, new: 0, closed: 0 });
});

// ---------------------------------------------------------------------------
// Flow-sharded workers (issue 13): the volume analyzers' merge

const VOLUME_ANALYZERS = ['bursts', 'capture', 'throughput', 'talkers', 'protocols', 'asymmetry'];

/**
 * Eight clients of one server, each client's host pair in the worker its hash
 * picks: one-way flows of equal size that expire mid-window (asymmetry's
 * findings over the cap, throughput's ties among ended flows), a burst made of
 * every client's packets, a timestamp going backwards and a gap across host
 * pairs (capture), several services (protocols), and a second window where
 * every client moves as many bytes (talkers' ties, the server host in every worker).
 */
function volumeRecords(): PcapRecordSpec[] {
  const recs: PcapRecordSpec[] = [];
  const client = (k: number): string => `10.0.8.${k + 1}`;
  const S = '10.0.8.100';
  const { SYN, ACK } = TcpFlags;
  for (let i = 0; i < 12; i++) {
    for (let k = 0; k < 8; k++) recs.push(at((i * 8 + k) * 5000, udpFrame(client(k), 5000 + k, S, k % 2 === 0 ? 53 : 123, 40)));
  }
  for (let i = 0; i < 5; i++) {
    for (let k = 0; k < 8; k++) recs.push(at(2_000_000 + (i * 8 + k) * 1000, tcpFrame(client(k), 40000 + k, S, 80, { seq: 1, flags: SYN })));
  }
  recs.push(at(2_500_000, udpFrame(client(0), 6000, S, 7000)));
  recs.push(at(2_300_000, udpFrame(client(1), 6001, S, 7000))); // 0.2 s back, another host pair
  for (let k = 0; k < 8; k++) {
    recs.push(at(6_000_000 + k * 10_000, udpFrame(client(k), 6100 + k, S, 7001)));
    recs.push(at(6_005_000 + k * 10_000, udpFrame(S, 7001, client(k), 6100 + k)));
  }
  for (let k = 0; k < 8; k++) {
    const t = 10_000_000 + k * 100_000;
    recs.push(at(t, tcpFrame(client(k), 41000 + k, S, 443, { seq: 1, flags: SYN })));
    recs.push(at(t + 1000, tcpFrame(S, 443, client(k), 41000 + k, { seq: 100, ack: 2, flags: SYN | ACK })));
    recs.push(at(t + 2000, tcpFrame(client(k), 41000 + k, S, 443, { seq: 2, ack: 101, flags: ACK, payload: Buffer.alloc(300) })));
  }
  return recs;
}

/** One pipeline's report, and 2 (in this thread), 3 and 4 (worker threads) flow-sharded workers' as JSON text. */
async function volumeReports(recs: readonly PcapRecordSpec[], config: Record<string, unknown>): Promise<{ one: Report; json: string; sharded: Map<number, string> }> {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-volume-'));
  try {
    const path = join(dir, 'volume.pcap');
    writeFileSync(path, pcapFile({}, recs));
    const analyzers = Object.fromEntries(Object.keys(buildConfig({}).analyzers).map((id) => [id, { enabled: VOLUME_ANALYZERS.includes(id) }]));
    const cfg = buildConfig({ ...config, analyzers: { ...analyzers, ...(config['analyzers'] as Record<string, object> | undefined) } });
    for (const id of VOLUME_ANALYZERS) assert.equal(cfg.analyzers[id as keyof typeof cfg.analyzers].enabled, true);
    const json = (r: Report): string => [...reportJsonChunks(r)].join('');
    const { report: one } = await analyzeCapture(path, cfg);
    const sharded = new Map<number, string>();
    for (const workers of [2, 3, 4]) sharded.set(workers, json((await analyzeCaptureSharded(path, cfg, { workers, inProcess: workers === 2 })).report));
    return { one, json: json(one), sharded };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}


test('bursts, capture, throughput, talkers, protocols, asymmetry: 2, 3 and 4 flow-sharded workers give one pipeline\'s report, with keys and events spread over workers', async () => {
  const recs = volumeRecords();
  const frames = recs.map((r) => r.data);
  assert.ok(workersOf(frames, 2).size === 2 && workersOf(frames, 4).size >= 3, 'the host pairs spread over the workers');
  const { one, json, sharded } = await volumeReports(recs, {
    flows: { timeouts: { udp: 1 } },
    analyzers: { throughput: { topFlows: 3 }, talkers: { top: 3 } },
  });
  // The capture exercises what the merge must get right.
  const w0 = one.windows[0]!;
  assert.ok(num(metrics(one, 'bursts'), 'bursts') > 0, 'bursts');
  assert.deepEqual([num(metrics(one, 'capture'), 'gaps'), num(metrics(one, 'capture'), 'backwards')], [2, 1]); // 0.48 s to 2 s, 2.5 s to 6 s
  assert.equal(w0.findingsSuppressed?.['one_way_flow'], 3);
  const top = rows(metrics(one, 'throughput'), 'topFlows');
  assert.deepEqual(top.map((f) => f['bytes']), [12 * 82, 12 * 82, 12 * 82], 'ties among the ended one-way flows');
  assert.deepEqual(top.map((f) => f['client']), ['10.0.8.1', '10.0.8.2', '10.0.8.3'], 'the first to join the window first');
  assert.ok(Object.keys(metrics(one, 'protocols')['services'] as Row).length >= 4);
  assert.deepEqual(rows(metrics(one, 'talkers', 1), 'topHosts').map((h) => h['host']), ['10.0.8.100', '10.0.8.1', '10.0.8.2']);
  for (const [workers, many] of sharded) assert.equal(many, json, `${workers} workers`);
});

test('talkers: past maxHosts, flow-sharded workers (none over maxHosts itself) track the hosts and pairs one pipeline tracks', async () => {
  // 12 senders to one receiver: one table over the whole input tracks the receiver and the first 9 senders.
  const recs = Array.from({ length: 12 }, (_, i) => at(i * 1000, udpFrame(`10.0.5.${i + 1}`, 5000, '10.0.5.100', 7000)));
  const perWorker = new Map<number, number>();
  for (const { data } of recs) {
    const w = shardOf(shardHash(data, 0, data.length, 1), 4);
    perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
  }
  assert.ok(perWorker.size >= 3 && Math.max(...perWorker.values()) + 1 <= 10, 'each of 4 workers sees at most 10 hosts');
  const { one, json, sharded } = await volumeReports(recs, { analyzers: { talkers: { maxHosts: 10, top: 3 } } });
  assert.equal(num(metrics(one, 'talkers'), 'untracked'), 3);
  assert.equal(sharded.get(4), json);
});

test('topIndices (top hosts, pairs, flows) equals a stable sort by value, largest first, then the first `top`', () => {
  let seed = 12345;
  const rnd = (k: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; return seed % k; };
  for (let round = 0; round < 300; round++) {
    const n = rnd(200);
    const values = Array.from({ length: n }, () => rnd(round % 3 === 0 ? 4 : 1000)); // many ties in every third round
    if (round % 7 === 0) values.sort((a, b) => a - b); // ascending: the worst order for insertion
    for (const top of [0, 1, 3, 10, 64, 65, 500]) {
      const expected = values.map((_, i) => i).sort((a, b) => values[b]! - values[a]!).slice(0, top);
      assert.deepEqual(topIndices(n, top, (i) => values[i]!), expected, `n ${n} top ${top}`);
    }
  }
});

// ---------------------------------------------------------------------------
// Shared captures

const MANIFEST = readTsv(readFileSync(join(SHARED_PCAPS, 'MANIFEST.tsv'), 'utf8'));
const reports = new Map<string, Promise<Report>>();
/** Each shared capture analyzed once with the defaults. */
function shared(file: string): Promise<Report> {
  let p = reports.get(file);
  if (!p) {
    p = analyzeCapture(join(SHARED_PCAPS, file), buildConfig(undefined)).then(({ report, warnings }) => {
      assert.ok(!warnings.some((w) => w.includes('internal error')), `${file}: ${warnings.join('; ')}`);
      return report;
    });
    reports.set(file, p);
  }
  return p;
}

test('shared captures: the analyzers run cleanly and their per-window figures add up to the capture\'s', async () => {
  for (const { file } of MANIFEST) {
    const r = await shared(file!);
    assert.equal(r.capture.decodeErrors['internal.error'], undefined, file);
    assert.equal(total(r, 'throughput', 'bytes'), r.capture.bytes, `${file}: throughput bytes`);
    assert.equal(total(r, 'bursts', 'packets'), r.capture.packets, `${file}: bursts packets`);
    const transportPackets = r.windows.reduce((s, w) => s + Object.values(w.metrics['protocols']!['transports'] as Record<string, { packets: number }>)
      .reduce((a, t) => a + t.packets, 0), 0);
    assert.equal(transportPackets, r.capture.packets, `${file}: protocols packets`);
    for (const w of r.windows) {
      const t = w.metrics['throughput']!;
      const c2s = (t['clientToServer'] as { bytes: number }).bytes;
      const s2c = (t['serverToClient'] as { bytes: number }).bytes;
      assert.equal(c2s + s2c + (t['nonFlowBytes'] as number), t['bytes'], `${file}: throughput directions`);
    }
  }
});

test('shared captures: timestamps go backwards only in the one MANIFEST marks as not time-ordered', async () => {
  for (const { file, time_ordered: ordered } of MANIFEST) {
    const r = await shared(file!);
    const back = total(r, 'capture', 'backwards');
    if (ordered === 'True') assert.equal(back, 0, file);
    else assert.ok(back > 0, file);
  }
  // pcpp_pcapng-example.pcapng: frame 2 is stamped 1,472,003,999.36 s ahead of frame 1 and frame 3 goes back by that much:
  // the one negative value of `tshark -T fields -e frame.time_delta` (tshark's `-Y "frame.time_delta < 0"` also lists
  // frame 60, whose delta of +1.8e13 s its fields output shows as positive).
  const r = await shared('pcpp_pcapng-example.pcapng');
  assert.equal(total(r, 'capture', 'backwards'), 1);
  const step = Math.max(...r.windows.map((w) => w.metrics['capture']!['largestStepBack'] as number));
  assert.ok(Math.abs(step - 1472003999.360380631) < 1e-3, String(step));
  assert.equal(findings(r, 'timestamps_backwards').length, 1);
  // Frame 2 was far ahead and not confirmed (no gap); frame 60's jump to year 586524 was confirmed by frame 61 (a gap).
  assert.equal(total(r, 'capture', 'farAhead') >= 1, true);
  assert.ok(Math.max(...r.windows.map((w) => w.metrics['capture']!['longestGap'] as number)) > 1.8e13);
});

test('talkers: hosts and pairs of ppa_http_espn_fail.pcapng equal tshark -z endpoints,ip / -z conv,ip', async () => {
  // tshark -r ppa_http_espn_fail.pcapng -q -z endpoints,ip: host, packets, bytes, tx packets, tx bytes, rx packets, rx bytes.
  const tsharkEndpoints: Array<[string, number, number, number, number, number, number]> = [
    ['172.16.16.154', 569, 357205, 311, 24090, 258, 333115],
    ['72.246.56.35', 247, 196620, 134, 188305, 113, 8315],
    ['72.21.91.8', 92, 70256, 49, 67086, 43, 3170],
    ['199.181.133.61', 61, 49245, 37, 47292, 24, 1953],
    ['72.246.56.83', 30, 20702, 15, 19184, 15, 1518],
    ['69.31.75.194', 19, 9949, 10, 8942, 9, 1007],
    ['203.0.113.94', 93, 6774, 0, 0, 93, 6774],
    ['68.71.212.158', 13, 2032, 6, 1200, 7, 832],
    ['4.2.2.1', 14, 1627, 7, 1106, 7, 521],
  ];
  // tshark -z conv,ip (frames; exact bytes from tshark -T fields -e ip.src -e ip.dst -e frame.len summed per pair).
  const tsharkConversations: Array<[string, number, number]> = [
    ['72.246.56.35', 247, 196620], ['72.21.91.8', 92, 70256], ['199.181.133.61', 61, 49245], ['72.246.56.83', 30, 20702],
    ['69.31.75.194', 19, 9949], ['203.0.113.94', 93, 6774], ['68.71.212.158', 13, 2032], ['4.2.2.1', 14, 1627],
  ];
  const file = join(SHARED_PCAPS, 'ppa_http_espn_fail.pcapng');
  // One window holding the whole 95 s capture: the top list is tshark's table, in its order (by bytes).
  const { report: one } = await analyzeCapture(file, buildConfig({ windows: { seconds: 86400 }, analyzers: { talkers: { top: 20 } } }));
  assert.equal(one.windows.length, 1);
  const m = metrics(one, 'talkers');
  assert.deepEqual(rows(m, 'topHosts').map((h) => [h['host'], h['packets'], h['bytes'], h['packetsSent'], h['bytesSent'], h['packetsReceived'], h['bytesReceived']]), tsharkEndpoints);
  assert.deepEqual(rows(m, 'topPairs').map((p) => [p['a'] === '172.16.16.154' ? p['b'] : p['a'], p['packets'], p['bytes']]), tsharkConversations);
  assert.equal(num(m, 'untracked'), 0);
  // In 10 s windows the per-window tables add up to the same totals.
  const { report: tens } = await analyzeCapture(file, buildConfig({ analyzers: { talkers: { top: 100 } } }));
  assert.ok(tens.windows.length > 1);
  const sums = new Map<string, number[]>();
  for (const w of tens.windows) {
    for (const h of w.metrics['talkers']!['topHosts'] as Row[]) {
      const s = sums.get(h['host'] as string) ?? [0, 0, 0, 0, 0, 0];
      ['packets', 'bytes', 'packetsSent', 'bytesSent', 'packetsReceived', 'bytesReceived'].forEach((k, i) => { s[i]! += h[k] as number; });
      sums.set(h['host'] as string, s);
    }
  }
  assert.deepEqual(Object.fromEntries(sums), Object.fromEntries(tsharkEndpoints.map(([h, ...n]) => [h, n])));
});

test('sack: SACK figures of shared captures equal tshark\'s', async () => {
  // tshark -Y tcp.options.sack_perm / tcp.options.sack_le / tcp.options.sack.dsack, frames counted.
  const expected: Record<string, [number, number, number]> = {
    'ndpi_1kxun.pcap': [57, 15, 15],
    'wssample_dect_new_rfp_on_wire.pcapng': [20, 1, 1],
    'ppa1e_evilprogram.pcap': [160, 0, 0],
    'ppa1e_email-troubles.pcap': [0, 31, 0],
    'ppa_tcp_dupack.pcapng': [0, 5, 0],
  };
  for (const [file, [perm, sack, dsack]] of Object.entries(expected)) {
    const r = await shared(file);
    assert.deepEqual([total(r, 'sack', 'sackPermitted'), total(r, 'sack', 'sackPackets'), total(r, 'sack', 'dsackPackets')], [perm, sack, dsack], file);
  }
});

test('protocols: services of ppa_http_espn_fail.pcapng equal tshark\'s port filters', async () => {
  // tshark -Y "tcp.port==80" | wc -l: 555; tshark -Y "udp.port==53" | wc -l: 14.
  const r = await shared('ppa_http_espn_fail.pcapng');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  const sum = (name: string): number => r.windows.reduce((s, w) => s + ((w.metrics['protocols']!['services'] as Record<string, { packets: number }>)[name]?.packets ?? 0), 0);
  assert.equal(sum('http'), 555);
  assert.equal(sum('dns'), 14);
});
