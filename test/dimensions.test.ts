/**
 * The dimensions analyzer: per-VLAN and per-interface sub-totals per window.
 * Frame counts per outer VLAN id (the first vlan.id tshark lists) and per
 * frame.interface_id, and retransmissions and DNS response times per value,
 * agree with tshark run live on the shared captures that have VLAN tags or
 * several interfaces (skipped where tshark is not installed); every window's
 * rows add up to the window and to the rtt and dns analyzers' counts; the
 * "other" row bounds the values kept; percentiles per VLAN on a crafted
 * capture.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/analyze/index.js';
import { buildConfig } from '../common/config.js';
import type { Report } from '../common/report.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { EtherTypes, PcapngBuilder, Proto, TcpFlags, dns, ethernet, ipv4, tcp, udp, type PcapRecordSpec, type VlanTag } from './helpers/capture-writer.js';
import { haveTshark } from './helpers/difftest.js';
import { SHARED_PCAPS } from './helpers/paths.js';

interface Summary { count: number; p50: number | null; p90: number | null; p99: number | null; max: number | null }
interface Row { packets: number; bytes: number; retransmissions: number; rtt: Summary; dnsTime: Summary; values?: number }
interface DimensionsMetrics { vlan: Record<string, Row>; interface: Record<string, Row>; vlanValuesOther: number; interfaceValuesOther: number }

const dims = (w: Report['windows'][number]): DimensionsMetrics => w.metrics['dimensions'] as unknown as DimensionsMetrics;

/** Sums one figure of each value's rows over the windows. */
function totals(r: Report, dimension: 'vlan' | 'interface', figure: (row: Row) => number): Map<string, number> {
  const out = new Map<string, number>();
  for (const w of r.windows) for (const [value, row] of Object.entries(dims(w)[dimension])) out.set(value, (out.get(value) ?? 0) + figure(row));
  return out;
}

/** tshark's count of frames by the first value of `field` (vlan.id lists the outer tag first); frames without it under `none`. */
function tsharkCounts(file: string, field: string, filter = '', none = ''): Map<string, number> {
  const args = ['-r', file.startsWith('/') ? file : join(SHARED_PCAPS, file), '-T', 'fields', '-e', field];
  if (filter) args.push('-Y', filter);
  const out = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(out.status, 0, out.stderr);
  const counts = new Map<string, number>();
  for (const line of out.stdout.split('\n').slice(0, -1)) {
    const value = line.split(',')[0]!.trim() || none;
    if (value) counts.set(value, (counts.get(value) ?? 0) + 1);
  }
  return counts;
}

const sorted = (m: Map<string, number>): Array<[string, number]> => [...m].filter(([, n]) => n > 0).sort((a, b) => (a[0] < b[0] ? -1 : 1));

const SHARED = ['zeek_vlan-pcp-dei.pcapng', 'zeek_vlan-qinqinq.pcap', 'zeek_pcapng-multi-interface.pcapng', 'pcpp_pcapng-example.pcapng'];

for (const file of SHARED) {
  test(`per-VLAN and per-interface figures agree with tshark: ${file}`, { skip: haveTshark() ? false : 'tshark not installed' }, async () => {
    const { report } = await analyzeCapture(join(SHARED_PCAPS, file), buildConfig(undefined));
    const vlanFrames = tsharkCounts(file, 'vlan.id', '', 'untagged');
    const tagged = sorted(vlanFrames).filter(([v]) => v !== 'untagged');
    // The report's counters: one per outer VLAN id, named after the display filter that counts it.
    const counters = Object.entries(report.counters).filter(([k]) => k.startsWith('vlan.id#1==')).map(([k, n]): [string, number] => [k.slice('vlan.id#1=='.length), n]);
    assert.deepEqual(counters.sort((a, b) => (a[0] < b[0] ? -1 : 1)), tagged);
    // A classic pcap has no frame.interface_id in tshark: its frames are interface 0 here.
    const interfaces = sorted(tsharkCounts(file, 'frame.interface_id', '', '0'));
    const interfaceCounters = Object.entries(report.counters).filter(([k]) => k.startsWith('frame.interface_id==')).map(([k, n]): [string, number] => [k.slice('frame.interface_id=='.length), n]);
    assert.deepEqual(interfaceCounters.sort((a, b) => (a[0] < b[0] ? -1 : 1)), interfaces.length > 1 ? interfaces : []);
    // The windows' rows, summed: the same frames (the VLAN rows are listed once a tagged frame was seen).
    if (tagged.length > 0) assert.deepEqual(sorted(totals(report, 'vlan', (row) => row.packets)), sorted(vlanFrames));
    assert.deepEqual(sorted(totals(report, 'interface', (row) => row.packets)), interfaces);
    // Frames tcp.analysis.retransmission matches, per outer VLAN and per interface.
    if (tagged.length > 0) assert.deepEqual(sorted(totals(report, 'vlan', (row) => row.retransmissions)), sorted(tsharkCounts(file, 'vlan.id', 'tcp.analysis.retransmission', 'untagged')));
    assert.deepEqual(sorted(totals(report, 'interface', (row) => row.retransmissions)), sorted(tsharkCounts(file, 'frame.interface_id', 'tcp.analysis.retransmission', '0')));
    // dns.time per interface: the dns analyzer's matches (mDNS and LLMNR included, as its dns.time is).
    assert.deepEqual(sorted(totals(report, 'interface', (row) => row.dnsTime.count)), sorted(tsharkCounts(file, 'frame.interface_id', 'dns.time', '0')));
  });
}

test('a pcapng of two sections: interface ids are the section\'s, as tshark 4.0 gives them', { skip: haveTshark() ? false : 'tshark not installed' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimensions-'));
  try {
    const path = join(dir, 'two-sections.pcapng');
    const frame = (): Buffer => ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4, ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: Proto.UDP, payload: udp({ srcPort: 1, dstPort: 2 }) }));
    const b = new PcapngBuilder().section().interface({ linkType: 1 }).interface({ linkType: 1 })
      .epb(0, { ts: 1_700_000_000_000_000n, data: frame() }).epb(1, { ts: 1_700_000_000_000_001n, data: frame() })
      .section().interface({ linkType: 1 }).epb(0, { ts: 1_700_000_000_000_002n, data: frame() }).epb(0, { ts: 1_700_000_000_000_003n, data: frame() });
    writeFileSync(path, b.build());
    const { report } = await analyzeCapture(path, buildConfig(undefined));
    const expected = sorted(tsharkCounts(path, 'frame.interface_id'));
    assert.deepEqual(expected, [['0', 3], ['1', 1]]);
    assert.deepEqual(sorted(totals(report, 'interface', (row) => row.packets)), expected);
    assert.equal(report.counters['frame.interface_id==0'], 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every window\'s rows add up to the window, and to the rtt and dns analyzers\' sample counts', async () => {
  for (const file of [...SHARED, 'ppa_tcp_retransmissions.pcapng', 'wssample_dns.cap']) {
    const { report } = await analyzeCapture(join(SHARED_PCAPS, file), buildConfig(undefined));
    for (const w of report.windows) {
      const d = dims(w);
      const sum = (rows: Record<string, Row>, f: (row: Row) => number): number => Object.values(rows).reduce((a, row) => a + f(row), 0);
      assert.equal(sum(d.interface, (row) => row.packets), w.packets, file);
      assert.equal(sum(d.interface, (row) => row.bytes), w.bytes, file);
      if (Object.keys(d.vlan).length > 0) assert.equal(sum(d.vlan, (row) => row.bytes), w.bytes, file);
      assert.equal(sum(d.interface, (row) => row.rtt.count), (w.metrics['rtt'] as { count: number }).count, file);
      assert.equal(sum(d.interface, (row) => row.dnsTime.count), (w.metrics['dns'] as { count: number }).count, file);
    }
  }
});

const T0 = 1_700_000_000;
const at = (seconds: number): { tsSec: number; tsSub: number } => {
  const us = Math.round(seconds * 1e6);
  return { tsSec: T0 + Math.floor(us / 1e6), tsSub: us % 1e6 };
};
const MAC_A = '02:00:00:00:00:01';
const MAC_B = '02:00:00:00:00:02';
const tagged = (vid: number | null): VlanTag[] => (vid === null ? [] : [{ tpid: EtherTypes.VLAN, vid }]);

function udpFrame(t: number, vid: number | null, src: string, dst: string, sport: number, dport: number, payload: Uint8Array): PcapRecordSpec {
  return { ...at(t), data: ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.UDP, payload: udp({ srcPort: sport, dstPort: dport, payload }) }), tagged(vid)) };
}

function tcpFrame(t: number, vid: number | null, fromClient: boolean, seq: number, ack: number, flags: number, len = 0): PcapRecordSpec {
  const [src, dst, sport, dport] = fromClient ? ['10.0.0.1', '10.0.0.2', 40000, 80] : ['10.0.0.2', '10.0.0.1', 80, 40000];
  const segment = tcp({ srcPort: sport, dstPort: dport, seq, ack, flags, payload: new Uint8Array(len) });
  return { ...at(t), data: ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.TCP, payload: segment }), tagged(vid)) };
}

/** DNS transactions on a VLAN, one per response time, each from its own client port. */
function dnsTransactions(start: number, vid: number | null, times: readonly number[], port0: number): PcapRecordSpec[] {
  return times.flatMap((time, i) => {
    const t = start + i * 0.5;
    const port = port0 + i;
    return [
      udpFrame(t, vid, '10.0.0.1', '10.0.0.53', port, 53, dns({ id: port, qname: 'example.com' })),
      udpFrame(t + time, vid, '10.0.0.53', '10.0.0.1', 53, port, dns({ id: port, qname: 'example.com', response: true, answers: 1 })),
    ];
  });
}

test('percentiles per VLAN: dns.time and ACK RTT land in the VLAN of the response and of the ACK', async () => {
  const { ACK, SYN, PSH } = TcpFlags;
  const records = [
    ...dnsTransactions(0, 100, [0.010, 0.020, 0.030, 0.040, 0.050], 5000),
    ...dnsTransactions(0.1, 200, [0.1, 0.2, 0.3, 0.4], 6000),
    // A handshake and one data segment on VLAN 300: RTTs 5 ms (SYN/ACK), 7 ms (ACK), 30 ms (data ACK).
    tcpFrame(4.000, 300, true, 1000, 0, SYN),
    tcpFrame(4.005, 300, false, 5000, 1001, SYN | ACK),
    tcpFrame(4.012, 300, true, 1001, 5001, ACK),
    tcpFrame(4.020, 300, true, 1001, 5001, ACK | PSH, 100),
    tcpFrame(4.050, 300, false, 5001, 1101, ACK),
    // The same segment again: a retransmission (no RTT sample from it, by Karn's rule), then untagged traffic.
    tcpFrame(4.300, 300, true, 1001, 5001, ACK | PSH, 100),
    udpFrame(5, null, '10.0.0.9', '10.0.0.10', 1234, 5678, new Uint8Array(10)),
  ];
  const report = await analyzeCrafted(records, {}, 'dimensions-percentiles');
  assert.equal(report.windows.length, 1);
  const d = dims(report.windows[0]!);
  assert.deepEqual(Object.keys(d.vlan), ['100', '200', '300', 'untagged']);
  assert.deepEqual(d.vlan['100']!.dnsTime, { count: 5, p50: 0.03, p90: 0.05, p99: 0.05, max: 0.05 });
  // An even count: the median is the mean of the two middle samples, as the dns analyzer's.
  assert.deepEqual(d.vlan['200']!.dnsTime, { count: 4, p50: 0.25, p90: 0.4, p99: 0.4, max: 0.4 });
  assert.deepEqual(d.vlan['300']!.rtt, { count: 3, p50: 0.007, p90: 0.03, p99: 0.03, max: 0.03 });
  assert.equal(d.vlan['300']!.retransmissions, 1);
  assert.equal(d.vlan['300']!.packets, 6);
  assert.equal(d.vlan['100']!.rtt.count, 0);
  assert.equal(d.vlan['untagged']!.packets, 1);
  assert.deepEqual(Object.keys(d.interface), ['0']);
  assert.equal(d.interface['0']!.dnsTime.count, 9);
  assert.equal(d.interface['0']!.packets, records.length);
  assert.equal(report.counters['vlan.id#1==100'], 10);
  assert.equal(report.counters['vlan.id#1==300'], 6);
  assert.equal(report.counters['frame.interface_id==0'], undefined, 'one interface: no per-interface counters');
});

test('at most maxValues values per window; the rest share the "other" row, counted, while the report\'s counters stay exact', async () => {
  const records: PcapRecordSpec[] = [];
  // VLANs 1..10 with 1..10 frames each (VLAN v first seen at v/100 s), then untagged frames.
  for (let v = 1; v <= 10; v++) for (let i = 0; i < v; i++) records.push(udpFrame(v / 100 + i / 1000, v, '10.0.0.1', '10.0.0.2', 1000, 2000, new Uint8Array(v)));
  records.push(udpFrame(1, null, '10.0.0.1', '10.0.0.2', 1000, 2000, new Uint8Array(1)));
  // A second window: the rows start afresh.
  records.push(udpFrame(12, 9, '10.0.0.1', '10.0.0.2', 1000, 2000, new Uint8Array(1)));
  const report = await analyzeCrafted(records, { analyzers: { dimensions: { maxValues: 3 } } }, 'dimensions-other');
  assert.equal(report.windows.length, 2);
  const first = dims(report.windows[0]!);
  assert.deepEqual(Object.keys(first.vlan), ['1', '2', '3', 'other']);
  assert.equal(first.vlan['3']!.packets, 3);
  const other = first.vlan['other']!;
  // VLANs 4..10 and untagged: 8 values, 49 + 1 frames.
  assert.equal(other.values, 8);
  assert.equal(first.vlanValuesOther, 8);
  assert.equal(other.packets, 50);
  assert.equal(Object.values(first.vlan).reduce((a, row) => a + row.packets, 0), report.windows[0]!.packets);
  assert.equal(first.interfaceValuesOther, 0);
  const second = dims(report.windows[1]!);
  assert.deepEqual(Object.keys(second.vlan), ['9']);
  assert.equal(second.vlanValuesOther, 0);
  for (let v = 1; v <= 10; v++) assert.equal(report.counters[`vlan.id#1==${v}`], v + (v === 9 ? 1 : 0));
});

test('analyzers.dimensions.maxValues is a whole number from 1 to 1024', () => {
  assert.throws(() => buildConfig({ analyzers: { dimensions: { maxValues: 0 } } }), /analyzers\.dimensions\.maxValues/);
  assert.throws(() => buildConfig({ analyzers: { dimensions: { maxValues: 1025 } } }), /analyzers\.dimensions\.maxValues/);
  assert.throws(() => buildConfig({ analyzers: { dimensions: { maxValues: 2.5 } } }), /analyzers\.dimensions\.maxValues.*whole/);
  assert.equal(buildConfig({ analyzers: { dimensions: { maxValues: 1024 } } }).analyzers.dimensions.maxValues, 1024);
});

test('switched off, no dimensions metrics and no per-VLAN counters', async () => {
  const { report } = await analyzeCapture(join(SHARED_PCAPS, 'zeek_vlan-qinqinq.pcap'), buildConfig({ analyzers: { dimensions: { enabled: false } } }));
  assert.equal(report.windows[0]!.metrics['dimensions'], undefined);
  assert.equal(Object.keys(report.counters).some((k) => k.startsWith('vlan.id#')), false);
});
