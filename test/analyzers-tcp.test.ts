/**
 * The TCP analyzers after `tcp`: handshake, rtt, tcp_window, resets. Crafted
 * captures pin the edge cases (threshold boundaries, SYN retries with the same
 * ISN vs port reuse with a new one, Karn's rule, zero windows across windows
 * and still open at the end, zombies); the shared captures pin real figures,
 * checked against tshark 4.0.17 (frame.time_relative, tcp.analysis.ack_rtt,
 * tcp.analysis.initial_rtt, tcp.window_size on the same files).
 *
 * Crafted captures start at an epoch second that is a multiple of 10^6 (the
 * decoder's time base), so a packet at `t` has packet time exactly t: a delay
 * measured from t = 0, or between dyadic times (x.125), is exact and can sit
 * right on a threshold.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/analyze/index.js';
import { analyzeCaptureSharded } from '../agent/analyze/analyze-sharded.js';
import { shardHash, shardOf } from '../agent/decode/shard-hash.js';
import { hashWords } from '../agent/analyzers/lib/key-table.js';
import { isoTime } from '../common/address.js';
import { buildConfig } from '../common/config.js';
import { reportJsonChunks, type Finding, type Report } from '../common/report.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { TcpFlags, ethernet, ipv4, pcapFile, tcp, type PcapRecordSpec, type TcpOption } from './helpers/capture-writer.js';

const { SYN, ACK, FIN, RST, PSH } = TcpFlags;
const C = 0;
const S = 1;
/** Epoch second of t = 0 in crafted captures: a multiple of 10^6 and of the window length. */
const BASE = 1_700_000_000;

const dir = mkdtempSync(join(tmpdir(), 'analyzers-tcp-'));
after(() => { if (!process.env['KEEP_TEST_CAPTURES']) rmSync(dir, { recursive: true, force: true }); });

// ---------------------------------------------------------------------------
// Crafted captures

class Capture {
  readonly records: Array<{ t: number; data: Buffer }> = [];

  conn(client: string, clientPort: number, server: string, serverPort: number, isn: readonly [number, number] = [1000, 5000]): Conn {
    return new Conn(this, [client, server], [clientPort, serverPort], isn);
  }

  /** Writes a classic pcap (microseconds), packets in time order. */
  write(name: string): string {
    const records: PcapRecordSpec[] = [...this.records].sort((a, b) => a.t - b.t).map(({ t, data }) => {
      const us = Math.round(t * 1e6);
      return { tsSec: BASE + Math.floor(us / 1e6), tsSub: us % 1e6, data };
    });
    const path = join(dir, name);
    writeFileSync(path, pcapFile({}, records));
    return path;
  }
}

interface SendOptions {
  len?: number;
  win?: number;
  /** A sequence number other than the next one (a retransmission): does not advance the side. */
  seq?: number;
  options?: readonly TcpOption[];
}

/** One TCP connection; each side's next sequence number follows what it sent. */
class Conn {
  readonly next: [number, number];

  constructor(private readonly cap: Capture, private readonly addr: [string, string], private readonly port: [number, number], private readonly isn: readonly [number, number]) {
    this.next = [isn[0], isn[1]];
  }

  send(side: number, t: number, flags: number, o: SendOptions = {}): this {
    const len = o.len ?? 0;
    const seq = flags & SYN ? this.isn[side]! : o.seq ?? this.next[side]!;
    const ack = flags & ACK ? this.next[side ^ 1]! : 0;
    const segment = tcp({
      srcPort: this.port[side]!, dstPort: this.port[side ^ 1]!, seq, ack, flags, window: o.win ?? 65535,
      options: o.options ?? [], payload: Buffer.alloc(len, 0x61),
    });
    const packet = ipv4({ src: this.addr[side]!, dst: this.addr[side ^ 1]!, proto: 6, payload: segment });
    this.cap.records.push({ t, data: ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', 0x0800, packet) });
    if (flags & SYN) this.next[side] = (seq + 1) >>> 0;
    else if (o.seq === undefined) this.next[side] = (seq + len + (flags & FIN ? 1 : 0)) >>> 0;
    return this;
  }

  /** SYN at t, SYN/ACK at t + a, ACK at t + a + b. */
  handshake(t: number, a: number, b: number): this {
    return this.send(C, t, SYN).send(S, t + a, SYN | ACK).send(C, t + a + b, ACK);
  }
}

// ---------------------------------------------------------------------------
// Report access

type Json = Record<string, unknown>;

/** Analyzes with every finding listed unless `config` says otherwise (report.maxFindingsPerType). */
async function analyze(path: string, config: Record<string, unknown> = {}): Promise<Report> {
  const { report, warnings } = await analyzeCapture(path, buildConfig({ report: { maxFindingsPerType: 1000 }, ...config }));
  assert.deepEqual(warnings, []);
  return report;
}

const TCP_ANALYZERS = ['tcp', 'handshake', 'rtt', 'tcp_window', 'resets', 'sack'];

/**
 * Flow-sharded worker threads (2, 3 and 4) give the report of one
 * pipeline, byte for byte, with the TCP analyzers enabled (the others cannot
 * run sharded yet): returns that report.
 */
async function assertShardedSame(path: string, config: Record<string, unknown> = {}): Promise<Report> {
  const json = (r: Report): string => [...reportJsonChunks(r)].join('');
  const analyzers = Object.fromEntries(Object.keys(buildConfig({}).analyzers).map((id) => [id, { enabled: TCP_ANALYZERS.includes(id) }]));
  const cfg = buildConfig({ analyzers, report: { maxFindingsPerType: 1000 }, ...config });
  const one = await analyzeCapture(path, cfg);
  for (const workers of [2, 3, 4]) {
    const many = await analyzeCaptureSharded(path, cfg, { workers });
    assert.equal(json(many.report), json(one.report), `${workers} workers`);
  }
  return one.report;
}

/** Workers (of 4) the capture's packets go to. */
function workersOf(cap: Capture): Set<number> {
  return new Set(cap.records.map(({ data }) => shardOf(shardHash(data, 0, data.length, 1), 4)));
}

/** Metrics of one analyzer in the window starting at `start` (epoch seconds); fails if there is no such window. */
function windowAt(r: Report, start: number, id: string): Json {
  const iso = isoTime(start);
  const w = r.windows.find((x) => x.start === iso);
  assert.ok(w, `no window starting ${iso} (have ${r.windows.map((x) => x.start).join(', ')})`);
  return w.metrics[id]!;
}
/** Crafted captures: the window of packet time [10k, 10k + 10). */
const win = (r: Report, k: number, id: string): Json => windowAt(r, BASE + 10 * k, id);
/** Shared captures: metrics of the one window there is. */
function only(r: Report, id: string): Json {
  assert.equal(r.windows.length, 1);
  return r.windows[0]!.metrics[id]!;
}

/** A value at a dotted path. */
function at(value: unknown, path: string): unknown {
  let v = value;
  for (const key of path.split('.')) {
    assert.ok(typeof v === 'object' && v !== null, `${path}: no ${key}`);
    v = (v as Json)[key];
  }
  return v;
}

const findings = (r: Report, type: string): Finding[] => r.findings.filter((f) => f.type === type);
const inWindow = (f: Finding, k: number): boolean => f.window.start === isoTime(BASE + 10 * k);
const byClientPort = (list: Finding[], port: number): Finding[] => list.filter((f) => f.flow?.clientPort === port);
const pcap = (name: string): string => join(SHARED_PCAPS, name);

// ---------------------------------------------------------------------------
// handshake

/** One handshake, by default from t = 0 (delays exact). */
async function oneHandshake(name: string, synAckAt: number, ackAt: number, synAt = 0): Promise<Report> {
  const cap = new Capture();
  cap.conn('10.0.0.1', 40000, '10.0.0.2', 80).send(C, synAt, SYN).send(S, synAckAt, SYN | ACK).send(C, ackAt, ACK);
  return analyze(cap.write(name));
}

test('handshake: SYN->SYN/ACK threshold (0.1 s) just below, at and above', async () => {
  const below = await oneHandshake('hs-synack-below.pcap', 0.099999, 0.1);
  const equal = await oneHandshake('hs-synack-equal.pcap', 0.1, 0.1001);
  const above = await oneHandshake('hs-synack-above.pcap', 0.100001, 0.1002);
  // 7.4 - 7.3 is 0.10000000000000053 in doubles: delays are compared at nanosecond resolution, so this is "at" too.
  const equalOffZero = await oneHandshake('hs-synack-equal-7.3.pcap', 7.4, 7.45, 7.3);
  for (const r of [below, equal, above, equalOffZero]) assert.equal(at(win(r, 0, 'handshake'), 'completed'), 1);
  assert.equal(at(win(below, 0, 'handshake'), 'slow'), 0);
  assert.equal(at(win(equalOffZero, 0, 'handshake'), 'slow'), 0);
  assert.equal(at(win(equalOffZero, 0, 'handshake'), 'synToSynAck.max'), 0.1);
  assert.equal(at(win(equal, 0, 'handshake'), 'slow'), 0);
  assert.equal(at(win(equal, 0, 'handshake'), 'synToSynAck.p50'), 0.1);
  assert.equal(findings(equal, 'slow_handshake').length, 0);
  const m = win(above, 0, 'handshake');
  assert.equal(at(m, 'slow'), 1);
  assert.equal(at(m, 'slowServer'), 1);
  const [f, ...rest] = findings(above, 'slow_handshake');
  assert.equal(rest.length, 0);
  assert.equal(f!.evidence['slowSide'], 'server');
  assert.equal(f!.evidence['serverSlow'], true);
  assert.equal(f!.evidence['synToSynAckSeconds'], 0.100001);
  assert.equal(f!.evidence['synAckToAckSeconds'], 0.000199);
  assert.equal(f!.evidence['totalSeconds'], 0.1002);
  assert.deepEqual(f!.flow, { proto: 'tcp', client: '10.0.0.1', clientPort: 40000, server: '10.0.0.2', serverPort: 80, service: 'http' });
});

test('handshake: total threshold (0.3 s) just below, at and above; a slow ACK blames the client side', async () => {
  const below = await oneHandshake('hs-total-below.pcap', 0.01, 0.299999);
  const equal = await oneHandshake('hs-total-equal.pcap', 0.01, 0.3);
  const above = await oneHandshake('hs-total-above.pcap', 0.01, 0.300001);
  assert.equal(at(win(below, 0, 'handshake'), 'slow'), 0);
  assert.equal(at(win(equal, 0, 'handshake'), 'slow'), 0);
  assert.equal(at(win(equal, 0, 'handshake'), 'total.max'), 0.3);
  assert.equal(at(win(above, 0, 'handshake'), 'slow'), 1);
  assert.equal(at(win(above, 0, 'handshake'), 'slowClient'), 1);
  const [f] = findings(above, 'slow_handshake');
  assert.equal(f!.evidence['slowSide'], 'client_or_network');
  assert.equal(f!.evidence['serverSlow'], false);
  assert.equal(f!.evidence['synAckToAckSeconds'], 0.290001);
});

test('handshake: SYN retries with the same ISN are retransmissions; a new ISN on the same ports is a new flow', async () => {
  const cap = new Capture();
  // Same ISN three times: two retries, 1 s then 2 s apart; the delays count from the last SYN.
  cap.conn('10.0.0.1', 40000, '10.0.0.2', 80).send(C, 0, SYN).send(C, 1, SYN).send(C, 3, SYN).send(S, 3.05, SYN | ACK).send(C, 3.1, ACK);
  // Port reuse: a SYN with a new ISN ends the unanswered first flow and starts a second one.
  cap.conn('10.0.0.1', 40001, '10.0.0.2', 80, [5000, 7000]).send(C, 0.5, SYN);
  cap.conn('10.0.0.1', 40001, '10.0.0.2', 80, [9000, 7000]).send(C, 1.5, SYN).send(S, 1.55, SYN | ACK).send(C, 1.6, ACK);
  // The warning boundary of analyzers.handshake.synRetransmission (2 s from the first SYN to the last retry): at it, and below it.
  cap.conn('10.0.0.1', 40002, '10.0.0.2', 80).send(C, 4, SYN).send(C, 6, SYN).send(S, 6.01, SYN | ACK).send(C, 6.02, ACK);
  cap.conn('10.0.0.1', 40003, '10.0.0.2', 80).send(C, 4.5, SYN).send(C, 6.499999, SYN).send(S, 6.51, SYN | ACK).send(C, 6.52, ACK);
  const r = await analyze(cap.write('hs-retries.pcap'));

  // tshark on this file: 5 streams; frames 3, 7 (40000), 12 (40002) and 15 (40003) are retransmissions, the new-ISN SYN (frame 4)
  // starts stream 2 ("a new tcp session is started with the same ports").
  assert.equal(r.counters['tcp.streams'], 5);
  assert.equal(r.counters['tcp.analysis.retransmission'], 4);
  const m = win(r, 0, 'handshake');
  assert.equal(at(m, 'started'), 5);
  assert.equal(at(m, 'completed'), 4);
  assert.equal(at(m, 'synRetransmissions'), 4);
  assert.equal(at(m, 'failed.noAnswer'), 1);
  assert.equal(at(m, 'failed.refused'), 0);

  const retries = findings(r, 'syn_retransmission');
  assert.equal(retries.length, 3);
  const [a] = byClientPort(retries, 40000);
  assert.equal(a!.severity, 'warning');
  assert.equal(a!.evidence['retransmissions'], 2);
  assert.equal(a!.evidence['intervals'], '1,2');
  assert.equal(a!.evidence['firstToLastSynSeconds'], 3);
  assert.equal(a!.evidence['outcome'], 'completed');
  assert.equal(byClientPort(retries, 40001).length, 0, 'port reuse with a new ISN is not a retry');
  assert.equal(byClientPort(retries, 40002)[0]!.severity, 'warning', '2 s exactly is "after this long"');
  assert.equal(byClientPort(retries, 40003)[0]!.severity, 'info');

  // The first 40001 flow failed when the new ISN replaced it.
  const [failed, ...more] = findings(r, 'failed_handshake');
  assert.equal(more.length, 0);
  assert.equal(failed!.flow?.clientPort, 40001);
  assert.equal(failed!.evidence['reason'], 'no_answer');
  assert.equal(failed!.evidence['stillOpen'], false);
  assert.equal(failed!.evidence['syns'], 1);

  // Delays count from the last SYN (like tcp.analysis.initial_rtt): 40000's total is 0.1 s, not 3.1 s, so nothing is slow.
  assert.equal(at(m, 'slow'), 0);
  assert.equal(at(m, 'total.max'), 0.1);
});

test('handshake: an unanswered SYN fails when its flow times out, in the window of the expiry', async () => {
  const cap = new Capture();
  cap.conn('10.0.0.1', 40000, '10.0.0.2', 80).send(C, 0, SYN).send(C, 1, SYN);
  // Another flow's packet 70 s later moves packet time past flows.timeouts.tcpHandshake (60 s).
  cap.conn('10.0.0.3', 40000, '10.0.0.4', 443).handshake(70, 0.01, 0.01);
  const r = await analyze(cap.write('hs-expiry.pcap'));
  assert.equal(at(win(r, 0, 'handshake'), 'failed.noAnswer'), 0);
  assert.equal(at(win(r, 7, 'handshake'), 'failed.noAnswer'), 1);
  const [f] = findings(r, 'failed_handshake');
  assert.ok(inWindow(f!, 7));
  assert.equal(f!.evidence['stillOpen'], false);
  assert.equal(f!.evidence['waitedSeconds'], 1);
  const [s] = findings(r, 'syn_retransmission');
  assert.equal(s!.evidence['outcome'], 'no_answer');
  assert.equal(s!.severity, 'info');
});

test('handshake: ppa_tcp_handshake.pcapng (132.627 ms to the SYN/ACK: a slow server)', async () => {
  const r = await analyze(pcap('ppa_tcp_handshake.pcapng'));
  const m = only(r, 'handshake');
  assert.equal(at(m, 'completed'), 1);
  // tshark: SYN/ACK at 0.132627, ACK at 0.132768 (tcp.analysis.initial_rtt 0.132768).
  assert.equal(at(m, 'synToSynAck.p50'), 0.132627);
  assert.equal(at(m, 'synAckToAck.p50'), 0.000141);
  assert.equal(at(m, 'total.p50'), 0.132768);
  assert.equal(at(m, 'slow'), 1);
  const [f] = findings(r, 'slow_handshake');
  assert.equal(f!.evidence['slowSide'], 'server');
  assert.equal(f!.flow?.server, '212.58.226.142');
});

test('handshake: ppa_latency1.pcapng (about 30 ms, not slow)', async () => {
  const m = only(await analyze(pcap('ppa_latency1.pcapng')), 'handshake');
  assert.equal(at(m, 'completed'), 1);
  assert.equal(at(m, 'synToSynAck.p50'), 0.030107);
  assert.equal(at(m, 'total.p50'), 0.030182);
  assert.equal(at(m, 'slow'), 0);
});

test('handshake: ppa_nowebaccess3.pcapng (a SYN retried twice, never answered)', async () => {
  const r = await analyze(pcap('ppa_nowebaccess3.pcapng'));
  const m = only(r, 'handshake');
  assert.equal(at(m, 'started'), 1);
  assert.equal(at(m, 'completed'), 0);
  assert.equal(at(m, 'synRetransmissions'), 2);
  assert.equal(at(m, 'failed.noAnswer'), 1);
  const [s] = findings(r, 'syn_retransmission');
  // tshark: SYNs at 0.014421, 0.019417, 1.016531.
  assert.equal(s!.evidence['retransmissions'], 2);
  assert.equal(s!.evidence['intervals'], '0.004996,0.997114');
  assert.equal(s!.evidence['firstToLastSynSeconds'], 1.00211);
  const [f] = findings(r, 'failed_handshake');
  assert.equal(f!.evidence['reason'], 'no_answer');
  assert.equal(f!.evidence['stillOpen'], true);
  assert.equal(f!.evidence['syns'], 3);
  assert.equal(f!.flow?.server, '74.125.95.105');
});

test('handshake: ppa_tcp_refuseconnection.pcapng (SYN answered by RST)', async () => {
  const r = await analyze(pcap('ppa_tcp_refuseconnection.pcapng'));
  assert.equal(at(only(r, 'handshake'), 'failed.refused'), 1);
  const [f] = findings(r, 'failed_handshake');
  assert.equal(f!.evidence['reason'], 'refused');
  assert.equal(f!.evidence['waitedSeconds'], 0.001316);
});

test('handshake: zeek_vlan-pcp-dei.pcapng (three identical SYNs and SYN/ACKs at once)', async () => {
  const r = await analyze(pcap('zeek_vlan-pcp-dei.pcapng'));
  const m = only(r, 'handshake');
  assert.equal(at(m, 'completed'), 1);
  assert.equal(at(m, 'synRetransmissions'), 2);
  // tshark: the first SYN/ACK at 0.000204, the first ACK at 0.000336.
  assert.equal(at(m, 'synToSynAck.p50'), 0.000204);
  assert.equal(at(m, 'total.p50'), 0.000336);
  const [s] = findings(r, 'syn_retransmission');
  assert.equal(s!.evidence['intervals'], '0,0');
  assert.equal(s!.severity, 'info');
  // Karn's rule: tshark shows ack_rtt 0.000204 and 0.000132, but each acks a segment sent three times.
  assert.equal(r.stats?.['tcp.analysis.ack_rtt']?.count, 2);
  assert.equal(at(only(r, 'rtt'), 'count'), 0);
});

test('handshake: ppa_http_espn_fail.pcapng (7 handshakes, 9 never answered, 84 SYN retries)', async () => {
  const r = await analyze(pcap('ppa_http_espn_fail.pcapng'));
  const sum = (path: string): number => r.windows.reduce((n, w) => n + (at(w.metrics['handshake'], path) as number), 0);
  assert.equal(sum('started'), 16);
  assert.equal(sum('completed'), 7);
  // 6 connections retry 10 times, 3 retry 8 times (tshark: 84 SYNs flagged retransmission).
  assert.equal(sum('synRetransmissions'), 84);
  assert.equal(sum('failed.noAnswer'), 9);
  // tshark's tcp.analysis.initial_rtt of the 7 streams: p50 0.037731, max 0.077604.
  const first = r.windows[0]!.metrics['handshake']!;
  assert.equal(at(first, 'total.count'), 7);
  assert.equal(at(first, 'total.p50'), 0.037731);
  assert.equal(at(first, 'total.max'), 0.077604);
  const failed = findings(r, 'failed_handshake');
  assert.equal(failed.length, 9);
  assert.ok(failed.every((f) => f.evidence['stillOpen'] === true && f.flow?.server === '203.0.113.94'));
  const retries = findings(r, 'syn_retransmission');
  assert.deepEqual(retries.map((f) => Number(f.evidence['retransmissions'])).sort((a, b) => a - b), [8, 8, 8, 10, 10, 10, 10, 10, 10]);
  assert.ok(retries.every((f) => f.severity === 'warning'));
});

test('handshake, resets: ppa_synscan.pcapng (1,994 probes: 1,986 unanswered, 5 refused, 3 SYN/ACKed never ACKed)', async () => {
  const r = await analyze(pcap('ppa_synscan.pcapng'), { report: { maxFindingsPerType: 5 } });
  const sum = (id: string, path: string): number => r.windows.reduce((n, w) => n + (at(w.metrics[id], path) as number), 0);
  // tshark: 1,994 streams; 5 are SYN + RST/ACK; 3 get 4 SYN/ACKs each (3 flagged retransmission); no SYN is retransmitted.
  assert.equal(r.counters['tcp.streams'], 1994);
  assert.equal(sum('handshake', 'started'), 1994);
  assert.equal(sum('handshake', 'completed'), 0);
  assert.equal(sum('handshake', 'failed.noAnswer'), 1986);
  assert.equal(sum('handshake', 'failed.refused'), 5);
  assert.equal(sum('handshake', 'incomplete'), 3);
  assert.equal(sum('handshake', 'synRetransmissions'), 0);
  assert.equal(sum('resets', 'byPhase.refused'), 5);
  // Every failure is reported; the window engine lists 5 and counts the rest.
  const last = r.windows[r.windows.length - 1]!;
  assert.equal(last.findingsSuppressed?.['failed_handshake'], 1981);
  // The first window's refusals: port 113 twice (listed first), 25 and 31337 once.
  const refused = findings(r, 'connection_refused').filter((f) => f.window.start === r.windows[0]!.start);
  assert.deepEqual(refused.map((f) => [f.evidence['serverPort'], f.evidence['refused']]), [[113, 2], [25, 1], [31337, 1]]);
  assert.deepEqual(at(r.windows[0]!.metrics['resets'], 'refusedServers'), { '64.13.134.52:113': 2, '64.13.134.52:25': 1, '64.13.134.52:31337': 1 });
});

// ---------------------------------------------------------------------------
// rtt

test('rtt: Karn\'s rule, sides, per-flow p90 and max against the thresholds, top flows', async () => {
  const cap = new Capture();
  // Window 0: SYN/ACK after 0.2 s (server side), ACK after 0.1 ms (client side); a segment sent
  // twice gives no sample (tshark: ack_rtt 1.05 on its ACK); the next one 0.3 s.
  const k = cap.conn('10.0.2.100', 43000, '10.0.2.1', 80).handshake(0, 0.2, 0.0001);
  const seq = k.next[C];
  k.send(C, 1, ACK | PSH, { len: 100 }).send(C, 2, ACK | PSH, { len: 100, seq }).send(S, 2.05, ACK);
  k.send(C, 3, ACK | PSH, { len: 100 }).send(S, 3.3, ACK);

  // Window 1: 11 samples each (2 from the handshake), so p90 is over a threshold only with 2 samples over it.
  const flow = (port: number, rtts: number[]): void => {
    const c = cap.conn('10.0.2.100', port, '10.0.2.2', 80).handshake(10, 0.001, 0.001);
    rtts.forEach((rtt, i) => { c.send(C, 11 + i * 0.7, ACK | PSH, { len: 10 }).send(S, 11 + i * 0.7 + rtt, ACK); });
  };
  flow(43001, [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.6]); // max > critical, p90 fine: warning
  flow(43002, [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.6, 0.6]); // p90 > critical: critical
  flow(43003, [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.15]); // max > warning only: info
  flow(43004, [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01]); // fine

  // Window 2: one sample exactly at the warning threshold (0.125, exact), one just over.
  cap.conn('10.0.2.100', 43005, '10.0.2.3', 80).handshake(20, 0.001, 0.001).send(C, 21, ACK | PSH, { len: 10 }).send(S, 21.125, ACK);
  cap.conn('10.0.2.100', 43006, '10.0.2.3', 80).handshake(22, 0.001, 0.001).send(C, 23, ACK | PSH, { len: 10 }).send(S, 23.125001, ACK);

  // Window 3: 12 flows with a critical RTT; 10 are reported, the highest.
  for (let i = 0; i < 12; i++) cap.conn('10.0.2.100', 43100 + i, '10.0.2.4', 80).handshake(30 + i * 0.1, 0.6 + i * 0.01, 0.0001);

  const path = cap.write('rtt.pcap');
  const r = await analyze(path, { analyzers: { rtt: { warning: 0.125, critical: 0.5 } } });
  const high = findings(r, 'high_rtt');

  const w0 = win(r, 0, 'rtt');
  assert.equal(at(w0, 'count'), 3);
  assert.equal(at(w0, 'max'), 0.3);
  assert.equal(at(w0, 'serverSide.count'), 2);
  assert.equal(at(w0, 'serverSide.p50'), 0.25);
  assert.equal(at(w0, 'clientSide.count'), 1);
  assert.equal(at(w0, 'clientSide.p50'), 0.0001);
  assert.equal(r.stats?.['tcp.analysis.ack_rtt']?.max, 1.05, 'the sample Karn\'s rule drops is still in tcp.analysis.ack_rtt');
  const [k0] = high.filter((f) => inWindow(f, 0));
  assert.equal(k0!.severity, 'warning');
  assert.equal(k0!.evidence['samples'], 3);
  assert.equal(k0!.evidence['p90OverWarning'], true);

  const w1 = win(r, 1, 'rtt');
  assert.equal(at(w1, 'count'), 44);
  assert.equal(at(w1, 'flows'), 4);
  assert.deepEqual(at(w1, 'highRttFlows'), { info: 1, warning: 1, critical: 1 });
  const h1 = high.filter((f) => inWindow(f, 1));
  assert.equal(h1.length, 3);
  assert.equal(byClientPort(h1, 43001)[0]!.severity, 'warning');
  assert.equal(byClientPort(h1, 43001)[0]!.evidence['p90OverCritical'], false);
  assert.equal(byClientPort(h1, 43001)[0]!.evidence['maxSeconds'], 0.6);
  assert.equal(byClientPort(h1, 43002)[0]!.severity, 'critical');
  assert.equal(byClientPort(h1, 43002)[0]!.evidence['samplesOverCritical'], 2);
  assert.equal(byClientPort(h1, 43003)[0]!.severity, 'info');
  assert.equal(byClientPort(h1, 43004).length, 0);

  const h2 = high.filter((f) => inWindow(f, 2));
  assert.deepEqual(h2.map((f) => f.flow?.clientPort), [43006], 'an RTT equal to the threshold is not over it');
  assert.equal(h2[0]!.severity, 'warning');

  const w3 = win(r, 3, 'rtt');
  assert.deepEqual(at(w3, 'highRttFlows'), { info: 0, warning: 0, critical: 12 });
  assert.equal(at(w3, 'reportedFlows'), 10);
  const h3 = high.filter((f) => inWindow(f, 3));
  assert.deepEqual(h3.map((f) => f.flow!.clientPort).sort((a, b) => a - b), [43102, 43103, 43104, 43105, 43106, 43107, 43108, 43109, 43110, 43111]);
  assert.equal(h3[0]!.flow!.clientPort, 43111);

  // Reported worst first, so the window engine's cap keeps the worst.
  const capped = await analyze(path, { analyzers: { rtt: { warning: 0.125, critical: 0.5 } }, report: { maxFindingsPerType: 5 } });
  const c3 = findings(capped, 'high_rtt').filter((f) => inWindow(f, 3));
  assert.deepEqual(c3.map((f) => f.flow!.clientPort), [43111, 43110, 43109, 43108, 43107]);
  assert.equal(capped.windows.find((w) => w.start === isoTime(BASE + 30))!.findingsSuppressed?.['high_rtt'], 5);
});

test('rtt: ppa_latency1.pcapng (SYN/ACK 30.107 ms and ACK of the request 48.778 ms on the server side)', async () => {
  const m = only(await analyze(pcap('ppa_latency1.pcapng')), 'rtt');
  // tshark tcp.analysis.ack_rtt: 0.030107 (frame 2), 0.000075 (frame 3), 0.048778 (frame 5).
  assert.equal(at(m, 'count'), 3);
  assert.equal(at(m, 'p50'), 0.030107);
  assert.equal(at(m, 'max'), 0.048778);
  assert.equal(at(m, 'serverSide.count'), 2);
  assert.equal(at(m, 'serverSide.p50'), 0.0394425);
  assert.equal(at(m, 'clientSide.p50'), 0.000075);
  assert.deepEqual(at(m, 'highRttFlows'), { info: 0, warning: 0, critical: 0 });
});

test('rtt: ppa_http_espn_fail.pcapng (every tcp.analysis.ack_rtt is a Karn sample: no acked segment was resent)', async () => {
  const r = await analyze(pcap('ppa_http_espn_fail.pcapng'));
  const samples = r.windows.reduce((n, w) => n + (at(w.metrics['rtt'], 'count') as number), 0);
  // tshark -Y tcp.analysis.ack_rtt: 162 frames.
  assert.equal(samples, 162);
  assert.equal(r.stats?.['tcp.analysis.ack_rtt']?.count, 162);
});

// ---------------------------------------------------------------------------
// tcp_window

test('tcp_window: a zero window across windows, boundaries of zeroWindowPeriod, one still open at the end, low windows', async () => {
  const cap = new Capture();
  // Window scale 7 on both sides: a raw window of 100 is 12,800 bytes (not low), 50 is 6,400 (low).
  const w1 = cap.conn('10.0.1.100', 42000, '10.0.1.1', 80);
  w1.send(C, 0, SYN, { options: [{ kind: 'wscale', shift: 7 }] }).send(S, 0.01, SYN | ACK, { options: [{ kind: 'wscale', shift: 7 }] });
  w1.send(C, 0.02, ACK, { win: 100 }).send(S, 1, ACK | PSH, { len: 1000 }).send(C, 1.01, ACK, { win: 50 });
  // The client's window closes at 5 s (window 0) and reopens at 12.5 s (window 1): 7.5 s, counted in window 1.
  w1.send(S, 2, ACK | PSH, { len: 1000 }).send(C, 5, ACK, { win: 0 }).send(C, 8, ACK, { win: 0 }).send(C, 12.5, ACK, { win: 100 });

  // Window 3: server zero windows of 0.125 s exactly, just under and just over (zeroWindowPeriod 0.125).
  const zero = (port: number, t: number, length: number): void => {
    cap.conn('10.0.1.100', port, '10.0.1.2', 80).handshake(t - 0.5, 0.01, 0.01)
      .send(C, t - 0.4, ACK | PSH, { len: 10 }).send(S, t, ACK, { win: 0 }).send(S, t + length, ACK, { win: 500 });
  };
  zero(42001, 30.5, 0.125);
  zero(42002, 31.5, 0.124999);
  zero(42003, 32.5, 0.125001);
  // Window 3 still: a server window closed at 35 s and never reopened; the input ends at 37 s.
  cap.conn('10.0.1.100', 42004, '10.0.1.3', 80).handshake(34, 0.01, 0.01)
    .send(C, 34.5, ACK | PSH, { len: 10 }).send(S, 35, ACK, { win: 0 }).send(C, 37, ACK);

  const r = await analyze(cap.write('zero-window.pcap'), { analyzers: { tcp_window: { zeroWindowPeriod: 0.125 } } });
  const zw = findings(r, 'zero_window');

  const m0 = win(r, 0, 'tcp_window');
  assert.equal(at(m0, 'zeroWindowStarted'), 1);
  assert.equal(at(m0, 'zeroWindowPeriods'), 0);
  assert.equal(at(m0, 'zeroWindowPackets'), 2);
  assert.deepEqual(at(m0, 'lowWindowBySide'), { client: 1, server: 0 });
  assert.equal(zw.filter((f) => inWindow(f, 0)).length, 0);

  const m1 = win(r, 1, 'tcp_window');
  assert.equal(at(m1, 'zeroWindowStarted'), 0);
  assert.deepEqual(at(m1, 'zeroWindowBySide'), { client: 1, server: 0 });
  assert.equal(at(m1, 'zeroWindowSeconds'), 7.5);
  const [long] = zw.filter((f) => inWindow(f, 1));
  assert.equal(long!.severity, 'critical');
  assert.equal(long!.evidence['side'], 'client');
  assert.equal(long!.evidence['advertisedBy'], '10.0.1.100:42000');
  assert.equal(long!.evidence['durationSeconds'], 7.5);
  assert.equal(long!.evidence['zeroWindowPackets'], 2);
  assert.equal(long!.evidence['endedBy'], 'reopened');
  assert.equal(long!.evidence['started'], '2023-11-14T22:13:25.000000Z');

  const m3 = win(r, 3, 'tcp_window');
  assert.deepEqual(at(m3, 'zeroWindowBySide'), { client: 0, server: 3 });
  assert.equal(at(m3, 'zeroWindowStarted'), 4);
  assert.equal(at(m3, 'zeroWindowOpenAtEnd'), 1);
  assert.equal(at(m3, 'zeroWindowMaxSeconds'), 2);
  assert.deepEqual(at(m3, 'lowWindowBySide'), { client: 0, server: 3 });
  const z3 = zw.filter((f) => inWindow(f, 3));
  assert.deepEqual(z3.map((f) => f.flow!.clientPort).sort((a, b) => a - b), [42001, 42003, 42004]);
  assert.equal(byClientPort(z3, 42001)[0]!.severity, 'warning');
  assert.equal(byClientPort(z3, 42001)[0]!.evidence['durationSeconds'], 0.125);
  const open = byClientPort(z3, 42004)[0]!;
  assert.equal(open.evidence['stillOpen'], true);
  assert.equal(open.evidence['endedBy'], 'end_of_input');
  assert.equal(open.evidence['durationSeconds'], 2);
  assert.equal(open.evidence['side'], 'server');
  assert.equal(open.severity, 'critical');
});

test('tcp_window: ppa_tcp_zerowindowdead.pcapng (window closed for 23.7 s until the end)', async () => {
  const r = await analyze(pcap('ppa_tcp_zerowindowdead.pcapng'));
  const sum = (path: string): number => r.windows.reduce((n, w) => n + (at(w.metrics['tcp_window'], path) as number), 0);
  // tshark: 4 frames flagged zero_window (2, 4, 6, 8), from 172.31.136.85:38760, at 0.000029 .. 23.731553.
  assert.equal(sum('zeroWindowPackets'), 4);
  assert.equal(sum('zeroWindowStarted'), 1);
  assert.equal(sum('zeroWindowPeriods'), 0);
  assert.equal(sum('zeroWindowOpenAtEnd'), 1);
  const [f, ...rest] = findings(r, 'zero_window');
  assert.equal(rest.length, 0);
  assert.equal(f!.window.start, r.windows[r.windows.length - 1]!.start);
  assert.equal(f!.evidence['stillOpen'], true);
  assert.equal(f!.evidence['durationSeconds'], 23.731524);
  assert.equal(f!.evidence['advertisedBy'], '172.31.136.85:38760');
  assert.equal(f!.evidence['zeroWindowPackets'], 4);
  assert.equal(f!.severity, 'critical');
});

test('tcp_window: ppa_tcp_zerowindowrecovery.pcapng (10 ms zero window: counted, not reported)', async () => {
  const r = await analyze(pcap('ppa_tcp_zerowindowrecovery.pcapng'));
  const m = only(r, 'tcp_window');
  // tshark: zero window at 0.000632, window update to 64240 at 0.010637; windows 5840 and 2920 before it.
  assert.equal(at(m, 'zeroWindowPeriods'), 1);
  assert.equal(at(m, 'zeroWindowSeconds'), 0.010005);
  assert.equal(at(m, 'zeroWindowOpenAtEnd'), 0);
  assert.equal(at(m, 'lowWindowPackets'), 2);
  assert.equal(findings(r, 'zero_window').length, 0);
});

test('handshake: retry intervals are kept for at most 4096 flows at once; the least recently retried flow\'s are dropped, counted', async () => {
  const cap = new Capture();
  // 4,097 flows retry their SYN once (flow 0 first); flow 0 then completes, the others never get an answer.
  for (let i = 0; i <= 4096; i++) cap.conn(`10.1.${i >> 8}.${i & 255}`, 40000, '10.0.0.2', 80).send(C, 0.001 * i, SYN).send(C, 1 + 0.001 * i, SYN, { seq: 1000 });
  cap.conn('10.1.0.0', 40000, '10.0.0.2', 80).send(S, 6, SYN | ACK).send(C, 6.001, ACK);
  const r = await analyze(cap.write('hs-retry-pool.pcap'));
  assert.equal(at(win(r, 0, 'handshake'), 'synRetransmissions'), 4097);
  assert.equal(at(win(r, 0, 'handshake'), 'retryIntervalsDropped'), 1);
  const [first] = findings(r, 'syn_retransmission').filter((f) => f.flow?.client === '10.1.0.0');
  assert.equal(first!.evidence['retransmissions'], 1);
  assert.equal(first!.evidence['intervals'], ',...', 'its interval was dropped');
  assert.equal(first!.evidence['firstIntervalSeconds'], null);
  assert.equal(first!.evidence['outcome'], 'completed');
});

// ---------------------------------------------------------------------------
// resets

test('resets: refused, abort and other RSTs by side; half-open, established and zombie flows at the end', async () => {
  const cap = new Capture();
  cap.conn('10.0.3.100', 41000, '10.0.3.3', 443).send(C, 0, SYN).send(S, 0.001, RST | ACK);
  cap.conn('10.0.3.100', 41001, '10.0.3.3', 443).send(C, 0.5, SYN).send(S, 0.501, RST | ACK);
  // The client aborts after data.
  cap.conn('10.0.3.100', 41002, '10.0.3.4', 80).handshake(1, 0.01, 0.01).send(C, 1.1, ACK | PSH, { len: 100 }).send(S, 1.2, ACK).send(C, 2, RST | ACK);
  // The server resets an established connection that carried no data: other.
  cap.conn('10.0.3.100', 41003, '10.0.3.4', 80).handshake(3, 0.01, 0.01).send(S, 3.5, RST | ACK);
  // The server resets after the client's FIN: an abort while closing (info).
  cap.conn('10.0.3.100', 41008, '10.0.3.4', 80).handshake(5, 0.01, 0.01).send(C, 5.1, ACK | PSH, { len: 50 }).send(S, 5.2, ACK)
    .send(C, 5.3, FIN | ACK).send(S, 5.4, RST | ACK);
  // Idle exactly 300 s at the end (not a zombie), and 300.001 s (a zombie).
  cap.conn('10.0.3.100', 41004, '10.0.3.5', 22).send(C, 99.98, SYN).send(S, 99.99, SYN | ACK).send(C, 100, ACK);
  cap.conn('10.0.3.100', 41005, '10.0.3.5', 22).send(C, 99.9, SYN).send(S, 99.95, SYN | ACK).send(C, 99.999, ACK);
  // Half-open at the end, and a busy connection whose last packet ends the input at 400 s.
  cap.conn('10.0.3.100', 41006, '10.0.3.6', 80).send(C, 399.5, SYN);
  cap.conn('10.0.3.100', 41007, '10.0.3.7', 80).handshake(398, 0.01, 0.01).send(C, 400, ACK | PSH, { len: 10 });
  const r = await analyze(cap.write('resets.pcap'));

  const m0 = win(r, 0, 'resets');
  assert.equal(at(m0, 'rst'), 5);
  assert.deepEqual(at(m0, 'bySide'), { client: 1, server: 4 });
  assert.deepEqual(at(m0, 'byPhase'), { refused: 2, abort: 2, other: 1 });
  assert.equal(at(m0, 'flowsReset'), 5);
  assert.deepEqual(at(m0, 'refusedServers'), { '10.0.3.3:443': 2 });
  assert.equal(at(m0, 'atEnd'), null);

  const [refused, ...moreRefused] = findings(r, 'connection_refused');
  assert.equal(moreRefused.length, 0);
  assert.equal(refused!.host, '10.0.3.3');
  assert.equal(refused!.evidence['refused'], 2);
  assert.equal(refused!.evidence['firstClient'], '10.0.3.100:41000');
  assert.equal(at(win(r, 0, 'handshake'), 'failed.refused'), 2);

  const resets = findings(r, 'connection_reset');
  assert.deepEqual(resets.map((f) => f.flow!.clientPort).sort((a, b) => a - b), [41002, 41008]);
  const abort = byClientPort(resets, 41002)[0]!;
  assert.equal(abort.severity, 'warning');
  assert.equal(abort.evidence['side'], 'client');
  assert.equal(abort.evidence['afterFin'], false);
  assert.equal(abort.evidence['packets'], 6);
  const closing = byClientPort(resets, 41008)[0]!;
  assert.equal(closing.severity, 'info');
  assert.equal(closing.evidence['side'], 'server');
  assert.equal(closing.evidence['afterFin'], true);

  const end = win(r, 40, 'resets');
  assert.deepEqual(at(end, 'atEnd'), { halfOpen: 1, established: 3, zombies: 1, maxIdleSeconds: 300.001 });
  const [zombie, ...moreZombies] = findings(r, 'zombie_flows');
  assert.equal(moreZombies.length, 0);
  assert.ok(inWindow(zombie!, 40));
  assert.equal(zombie!.evidence['zombies'], 1);
  assert.equal(zombie!.flow?.clientPort, 41005);
  // The half-open flow is also a handshake that got no answer before the input ended.
  const [hs] = findings(r, 'failed_handshake').filter((f) => f.flow?.clientPort === 41006);
  assert.equal(hs!.evidence['stillOpen'], true);
});

test('resets: refused servers are tracked up to 1000 per window (beyond, the lowest hash of address and port; the others\' refusals counted), the table starts afresh each window', async () => {
  const cap = new Capture();
  const servers: Array<{ host: string; port: number; count: number }> = [];
  // Window 0: one server refuses 3 connections, then 1,003 servers refuse one each (from one client: 1,004 host pairs, spread over workers).
  for (let k = 0; k < 3; k++) cap.conn('10.0.3.100', 40000 + k, '10.8.0.1', 25).send(C, 0.01 * k, SYN).send(S, 0.01 * k + 0.001, RST | ACK);
  servers.push({ host: '10.8.0.1', port: 25, count: 3 });
  for (let i = 0; i < 1003; i++) {
    cap.conn('10.0.3.100', 50000 + i, `10.9.${i >> 8}.${i & 255}`, 80).send(C, 1 + 0.005 * i, SYN).send(S, 1 + 0.005 * i + 0.001, RST | ACK);
    servers.push({ host: `10.9.${i >> 8}.${i & 255}`, port: 80, count: 1 });
  }
  // Window 1: another server refuses twice.
  cap.conn('10.0.3.101', 42000, '10.8.0.2', 443).send(C, 12, SYN).send(S, 12.001, RST | ACK);
  cap.conn('10.0.3.102', 42001, '10.8.0.2', 443).send(C, 13, SYN).send(S, 13.001, RST | ACK);
  assert.equal(workersOf(cap).size, 4);
  const r = await assertShardedSame(cap.write('resets-refused-bound.pcap'));
  // The tracked: the 1,000 of the lowest hash of (version, address words, port), as the table hashes its key.
  const hashOf = (host: string, port: number): number => hashWords([4, host.split('.').reduce((a, b) => a * 256 + Number(b), 0), 0, 0, 0, port], 6) >>> 0;
  const tracked = servers.map((x) => ({ ...x, key: `${x.host}:${x.port}`, hash: hashOf(x.host, x.port) }))
    .sort((a, b) => a.hash - b.hash || (a.key < b.key ? -1 : 1)).slice(0, 1000);
  const m0 = win(r, 0, 'resets');
  assert.deepEqual(at(m0, 'byPhase'), { refused: 1006, abort: 0, other: 0 });
  assert.equal(at(m0, 'refusedServersCount'), 1000);
  assert.equal(at(m0, 'refusedUntracked'), 1006 - tracked.reduce((n, x) => n + x.count, 0));
  assert.deepEqual(new Set(findings(r, 'connection_refused').filter((x) => inWindow(x, 0)).map((x) => `${x.host}:${x.evidence['serverPort']}`)), new Set(tracked.map((x) => x.key)));
  // Listed: the most refused first, then in order of first refusal (the order of `servers`).
  const firstRefused = (key: string): number => servers.findIndex((x) => `${x.host}:${x.port}` === key);
  const listed = [...tracked].sort((a, b) => b.count - a.count || firstRefused(a.key) - firstRefused(b.key)).slice(0, 10);
  assert.deepEqual(at(m0, 'refusedServers'), Object.fromEntries(listed.map((x) => [x.key, x.count])));
  const m1 = win(r, 1, 'resets');
  assert.deepEqual(at(m1, 'refusedServers'), { '10.8.0.2:443': 2 });
  assert.equal(at(m1, 'refusedServersCount'), 1);
  assert.equal(at(m1, 'refusedUntracked'), 0);
  const [f] = findings(r, 'connection_refused').filter((x) => inWindow(x, 1));
  assert.equal(f!.host, '10.8.0.2');
  assert.equal(f!.evidence['refused'], 2);
  assert.equal(f!.evidence['firstClient'], '10.0.3.101:42000');
});

test('resets, flow-sharded: a server refused by clients in several workers is one finding with every refusal and the first client; the zombies of every worker are one finding', async () => {
  const cap = new Capture();
  // 10.0.7.100:443 refuses eight clients (eight host pairs); the first refused is 10.0.7.5.
  for (const [i, client] of [5, 1, 2, 3, 4, 6, 7, 8].entries()) cap.conn(`10.0.7.${client}`, 41000 + i, '10.0.7.100', 443).send(C, 1 + i, SYN).send(S, 1.001 + i, RST | ACK);
  // Established connections idle at the end (400 s): 10.0.9.1-3 idle 350 s (two of them from the same last packet time), 10.0.9.4 idle 340 s, 10.0.9.5 not idle.
  cap.conn('10.0.9.2', 43000, '10.0.9.100', 22).handshake(49.98, 0.01, 0.01);
  cap.conn('10.0.9.1', 43001, '10.0.9.100', 22).handshake(49.98, 0.01, 0.01);
  cap.conn('10.0.9.3', 43002, '10.0.9.101', 22).handshake(40, 0.01, 0.01).send(C, 50, ACK | PSH, { len: 10 });
  cap.conn('10.0.9.4', 43003, '10.0.9.100', 22).handshake(59.98, 0.01, 0.01);
  cap.conn('10.0.9.5', 43004, '10.0.9.100', 22).handshake(398, 0.01, 0.01).send(C, 400, ACK | PSH, { len: 10 });
  assert.ok(workersOf(cap).size >= 3);
  const r = await assertShardedSame(cap.write('resets-sharded.pcap'));
  const [refused, ...more] = findings(r, 'connection_refused');
  assert.equal(more.length, 0);
  assert.equal(refused!.evidence['refused'], 8);
  assert.equal(refused!.evidence['firstClient'], '10.0.7.5:41000');
  const [zombie, ...moreZombies] = findings(r, 'zombie_flows');
  assert.equal(moreZombies.length, 0);
  assert.deepEqual(zombie!.evidence, { zombies: 4, maxIdleSeconds: 350, zombieIdle: 300, establishedAtEnd: 5, halfOpenAtEnd: 0 });
  // Equally idle: the first by connection key, 10.0.9.1's.
  assert.equal(zombie!.flow?.client, '10.0.9.1');
  assert.deepEqual(at(win(r, 40, 'resets'), 'atEnd'), { halfOpen: 0, established: 5, zombies: 4, maxIdleSeconds: 350 });
});

test('rtt, flow-sharded: more high-RTT flows ending at one point of the input than the window reports: the first by key, whichever worker holds them', async () => {
  const cap = new Capture();
  // 14 flows (14 host pairs) with one 0.25 s RTT each (warning; dyadic times: the same max RTT exactly); idle from 2.5 s, they all expire at the packet at 8 s.
  for (let i = 1; i <= 14; i++) {
    const t = 0.125 * i;
    cap.conn(`10.0.8.${i}`, 40000 + i, '10.0.8.100', 80).handshake(t, 0.01, 0.01).send(C, t + 0.5, ACK | PSH, { len: 100 }).send(S, t + 0.75, ACK);
  }
  cap.conn('10.0.8.200', 45000, '10.0.8.100', 80).handshake(8, 0.01, 0.01);
  assert.equal(workersOf(cap).size, 4);
  const config = { flows: { timeouts: { tcpEstablished: 5 } } };
  const r = await assertShardedSame(cap.write('rtt-sharded-cap.pcap'), config);
  const m = win(r, 0, 'rtt');
  assert.deepEqual(at(m, 'highRttFlows'), { info: 0, warning: 14, critical: 0 });
  assert.equal(at(m, 'reportedFlows'), 10);
  const keyOf = (f: Finding): string => `${f.flow!.client}:${f.flow!.clientPort}`;
  const all = Array.from({ length: 14 }, (_, k) => `10.0.8.${k + 1}:${40001 + k}`);
  assert.deepEqual(findings(r, 'high_rtt').map(keyOf).sort(), all.sort().slice(0, 10));
  // Under the default per-type cap: 5 listed, 5 counted.
  const capped = await assertShardedSame(cap.write('rtt-sharded-cap.pcap'), { ...config, report: { maxFindingsPerType: 5 } });
  assert.equal(findings(capped, 'high_rtt').length, 5);
  assert.deepEqual(capped.windows[0]!.findingsSuppressed, { high_rtt: 5 });
});

test('resets: ppa_tcp_refuseconnection.pcapng (192.168.100.1:80 refuses)', async () => {
  const r = await analyze(pcap('ppa_tcp_refuseconnection.pcapng'));
  const m = only(r, 'resets');
  assert.deepEqual(at(m, 'bySide'), { client: 0, server: 1 });
  assert.deepEqual(at(m, 'byPhase'), { refused: 1, abort: 0, other: 0 });
  const [f] = findings(r, 'connection_refused');
  assert.equal(f!.host, '192.168.100.1');
  assert.equal(f!.evidence['refused'], 1);
  assert.equal(f!.evidence['firstClient'], '192.168.100.138:3372');
});

test('resets: ppa_http_espn_fail.pcapng (one server RST after a FIN; 9 half-open, 5 established at the end)', async () => {
  const r = await analyze(pcap('ppa_http_espn_fail.pcapng'));
  const rsts = r.windows.filter((w) => at(w.metrics['resets'], 'rst') !== 0);
  assert.equal(rsts.length, 1);
  assert.deepEqual(at(rsts[0]!.metrics['resets'], 'byPhase'), { refused: 0, abort: 1, other: 0 });
  const [f] = findings(r, 'connection_reset');
  // tshark: frame 524, 72.21.91.8:80 -> 172.16.16.154:64867, after its FIN (frame 498); stream 7 has 92 frames.
  assert.equal(f!.evidence['side'], 'server');
  assert.equal(f!.evidence['afterFin'], true);
  assert.equal(f!.evidence['packets'], 92);
  assert.equal(f!.flow?.clientPort, 64867);
  const last = r.windows[r.windows.length - 1]!.metrics['resets'];
  // 16 streams: 9 unanswered, stream 7 reset, stream 8 closed by FINs, 5 established.
  assert.deepEqual(at(last, 'atEnd'), { halfOpen: 9, established: 5, zombies: 0, maxIdleSeconds: null });
  assert.equal(findings(r, 'zombie_flows').length, 0);
});

// ---------------------------------------------------------------------------
// tcp_retransmissions: severities at the edges of their counts and rates

test('tcp_retransmissions: each severity at the edge of its count and of its rate', async () => {
  // Counts 20/40/60 and rates 10/30/50 % (info by rate also needs 100 data segments).
  const cases: Array<{ name: string; fresh: number; again: number; severity: Finding['severity'] | null }> = [
    { name: 'info by rate: 10 of 100 (10 %)', fresh: 90, again: 10, severity: 'info' },
    { name: 'below the info rate: 9 of 100', fresh: 91, again: 9, severity: null },
    { name: 'info rate but 99 segments', fresh: 89, again: 10, severity: null },
    { name: 'info by count: 20 (2 %)', fresh: 980, again: 20, severity: 'info' },
    { name: 'below the info count: 19 (1.9 %)', fresh: 981, again: 19, severity: null },
    { name: 'warning by count: 40 (4 %)', fresh: 960, again: 40, severity: 'warning' },
    { name: 'below the warning count: 39', fresh: 961, again: 39, severity: 'info' },
    { name: 'warning by rate: 20 of 66 (30.3 %)', fresh: 46, again: 20, severity: 'warning' },
    { name: 'warning rate but 19 retransmissions (under the info count)', fresh: 41, again: 19, severity: null },
    { name: 'critical by count: 60 (6 %)', fresh: 940, again: 60, severity: 'critical' },
    { name: 'below the critical count: 59', fresh: 941, again: 59, severity: 'warning' },
    { name: 'critical by rate: 20 of 40 (50 %)', fresh: 20, again: 20, severity: 'critical' },
    { name: 'just below the critical rate: 20 of 41', fresh: 21, again: 20, severity: 'warning' },
    // Each rate exactly at its edge (the count alone says less), and the count each rate needs.
    { name: 'warning exactly at its rate: 30 of 100 (30 %)', fresh: 70, again: 30, severity: 'warning' },
    { name: 'critical exactly at its rate: 30 of 60 (50 %)', fresh: 30, again: 30, severity: 'critical' },
    { name: 'critical rate but 19 retransmissions (under the info count)', fresh: 19, again: 19, severity: null },
    // Just below each rate, by less than a hundredth of it: a threshold read 1 % low would report them.
    { name: 'just below the info rate: 19 of 191 (9.95 %)', fresh: 172, again: 19, severity: null },
    { name: 'just below the warning rate: 29 of 97 (29.9 %)', fresh: 68, again: 29, severity: 'info' },
    { name: 'just below the critical rate: 59 of 119 (49.6 %)', fresh: 60, again: 59, severity: 'warning' },
  ];
  const cap = new Capture();
  cases.forEach((c, k) => {
    const conn = cap.conn('10.0.0.1', 40000 + k, '10.0.0.2', 80).handshake(10 * k, 0.001, 0.001);
    let t = 10 * k + 0.01;
    for (let i = 0; i < c.fresh; i++) { conn.send(C, t, ACK | PSH, { len: 100 }); t += 0.0001; }
    const last = conn.next[C] - 100;
    for (let i = 0; i < c.again; i++) { conn.send(C, t, ACK | PSH, { len: 100, seq: last }); t += 0.0001; }
  });
  const r = await analyze(cap.write('retransmission-edges.pcap'), { analyzers: { tcp: { retransmissionCount: [20, 40, 60], retransmissionRate: [10, 30, 50] } } });
  cases.forEach((c, k) => {
    const m = win(r, k, 'tcp');
    assert.equal(m['retransmissions'], c.again, `${c.name}: retransmissions`);
    assert.equal(m['dataSegments'], c.fresh + c.again, `${c.name}: data segments`);
    const found = findings(r, 'tcp_retransmissions').filter((f) => inWindow(f, k));
    assert.deepEqual(found.map((f) => f.severity), c.severity ? [c.severity] : [], c.name);
  });
});

test('tcp_retransmissions: an info rate of 0 % never reports a window without retransmissions', async () => {
  const cap = new Capture();
  const conn = cap.conn('10.0.0.1', 41000, '10.0.0.2', 80).handshake(0, 0.001, 0.001);
  for (let i = 0; i < 150; i++) conn.send(C, 0.01 + i * 0.0001, ACK | PSH, { len: 100 });
  const r = await analyze(cap.write('retransmission-none.pcap'), { analyzers: { tcp: { retransmissionCount: [20, 40, 60], retransmissionRate: [0, 30, 50] } } });
  assert.equal(win(r, 0, 'tcp')['retransmissions'], 0);
  assert.deepEqual(findings(r, 'tcp_retransmissions'), []);
});
