/**
 * The volume and timing detectors: flood, exfiltration, beaconing. Crafted
 * captures fire them (and sit just under / at their thresholds); ordinary
 * traffic and the shared captures keep them silent; suppression, determinism
 * and bounded state are checked on their metrics.
 *
 * Large transfers are written sparsely: each frame carries only its headers
 * (captured length 54 or 42 bytes) with the full length on the wire, which is
 * what the detectors count (frame.len, as the flow table does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig } from '../common/config.js';
import { reportJsonChunks, type Finding, type Report } from '../common/report.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import { analyzeCaptureSharded } from '../agent/analyze/analyze-sharded.js';
import { DISTRIBUTED, MAX_SOURCES } from '../agent/analyzers/flood.js';
import { judgeBeacon } from '../agent/analyzers/beaconing.js';
import { EtherTypes, Proto, TcpFlags, ethernet, icmpEcho, ipv4, pcapHeader, tcp, udp } from './helpers/capture-writer.js';
import { SHARED_PCAPS } from './helpers/paths.js';

// ---------------------------------------------------------------------------
// Crafting (fast: frames are copies of a template with a few fields patched)

/** A multiple of 10 s and of the decoder's time base (10^6 s): offsets below are packet times. */
const T0 = 1_700_000_000;
const MAC_A = '02:00:00:00:00:01';
const MAC_B = '02:00:00:00:00:02';
const { SYN, ACK, FIN, PSH } = TcpFlags;

interface Rec { us: number; data: Buffer; wireLen: number }

const TCP_T = ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src: '0.0.0.0', dst: '0.0.0.0', proto: Proto.TCP, payload: tcp({ srcPort: 1, dstPort: 1 }) }));
const UDP_T = ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src: '0.0.0.0', dst: '0.0.0.0', proto: Proto.UDP, payload: udp({ srcPort: 1, dstPort: 1 }) }));
const ICMP_T = ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src: '0.0.0.0', dst: '0.0.0.0', proto: Proto.ICMP, payload: icmpEcho(0, 0, false, new Uint8Array(0)) }));

const addrCache = new Map<string, number>();
function addr(text: string): number {
  let a = addrCache.get(text);
  if (a === undefined) {
    a = text.split('.').reduce((w, p) => w * 256 + Number(p), 0);
    addrCache.set(text, a);
  }
  return a;
}

/** A TCP frame `len` payload bytes long on the wire (only its headers captured). */
function tcpAt(s: number, src: string, sport: number, dst: string, dport: number, flags: number, len = 0, seq = 0, ack = 0): Rec {
  const b = Buffer.from(TCP_T);
  b.writeUInt16BE(40 + len, 16);
  b.writeUInt32BE(addr(src), 26);
  b.writeUInt32BE(addr(dst), 30);
  b.writeUInt16BE(sport, 34);
  b.writeUInt16BE(dport, 36);
  b.writeUInt32BE(seq >>> 0, 38);
  b.writeUInt32BE(ack >>> 0, 42);
  b[47] = flags;
  return { us: Math.round(s * 1e6), data: b, wireLen: b.length + len };
}

/** A UDP datagram of `len` payload bytes on the wire. */
function udpAt(s: number, src: string, sport: number, dst: string, dport: number, len = 0): Rec {
  const b = Buffer.from(UDP_T);
  b.writeUInt16BE(28 + len, 16);
  b.writeUInt32BE(addr(src), 26);
  b.writeUInt32BE(addr(dst), 30);
  b.writeUInt16BE(sport, 34);
  b.writeUInt16BE(dport, 36);
  b.writeUInt16BE(8 + len, 38);
  return { us: Math.round(s * 1e6), data: b, wireLen: b.length + len };
}

function echoAt(s: number, src: string, dst: string, id: number, seq: number, reply = false): Rec {
  const b = Buffer.from(ICMP_T);
  b.writeUInt32BE(addr(src), 26);
  b.writeUInt32BE(addr(dst), 30);
  b[34] = reply ? 0 : 8;
  b.writeUInt16BE(id, 38);
  b.writeUInt16BE(seq, 40);
  return { us: Math.round(s * 1e6), data: b, wireLen: b.length };
}

/** A classic pcap of the records in time order (stable). */
function pcapBytes(recs: readonly Rec[]): Buffer {
  const sorted = recs.map((r, i) => ({ r, i })).sort((x, y) => x.r.us - y.r.us || x.i - y.i);
  const head = pcapHeader({});
  let size = head.length;
  for (const { r } of sorted) size += 16 + r.data.length;
  const out = Buffer.allocUnsafe(size);
  head.copy(out, 0);
  let p = head.length;
  for (const { r } of sorted) {
    out.writeUInt32LE(T0 + Math.floor(r.us / 1e6), p);
    out.writeUInt32LE(r.us % 1e6, p + 4);
    out.writeUInt32LE(r.data.length, p + 8);
    out.writeUInt32LE(r.wireLen, p + 12);
    r.data.copy(out, p + 16);
    p += 16 + r.data.length;
  }
  return out;
}

async function analyzeFile(path: string, config: Record<string, unknown> = {}): Promise<Report> {
  const { report, warnings } = await analyzeCapture(path, buildConfig(config));
  assert.deepEqual(warnings, []);
  return report;
}

async function analyze(recs: readonly Rec[], config: Record<string, unknown> = {}): Promise<Report> {
  const dir = mkdtempSync(join(tmpdir(), 'detectors-volume-'));
  try {
    const path = join(dir, 'crafted.pcap');
    writeFileSync(path, pcapBytes(recs));
    return await analyzeFile(path, config);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const findings = (r: Report, type: string): Finding[] => r.findings.filter((f) => f.type === type);
/** Seconds from T0 to the start of a finding's window. */
const windowOf = (f: Finding): number => Date.parse(f.window.start) / 1000 - T0;
type Row = Record<string, unknown>;
const metric = (r: Report, id: string, i: number): Row => {
  const m = r.windows[i]?.metrics[id];
  assert.ok(m, `metrics.${id} in window ${i}`);
  return m;
};
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
const sum = (r: Report, id: string, key: string): number => r.windows.reduce((s, w) => s + ((w.metrics[id]?.[key] as number | undefined) ?? 0), 0);
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
const max = (r: Report, id: string, key: string): number => r.windows.reduce((s, w) => Math.max(s, (w.metrics[id]?.[key] as number | undefined) ?? 0), 0);
const rejected = (r: Report, reason: string): number =>
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  r.windows.reduce((s, w) => s + (((w.metrics['beaconing']?.['rejected'] as Row | undefined)?.[reason] as number | undefined) ?? 0), 0);
const ev = (f: Finding, key: string): number | string | boolean | null => {
  assert.ok(key in f.evidence, `evidence.${key}`);
  return f.evidence[key]!;
};

/** Deterministic pseudo-random numbers in [0, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 2 ** 32; };
}

/** `n` SYNs evenly over [start, start + seconds) to dst:dport, from `sources` rotating sources 100.64.x.y, none answered. */
function synFlood(n: number, seconds: number, sources: number, dst = '10.0.0.80', dport = 80, start = 0): Rec[] {
  const out: Rec[] = [];
  for (let i = 0; i < n; i++) {
    const s = i % sources;
    out.push(tcpAt(start + (i * seconds) / n, `100.64.${s >> 8}.${s & 255}`, 1024 + (i % 60000), dst, dport, SYN, 0, i * 7919));
  }
  return out;
}

/** A complete handshake (SYN, SYN/ACK, ACK) at `s`. */
function handshake(s: number, client: string, cport: number, server: string, sport: number, isn = 1000): Rec[] {
  return [
    tcpAt(s, client, cport, server, sport, SYN, 0, isn),
    tcpAt(s + 0.0005, server, sport, client, cport, SYN | ACK, 0, 5000, isn + 1),
    tcpAt(s + 0.001, client, cport, server, sport, ACK, 0, isn + 1, 5001),
  ];
}

/**
 * A TCP transfer of `bytes` from `from` to `to` (MSS-sized frames of `frame`
 * payload bytes, evenly over `seconds`), with a handshake opened by the
 * client and an ACK back every 4 frames.
 */
function transfer(opts: { client: string; cport: number; server: string; sport: number; upload: boolean; bytes: number; seconds: number; start?: number; frame?: number }): Rec[] {
  const { client, cport, server, sport, upload, bytes, seconds } = opts;
  const start = opts.start ?? 0;
  const frame = opts.frame ?? 64_000;
  const out = handshake(start, client, cport, server, sport);
  const frames = Math.ceil(bytes / frame);
  const [from, fport, to, tport] = upload ? [client, cport, server, sport] : [server, sport, client, cport];
  let seq = upload ? 1001 : 5001;
  for (let i = 0; i < frames; i++) {
    const len = Math.min(frame, bytes - i * frame);
    const t = start + 0.01 + (i * seconds) / frames;
    out.push(tcpAt(t, from, fport, to, tport, ACK | PSH, len, seq, 1));
    seq += len;
    if (i % 4 === 3 || i === frames - 1) out.push(tcpAt(t + 0.0001, to, tport, from, fport, ACK, 0, 1, seq));
  }
  return out;
}

/** One short TCP connection at `s`: handshake, request, response, FIN both ways. */
function connection(s: number, client: string, cport: number, server: string, sport: number, request: number, response: number): Rec[] {
  const isn = 100 + cport;
  return [
    ...handshake(s, client, cport, server, sport, isn),
    tcpAt(s + 0.002, client, cport, server, sport, ACK | PSH, request, isn + 1, 5001),
    tcpAt(s + 0.02, server, sport, client, cport, ACK | PSH, response, 5001, isn + 1 + request),
    tcpAt(s + 0.021, client, cport, server, sport, ACK | FIN, 0, isn + 1 + request, 5001 + response),
    tcpAt(s + 0.022, server, sport, client, cport, ACK | FIN, 0, 5001 + response, isn + 2 + request),
    tcpAt(s + 0.023, client, cport, server, sport, ACK, 0, isn + 2 + request, 5002 + response),
  ];
}

/** Connections every `period` s (+ jitter in [-jitter, +jitter]) from `start` over `seconds`. */
function periodic(opts: { client: string; server: string; sport: number; period: number; seconds: number; jitter?: number; start?: number; request?: number; response?: number; seed?: number }): Rec[] {
  const r = rng(opts.seed ?? 7);
  const out: Rec[] = [];
  const start = opts.start ?? 1;
  for (let i = 0, t = 0; t <= opts.seconds; i++, t = i * opts.period) {
    const j = ((r() * 2) - 1) * (opts.jitter ?? 0);
    const req = (opts.request ?? 300) + Math.floor(r() * 10);
    out.push(...connection(start + t + j, opts.client, 40000 + (i % 20000), opts.server, opts.sport, req, opts.response ?? 600));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Flood

test('flood: a SYN flood of 20,000 SYNs in 10 s from 500 sources, none completed, is a distributed SYN flood', async () => {
  const r = await analyze(synFlood(20_000, 10, 500));
  const f = findings(r, 'flood');
  assert.equal(f.length, 1, 'one finding for the ongoing flood (suppressFor 600 s)');
  const x = f[0]!;
  assert.equal(x.severity, 'critical');
  assert.equal(x.host, '10.0.0.80');
  assert.equal(ev(x, 'kind'), 'syn');
  // Judged on the sliding look-back at each 1 s bucket: it first reaches 500 SYN/s at t = 3 s ([-7 s, 3 s): 6,000 SYNs).
  assert.equal(windowOf(x), 0);
  assert.equal(ev(x, 'packets'), 6000);
  assert.equal(ev(x, 'ratePerSecond'), 600);
  assert.equal(ev(x, 'attempts'), 6000);
  assert.equal(ev(x, 'completed'), 0);
  assert.equal(ev(x, 'halfOpenRatio'), 1);
  assert.equal(ev(x, 'sources'), 500);
  assert.equal(ev(x, 'sourcesCapped'), false);
  assert.equal(ev(x, 'distributed'), true);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- checks the test's own constants, in case they are edited
  assert.ok(500 >= DISTRIBUTED);
  const top = String(ev(x, 'topSources')).split(', ');
  assert.equal(top.length, 5);
  assert.match(top[0]!, /^100\.64\.\d+\.\d+ \(12\)$/);
  assert.match(x.summary, /Distributed SYN flood against 10\.0\.0\.80: 600 SYN\/s over the last 10 s, 100 % of connection attempts never completed, from 500 sources \(DDoS\)/);
});

test('flood: past MAX_SOURCES sources the count is a lower bound ("at least")', async () => {
  const n = MAX_SOURCES + 200;
  const r = await analyze(synFlood(n * 2, 2, n), { analyzers: { flood: { synRate: 100 } } });
  const f = findings(r, 'flood');
  assert.equal(f.length, 1);
  assert.equal(ev(f[0]!, 'sources'), MAX_SOURCES);
  assert.equal(ev(f[0]!, 'sourcesCapped'), true);
  assert.match(f[0]!.summary, new RegExp(`from at least ${MAX_SOURCES.toLocaleString('en-US')} sources`));
  assert.ok(sum(r, 'flood', 'untrackedSources') >= 200);
});

test('flood: a UDP flood of 11,000 packets/s from 5 sources (default udpRate 10,000) is a warning', async () => {
  const recs: Rec[] = [];
  for (let i = 0; i < 110_000; i++) recs.push(udpAt(i / 11_000, `198.51.100.${1 + (i % 5)}`, 30000 + (i % 1000), '10.0.0.53', 9999, 512));
  const r = await analyze(recs);
  const f = findings(r, 'flood');
  assert.equal(f.length, 1);
  const x = f[0]!;
  assert.equal(ev(x, 'kind'), 'udp');
  assert.equal(x.host, '10.0.0.53');
  assert.equal(x.severity, 'warning');
  // Only the window's end sees 100,000 in one look-back: [0 s, 10 s) holds all 110,000.
  assert.equal(ev(x, 'packets'), 110_000);
  assert.equal(ev(x, 'ratePerSecond'), 11_000);
  assert.equal(ev(x, 'sources'), 5);
  assert.equal(ev(x, 'distributed'), false);
  assert.equal(ev(x, 'halfOpenRatio'), null);
});

test('flood: sources count per kind (a UDP flood from one host at a busy web server is no DDoS)', async () => {
  // Sources and top sources are those of the flood's own kind: before engine v2 they were every source
  // of the destination, so the 30 web clients made this "from 31 sources (DDoS)".
  const recs: Rec[] = [];
  for (let i = 0; i < 2000; i++) recs.push(udpAt(i / 200, '198.51.100.1', 5000, '10.0.0.80', 7000, 100));
  for (let i = 0; i < 300; i++) recs.push(...handshake(i / 30, `100.64.0.${i % 30}`, 10000 + i, '10.0.0.80', 443, i * 31));
  const f = findings(await analyze(recs, { analyzers: { flood: { udpRate: 100 } } }), 'flood');
  assert.equal(f.length, 1);
  const x = f[0]!;
  assert.equal(ev(x, 'kind'), 'udp');
  // First at the 5 s boundary: [-5 s, 5 s) holds 1,000 datagrams.
  assert.equal(ev(x, 'packets'), 1000);
  assert.equal(ev(x, 'sources'), 1);
  assert.equal(ev(x, 'distributed'), false);
  assert.equal(x.severity, 'warning');
  assert.equal(ev(x, 'topSources'), '198.51.100.1 (1000)');
});

test('flood: an ICMP echo flood counts the requests, not the victim\'s replies', async () => {
  const recs: Rec[] = [];
  for (let i = 0; i < 12_000; i++) {
    const t = i / 1200;
    recs.push(echoAt(t, '198.51.100.9', '10.0.0.7', 0x4242, i & 0xffff));
    recs.push(echoAt(t + 0.0002, '10.0.0.7', '198.51.100.9', 0x4242, i & 0xffff, true));
  }
  const r = await analyze(recs);
  const f = findings(r, 'flood');
  assert.equal(f.length, 1, 'the pinging host, getting 1,200 replies/s, is not flooded');
  assert.equal(ev(f[0]!, 'kind'), 'icmp');
  assert.equal(f[0]!.host, '10.0.0.7');
  assert.equal(ev(f[0]!, 'sources'), 1);
  assert.equal(f[0]!.severity, 'warning');
});

test('flood: thresholds are inclusive (SYN rate, half-open ratio, UDP and ICMP rates)', async () => {
  // 5,000 SYNs in [0, 10) is 500 SYN/s: a flood; 4,999 is not.
  assert.equal(findings(await analyze(synFlood(5000, 10, 50)), 'flood').length, 1);
  assert.equal(findings(await analyze(synFlood(4999, 10, 50)), 'flood').length, 0);
  // 5,000 SYNs of which 1,000 complete: half-open 0.8 (at halfOpenRatio); 1,001 completed: 0.7998.
  const withCompleted = (completed: number): Rec[] => {
    const out: Rec[] = [];
    for (let i = 0; i < 5000; i++) {
      const t = i / 500;
      const client = `100.64.0.${i % 50}`;
      if (i < completed) out.push(...handshake(t, client, 2000 + i, '10.0.0.80', 80, i * 13));
      else out.push(tcpAt(t, client, 2000 + i, '10.0.0.80', 80, SYN, 0, i * 13));
    }
    return out;
  };
  const at = findings(await analyze(withCompleted(1000)), 'flood');
  assert.equal(at.length, 1);
  assert.equal(ev(at[0]!, 'halfOpenRatio'), 0.8);
  assert.equal(ev(at[0]!, 'completed'), 1000);
  assert.equal(findings(await analyze(withCompleted(1001)), 'flood').length, 0);
  // UDP at udpRate 100: 1,000 datagrams in 10 s fire, 999 do not; ICMP at icmpRate 50: 500 / 499.
  const udpN = (n: number): Rec[] => Array.from({ length: n }, (_, i) => udpAt((i * 10) / n, '198.51.100.1', 5000, '10.0.0.53', 7000, 100));
  const cfgU = { analyzers: { flood: { udpRate: 100 } } };
  assert.equal(findings(await analyze(udpN(1000), cfgU), 'flood').length, 1);
  assert.equal(findings(await analyze(udpN(999), cfgU), 'flood').length, 0);
  const icmpN = (n: number): Rec[] => Array.from({ length: n }, (_, i) => echoAt((i * 10) / n, '198.51.100.1', '10.0.0.7', 1, i));
  const cfgI = { analyzers: { flood: { icmpRate: 50 } } };
  assert.equal(findings(await analyze(icmpN(500), cfgI), 'flood').length, 1);
  assert.equal(findings(await analyze(icmpN(499), cfgI), 'flood').length, 0);
});

test('flood: a busy web server completing 600 handshakes/s is not flooded', async () => {
  const recs: Rec[] = [];
  for (let i = 0; i < 6000; i++) recs.push(...handshake(i / 600, `100.64.${(i % 300) >> 8}.${i % 256}`, 10000 + i, '10.0.0.80', 443, i * 31));
  const r = await analyze(recs);
  assert.equal(findings(r, 'flood').length, 0);
});

test('flood: a fast UDP download (replies to the client\'s own requests) is not a flood', async () => {
  const recs: Rec[] = [];
  for (let i = 0; i < 15_000; i++) {
    recs.push(udpAt(i / 1500, '203.0.113.10', 443, '10.0.0.20', 50000, 1200));
    if (i % 10 === 0) recs.push(udpAt(i / 1500 + 0.0001, '10.0.0.20', 50000, '203.0.113.10', 443, 40));
  }
  recs.unshift(udpAt(0, '10.0.0.20', 50000, '203.0.113.10', 443, 1200)); // the client speaks first
  const cfg = { analyzers: { flood: { udpRate: 1000 } } };
  assert.equal(findings(await analyze(recs, cfg), 'flood').length, 0);
  // The same packets towards a server that never asked for them: a flood.
  const unsolicited = recs.slice(1).filter((x) => x.data.readUInt32BE(26) === addr('203.0.113.10'));
  const f = findings(await analyze(unsolicited, cfg), 'flood');
  assert.equal(f.length, 1);
  assert.equal(f[0]!.host, '10.0.0.20');
});

test('flood: loopback traffic is ignored unless networks.includeLoopback', async () => {
  const recs = synFlood(200, 2, 10, '127.0.0.1', 8080);
  const cfg = { analyzers: { flood: { synRate: 10 } } };
  assert.equal(findings(await analyze(recs, cfg), 'flood').length, 0);
  assert.equal(findings(await analyze(recs, { ...cfg, networks: { includeLoopback: true } }), 'flood').length, 1);
});

/** 20 SYN/s for 60 s: 2 sources for 30 s, then 4. */
function ongoingFlood(): Rec[] {
  const recs: Rec[] = [];
  for (let i = 0; i < 1200; i++) {
    const t = i / 20;
    const s = t < 30 ? i % 2 : i % 4;
    recs.push(tcpAt(t, `100.64.0.${s + 1}`, 1024 + i, '10.0.0.80', 80, SYN, 0, i * 104729));
  }
  return recs;
}

test('flood: an ongoing flood is reported once per suppressFor, then again with updated evidence', async () => {
  const r = await analyze(ongoingFlood(), { analyzers: { flood: { synRate: 10, suppressFor: 30 } } });
  const f = findings(r, 'flood');
  // First at the 5 s boundary (100 SYNs in the look-back), again at 35 s (>= 30 s later); the checks at
  // 10, 20, 30, 40, 50, 60 s and the in-between boundaries are suppressed.
  assert.equal(f.length, 2);
  assert.deepEqual(f.map(windowOf), [0, 30]);
  assert.equal(ev(f[0]!, 'ratePerSecond'), 10);
  assert.equal(ev(f[0]!, 'sources'), 2);
  assert.equal(ev(f[1]!, 'ratePerSecond'), 20);
  assert.equal(ev(f[1]!, 'sources'), 4);
  assert.notEqual(f[0]!.id, f[1]!.id);
  assert.ok(sum(r, 'flood', 'suppressed') >= 4);
  assert.equal(sum(r, 'flood', 'findings'), 2);
});

test('flood: a flood that stops and resumes after its destination expired stays suppressed', async () => {
  // 1,000 SYN/s for 2 s, silence (the destination expires at the 20 s window close), again at 40 s;
  // a datagram a second elsewhere keeps the windows between them closing.
  const recs = [...synFlood(2000, 2, 10), ...synFlood(2000, 2, 10, '10.0.0.80', 80, 40)];
  for (let t = 0; t < 45; t++) recs.push(udpAt(t + 0.5, '198.51.100.7', 5000, '10.0.0.9', 53, 10));
  const r = await analyze(recs, { analyzers: { flood: { synRate: 100 } } });
  assert.equal(findings(r, 'flood').length, 1);
  assert.ok(sum(r, 'flood', 'expired') >= 1);
  assert.ok(sum(r, 'flood', 'suppressed') >= 1);
});

test('flood: bounded destinations (maxKeys), evictions counted; idle destinations expire', async () => {
  const recs: Rec[] = [];
  for (let i = 0; i < 300; i++) recs.push(udpAt(i * 0.3, '198.51.100.1', 5000, `10.1.${i >> 8}.${i & 255}`, 7000, 10));
  const r = await analyze(recs, { analyzers: { flood: { maxKeys: 16 } } });
  for (let i = 0; i < r.windows.length; i++) assert.ok((metric(r, 'flood', i)['tracked'] as number) <= 16);
  const last = metric(r, 'flood', r.windows.length - 1);
  assert.equal(last['evicted'], 300 - 16 - sum(r, 'flood', 'expired'));
  assert.ok((last['evicted'] as number) > 0);
  // Without the cap, a destination silent for a look-back is dropped: ~34 destinations per 10 s, never all 300.
  const free = await analyze(recs);
  assert.ok(max(free, 'flood', 'tracked') <= 80, `tracked ${max(free, 'flood', 'tracked')}`);
  assert.ok(sum(free, 'flood', 'expired') > 200);
  assert.equal(metric(free, 'flood', free.windows.length - 1)['evicted'], 0);
});

// ---------------------------------------------------------------------------
// Exfiltration

test('exfiltration: an internal host uploading 200 MB to one external host on port 4444 over 5 minutes', async () => {
  const recs = transfer({ client: '10.0.0.7', cport: 51000, server: '203.0.113.50', sport: 4444, upload: true, bytes: 200e6, seconds: 300 });
  const r = await analyze(recs);
  const f = findings(r, 'exfiltration');
  assert.equal(f.length, 1, 'one finding: the upload lasts less than suppressFor');
  const x = f[0]!;
  // Sent bytes reach minBytes (100 MB) just before 150 s: judged at the end of the window [140 s, 150 s).
  const sentBy = (s: number): number => recs.filter((q) => q.us < s * 1e6 && q.data.readUInt32BE(26) === addr('10.0.0.7')).reduce((a, q) => a + q.wireLen, 0);
  const recvBy = (s: number): number => recs.filter((q) => q.us < s * 1e6 && q.data.readUInt32BE(26) === addr('203.0.113.50')).reduce((a, q) => a + q.wireLen, 0);
  assert.ok(sentBy(140) < 100e6 && sentBy(150) >= 100e6);
  assert.equal(windowOf(x), 140);
  assert.equal(ev(x, 'sentBytes'), sentBy(150));
  assert.equal(ev(x, 'receivedBytes'), recvBy(150));
  assert.equal(ev(x, 'source'), '10.0.0.7');
  assert.equal(ev(x, 'destination'), '203.0.113.50');
  assert.equal(ev(x, 'port'), 4444);
  assert.equal(ev(x, 'unusualPort'), true);
  assert.equal(x.severity, 'warning');
  assert.ok((ev(x, 'ratio') as number) > 1000);
  assert.equal(x.host, '10.0.0.7');
  assert.match(x.summary, /^10\.0\.0\.7 sent 100\.\d MB to external host 203\.0\.113\.50 \(port 4444, unusual\) over the last 600 s/);
});

test('exfiltration: the same upload on a common port (443) is info; ten times minBytes to an unusual port is critical', async () => {
  const common = await analyze(transfer({ client: '10.0.0.7', cport: 51000, server: '203.0.113.50', sport: 443, upload: true, bytes: 120e6, seconds: 60 }));
  const f = findings(common, 'exfiltration');
  assert.equal(f.length, 1);
  assert.equal(f[0]!.severity, 'info');
  assert.equal(ev(f[0]!, 'unusualPort'), false);
  const big = await analyze(transfer({ client: '10.0.0.7', cport: 51000, server: '203.0.113.50', sport: 4444, upload: true, bytes: 1.2e9, seconds: 120 }),
    { analyzers: { exfiltration: { suppressFor: 30 } } });
  const g = findings(big, 'exfiltration');
  assert.ok(g.length >= 2, 'suppressFor 30 s: re-reported as it grows');
  assert.equal(g[0]!.severity, 'warning');
  assert.equal(g[g.length - 1]!.severity, 'critical');
  assert.ok((ev(g[g.length - 1]!, 'sentBytes') as number) > (ev(g[0]!, 'sentBytes') as number));
});

test('exfiltration: downloads, balanced exchanges, internal copies and public servers are not exfiltration', async () => {
  // A 200 MB download by an internal client.
  const download = transfer({ client: '10.0.0.7', cport: 51000, server: '203.0.113.50', sport: 443, upload: false, bytes: 200e6, seconds: 120 });
  // 150 MB up, 20 MB down: ratio 7.5 < minRatio 10.
  const balanced = [
    ...transfer({ client: '10.0.0.8', cport: 51000, server: '203.0.113.51', sport: 8443, upload: true, bytes: 150e6, seconds: 120 }),
    ...transfer({ client: '10.0.0.8', cport: 51001, server: '203.0.113.51', sport: 8443, upload: false, bytes: 20e6, seconds: 120 }),
  ];
  // Internal to internal bulk copy.
  const internal = transfer({ client: '10.0.0.9', cport: 51000, server: '10.0.5.9', sport: 445, upload: true, bytes: 200e6, seconds: 120 });
  // An external client downloading 200 MB from an internal web server (the connection came from outside).
  const served = transfer({ client: '198.51.100.23', cport: 51000, server: '10.0.0.10', sport: 443, upload: false, bytes: 200e6, seconds: 120 });
  const r = await analyze([...download, ...balanced, ...internal, ...served]);
  assert.equal(findings(r, 'exfiltration').length, 0);
  // The balanced pair was judged on its bytes: it passes minBytes, fails the ratio.
  assert.ok(max(r, 'exfiltration', 'tracked') >= 2);
});

test('exfiltration: thresholds are inclusive (minBytes, minRatio)', async () => {
  const cfg = { analyzers: { exfiltration: { minBytes: 1_000_000, minRatio: 10 } } };
  // UDP (no handshake bytes): 20 datagrams of 50,000 bytes on the wire = 1,000,000 sent; `received` back.
  const run = async (lastUp: number, received: number[]): Promise<Finding[]> => {
    const recs: Rec[] = [];
    for (let i = 0; i < 20; i++) recs.push(udpAt(i * 0.4, '10.0.0.9', 50000, '198.51.100.9', 7000, (i === 19 ? lastUp : 50_000) - 42));
    received.forEach((n, i) => recs.push(udpAt(0.2 + i, '198.51.100.9', 7000, '10.0.0.9', 50000, n - 42)));
    return findings(await analyze(recs, cfg), 'exfiltration');
  };
  const at = await run(50_000, [50_000, 50_000]);
  assert.equal(at.length, 1);
  assert.equal(ev(at[0]!, 'sentBytes'), 1_000_000);
  assert.equal(ev(at[0]!, 'receivedBytes'), 100_000);
  assert.equal(ev(at[0]!, 'ratio'), 10);
  assert.equal((await run(49_999, [50_000, 50_000])).length, 0, '999,999 bytes sent');
  assert.equal((await run(50_000, [50_000, 50_001])).length, 0, 'ratio just under 10');
});

test('exfiltration: bounded pairs (maxKeys), evictions counted', async () => {
  const recs: Rec[] = [];
  for (let i = 0; i < 50; i++) recs.push(udpAt(i * 0.1, '10.0.0.9', 50000, `198.51.100.${i + 1}`, 7000, 1000));
  const r = await analyze(recs, { analyzers: { exfiltration: { maxKeys: 8 } } });
  const m = metric(r, 'exfiltration', 0);
  assert.equal(m['tracked'], 8);
  assert.equal(m['evicted'], 42);
  assert.equal(m['evictedInWindow'], 42);
});

// ---------------------------------------------------------------------------
// Beaconing

const BEACON = { client: '10.0.0.66', server: '198.51.100.77', sport: 8443, period: 30, seconds: 1200, jitter: 0.5 };

test('beaconing: TCP connections every 30 s (±0.5 s) with similar sizes for 20 minutes', async () => {
  const r = await analyze(periodic(BEACON));
  const f = findings(r, 'beaconing');
  // Fires at the 10th connection (minEvents, 270.2 s); reported again once suppressFor (600 s) has passed,
  // at the window close after 870 s (900 s), with more events, a longer observation and a higher score.
  assert.deepEqual(f.map(windowOf), [270, 900]);
  const x = f[0]!;
  assert.equal(ev(x, 'source'), '10.0.0.66');
  assert.equal(ev(x, 'destination'), '198.51.100.77');
  assert.equal(ev(x, 'port'), 8443);
  assert.equal(ev(x, 'proto'), 'tcp');
  assert.equal(ev(x, 'events'), 10);
  assert.ok(Math.abs((ev(x, 'periodSeconds') as number) - 30) < 0.1);
  assert.ok((ev(x, 'intervalCv') as number) < 0.02);
  assert.ok((ev(x, 'sizeCv') as number) < 0.01);
  assert.ok((ev(x, 'jitterSeconds') as number) > 0.1 && (ev(x, 'jitterSeconds') as number) < 0.5);
  assert.ok((ev(x, 'maxDeviationSeconds') as number) <= 1);
  assert.equal(ev(x, 'internalDestination'), false);
  const score = ev(x, 'score') as number;
  assert.ok(score >= 80 && score <= 100, `score ${score}`);
  assert.equal(x.severity, 'warning');
  const y = f[1]!;
  assert.equal(ev(y, 'events'), 31);
  assert.ok((ev(y, 'observedSeconds') as number) > 900);
  assert.ok((ev(y, 'score') as number) > score);
  // Going on for another 30 s changes nothing before 1230 s: the next report is due after 1500 s.
  const longer = findings(await analyze(periodic({ ...BEACON, seconds: 1230 })), 'beaconing');
  assert.deepEqual(longer.map(windowOf), [270, 900]);
  assert.deepEqual(longer[0]!.evidence, x.evidence);
});

test('beaconing: the shared DECT capture (10 connections every ~2.18 s) is a beacon', async () => {
  const path = join(SHARED_PCAPS, 'wssample_dect_new_rfp_on_wire.pcapng');
  const r = await analyzeFile(path);
  // 10 connections to 10.162.0.2:16321 over 19.6 s: minEvents 10, very regular intervals and equal sizes.
  const found = findings(r, 'beaconing');
  assert.equal(found.length, 1);
  const x = found[0]!;
  assert.equal(ev(x, 'destination'), '10.162.0.2');
  assert.equal(ev(x, 'port'), 16321);
  assert.equal(ev(x, 'events'), 10);
  assert.ok(Math.abs((ev(x, 'periodSeconds') as number) - 2.18) < 0.01);
  assert.ok((ev(x, 'intervalCv') as number) < 0.02);
  assert.equal(ev(x, 'sizeCv'), 0);
  assert.equal(findings(r, 'flood').length + findings(r, 'exfiltration').length, 0);
  // With one event fewer required than it has, and one more than it has, the minEvents rule decides.
  assert.equal(findings(await analyzeFile(path, { analyzers: { beaconing: { minEvents: 11 } } }), 'beaconing').length, 0);
});

test('beaconing: a Prometheus-like scraper every 15 s to internal targets is monitoring; the same to an external host is judged', async () => {
  const scrape = (server: string, seed: number): Rec[] => periodic({ client: '10.0.0.2', server, sport: 9100, period: 15, seconds: 1200, jitter: 0.05, request: 200, response: 4000, seed });
  const r = await analyze([...scrape('10.0.1.1', 1), ...scrape('10.0.1.2', 2), ...scrape('10.0.1.3', 3)]);
  assert.equal(findings(r, 'beaconing').length, 0);
  assert.ok(rejected(r, 'monitoring') >= 3);
  assert.equal(rejected(r, 'intervals') + rejected(r, 'sizes'), 0);
  const out = findings(await analyze(scrape('198.51.100.15', 4)), 'beaconing');
  assert.equal(out.length, 2, 'reported, then once more after suppressFor (600 s) within the 20 minutes');
  assert.ok(Math.abs((ev(out[0]!, 'periodSeconds') as number) - 15) < 0.01);
  assert.equal(ev(out[0]!, 'internalDestination'), false);
});

test('beaconing: NTP every 64 s on port 123 is ignored; the same UDP exchange on port 1234 is a beacon', async () => {
  const ntp = (dport: number): Rec[] => {
    const out: Rec[] = [];
    for (let t = 1; t <= 1200; t += 64) {
      out.push(udpAt(t, '10.0.0.5', 40123, '162.159.200.1', dport, 48));
      out.push(udpAt(t + 0.02, '162.159.200.1', dport, '10.0.0.5', 40123, 48));
    }
    return out;
  };
  const r = await analyze(ntp(123));
  assert.equal(findings(r, 'beaconing').length, 0);
  assert.ok(sum(r, 'beaconing', 'ignoredPortFlows') >= 1);
  assert.equal(sum(r, 'beaconing', 'candidates'), 0);
  const f = findings(await analyze(ntp(1234)), 'beaconing');
  assert.equal(f.length, 1);
  assert.equal(ev(f[0]!, 'proto'), 'udp');
  assert.equal(ev(f[0]!, 'periodSeconds'), 64);
  assert.equal(ev(f[0]!, 'intervalCv'), 0);
  assert.equal(ev(f[0]!, 'meanBytes'), 2 * 90);
});

test('beaconing: irregular connections are not beacons', async () => {
  const r = await analyze(periodic({ ...BEACON, jitter: 12, start: 20 }));
  assert.equal(findings(r, 'beaconing').length, 0);
  assert.ok(rejected(r, 'intervals') >= 1);
  const sizes: Rec[] = [];
  const g = rng(3);
  for (let i = 0; i <= 40; i++) sizes.push(...connection(1 + i * 30, '10.0.0.66', 40000 + i, '198.51.100.77', 8443, 100 + Math.floor(g() * 20_000), 600));
  const s = await analyze(sizes);
  assert.equal(findings(s, 'beaconing').length, 0);
  assert.ok(rejected(s, 'sizes') >= 1);
});

test('beaconing: thresholds (minEvents, interval CV at maxIntervalCv)', async () => {
  // lookback 200 s: 100 s of observation needed. 20 s period to an external host: 9 events fall short of minEvents 10, 10 fire.
  const cfg = { analyzers: { beaconing: { lookback: 200 } } };
  const run = async (events: number): Promise<Finding[]> =>
    findings(await analyze(periodic({ ...BEACON, period: 20, seconds: 20 * (events - 1), jitter: 0 }), cfg), 'beaconing');
  assert.equal((await run(9)).length, 0);
  assert.equal((await run(10)).length, 1);
  // Intervals alternating 9 s and 11 s: CV exactly 0.1 (fires at maxIntervalCv 0.1); 8.99 / 11.01: just over.
  const rules = { lookback: 1200, minEvents: 10, maxIntervalCv: 0.1, maxSizeCv: 0.25, ignorePeriods: [] };
  const times = (a: number, b: number): number[] => Array.from({ length: 81 }, (_, i) => Math.floor(i / 2) * (a + b) + (i % 2) * a);
  const sizes = new Array<number>(80).fill(500);
  const at = judgeBeacon(times(9, 11), sizes, 800, rules, false);
  assert.equal(at.stats.intervalCv, 0.1);
  assert.equal(at.fire, true);
  const over = judgeBeacon(times(8.99, 11.01), sizes, 800, rules, false);
  assert.equal(over.fire, false);
  assert.equal(over.reason, 'intervals');
  assert.equal(judgeBeacon(times(9, 11), sizes, 800, { ...rules, ignorePeriods: [10.5] }, true).reason, 'monitoring');
  assert.equal(judgeBeacon(times(9, 11), sizes, 800, { ...rules, ignorePeriods: [10.5] }, false).fire, true);
});

test('beaconing: bounded keys (maxKeys), evictions counted', async () => {
  const recs: Rec[] = [];
  for (let i = 0; i < 50; i++) recs.push(...connection(i * 0.1, '10.0.0.66', 40000 + i, `198.51.100.${i + 1}`, 8443, 100, 100));
  const r = await analyze(recs, { analyzers: { beaconing: { maxKeys: 8 } } });
  const m = metric(r, 'beaconing', 0);
  assert.equal(m['tracked'], 8);
  assert.equal(m['evicted'], 42);
});

test('beaconing: past 8 events a key takes a 64-event ring from a pool (one per 8 keys, at least 16); when all are taken, the key holding the least recently used ring is dropped', async () => {
  // maxKeys 256: 32 rings. 40 destinations, 12 connections each, every 20 s: at the 9th round keys 1-32 take the
  // 32 rings, then keys 33-40 take those of keys 1-8 (dropped, counted as evicted; they start over with 1-3 events).
  const recs: Rec[] = [];
  for (let round = 0; round < 12; round++) {
    for (let d = 0; d < 40; d++) recs.push(...connection(1 + round * 20 + d * 0.1, '10.0.0.66', 40000 + round * 40 + d, `198.51.100.${d + 1}`, 8443, 300, 600));
  }
  const r = await analyze(recs, { analyzers: { beaconing: { maxKeys: 256 } }, report: { maxFindingsPerType: 100 } });
  const f = findings(r, 'beaconing');
  assert.equal(f.length, 32);
  assert.deepEqual(f.map((x) => String(ev(x, 'destination'))).sort(), Array.from({ length: 32 }, (_, d) => `198.51.100.${d + 9}`).sort());
  assert.equal(sum(r, 'beaconing', 'evictedInWindow'), 8);
  assert.equal(metric(r, 'beaconing', r.windows.length - 1)['tracked'], 40);
});

// ---------------------------------------------------------------------------
// Shared captures, determinism

const BENIGN = [
  'ppa_http_espn_fail.pcapng', 'ppa1e_email-troubles.pcap', 'wssample_dns.cap', 'zeek_tcp_ssh-dups.pcap', 'ndpi_1kxun.pcap',
  'pcpp_sll.pcap', 'ppa_synscan.pcapng', 'ppa1e_evilprogram.pcap', 'zeek_ftp_bruteforce.pcap', 'arkime_v6.pcap',
  'ndpi_dns-tunnel-iodine.pcap', 'arkime_wireshark-retrans.pcap',
];

test('shared captures: no flood, exfiltration or beaconing findings in ordinary traffic (and a 1,000-port scan is no flood)', async () => {
  for (const name of BENIGN) {
    const r = await analyzeFile(join(SHARED_PCAPS, name));
    for (const type of ['flood', 'exfiltration', 'beaconing']) assert.equal(findings(r, type).length, 0, `${type} in ${name}`);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    for (const id of ['flood', 'exfiltration', 'beaconing']) assert.ok(r.windows.every((w) => w.metrics[id] !== undefined), `${id} metrics in ${name}`);
  }
});

test('determinism: the same input gives the same findings and ids', async () => {
  const recs = [...ongoingFlood(), ...periodic({ ...BEACON, seconds: 700 }),
    ...transfer({ client: '10.0.0.7', cport: 51000, server: '203.0.113.50', sport: 4444, upload: true, bytes: 120e6, seconds: 60 })];
  const cfg = { analyzers: { flood: { synRate: 10, suppressFor: 30 } } };
  const a = await analyze(recs, cfg);
  const b = await analyze(recs, cfg);
  const mine = (r: Report): Finding[] => r.findings.filter((f) => ['flood', 'exfiltration', 'beaconing'].includes(f.type));
  assert.deepEqual(mine(a).map((f) => f.type).sort(), ['beaconing', 'exfiltration', 'flood', 'flood']);
  assert.deepEqual(mine(a), mine(b));
  assert.deepEqual(a.windows.map((w) => [w.metrics['flood'], w.metrics['exfiltration'], w.metrics['beaconing']]),
    b.windows.map((w) => [w.metrics['flood'], w.metrics['exfiltration'], w.metrics['beaconing']]));
});

test('flow-sharded workers: 2 and 4 workers give one pipeline\'s report, a flood\'s sources spread over every worker', async () => {
  // A destination's SYN flood comes from host pairs in every worker (judged on the coordinator from their merged
  // entries); in the same window a UDP flood from 5 sources, reported first (its boundary comes earlier), which
  // the per-type cap (report.maxFindingsPerType 1) keeps; a flood past MAX_SOURCES (its lower bound); a beacon
  // and an upload (one host pair each); a datagram a second elsewhere keeps the windows closing.
  // flows.endedConversations remembers every flow: its overflow (the flow table's, counted in
  // conversationsForgotten) differs between one table and one per worker.
  const recs = [...synFlood(6000, 10, 500), ...synFlood((MAX_SOURCES + 200) * 2, 2, MAX_SOURCES + 200, '10.0.0.81', 443, 30),
    ...periodic({ ...BEACON, seconds: 400 }),
    ...transfer({ client: '10.0.0.7', cport: 51000, server: '203.0.113.50', sport: 4444, upload: true, bytes: 120e6, seconds: 60 })];
  for (let i = 0; i < 2000; i++) recs.push(udpAt(i / 1000, `198.51.100.${20 + (i % 5)}`, 6000 + (i % 5), '10.0.0.54', 7777, 100));
  for (let t = 0; t < 400; t++) recs.push(udpAt(t + 0.5, '198.51.100.7', 5000, '10.0.0.9', 53, 10));
  const only = ['flood', 'exfiltration', 'beaconing'];
  const analyzers = { ...Object.fromEntries(Object.keys(buildConfig({}).analyzers).map((id) => [id, { enabled: only.includes(id) }])), flood: { enabled: true, synRate: 100, udpRate: 100, suppressFor: 30 } };
  const dir = mkdtempSync(join(tmpdir(), 'detectors-volume-'));
  try {
    const path = join(dir, 'crafted.pcap');
    writeFileSync(path, pcapBytes(recs));
    const json = (r: Report): string => [...reportJsonChunks(r)].join('');
    for (const maxFindingsPerType of [20, 1]) {
      const config = buildConfig({ flows: { endedConversations: 1 << 20 }, report: { maxFindingsPerType }, analyzers });
      const one = (await analyzeCapture(path, config)).report;
      const floods = findings(one, 'flood');
      if (maxFindingsPerType > 1) {
        assert.deepEqual(one.findings.map((f) => f.type).sort(), ['beaconing', 'exfiltration', 'flood', 'flood', 'flood']);
        const capped = floods.find((f) => f.host === '10.0.0.81')!;
        assert.equal(capped.evidence['sources'], MAX_SOURCES);
        assert.equal(capped.evidence['sourcesCapped'], true);
        assert.deepEqual(floods.filter((f) => windowOf(f) === 0).map((f) => f.evidence['kind']), ['udp', 'syn'], 'listed where each was judged in the input');
      } else {
        assert.deepEqual(floods.filter((f) => windowOf(f) === 0).map((f) => f.evidence['kind']), ['udp']);
      }
      for (const workers of [2, 4]) {
        const many = (await analyzeCaptureSharded(path, config, { workers, inProcess: true })).report;
        assert.equal(json(many), json(one), `${workers} workers, maxFindingsPerType ${maxFindingsPerType}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
