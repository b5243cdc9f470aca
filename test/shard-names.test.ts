/**
 * Flow-sharded analysis (issue 13) of the analyzers that name things: tls,
 * dimensions and services. The DNS answers one worker sees name flows other
 * workers carry (the reader's foreign DNS records, shard/foreign-dns.ts), and
 * the windows' first-come tables (services, server names, servers,
 * fingerprints, VLANs) keep the first keys of the whole input: the merged
 * report must be, byte for byte, the one pipeline's, on crafted captures that
 * put those cases across workers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/analyze/index.js';
import { analyzeCaptureSharded } from '../agent/analyze/analyze-sharded.js';
import { ShardFeed, type ShardSink } from '../agent/shard/shard-feed.js';
import { addressPairHash, shardOf } from '../agent/decode/shard-hash.js';
import { Quantiles } from '../agent/analyzers/lib/quantiles.js';
import { CaptureReader, NEED_DATA, RECORD } from '../agent/capture/index.js';
import { buildConfig, loadConfig } from '../common/config.js';
import { reportJsonChunks, type Report } from '../common/report.js';
import { EtherTypes, Proto, TcpFlags, dns, dnsOverTcp, ethernet, ipv4, ipv4Addr, pcapFile, tcp, udp, type PcapRecordSpec } from './helpers/capture-writer.js';
import { MAC_A, MAC_B, at, tcp4, udp4 } from './helpers/crafted-frames.js';

const MINE = ['tls', 'dimensions', 'services'];

/** Only these analyzers enabled (the others may not merge yet), plus `extra` overrides. */
function configWith(extra: Record<string, Record<string, unknown>> = {}): ReturnType<typeof buildConfig> {
  const analyzers: Record<string, Record<string, unknown>> = {};
  for (const id of Object.keys(loadConfig().analyzers)) analyzers[id] = { enabled: MINE.includes(id), ...extra[id] };
  return buildConfig({ analyzers });
}

const byTime = (a: PcapRecordSpec, b: PcapRecordSpec): number => a.tsSec - b.tsSec || a.tsSub - b.tsSub;

/** The one-pipeline report of `records`, after checking that 2, 3 and 4 workers (in this thread, and 3 worker threads) give the same JSON. */
async function sameSharded(name: string, records: readonly PcapRecordSpec[], config = configWith()): Promise<Report> {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-shard-names-'));
  try {
    const path = join(dir, `${name}.pcap`);
    writeFileSync(path, pcapFile({}, [...records].sort(byTime)));
    const one = await analyzeCapture(path, config);
    const json = [...reportJsonChunks(one.report)].join('');
    for (const [workers, inProcess] of [[2, true], [3, true], [4, true], [3, false]] as const) {
      const many = await analyzeCaptureSharded(path, config, { workers, inProcess });
      const other = [...reportJsonChunks(many.report)].join('');
      if (other !== json) {
        let i = 0;
        while (json[i] === other[i]) i++;
        const how = inProcess ? 'workers' : 'worker threads';
        assert.fail(`${name}, ${workers} ${how}: differs at ${i}:\n one  …${json.slice(Math.max(0, i - 200), i + 200)}\n many …${other.slice(Math.max(0, i - 200), i + 200)}`);
      }
    }
    return one.report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const workerOfPair = (a: string, b: string, workers: number): number =>
  shardOf(addressPairHash(4, [ipv4Addr(a).readUInt32BE(0)], [ipv4Addr(b).readUInt32BE(0)]), workers);

const windowsOf = (r: Report, id: string): Array<Record<string, unknown>> => r.windows.map((w) => w.metrics[id] as Record<string, unknown>);
const total = (r: Report, id: string, key: string): number => windowsOf(r, id).reduce((n, m) => n + (m[key] as number), 0);

// ---------------------------------------------------------------------------
// DNS names across workers

const CLIENT = '10.0.0.1';
const TCP_CLIENT = '10.0.0.2';
const FRAG_CLIENT = '10.0.0.3';
const RESOLVER = '10.0.0.53';
/** dns() answers with 192.0.2.1, .2, ... */
const answered = (i: number): string => `192.0.2.${1 + i}`;

/** A UDP DNS response cut into two IPv4 fragments (the second carries the answers). */
function fragmentedResponse(us: number, src: string, dst: string, message: Uint8Array): PcapRecordSpec[] {
  const datagram = udp({ srcPort: 53, dstPort: 40100, payload: message });
  const cut = 24; // a multiple of 8, inside the question
  const frame = (payload: Uint8Array, mf: boolean, fragOffset: number): Buffer =>
    ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.UDP, payload, id: 0x4242, mf, fragOffset }));
  return [at(us, frame(datagram.subarray(0, cut), true, 0)), at(us + 100, frame(datagram.subarray(cut), false, cut))];
}

function namingCapture(): PcapRecordSpec[] {
  const records: PcapRecordSpec[] = [];
  // Over UDP: 8 answers for one client.
  records.push(at(0, udp4(CLIENT, 40000, RESOLVER, 53, dns({ id: 1, qname: 'www.example.com' }))));
  records.push(at(5_000, udp4(RESOLVER, 53, CLIENT, 40000, dns({ id: 1, response: true, qname: 'www.example.com', answers: 8 }))));
  // Over TCP, the response segment sent twice (the second repeats payload: no DNS frame for Wireshark, its answers all the same).
  const response = dnsOverTcp(dns({ id: 2, response: true, qname: 'tcp.example.com', answers: 3 }));
  records.push(at(6_000, tcp4(RESOLVER, 53, TCP_CLIENT, 40001, { seq: 100, ack: 1, flags: TcpFlags.ACK | TcpFlags.PSH, payload: response })));
  records.push(at(7_000, tcp4(RESOLVER, 53, TCP_CLIENT, 40001, { seq: 100, ack: 1, flags: TcpFlags.ACK | TcpFlags.PSH, payload: response })));
  // In two IP fragments: read once reassembled.
  records.push(...fragmentedResponse(8_000, RESOLVER, FRAG_CLIENT, dns({ id: 3, response: true, qname: 'frag.example.com', answers: 4 })));
  // Then each client connects to its answered addresses.
  for (let i = 0; i < 8; i++) records.push(at(20_000 + i * 1_000, tcp4(CLIENT, 41000 + i, answered(i), 443, { seq: 1, flags: TcpFlags.SYN })));
  for (let i = 0; i < 3; i++) records.push(at(30_000 + i * 1_000, tcp4(TCP_CLIENT, 42000 + i, answered(i), 443, { seq: 1, flags: TcpFlags.SYN })));
  for (let i = 0; i < 4; i++) records.push(at(40_000 + i * 1_000, tcp4(FRAG_CLIENT, 43000 + i, answered(i), 443, { seq: 1, flags: TcpFlags.SYN })));
  return records;
}

test('DNS answers name flows carried by other workers: every flow named as one pipeline names it, over UDP, TCP (repeated) and IP fragments', async () => {
  // The case is real: for each client, some answered address is another worker's host pair than the resolver's.
  for (const [client, n] of [[CLIENT, 8], [TCP_CLIENT, 3], [FRAG_CLIENT, 4]] as const) {
    for (const workers of [2, 4]) {
      const resolverWorker = workerOfPair(client, RESOLVER, workers);
      assert.ok(Array.from({ length: n }, (_, i) => workerOfPair(client, answered(i), workers)).some((w) => w !== resolverWorker),
        `${client}: every answered address in the resolver's worker (${workers} workers)`);
    }
  }
  const r = await sameSharded('dns-names', namingCapture());
  assert.equal(total(r, 'services', 'flowsNamedByDns'), 15);
  // The TCP response counts twice: the retransmission's answers are taken too.
  assert.equal(total(r, 'services', 'dnsAnswers'), 8 + 3 + 3 + 4);
  const named = r.flows.filter((f) => f.serverPort === 443);
  assert.equal(named.length, 15);
  for (const f of named) {
    const want = f.client === CLIENT ? 'www.example.com' : f.client === TCP_CLIENT ? 'tcp.example.com' : 'frag.example.com';
    assert.equal(f.serverName, want, `${f.client} -> ${f.server}`);
    assert.equal(f.serverNameSource, 'dns');
  }
});

test('the reader gives foreign copies of DNS responses (and UDP fragments) to every other worker, after their mark, never of queries or other traffic', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-shard-names-'));
  try {
    const path = join(dir, 'feed.pcap');
    writeFileSync(path, pcapFile({}, namingCapture().sort(byTime)));
    const reader = await CaptureReader.open(path, loadConfig().input);
    const workers = 4;
    const log: Array<{ kind: 'packet' | 'mark' | 'foreign'; worker: number; seq: number }> = [];
    const sink: ShardSink = {
      packet: (worker) => log.push({ kind: 'packet', worker, seq: feed.seq }) > 0,
      mark: (worker) => log.push({ kind: 'mark', worker, seq: feed.seq }) > 0,
      foreign: (worker) => log.push({ kind: 'foreign', worker, seq: feed.seq }),
    };
    const feed: ShardFeed = new ShardFeed(workers, loadConfig().windows.seconds, sink);
    for (;;) {
      const status = reader.next();
      if (status === RECORD) feed.push(reader.record);
      else if (status === NEED_DATA) await reader.fill();
      else break;
    }
    await reader.close();
    // Frames 1 (UDP response), 2 and 3 (TCP response and its repeat), 4 and 5 (the fragments): seq 1..5.
    const foreignSeqs = [...new Set(log.filter((e) => e.kind === 'foreign').map((e) => e.seq))];
    assert.deepEqual(foreignSeqs, [1, 2, 3, 4, 5]);
    assert.equal(feed.foreignRecords, 5 * (workers - 1));
    for (const seq of foreignSeqs) {
      const owner = log.find((e) => e.kind === 'packet' && e.seq === seq)!.worker;
      const to = log.filter((e) => e.kind === 'foreign' && e.seq === seq).map((e) => e.worker);
      assert.deepEqual(to, [0, 1, 2, 3].filter((w) => w !== owner));
      for (const w of to) {
        // In the worker's order: its mark of this packet (if the clock moved) before the copy, nothing of a later packet before it.
        const mine = log.filter((e) => e.worker === w);
        const i = mine.findIndex((e) => e.kind === 'foreign' && e.seq === seq);
        assert.ok(mine.slice(0, i).every((e) => e.seq <= seq), `worker ${w}: copy of ${seq} after a later record`);
        assert.ok(!mine.slice(i + 1).some((e) => e.seq < seq), `worker ${w}: an earlier record after the copy of ${seq}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------
// First-come tables across workers

test('services: more than 256 services in a window over many host pairs, the first 256 kept and the rest under other, as one pipeline', async () => {
  // 512 services (ports), each used by two flows of other host pairs: once early, once after every worker met over 256.
  const records: PcapRecordSpec[] = [];
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 512; i++) {
      const client = `10.1.${round * 2 + (i >> 8)}.${i & 0xff}`;
      const server = `10.2.${(i * 7) >> 8 & 0xff}.${(i * 7) & 0xff}`;
      const us = (round * 512 + i) * 1_000;
      records.push(at(us, udp4(client, 50000, server, 20000 + i, Buffer.from('x'.repeat(1 + (i % 13))))));
      if (i % 3 === 0) records.push(at(us + 500, udp4(server, 20000 + i, client, 50000, Buffer.from('y'.repeat(1 + (i % 5))))));
    }
  }
  const r = await sameSharded('services-overflow', records);
  const m = windowsOf(r, 'services')[0]!;
  assert.equal(m['services'], 256);
  assert.equal(m['flowsOverflow'], 512);
});

test('dimensions: more VLANs than maxValues over many host pairs: the first kept, the rest folded into other, as one pipeline', async () => {
  const records: PcapRecordSpec[] = [];
  const vlans = [30, 10, 50, 20, 40, 60];
  for (let i = 0; i < 48; i++) {
    const vid = vlans[(i * 5) % vlans.length]!;
    const ip = ipv4({ src: `10.3.0.${i + 1}`, dst: `10.4.0.${(i * 3) % 40 + 1}`, proto: Proto.UDP, payload: udp({ srcPort: 1000 + i, dstPort: 5000, payload: Buffer.from('q') }) });
    records.push(at(i * 10_000, ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ip, [{ tpid: EtherTypes.VLAN, vid }])));
  }
  const r = await sameSharded('dimensions-overflow', records, configWith({ dimensions: { maxValues: 3 } }));
  const m = windowsOf(r, 'dimensions')[0]!;
  // First seen: 30, 60, 40; then 20, 50, 10 share "other".
  assert.equal(m['vlanValuesOther'], 3);
  assert.deepEqual(Object.keys(m['vlan'] as object), ['30', '40', '60', 'other']);
});

// TLS hellos, as in tls.test.ts.
const u16 = (v: number): number[] => [(v >> 8) & 0xff, v & 0xff];
const vec16 = (body: number[]): number[] => [...u16(body.length), ...body];
function clientHello(sni: string, ciphers: number[], version = 0x0303): number[] {
  const name = [...Buffer.from(sni)];
  const exts = [...u16(0), ...vec16(vec16([0, ...u16(name.length), ...name]))];
  const body = [...u16(version), ...new Array<number>(32).fill(7), 0, ...vec16(ciphers.flatMap(u16)), 1, 0, ...vec16(exts)];
  return [1, 0, ...u16(body.length), ...body];
}
function serverHello(version: number): number[] {
  const body = [...u16(version), ...new Array<number>(32).fill(9), 0, ...u16(0x002f), 0, ...vec16([])];
  return [2, 0, ...u16(body.length), ...body];
}
const record = (type: number, body: number[]): number[] => [type, 3, 1, ...u16(body.length), ...body];

/** A TCP connection from `client` to `server`:443 at `t0` s after T0: handshake, then the given payloads. */
function connection(client: string, server: string, sport: number, t0: number, segments: ReadonlyArray<{ fromClient: boolean; data: number[] }>): PcapRecordSpec[] {
  const out: PcapRecordSpec[] = [];
  let us = Math.round(t0 * 1e6);
  let cseq = 1000;
  let sseq = 5000;
  const frame = (fromClient: boolean, flags: number, payload: number[]): void => {
    const seg = tcp({ srcPort: fromClient ? sport : 443, dstPort: fromClient ? 443 : sport, seq: fromClient ? cseq : sseq, ack: fromClient ? sseq : cseq, flags, payload: Uint8Array.from(payload) });
    out.push(at(us, ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src: fromClient ? client : server, dst: fromClient ? server : client, proto: Proto.TCP, payload: seg }))));
    us += 1_000;
  };
  frame(true, TcpFlags.SYN, []); cseq++;
  frame(false, TcpFlags.SYN | TcpFlags.ACK, []); sseq++;
  frame(true, TcpFlags.ACK, []);
  for (const s of segments) {
    frame(s.fromClient, TcpFlags.ACK | TcpFlags.PSH, s.data);
    if (s.fromClient) cseq += s.data.length; else sseq += s.data.length;
  }
  return out;
}

test('tls: server names, servers and fingerprints over their caps across workers; findings of servers met by several workers merged', async () => {
  const records: PcapRecordSpec[] = [];
  const ciphers = [[0x002f], [0x0035, 0x002f], [0x000a]];
  // Eight servers, met twice by flows of other host pairs (other workers): failing handshakes and deprecated versions.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 8; i++) {
      const sni = `s${i}.example`;
      records.push(...connection(`10.5.${round}.${i + 1}`, `10.6.${round}.${i + 1}`, 40000 + i, 0.5 + round * 2 + i * 0.1, i % 2 === 0
        ? [{ fromClient: true, data: record(22, clientHello(sni, ciphers[i % 3]!)) }, { fromClient: false, data: record(21, [2, 40]) }]
        : [{ fromClient: true, data: record(22, clientHello(sni, ciphers[i % 3]!, 0x0301)) }, { fromClient: false, data: record(22, serverHello(0x0301)) }]));
    }
  }
  // A later window: fingerprints the run kept, and ones over its cap.
  for (let i = 0; i < 3; i++) {
    records.push(...connection(`10.9.0.${i + 1}`, `10.6.0.${i + 1}`, 42000 + i, 12 + i * 0.1, [
      { fromClient: true, data: record(22, clientHello('late.example', [[0x1301], [0x0035, 0x002f], [0x002f]][i]!)) },
      { fromClient: false, data: record(22, serverHello(0x0303)) },
    ]));
  }
  const r = await sameSharded('tls-caps', records, configWith({ tls: { maxServerNames: 3, maxFingerprints: 2 } }));
  const dropped = windowsOf(r, 'tls').map((w) => w['dropped'] as Record<string, number>);
  assert.ok(dropped[0]!['serverNames']! > 0 && dropped[0]!['servers']! > 0 && dropped[0]!['fingerprints']! > 0, JSON.stringify(dropped[0]));
  assert.ok(dropped[1]!['fingerprints']! > 0, JSON.stringify(dropped[1]));
  // s0.example failed for two clients in two host pairs: one finding with both alerts.
  const failures = r.findings.filter((f) => f.type === 'tls_handshake_failure' && f.evidence['server'] === 's0.example');
  assert.equal(failures.length, 1);
  assert.equal(failures[0]!.evidence['fatalAlerts'], 2);
  // The first three servers met are kept (s0, s1, s2): s1 chose TLS 1.0 twice.
  const deprecated = r.findings.filter((f) => f.type === 'tls_deprecated_version').map((f) => [f.evidence['server'], f.evidence['chosen']]);
  assert.deepEqual(deprecated, [['s1.example', 2]]);
});

// ---------------------------------------------------------------------------
// Percentile sets given whole

test('a set rebuilt from whole sketches of parts summarises as the set fed every sample, exact or bucketed at its cap', () => {
  const rng = (seed: number): (() => number) => () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  for (const [cap, n] of [[1024, 700], [1024, 1500], [65536, 3000]] as const) {
    const next = rng(n);
    const whole = new Quantiles(false, cap);
    const parts = [new Quantiles(false, cap), new Quantiles(false, cap), new Quantiles(false, cap)];
    for (let i = 0; i < n; i++) {
      const v = 1e-4 * Math.exp(12 * next());
      whole.add(v);
      parts[i % 3]!.add(v);
    }
    const merged = new Quantiles(false, cap);
    for (const p of parts) merged.addSketch(p.sketch(true));
    assert.deepEqual(merged.summary(), whole.summary(), `cap ${cap}, ${n} samples`);
    // The sketch for reports (at most 256 exact samples) would not do: the point of `whole`.
    if (n > 256 * 3 && n <= cap) {
      const lossy = new Quantiles(false, cap);
      for (const p of parts) lossy.addSketch(p.sketch());
      assert.notDeepEqual(lossy.summary(), whole.summary());
    }
  }
});
