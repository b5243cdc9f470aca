/**
 * Security detectors port_scan, brute_force and lateral_movement: crafted
 * captures for what must fire (vertical, horizontal, UDP, distributed scans,
 * SSH brute force, lateral movement on SMB/RDP), what must stay silent
 * (ordinary web, SSH and Kubernetes-like traffic, late DNS replies answered by
 * ICMP port unreachable, loopback), threshold boundaries, suppression,
 * determinism and bounded state; shared captures for real scans and brute
 * force and for benign traffic.
 *
 * Crafted captures start at BASE, a multiple of 10^6 (the decoder's time base)
 * and of the window length, so t = 0 opens window 0 = [0, 10).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/analyze/index.js';
import { analyzeCaptureSharded } from '../agent/analyze/analyze-sharded.js';
import { shardHash, shardOf } from '../agent/decode/shard-hash.js';
import { isoTime } from '../common/address.js';
import { buildConfig } from '../common/config.js';
import { reportJsonChunks, type Finding, type Report } from '../common/report.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { TcpFlags, ethernet, icmpError, icmpv6Error, ipv4, ipv6, pcapFile, tcp, udp, type PcapRecordSpec } from './helpers/capture-writer.js';

const { SYN, ACK, FIN, RST, PSH, URG } = TcpFlags;
const BASE = 1_700_000_000;
const DETECTORS = ['port_scan', 'brute_force', 'lateral_movement'] as const;

const dir = mkdtempSync(join(tmpdir(), 'detectors-scan-'));
after(() => { if (!process.env['KEEP_TEST_CAPTURES']) rmSync(dir, { recursive: true, force: true }); });

// ---------------------------------------------------------------------------
// Crafted captures

interface SessionOptions {
  /** Seconds from the SYN to the client's FIN. */
  duration?: number;
  serverBytes?: number;
  clientBytes?: number;
}

class Capture {
  private readonly records: Array<{ t: number; data: Buffer }> = [];
  private isn = 1000;

  private nextIsn(): number {
    this.isn = (this.isn + 7_919_011) >>> 0;
    return this.isn;
  }

  segment(t: number, src: string, dst: string, sport: number, dport: number, flags: number, seq: number, ack: number, len = 0): this {
    const payload = tcp({ srcPort: sport, dstPort: dport, seq: seq >>> 0, ack: ack >>> 0, flags, payload: Buffer.alloc(len, 0x61) });
    return this.push(t, ip(src, dst, 6, payload));
  }

  push(t: number, packet: Buffer): this {
    const etherType = packet[0]! >> 4 === 6 ? 0x86dd : 0x0800;
    this.records.push({ t, data: ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', etherType, packet) });
    return this;
  }

  /** A SYN answered by RST/ACK: a closed port. */
  refused(t: number, c: string, cp: number, s: string, sp: number): this {
    const isn = this.nextIsn();
    return this.segment(t, c, s, cp, sp, SYN, isn, 0).segment(t + 0.0005, s, c, sp, cp, RST | ACK, 0, isn + 1);
  }

  /** A SYN nobody answers: a filtered port. */
  unanswered(t: number, c: string, cp: number, s: string, sp: number): this {
    return this.segment(t, c, s, cp, sp, SYN, this.nextIsn(), 0);
  }

  /** A complete connection: handshake, a request and a response, FINs from both sides. */
  session(t: number, c: string, cp: number, s: string, sp: number, o: SessionOptions = {}): this {
    const duration = o.duration ?? 0.05;
    const clientBytes = o.clientBytes ?? 100;
    const serverBytes = o.serverBytes ?? 500;
    let cs = this.nextIsn();
    let ss = this.nextIsn();
    this.segment(t, c, s, cp, sp, SYN, cs, 0);
    this.segment(t + 0.001, s, c, sp, cp, SYN | ACK, ss, cs + 1);
    cs++; ss++;
    this.segment(t + 0.002, c, s, cp, sp, ACK, cs, ss);
    this.segment(t + 0.003, c, s, cp, sp, PSH | ACK, cs, ss, clientBytes);
    cs += clientBytes;
    let at = t + 0.004;
    for (let left = serverBytes; left > 0; left -= 1400) {
      const n = Math.min(1400, left);
      this.segment(at, s, c, sp, cp, PSH | ACK, ss, cs, n);
      ss += n;
      at += 0.0001;
    }
    this.segment(at, c, s, cp, sp, ACK, cs, ss);
    const end = Math.max(t + duration, at + 0.001);
    this.segment(end, c, s, cp, sp, FIN | ACK, cs, ss);
    this.segment(end + 0.0005, s, c, sp, cp, FIN | ACK, ss, cs + 1);
    return this.segment(end + 0.001, c, s, cp, sp, ACK, cs + 1, ss + 1);
  }

  /** A UDP datagram answered by ICMP port unreachable from its destination, quoting it. */
  udpUnreachable(t: number, c: string, cp: number, s: string, sp: number): this {
    const datagram = ip(c, s, 17, udp({ srcPort: cp, dstPort: sp, payload: Buffer.from('probe') }));
    this.push(t, datagram);
    const error = c.includes(':') ? ip(s, c, 58, icmpv6Error(1, 4, datagram)) : ip(s, c, 1, icmpError(3, 3, datagram.subarray(0, 28)));
    return this.push(t + 0.0005, error);
  }

  /** A UDP datagram nothing answers (no reply, no ICMP). */
  udpSilent(t: number, c: string, cp: number, s: string, sp: number): this {
    return this.push(t, ip(c, s, 17, udp({ srcPort: cp, dstPort: sp, payload: Buffer.from('probe') })));
  }

  /** Only the ICMP port unreachable (the datagram it quotes was not captured). */
  unreachableOnly(t: number, quotedSrc: string, quotedSrcPort: number, quotedDst: string, quotedDstPort: number): this {
    const datagram = ipv4({ src: quotedSrc, dst: quotedDst, proto: 17, payload: udp({ srcPort: quotedSrcPort, dstPort: quotedDstPort, payload: Buffer.alloc(40) }) });
    return this.push(t, ipv4({ src: quotedDst, dst: quotedSrc, proto: 1, payload: icmpError(3, 3, datagram.subarray(0, 28)) }));
  }

  /** A UDP datagram (unrelated traffic that moves the clock). */
  datagram(t: number, c: string, s: string): this {
    return this.push(t, ipv4({ src: c, dst: s, proto: 17, payload: udp({ srcPort: 50000, dstPort: 9999, payload: Buffer.from('tick') }) }));
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

/** IPv4 or IPv6 by the form of the addresses. */
function ip(src: string, dst: string, proto: number, payload: Buffer): Buffer {
  return src.includes(':') ? ipv6({ src, dst, proto, payload }) : ipv4({ src, dst, proto, payload });
}

// ---------------------------------------------------------------------------
// Report access

type Json = Record<string, unknown>;

async function analyze(path: string, config: Record<string, unknown> = {}): Promise<Report> {
  const { report, warnings } = await analyzeCapture(path, buildConfig({ report: { maxFindingsPerType: 1000 }, ...config }));
  assert.deepEqual(warnings, []);
  return report;
}

const findings = (r: Report, type: string): Finding[] => r.findings.filter((f) => f.type === type);
const detectorFindings = (r: Report): Finding[] => r.findings.filter((f) => (DETECTORS as readonly string[]).includes(f.type));
const inWindow = (f: Finding, k: number): boolean => f.window.start === isoTime(BASE + 10 * k);
const pcap = (name: string): string => join(SHARED_PCAPS, name);

/** A number at a dotted path. */
function num(value: unknown, path: string): number {
  let v = value;
  for (const key of path.split('.')) {
    assert.ok(typeof v === 'object' && v !== null, `${path}: no ${key}`);
    v = (v as Json)[key];
  }
  assert.equal(typeof v, 'number', `${path} is not a number`);
  return v as number;
}

/** Sum over the windows of one analyzer's metric. */
const total = (r: Report, id: string, path: string): number => r.windows.reduce((s, w) => s + num(w.metrics[id], path), 0);
const maxOver = (r: Report, id: string, path: string): number => r.windows.reduce((s, w) => Math.max(s, num(w.metrics[id], path)), 0);

function one(r: Report, type: string): Finding {
  const list = findings(r, type);
  assert.equal(list.length, 1, `one ${type} finding, got ${list.length}: ${list.map((f) => f.summary).join(' | ')}`);
  return list[0]!;
}

function silent(r: Report, what: string): void {
  const list = detectorFindings(r);
  assert.deepEqual(list.map((f) => `${f.type}: ${f.summary}`), [], `${what}: no detector findings`);
}

/** `n` ports from `first` on one host, answered by RSTs, `rate` per second from `t0`. */
function verticalRefused(cap: Capture, src: string, dst: string, n: number, rate: number, t0 = 0, first = 1): Capture {
  for (let i = 0; i < n; i++) cap.refused(t0 + i / rate, src, 40000 + (i % 20000), dst, first + i);
  return cap;
}

// ---------------------------------------------------------------------------
// port_scan: fires

test('port_scan: a vertical SYN scan of 1,000 ports on one host answered by RSTs', async () => {
  const r = await analyze(verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 1000, 100).write('vertical-1000.pcap'));
  const f = one(r, 'port_scan');
  assert.ok(inWindow(f, 0));
  assert.equal(f.severity, 'critical'); // 10x minPorts
  assert.equal(f.host, '203.0.113.5');
  const { probesPerSecond, ...rest } = f.evidence;
  assert.deepEqual(rest, {
    kind: 'vertical', source: '203.0.113.5', sourceInternal: false, target: '10.0.0.5', targetInternal: true, port: null, ports: 1000, hosts: 1,
    portsOnTarget: 1000, hostsOnPort: 1, probes: 1000, attempts: 1000, failureRatio: 1,
    samplePorts: '1,2,3,4,5,6,7,8,9,10', sampleHosts: '10.0.0.5', probeKinds: 'syn 1000', capped: false, lookbackSeconds: 60,
    thresholds: 'portsOnTarget 1000 >= minPorts 100; failureRatio 1 >= minFailureRatio 0.8',
  });
  assert.ok(Math.abs(Number(probesPerSecond) - 100) < 0.2, `about 100 probes/s: ${String(probesPerSecond)}`);
  assert.equal(total(r, 'port_scan', 'attempts'), 1000);
  assert.equal(total(r, 'port_scan', 'outcomes.refused'), 1000);
  assert.equal(findings(r, 'brute_force').length, 0, 'one attempt per service is no brute force');
  assert.equal(findings(r, 'lateral_movement').length, 0, 'an external source is no lateral movement');
});

test('port_scan: a horizontal scan of port 445 over 100 hosts, unanswered (settled 5 s after each SYN)', async () => {
  const cap = new Capture();
  for (let i = 0; i < 100; i++) cap.unanswered(i * 0.05, '198.51.100.7', 50000 + i, `10.1.0.${i + 1}`, 445);
  cap.datagram(20, '10.9.9.9', '10.9.9.8'); // the clock moves on: the probes are settled by their timeout, not by the end of input
  const r = await analyze(cap.write('horizontal-445.pcap'));
  const f = one(r, 'port_scan');
  assert.ok(inWindow(f, 0));
  assert.equal(f.severity, 'warning');
  assert.equal(f.evidence['kind'], 'horizontal');
  assert.equal(f.evidence['port'], 445);
  assert.equal(f.evidence['target'], null);
  assert.equal(f.evidence['hostsOnPort'], 100);
  assert.equal(f.evidence['hosts'], 100);
  assert.equal(f.evidence['ports'], 1);
  assert.equal(f.evidence['probes'], 100);
  assert.equal(f.evidence['failureRatio'], 1);
  assert.equal(f.evidence['sampleHosts'], '10.1.0.1,10.1.0.10,10.1.0.100,10.1.0.11,10.1.0.12,10.1.0.13,10.1.0.14,10.1.0.15,10.1.0.16,10.1.0.17');
  assert.equal(total(r, 'port_scan', 'outcomes.unanswered'), 100);
  assert.equal(findings(r, 'lateral_movement').length, 0);
});

test('port_scan: UDP probes answered by ICMP port unreachable, attributed through the quoted header', async () => {
  const cap = new Capture();
  for (let i = 0; i < 150; i++) cap.udpUnreachable(i * 0.02, '203.0.113.77', 45000, '10.0.0.7', i + 1);
  const r = await analyze(cap.write('udp-scan.pcap'));
  const f = one(r, 'port_scan');
  assert.equal(f.evidence['kind'], 'vertical');
  assert.equal(f.evidence['source'], '203.0.113.77');
  assert.equal(f.evidence['target'], '10.0.0.7');
  assert.equal(f.evidence['ports'], 150);
  assert.equal(f.evidence['probes'], 150);
  assert.equal(f.evidence['failureRatio'], 1);
  assert.equal(total(r, 'port_scan', 'outcomes.udpUnreachable'), 150);
});

test('port_scan: unanswered UDP datagrams to many ports are failed probes (Linux rate-limits its port unreachables)', async () => {
  // nmap -sU against Linux: one ICMP port unreachable a second at most, the other probes get nothing back.
  const cap = new Capture();
  for (let i = 0; i < 40; i++) cap.udpSilent(i * 0.05, '10.0.0.5', 45000, '10.0.0.7', 100 + i);
  for (let i = 0; i < 5; i++) cap.udpUnreachable(i * 1.0, '10.0.0.5', 45000, '10.0.0.7', 1000 + i);
  cap.datagram(10, '10.0.0.99', '10.0.0.98');
  const r = await analyze(cap.write('udp-unanswered.pcap'));
  const f = one(r, 'port_scan');
  assert.equal(f.severity, 'warning');
  assert.equal(f.evidence['kind'], 'small');
  assert.equal(f.evidence['source'], '10.0.0.5');
  assert.equal(f.evidence['ports'], 45);
  // Each answered datagram's flow also went unanswered: counted once, by its ICMP.
  assert.equal(f.evidence['probes'], 45);
  assert.equal(f.evidence['probeKinds'], 'udp 45');
  // And the clock tick's datagram, unanswered too (one port: no scan).
  assert.equal(total(r, 'port_scan', 'outcomes.udpUnanswered'), 41);
  assert.equal(total(r, 'port_scan', 'outcomes.udpUnreachable'), 5);
});

test('port_scan: one-way UDP streams, unanswered queries to one port and multicast are not probes', async () => {
  const cap = new Capture();
  // 12 one-way media streams to 12 ports of one host (a one-sided capture of calls): many datagrams each.
  for (let s = 0; s < 12; s++) for (let i = 0; i < 20; i++) cap.udpSilent(s * 0.1 + i * 0.02, '10.0.0.5', 40000 + 2 * s, '10.0.0.7', 20000 + 2 * s);
  // A resolver that does not answer: 30 queries from 30 ports, all to port 53.
  for (let i = 0; i < 30; i++) cap.udpSilent(i * 0.1, '10.0.0.6', 50000 + i, '10.0.0.53', 53);
  // SSDP / mDNS-style multicast to many ports nobody answers.
  for (let i = 0; i < 20; i++) cap.udpSilent(i * 0.1, '10.0.0.8', 41000, '239.255.255.250', 1900 + i);
  cap.datagram(10, '10.0.0.99', '10.0.0.98');
  const r = await analyze(cap.write('udp-not-probes.pcap'));
  assert.deepEqual(findings(r, 'port_scan'), []);
  // The queries (and the clock tick): unanswered, but each source failed on one port only.
  assert.equal(total(r, 'port_scan', 'outcomes.udpUnanswered'), 31);
});

test('port_scan: IPv6: a TCP vertical scan and a UDP scan answered by ICMPv6 port unreachable', async () => {
  const cap = verticalRefused(new Capture(), '2001:db8::5', 'fd00::7', 120, 100);
  for (let i = 0; i < 110; i++) cap.udpUnreachable(2 + i * 0.01, '2001:db8::6', 46000, 'fd00::8', 1000 + i);
  const r = await analyze(cap.write('ipv6-scans.pcap'));
  const list = findings(r, 'port_scan');
  assert.deepEqual(list.map((f) => [f.evidence['kind'], f.evidence['source'], f.evidence['target'], f.evidence['ports']]), [
    ['vertical', '2001:db8::5', 'fd00::7', 120],
    ['vertical', '2001:db8::6', 'fd00::8', 110],
  ]);
  assert.equal(total(r, 'port_scan', 'outcomes.udpUnreachable'), 110);
});

test('port_scan: distributed: 5 sources, 30 ports each, 150 ports on one host', async () => {
  const cap = new Capture();
  for (let s = 0; s < 5; s++) {
    for (let i = 0; i < 30; i++) cap.refused(s * 0.01 + i * 0.2, `203.0.113.${11 + s}`, 41000 + i, '10.0.0.9', 1 + s * 30 + i);
  }
  const r = await analyze(cap.write('distributed.pcap'));
  // Each source's 30 refused ports are a small scan of its own (info, from outside).
  const list = findings(r, 'port_scan');
  const small = list.filter((x) => x.evidence['kind'] === 'small');
  const bySource = (x: Finding): string => String(x.evidence['source']);
  assert.deepEqual(small.sort((a, b) => bySource(a).localeCompare(bySource(b))).map((x) => [x.severity, bySource(x), x.evidence['portsOnTarget']]),
    [11, 12, 13, 14, 15].map((n) => ['info', `203.0.113.${n}`, 30]));
  assert.equal(list.length, 6);
  const f = list.find((x) => x.evidence['kind'] === 'distributed')!;
  assert.equal(f.evidence['thresholds'], 'ports 150 >= minPorts 100; failureRatio 1 >= minFailureRatio 0.8');
  assert.equal(f.evidence['target'], '10.0.0.9');
  assert.equal(f.evidence['ports'], 150);
  assert.equal(f.evidence['sources'], 5);
  assert.equal(f.evidence['maxPortsFromOneSource'], 30);
  assert.equal(f.evidence['sampleSources'], '203.0.113.11,203.0.113.12,203.0.113.13,203.0.113.14,203.0.113.15');
  assert.equal(f.evidence['failureRatio'], 1);
  assert.equal(f.host, '10.0.0.9');
});

test('port_scan: a source with more than 4,096 failed probes counts them as "at least" (capped)', async () => {
  const r = await analyze(verticalRefused(new Capture(), '203.0.113.6', '10.0.0.6', 5000, 1000).write('vertical-5000.pcap'));
  const f = one(r, 'port_scan');
  assert.equal(f.evidence['ports'], 4096);
  assert.equal(f.evidence['capped'], true);
  assert.equal(f.evidence['probes'], 5000);
  assert.match(f.summary, /at least 4096 ports on 10\.0\.0\.6/);
});

// ---------------------------------------------------------------------------
// port_scan: small, one-sided and stealth scans; allow-lists

/** 30 ports Nmap's top list starts with. */
const TOP_PORTS = [21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1025, 1433, 1521, 1723, 2049, 3306, 3389, 5432, 5900, 5985, 6379, 8080, 8443, 9200, 27017];

/**
 * A bare segment with `flags` from c:cp to s:sp (a stealth probe), answered by
 * the target's RST when `rst` (RST without ACK to a probe with ACK, RST/ACK
 * otherwise, as a stack answers).
 */
function stealth(cap: Capture, t: number, c: string, cp: number, s: string, sp: number, flags: number, rst = true): Capture {
  const seq = 0x10000 + sp;
  const withAck = (flags & ACK) !== 0;
  cap.segment(t, c, s, cp, sp, flags, seq, withAck ? 0x50000 : 0);
  if (rst) cap.segment(t + 0.0005, s, c, sp, cp, withAck ? RST : RST | ACK, withAck ? 0x50000 : 0, seq + (flags & FIN ? 1 : 0));
  return cap;
}

/** 10.1.0.5 sends SYNs to TOP_PORTS of 10.1.0.9 in 3 s; the capture holds no reply (one side only, or filtered). */
function oneSidedScan(): Capture {
  const cap = new Capture();
  TOP_PORTS.forEach((port, i) => cap.unanswered(i * 0.1, '10.1.0.5', 40000 + i, '10.1.0.9', port));
  return cap;
}

test('port_scan: a one-sided SYN scan of 30 ports between two internal hosts, no reply captured: a small scan, warning', async () => {
  const r = await analyze(oneSidedScan().write('one-sided-30.pcap'));
  const f = one(r, 'port_scan');
  assert.ok(inWindow(f, 0));
  assert.equal(f.severity, 'warning'); // small, but internal -> internal
  assert.equal(f.host, '10.1.0.5');
  const { probesPerSecond: _rate, ...rest } = f.evidence;
  assert.deepEqual(rest, {
    kind: 'small', source: '10.1.0.5', sourceInternal: true, target: '10.1.0.9', targetInternal: true, port: null, ports: 30, hosts: 1,
    portsOnTarget: 30, hostsOnPort: 1, probes: 30, attempts: 30, failureRatio: 1,
    samplePorts: '21,22,23,25,53,80,110,111,135,139', sampleHosts: '10.1.0.9', probeKinds: 'syn 30', capped: false, lookbackSeconds: 60,
    thresholds: 'portsOnTarget 30 >= minPortsSmall 10; failureRatio 1 >= minFailureRatio 0.8',
  });
  assert.match(f.summary, /10\.1\.0\.5 probed 30 ports on 10\.1\.0\.9 .*\(small scan\)/);
  // Settled at the end of the input (within 5 s of the last SYN).
  assert.equal(total(r, 'port_scan', 'outcomes.unanswered'), 30);
  assert.equal(total(r, 'port_scan', 'outcomes.handshakeUnseen'), 0);
});

test('silent: a one-sided capture of a client using 30 ports of one server (it ACKs and sends data: the handshakes happened out of sight)', async () => {
  const cap = new Capture();
  TOP_PORTS.forEach((port, i) => {
    const t = i * 0.1;
    cap.segment(t, '10.1.0.5', '10.1.0.9', 40000 + i, port, SYN, 100, 0);
    cap.segment(t + 0.002, '10.1.0.5', '10.1.0.9', 40000 + i, port, ACK, 101, 7001);
    cap.segment(t + 0.003, '10.1.0.5', '10.1.0.9', 40000 + i, port, PSH | ACK, 101, 7001, 120);
  });
  const r = await analyze(cap.write('one-sided-client.pcap'));
  silent(r, 'one-sided client');
  assert.equal(total(r, 'port_scan', 'outcomes.unanswered'), 30);
  assert.equal(total(r, 'port_scan', 'outcomes.handshakeUnseen'), 30);
});

/** 203.0.113.40 on 10.0.0.40: 20 connect probes refused, then 5 FIN, 5 NULL and 5 Xmas probes, each answered by RST/ACK. */
function mixedStealthScan(): Capture {
  const cap = new Capture();
  const src = '203.0.113.40';
  const dst = '10.0.0.40';
  for (let i = 0; i < 20; i++) cap.refused(i * 0.02, src, 45000 + i, dst, TOP_PORTS[i]!);
  for (let i = 0; i < 5; i++) stealth(cap, 1 + i * 0.02, src, 45100, dst, TOP_PORTS[20 + i]!, FIN);
  for (let i = 0; i < 5; i++) stealth(cap, 1.2 + i * 0.02, src, 45101, dst, TOP_PORTS[25 + i]!, 0);
  for (let i = 0; i < 5; i++) stealth(cap, 1.4 + i * 0.02, src, 45102, dst, 9000 + i, FIN | PSH | URG);
  return cap;
}

test('port_scan: a small scan mixing connect probes with FIN, NULL and Xmas probes answered by RST: info, its probe kinds named', async () => {
  const r = await analyze(mixedStealthScan().write('mixed-stealth.pcap'));
  const f = one(r, 'port_scan');
  assert.equal(f.severity, 'info'); // small, from outside
  assert.equal(f.evidence['kind'], 'small');
  assert.equal(f.evidence['source'], '203.0.113.40');
  assert.equal(f.evidence['target'], '10.0.0.40');
  assert.equal(f.evidence['portsOnTarget'], 35);
  assert.equal(f.evidence['probes'], 35);
  assert.equal(f.evidence['attempts'], 35);
  assert.equal(f.evidence['probeKinds'], 'syn 20, fin 5, null 5, xmas 5');
  assert.equal(f.evidence['thresholds'], 'portsOnTarget 35 >= minPortsSmall 10; failureRatio 1 >= minFailureRatio 0.8');
  assert.match(f.summary, /\(syn 20, fin 5, null 5, xmas 5\)\.$/);
  assert.deepEqual(r.windows.map((w) => (w.metrics['port_scan'] as Json)['stealthProbes']), [{ fin: 5, null: 5, xmas: 5, maimon: 0, ack: 0 }]);
  assert.equal(total(r, 'port_scan', 'outcomes.refused'), 20);
});

test('port_scan: FIN, NULL and Xmas probes count unanswered (an open port stays silent); ACK and FIN+ACK probes only when reset', async () => {
  const cap = new Capture();
  const src = '198.51.100.50';
  const dst = '10.0.0.50';
  // 60 ACK and 60 Maimon (FIN+ACK) probes answered by RST: a vertical scan of 120 ports.
  for (let i = 0; i < 60; i++) stealth(cap, i * 0.01, src, 51000, dst, 1 + i, ACK);
  for (let i = 0; i < 60; i++) stealth(cap, 1 + i * 0.01, src, 51001, dst, 61 + i, FIN | ACK);
  // 20 ACK probes nobody answers (filtered, or a connection's segment): not counted.
  for (let i = 0; i < 20; i++) stealth(cap, 2 + i * 0.01, src, 51002, dst, 200 + i, ACK, false);
  // 12 Xmas probes to another host, unanswered: counted.
  for (let i = 0; i < 12; i++) stealth(cap, 3 + i * 0.01, src, 51003, '10.0.0.51', 300 + i, FIN | PSH | URG, false);
  const r = await analyze(cap.write('ack-maimon-xmas.pcap'));
  const list = findings(r, 'port_scan');
  assert.deepEqual(list.map((f) => [f.evidence['kind'], f.severity, f.evidence['target'], f.evidence['portsOnTarget'], f.evidence['probeKinds']]), [
    ['vertical', 'warning', '10.0.0.50', 120, 'xmas 12, maimon 60, ack 60'],
  ]);
  assert.equal(list[0]!.evidence['hosts'], 2);
  assert.equal(list[0]!.evidence['probes'], 132);
  assert.equal(list[0]!.evidence['thresholds'], 'portsOnTarget 120 >= minPorts 100; failureRatio 1 >= minFailureRatio 0.8');
  assert.equal(total(r, 'port_scan', 'stealthProbes.ack'), 60);
  assert.equal(total(r, 'port_scan', 'stealthProbes.maimon'), 60);
  assert.equal(total(r, 'port_scan', 'stealthProbes.xmas'), 12);
});

test('port_scan: minPortsSmall: 9 refused ports -> nothing, 10 -> a small scan; 12 refused ports within seconds from outside -> info', async () => {
  const small = (n: number): Capture => verticalRefused(new Capture(), '203.0.113.60', '10.0.0.60', n, 5);
  assert.equal(findings(await analyze(small(9).write('small-9.pcap')), 'port_scan').length, 0);
  assert.equal(one(await analyze(small(10).write('small-10.pcap')), 'port_scan').evidence['portsOnTarget'], 10);
  const f = one(await analyze(small(12).write('small-12.pcap')), 'port_scan');
  assert.equal(f.severity, 'info');
  assert.equal(f.evidence['kind'], 'small');
  assert.equal(f.evidence['samplePorts'], '1,2,3,4,5,6,7,8,9,10');
  assert.equal(f.evidence['thresholds'], 'portsOnTarget 12 >= minPortsSmall 10; failureRatio 1 >= minFailureRatio 0.8');
  // minPortsSmall 0 turns small scans off.
  assert.equal(findings(await analyze(small(12).write('small-12-off.pcap'), { analyzers: { port_scan: { minPortsSmall: 0 } } }), 'port_scan').length, 0);
});

test('port_scan: allowHosts (the scanner or its target) and allowPorts: not tracked, counted as allowed', async () => {
  const scan = oneSidedScan().write('allowed-scan.pcap');
  const withAllow = (allow: Record<string, unknown>): Promise<Report> => analyze(scan, { analyzers: { port_scan: allow } });
  const scanner = await withAllow({ allowHosts: ['10.1.0.5'] });
  silent(scanner, 'allowed scanner');
  assert.equal(total(scanner, 'port_scan', 'allowed'), 30);
  assert.equal(total(scanner, 'port_scan', 'attempts'), 0);
  const target = await withAllow({ allowHosts: ['10.1.0.8/29'] });
  silent(target, 'allowed target block');
  assert.equal(total(target, 'port_scan', 'allowed'), 30);
  const ports = await withAllow({ allowPorts: TOP_PORTS.slice(0, 21) }); // 9 ports left: under minPortsSmall
  silent(ports, 'allowed ports');
  assert.equal(total(ports, 'port_scan', 'allowed'), 21);
  const other = await withAllow({ allowHosts: ['10.1.0.6', '10.1.0.10/31'] });
  assert.equal(one(other, 'port_scan').evidence['source'], '10.1.0.5');
  assert.equal(total(other, 'port_scan', 'allowed'), 0);
  const stealthy = await analyze(mixedStealthScan().write('allowed-stealth.pcap'), { analyzers: { port_scan: { allowHosts: ['203.0.113.0/24'] } } });
  silent(stealthy, 'allowed stealth scanner');
  assert.equal(total(stealthy, 'port_scan', 'allowed'), 35);
});

test('silent: a traceroute whose last 24 UDP probes (ports 33434 up) reach their destination and are answered by port unreachable', async () => {
  const cap = new Capture();
  for (let i = 0; i < 24; i++) cap.udpUnreachable(i * 0.01, '10.0.0.7', 41077, '192.0.2.80', 33434 + 24 + i);
  const r = await analyze(cap.write('traceroute.pcap'));
  silent(r, 'traceroute');
  assert.equal(total(r, 'port_scan', 'outcomes.udpUnreachable'), 0);
});

test('silent: connections captured mid-stream (bare ACKs and FIN+ACKs, some answered by RST, some unanswered) are no stealth probes', async () => {
  const cap = new Capture();
  const client = '10.0.0.7';
  const server = '10.0.0.80';
  for (let i = 0; i < 40; i++) {
    const t = i * 0.05;
    // An HTTPS connection open before the capture: the server's bare ACK, then data both ways.
    const a = 50000 + i;
    cap.segment(t, server, client, 443, a, ACK, 5000, 9000);
    cap.segment(t + 0.001, client, server, a, 443, PSH | ACK, 9000, 5000, 200);
    cap.segment(t + 0.002, server, client, 443, a, PSH | ACK, 5000, 9200, 800);
    // One the server closes with FIN+ACK; the client, long gone, answers RST.
    const b = 51000 + i;
    cap.segment(t + 0.01, server, client, 443, b, FIN | ACK, 6000, 9500);
    cap.segment(t + 0.0105, client, server, b, 443, RST, 9500, 0);
    // The client's keep-alive ACK to one of 40 services (one side captured): no answer.
    cap.segment(t + 0.02, client, server, 52000 + i, 2000 + i, ACK, 7000, 3000);
    // The client's bare ACK and its FIN+ACK to 40 more services, answered by data and by FIN+ACK.
    cap.segment(t + 0.03, client, server, 53000 + i, 3000 + i, ACK, 7000, 3000);
    cap.segment(t + 0.031, server, client, 3000 + i, 53000 + i, PSH | ACK, 3000, 7000, 100);
    cap.segment(t + 0.04, client, server, 54000 + i, 4000 + i, FIN | ACK, 7000, 3000);
    cap.segment(t + 0.041, server, client, 4000 + i, 54000 + i, FIN | ACK, 3000, 7001);
  }
  const r = await analyze(cap.write('mid-stream.pcap'));
  silent(r, 'mid-stream');
  for (const kind of ['fin', 'null', 'xmas', 'maimon', 'ack']) assert.equal(total(r, 'port_scan', `stealthProbes.${kind}`), 0, kind);
});

test('silent: a busy client opening 300 connections to one server\'s ports 80 and 443, 100 of them refused while it restarts', async () => {
  const cap = new Capture();
  for (let i = 0; i < 200; i++) cap.session(i * 0.1, '10.0.0.7', 20000 + i, '10.0.0.80', i % 2 === 0 ? 80 : 443);
  for (let i = 0; i < 100; i++) cap.refused(20 + i * 0.05, '10.0.0.7', 30000 + i, '10.0.0.80', i % 2 === 0 ? 80 : 443);
  const r = await analyze(cap.write('busy-client.pcap'));
  silent(r, 'busy client');
  assert.equal(total(r, 'port_scan', 'outcomes.completed'), 200);
  assert.equal(total(r, 'port_scan', 'outcomes.refused'), 100);
});

// ---------------------------------------------------------------------------
// brute_force and lateral_movement: fire

/** 200 SSH logins that fail quickly (0.5 s, a few hundred bytes each), one every 0.29 s: all within 58 s. */
function sshBruteForce(): string {
  const cap = new Capture();
  for (let i = 0; i < 200; i++) cap.session(i * 0.29, '203.0.113.9', 30000 + i, '10.0.0.22', 22, { duration: 0.5, clientBytes: 600, serverBytes: 900 });
  return cap.write('ssh-brute.pcap');
}

test('brute_force: 200 short-lived SSH connections in 60 s', async () => {
  const path = sshBruteForce();
  const r = await analyze(path);
  const f = one(r, 'brute_force'); // then suppressed for suppressFor (600 s)
  assert.ok(inWindow(f, 0));
  assert.equal(f.severity, 'warning');
  assert.equal(f.host, '203.0.113.9');
  assert.equal(f.evidence['source'], '203.0.113.9');
  assert.equal(f.evidence['target'], '10.0.0.22');
  assert.equal(f.evidence['servicePort'], 22);
  assert.equal(f.evidence['service'], 'ssh');
  assert.equal(f.evidence['attempts'], 33); // settled (closed) by t = 10: i * 0.29 + 0.5 < 10
  assert.equal(f.evidence['shortLived'], 33);
  assert.equal(f.evidence['failed'], 0);
  assert.equal(f.evidence['ratio'], 1);
  assert.ok(total(r, 'brute_force', 'suppressed') >= 5);
  assert.equal(findings(r, 'port_scan').length, 0, 'completed connections are not probes');
  assert.equal(findings(r, 'lateral_movement').length, 0);

  // Without suppression, the window ending at 60 s sees all 200 in its look-back.
  const all = await analyze(path, { analyzers: { brute_force: { suppressFor: 0 } } });
  const list = findings(all, 'brute_force');
  assert.equal(list.length, 6);
  const last = list[list.length - 1]!;
  assert.ok(inWindow(last, 5));
  assert.equal(last.evidence['attempts'], 200);
  assert.equal(last.evidence['shortLived'], 200);
  assert.equal(last.severity, 'critical'); // 5x minAttempts
  assert.equal(new Set(list.map((f) => f.id)).size, 6);
});

test('lateral_movement: an internal host reaching 20 internal hosts on 445/3389 (half of them refuse)', async () => {
  const cap = new Capture();
  for (let i = 0; i < 20; i++) {
    const port = i % 2 === 0 ? 445 : 3389;
    if (i % 4 === 3) cap.refused(i * 0.4, '10.0.5.5', 49000 + i, `10.0.6.${i + 1}`, port);
    else if (i % 4 === 1) cap.unanswered(i * 0.4, '10.0.5.5', 49000 + i, `10.0.6.${i + 1}`, port);
    else cap.session(i * 0.4, '10.0.5.5', 49000 + i, `10.0.6.${i + 1}`, port, { duration: 1, serverBytes: 4000 });
  }
  const r = await analyze(cap.write('lateral.pcap'));
  const f = one(r, 'lateral_movement');
  assert.ok(inWindow(f, 0));
  assert.equal(f.severity, 'warning');
  assert.equal(f.host, '10.0.5.5');
  assert.equal(f.evidence['hosts'], 20);
  assert.equal(f.evidence['hostsSucceeded'], 10);
  assert.equal(f.evidence['hostsFailed'], 10);
  assert.equal(f.evidence['attempts'], 20);
  assert.equal(f.evidence['ports'], '445,3389');
  assert.equal(f.evidence['sampleSucceeded'], '10.0.6.1,10.0.6.11,10.0.6.13,10.0.6.15,10.0.6.17,10.0.6.19,10.0.6.3,10.0.6.5,10.0.6.7,10.0.6.9');
  assert.equal(total(r, 'lateral_movement', 'succeeded'), 10);
  assert.equal(findings(r, 'port_scan').length, 0, '20 hosts is below minHosts (50)');
});

test('loopback: ignored by every detector unless networks.includeLoopback', async () => {
  const cap = new Capture();
  verticalRefused(cap, '127.0.0.1', '127.0.0.1', 150, 100);
  for (let i = 0; i < 12; i++) cap.session(2 + i * 0.1, '127.0.0.1', 52000 + i, `127.0.0.${i + 2}`, 22);
  for (let i = 0; i < 25; i++) cap.refused(3 + i * 0.1, '127.0.0.1', 53000 + i, '127.0.0.50', 3306);
  const path = cap.write('loopback.pcap');
  silent(await analyze(path), 'loopback');
  const r = await analyze(path, { networks: { includeLoopback: true } });
  assert.equal(one(r, 'port_scan').evidence['portsOnTarget'], 150);
  assert.equal(one(r, 'lateral_movement').evidence['hosts'], 12);
  assert.equal(one(r, 'brute_force').evidence['servicePort'], 3306);
});

// ---------------------------------------------------------------------------
// Silent on ordinary traffic

test('silent: a web client opening 30 HTTPS connections to 3 servers (one refused, one unanswered)', async () => {
  const cap = new Capture();
  const servers = ['93.184.216.34', '151.101.1.69', '142.250.74.68'];
  for (let i = 0; i < 30; i++) cap.session(i, '10.0.0.50', 50000 + i, servers[i % 3]!, 443, { duration: 2, serverBytes: 20000 });
  cap.refused(31, '10.0.0.50', 50100, servers[0]!, 443);
  cap.unanswered(32, '10.0.0.50', 50101, servers[1]!, 443);
  const r = await analyze(cap.write('web-client.pcap'));
  silent(r, 'web client');
  assert.equal(total(r, 'port_scan', 'outcomes.completed'), 30);
});

test('silent: 10 successful SSH logins spread over 10 minutes', async () => {
  const cap = new Capture();
  for (let i = 0; i < 10; i++) cap.session(i * 60, '10.0.0.60', 40000 + i, '10.0.0.22', 22, { duration: 30, clientBytes: 3000, serverBytes: 50000 });
  const r = await analyze(cap.write('ssh-logins.pcap'));
  silent(r, 'ssh logins');
  assert.equal(total(r, 'brute_force', 'outcomes.longer'), 10);
});

test('silent: a Kubernetes-like pod talking to 15 service IPs on 8080/443, a scraper on 60 pods, late DNS replies', async () => {
  const cap = new Capture();
  // A pod: 15 services, 8 rounds over 2 minutes, short connections; every 20th refused (a pod restarting).
  let n = 0;
  for (let round = 0; round < 8; round++) {
    for (let s = 0; s < 15; s++) {
      const t = round * 15 + s * 0.3;
      const port = s % 2 === 0 ? 8080 : 443;
      if (++n % 20 === 0) cap.refused(t, '10.244.1.5', 33000 + n, `10.96.0.${10 + s}`, port);
      else cap.session(t, '10.244.1.5', 33000 + n, `10.96.0.${10 + s}`, port, { duration: 0.05, serverBytes: 2000 });
    }
  }
  // A metrics scraper: 60 pods on 9100 every 15 s.
  for (let round = 0; round < 8; round++) {
    for (let p = 0; p < 60; p++) cap.session(round * 15 + p * 0.01, '10.244.0.2', 20000 + round * 100 + p, `10.244.2.${p + 1}`, 9100);
  }
  // DNS answers arriving after the resolver gave up: the pod answers ICMP port unreachable (ephemeral ports), not a scan by the DNS server.
  for (let i = 0; i < 200; i++) cap.unreachableOnly(i * 0.5, '10.96.0.10', 53, '10.244.1.5', 40000 + i);
  const r = await analyze(cap.write('k8s.pcap'));
  silent(r, 'kubernetes-like');
  assert.ok(total(r, 'port_scan', 'outcomes.completed') > 500);
  assert.equal(total(r, 'port_scan', 'outcomes.udpUnreachable'), 0);
});

// ---------------------------------------------------------------------------
// Threshold boundaries

test('port_scan: minPorts - 1 ports -> a small scan (info), minPorts -> vertical; minHosts likewise', async () => {
  const below = one(await analyze(verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 99, 50).write('vertical-99.pcap')), 'port_scan');
  assert.equal(below.evidence['kind'], 'small');
  assert.equal(below.severity, 'info');
  assert.equal(below.evidence['thresholds'], 'portsOnTarget 99 >= minPortsSmall 10; failureRatio 1 >= minFailureRatio 0.8');
  const atMin = await analyze(verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 100, 50).write('vertical-100.pcap'));
  const f = one(atMin, 'port_scan');
  assert.equal(f.evidence['portsOnTarget'], 100);
  assert.equal(f.severity, 'warning');

  const horizontal = (n: number): Capture => {
    const cap = new Capture();
    for (let i = 0; i < n; i++) cap.refused(i * 0.1, '198.51.100.8', 50000 + i, `10.2.0.${i + 1}`, 23);
    return cap;
  };
  assert.equal(findings(await analyze(horizontal(49).write('horizontal-49.pcap')), 'port_scan').length, 0);
  assert.equal(one(await analyze(horizontal(50).write('horizontal-50.pcap')), 'port_scan').evidence['hostsOnPort'], 50);
});

test('port_scan: minFailureRatio (0.8): 100 failed of 125 attempts fires, 100 of 126 does not', async () => {
  const mixed = (completed: number): Capture => {
    const cap = verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 100, 50);
    for (let i = 0; i < completed; i++) cap.session(0.01 + i * 0.05, '203.0.113.5', 60000 + i, '10.0.0.5', 80);
    return cap;
  };
  const fires = await analyze(mixed(25).write('ratio-125.pcap'));
  assert.equal(one(fires, 'port_scan').evidence['failureRatio'], 0.8);
  assert.equal(one(fires, 'port_scan').evidence['attempts'], 125);
  assert.equal(findings(await analyze(mixed(26).write('ratio-126.pcap')), 'port_scan').length, 0);
});

test('brute_force: minAttempts - 1 refused attempts -> nothing, minAttempts -> finding', async () => {
  const attempts = (n: number): string => {
    const cap = new Capture();
    for (let i = 0; i < n; i++) cap.refused(i * 0.4, '203.0.113.10', 35000 + i, '10.0.0.33', 3389);
    return cap.write(`rdp-${n}.pcap`);
  };
  assert.equal(findings(await analyze(attempts(19)), 'brute_force').length, 0);
  const f = one(await analyze(attempts(20)), 'brute_force');
  assert.equal(f.evidence['attempts'], 20);
  assert.equal(f.evidence['failed'], 20);
  assert.equal(f.evidence['service'], 'rdp');
});

test('lateral_movement: minHosts - 1 hosts -> nothing, minHosts -> finding (SSH only, all reached: info)', async () => {
  const hosts = (n: number): string => {
    const cap = new Capture();
    for (let i = 0; i < n; i++) cap.session(i * 5, '10.0.7.7', 36000 + i, `10.0.8.${i + 1}`, 22, { duration: 3, serverBytes: 3000 });
    return cap.write(`ssh-hosts-${n}.pcap`);
  };
  assert.equal(findings(await analyze(hosts(9)), 'lateral_movement').length, 0);
  const f = one(await analyze(hosts(10)), 'lateral_movement');
  assert.equal(f.evidence['hosts'], 10);
  assert.equal(f.evidence['hostsSucceeded'], 10);
  assert.equal(f.severity, 'info');
});

test('brute_force: a long connection counts as longer when it ends (or at the end of input when open for shortLived s), not shortLived s after its SYN', async () => {
  const cap = new Capture();
  cap.session(0, '10.0.0.70', 41000, '10.0.0.22', 22, { duration: 32, clientBytes: 3000, serverBytes: 5000 }); // FIN at 32 s: window 3
  cap.session(1, '10.0.0.70', 41001, '10.0.0.22', 22, { duration: 2 }); // short-lived, window 0
  const isn = 77_000;
  cap.segment(2, '10.0.0.71', '10.0.0.22', 41002, 22, SYN, isn, 0) // open from 2 s to the end of input (45 s): the last window
    .segment(2.001, '10.0.0.22', '10.0.0.71', 22, 41002, SYN | ACK, 5000, isn + 1)
    .segment(2.002, '10.0.0.71', '10.0.0.22', 41002, 22, ACK, isn + 1, 5001)
    .segment(45, '10.0.0.71', '10.0.0.22', 41002, 22, PSH | ACK, isn + 1, 5001, 100);
  cap.segment(43, '10.0.0.72', '10.0.0.22', 41003, 22, SYN, isn, 0) // open for 2 s at the end of input: undecided, not counted
    .segment(43.001, '10.0.0.22', '10.0.0.72', 22, 41003, SYN | ACK, 6000, isn + 1)
    .segment(43.002, '10.0.0.72', '10.0.0.22', 41003, 22, ACK, isn + 1, 6001);
  const r = await analyze(cap.write('ssh-long.pcap'));
  // Windows with packets: [0, 10), [30, 40), [40, 50).
  assert.deepEqual(r.windows.map((w) => w.start), [isoTime(BASE), isoTime(BASE + 30), isoTime(BASE + 40)]);
  assert.deepEqual(r.windows.map((w) => num(w.metrics['brute_force'], 'outcomes.longer')), [0, 1, 1]);
  assert.deepEqual(r.windows.map((w) => num(w.metrics['brute_force'], 'outcomes.shortLived')), [1, 0, 0]);
  assert.equal(total(r, 'brute_force', 'attempts'), 4);
  silent(r, 'three SSH sessions');
});

test('brute_force: a server RST after its SYN/ACK is an incomplete attempt, before it a refused one', async () => {
  const cap = new Capture();
  for (let i = 0; i < 10; i++) cap.refused(i * 0.2, '203.0.113.11', 36000 + i, '10.0.0.34', 5432);
  for (let i = 0; i < 10; i++) {
    const t = 2 + i * 0.2;
    cap.segment(t, '203.0.113.11', '10.0.0.34', 37000 + i, 5432, SYN, 9000 + i, 0)
      .segment(t + 0.001, '10.0.0.34', '203.0.113.11', 5432, 37000 + i, SYN | ACK, 20000, 9001 + i)
      .segment(t + 0.002, '10.0.0.34', '203.0.113.11', 5432, 37000 + i, RST, 20001, 0);
  }
  const r = await analyze(cap.write('pg-refused.pcap'));
  assert.equal(total(r, 'brute_force', 'outcomes.refused'), 10);
  assert.equal(total(r, 'brute_force', 'outcomes.incomplete'), 10);
  const f = one(r, 'brute_force');
  assert.equal(f.evidence['failed'], 20);
  assert.equal(f.evidence['service'], 'postgresql');
});

// ---------------------------------------------------------------------------
// brute_force: the sessions rule (password guessing where every connection completes)

/**
 * SSH logins that complete and fail alike: `n` sessions from `client`, one every `every` s from `t0`,
 * each 6-7 s (two or three tries, past shortLived) with a few bytes of difference.
 */
function sshGuesses(cap: Capture, n: number, every: number, client = '203.0.113.40', server = '10.0.0.22', t0 = 0): Capture {
  for (let i = 0; i < n; i++) {
    cap.session(t0 + i * every, client, 42000 + (i % 20000), server, 22, { duration: 6 + (i % 3) * 0.5, clientBytes: 1200 + (i % 4) * 8, serverBytes: 2200 + (i % 3) * 16 });
  }
  return cap;
}

test('brute_force: 12 complete SSH sessions alike in size and duration within 60 s fire (sessions rule), below minAttempts and none short-lived', async () => {
  const r = await analyze(sshGuesses(new Capture(), 12, 5).write('ssh-guesses-12.pcap'));
  const f = one(r, 'brute_force');
  // Sessions end 6-7 s after their SYN: the window ending at 60 s has 11 of them in its look-back, ended over 50.5 s (10 intervals: 11.9/min).
  assert.ok(inWindow(f, 5));
  assert.equal(f.severity, 'warning');
  assert.equal(f.host, '203.0.113.40');
  assert.equal(f.evidence['target'], '10.0.0.22');
  assert.equal(f.evidence['service'], 'ssh');
  assert.equal(f.evidence['rules'], 'sessions');
  assert.equal(f.evidence['sessions'], 11);
  assert.equal(f.evidence['attempts'], 11);
  assert.equal(f.evidence['longer'], 11, 'each lasts past shortLived: the failures rule sees no failure');
  assert.equal(f.evidence['ratio'], 0);
  assert.ok(num(f.evidence, 'sessionSizeCv') < 0.02, String(f.evidence['sessionSizeCv']));
  assert.ok(num(f.evidence, 'meanSessionSeconds') > 6 && num(f.evidence, 'meanSessionSeconds') < 7);
  assert.match(String(f.evidence['thresholds']), /^sessions 11 >= minSessions 10; sessionsPerMinute 11\.881 >= minSessionRate 3; sessionSizeCv 0\.0\d+ <= maxSizeCv 0\.5; sessionDurationCv 0\.0\d+ <= maxDurationCv 0\.75$/);
  assert.match(f.summary, /^203\.0\.113\.40 opened 11 complete ssh sessions to 10\.0\.0\.22:22 in the last 60 s \(11\.9\/min\), alike in size .*: password guessing that completes every connection; 11 lasted longer/);
  assert.equal(total(r, 'brute_force', 'sessions'), 12);
  assert.equal(findings(r, 'lateral_movement').length, 0);

  // minSessions - 1 in the look-back: nothing.
  assert.equal(findings(await analyze(sshGuesses(new Capture(), 9, 5).write('ssh-guesses-9.pcap')), 'brute_force').length, 0);
});

test('brute_force: 60 alike SSH sessions in a minute: warning at 14, critical at >= 5x minSessions', async () => {
  const r = await analyze(sshGuesses(new Capture(), 60, 1).write('ssh-guesses-60.pcap'), { analyzers: { brute_force: { suppressFor: 0 } } });
  const list = findings(r, 'brute_force');
  assert.equal(list[0]!.severity, 'warning');
  assert.equal(list[0]!.evidence['sessions'], 14); // ended by 20 s
  const last = list[list.length - 1]!;
  assert.ok(num(last.evidence, 'sessions') >= 50);
  assert.equal(last.severity, 'critical');
  assert.match(String(last.evidence['rules']), /sessions/);
});

test('brute_force: alike SSH sessions that are not dense do not fire: one every 5 min for an hour; one every minute for an hour even with a 10-minute look-back', async () => {
  silent(await analyze(sshGuesses(new Capture(), 12, 300).write('ssh-every-5-min.pcap')), 'one session every 5 minutes');
  const everyMinute = sshGuesses(new Capture(), 60, 60).write('ssh-every-minute.pcap');
  silent(await analyze(everyMinute), 'one session every minute');
  // 10 alike sessions in a 600 s look-back, but about 1 per minute < minSessionRate 3 (over the look-back and over the run).
  const long = await analyze(everyMinute, { analyzers: { brute_force: { lookback: 600 } } });
  silent(long, 'one session every minute, 600 s look-back');
  assert.equal(total(long, 'brute_force', 'sessions'), 60);
  // The same look-back with the sessions in a burst: fires.
  const burst = one(await analyze(sshGuesses(new Capture(), 12, 5).write('ssh-burst-600.pcap'), { analyzers: { brute_force: { lookback: 600 } } }), 'brute_force');
  assert.equal(burst.evidence['rules'], 'sessions');
});

test('brute_force: a guesser in rounds (hydra -t 4: 4 alike 17 s sessions every 47 s) fires over the run of sessions, never within one look-back', async () => {
  // sshd takes several passwords a connection, with PAM's failure delay: 8 sessions at most in any 60 s.
  const cap = new Capture();
  for (let round = 0; round < 6; round++) {
    for (let k = 0; k < 4; k++) cap.session(round * 47 + k * 0.01, '10.0.0.66', 42000 + round * 4 + k, '10.0.0.22', 22, { duration: 17 + k * 0.3, clientBytes: 1800, serverBytes: 2000 });
  }
  const r = await analyze(cap.write('ssh-rounds.pcap'));
  const f = one(r, 'brute_force');
  assert.equal(f.severity, 'warning');
  assert.equal(f.host, '10.0.0.66');
  assert.equal(f.evidence['rules'], 'sessions');
  assert.equal(f.evidence['sessionsOver'], 'run');
  assert.ok(num(f.evidence, 'sessions') >= 10 && num(f.evidence, 'sessionSpanSeconds') > 60, JSON.stringify(f.evidence));
  assert.match(f.summary, /complete ssh sessions to 10\.0\.0\.22:22 over the last \d+ s/);
  assert.match(String(f.evidence['thresholds']), /^sessions \d+ >= minSessions 10; sessionsPerMinute [\d.]+ >= minSessionRate 3;/);
  // Rounds of 2 every 55 s (one run of 24 sessions, about 2.2 a minute): under minSessionRate over the run.
  const slow = new Capture();
  for (let round = 0; round < 12; round++) {
    for (let k = 0; k < 2; k++) slow.session(round * 55 + k * 0.01, '10.0.0.66', 42000 + round * 2 + k, '10.0.0.22', 22, { duration: 17 + k * 0.3, clientBytes: 1800, serverBytes: 2000 });
  }
  const quiet = await analyze(slow.write('ssh-rounds-slow.pcap'));
  silent(quiet, 'rounds of 2 every 55 s');
  assert.equal(total(quiet, 'brute_force', 'sessions'), 24);
});

test('brute_force: a long interactive SSH session, and 12 alike sessions longer than maxSessionSeconds, do not fire', async () => {
  const cap = new Capture();
  cap.session(0, '10.0.0.80', 43000, '10.0.0.22', 22, { duration: 900, clientBytes: 40000, serverBytes: 2_000_000 });
  // 12 parallel copies of alike files, 45 s each: not login-sized.
  for (let i = 0; i < 12; i++) cap.session(10 + i * 2, '10.0.0.81', 44000 + i, '10.0.0.22', 22, { duration: 45, clientBytes: 1500, serverBytes: 20000 });
  const path = cap.write('ssh-long-sessions.pcap');
  const r = await analyze(path);
  silent(r, 'long sessions');
  assert.equal(total(r, 'brute_force', 'sessions'), 0);
  // Were 45 s login-sized, the 12 would be a burst.
  const f = one(await analyze(path, { analyzers: { brute_force: { maxSessionSeconds: 60 } } }), 'brute_force');
  assert.equal(f.host, '10.0.0.81');
  assert.equal(f.evidence['sessions'], 12);
});

test('brute_force: 12 SSH sessions of wildly different sizes and durations within 60 s (mixed human use) do not fire', async () => {
  const serverBytes = [800, 45000, 3000, 20000, 1500, 50000, 9000, 500, 30000, 2500, 12000, 40000];
  const durations = [2, 25, 4, 12, 1, 28, 8, 3, 18, 6, 10, 20];
  const cap = new Capture();
  for (let i = 0; i < 12; i++) cap.session(i * 5, '10.0.0.90', 45000 + i, '10.0.0.22', 22, { duration: durations[i]!, clientBytes: 600 + i * 150, serverBytes: serverBytes[i]! });
  const path = cap.write('ssh-mixed-use.pcap');
  const r = await analyze(path);
  silent(r, 'mixed human use');
  assert.equal(total(r, 'brute_force', 'sessions'), 12, 'all login-sized: only their variation keeps them apart');
  // The sizes alone keep them apart (CV 0.78-1.0 over the windows' look-backs); the durations (CV 0.67-0.87) not in every window.
  silent(await analyze(path, { analyzers: { brute_force: { maxDurationCv: 100 } } }), 'mixed use, sizes alone');
  const f = one(await analyze(path, { analyzers: { brute_force: { maxSizeCv: 100, maxDurationCv: 100 } } }), 'brute_force');
  assert.ok(num(f.evidence, 'sessionSizeCv') > 0.5, String(f.evidence['sessionSizeCv']));
});

test('brute_force: allow-list: a listed client, server or service port is not tracked (counted as allowed)', async () => {
  const path = sshGuesses(new Capture(), 12, 5).write('ssh-guesses-allow.pcap');
  for (const allow of [{ allowHosts: ['203.0.113.40'] }, { allowHosts: ['10.0.0.0/24'] }, { allowPorts: [22] }, { allowHosts: ['2001:db8::/32', '203.0.113.0/24'] }]) {
    const r = await analyze(path, { analyzers: { brute_force: allow } });
    silent(r, JSON.stringify(allow));
    assert.equal(total(r, 'brute_force', 'allowed'), 12);
    assert.equal(total(r, 'brute_force', 'attempts'), 0);
    assert.equal(total(r, 'brute_force', 'sessions'), 0);
  }
  // Other hosts and ports listed: still fires.
  const r = await analyze(path, { analyzers: { brute_force: { allowHosts: ['192.0.2.0/24', '203.0.113.41'], allowPorts: [3389] } } });
  assert.equal(one(r, 'brute_force').host, '203.0.113.40');
  assert.equal(total(r, 'brute_force', 'allowed'), 0);
  // The failures rule too: 20 refused RDP attempts from a listed client.
  const rdp = new Capture();
  for (let i = 0; i < 20; i++) rdp.refused(i * 0.4, '203.0.113.10', 35000 + i, '10.0.0.33', 3389);
  const rdpPath = rdp.write('rdp-allow.pcap');
  assert.equal(one(await analyze(rdpPath), 'brute_force').evidence['thresholds'], 'attempts 20 >= minAttempts 20; ratio 1 >= minFailureRatio 0.5');
  const allowed = await analyze(rdpPath, { analyzers: { brute_force: { allowHosts: ['203.0.113.10'] } } });
  silent(allowed, 'allowed RDP client');
  assert.equal(total(allowed, 'brute_force', 'allowed'), 20);
});

test('lateral_movement: a source trying 4,100 internal hosts remembers 4,096 of them (capped)', async () => {
  const cap = new Capture();
  for (let i = 0; i < 4100; i++) cap.unanswered(i * 0.01, '10.0.9.9', 20000 + i, `10.3.${i >> 8}.${i & 255}`, 445);
  const r = await analyze(cap.write('lateral-4100.pcap'), { analyzers: { lateral_movement: { suppressFor: 0 } } });
  const list = findings(r, 'lateral_movement');
  assert.deepEqual(list.map((x) => x.evidence['hosts']), [1000, 2000, 3000, 4000, 4096]);
  const f = list[4]!;
  assert.equal(f.severity, 'critical');
  assert.equal(f.evidence['hosts'], 4096);
  assert.equal(f.evidence['capped'], true);
  assert.equal(f.evidence['attempts'], 4100);
  assert.equal(f.evidence['hostsSucceeded'], 0);
  assert.equal(f.evidence['sampleHosts'], '10.3.0.0,10.3.0.1,10.3.0.10,10.3.0.100,10.3.0.101,10.3.0.102,10.3.0.103,10.3.0.104,10.3.0.105,10.3.0.106');
  assert.match(f.summary, /tried at least 4096 internal hosts on administrative ports \(445\)/);
  assert.equal(maxOver(r, 'lateral_movement', 'rememberedHosts'), 4096);
});

// ---------------------------------------------------------------------------
// Suppression, determinism, bounded state

test('suppression: a scan over 3 windows is reported once; with suppressFor 20 s, again every 20 s with updated evidence', async () => {
  const three = await analyze(verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 300, 10).write('scan-30s.pcap'));
  const f = one(three, 'port_scan');
  assert.ok(inWindow(f, 0));
  assert.equal(f.evidence['portsOnTarget'], 100);
  assert.equal(three.windows.length, 3);
  assert.deepEqual(three.windows.map((w) => num(w.metrics['port_scan'], 'suppressed')), [0, 1, 1]);

  const five = await analyze(verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 500, 10).write('scan-50s.pcap'), {
    analyzers: { port_scan: { suppressFor: 20 } },
  });
  const list = findings(five, 'port_scan');
  assert.deepEqual(list.map((x) => [x.window.start, x.evidence['portsOnTarget'], x.evidence['probes']]), [
    [isoTime(BASE), 100, 100],
    [isoTime(BASE + 20), 300, 300],
    [isoTime(BASE + 40), 500, 500],
  ]);
  assert.equal(new Set(list.map((x) => x.id)).size, 3);
});

test('determinism: the same input twice gives identical findings and ids', async () => {
  const cap = verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 300, 10);
  for (let i = 0; i < 30; i++) cap.refused(i * 0.5, '203.0.113.10', 35000 + i, '10.0.0.33', 22);
  const path = cap.write('determinism.pcap');
  const a = await analyze(path);
  const b = await analyze(path);
  assert.ok(detectorFindings(a).length >= 2);
  assert.deepEqual(detectorFindings(a), detectorFindings(b));
  assert.deepEqual(a.windows.map((w) => w.metrics['port_scan']), b.windows.map((w) => w.metrics['port_scan']));
});

test('bounded: maxKeys 100 with 10,000 scanning sources keeps <= 100 keys and counts the evictions', async () => {
  const cap = new Capture();
  for (let i = 0; i < 10_000; i++) {
    const src = `10.1.${i >> 8}.${i & 255}`;
    cap.refused(i * 0.003, src, 40000, '10.0.0.1', 22);
    cap.refused(i * 0.003 + 0.001, src, 40001, '10.0.0.1', 23);
  }
  const r = await analyze(cap.write('many-sources.pcap'), {
    analyzers: { port_scan: { maxKeys: 100 }, brute_force: { maxKeys: 100 }, lateral_movement: { maxKeys: 100 } },
  });
  assert.equal(r.windows.length, 3);
  assert.ok(maxOver(r, 'port_scan', 'trackedSources') <= 100);
  assert.ok(maxOver(r, 'port_scan', 'trackedTargets') <= 100);
  assert.ok(maxOver(r, 'brute_force', 'trackedKeys') <= 100);
  assert.ok(maxOver(r, 'lateral_movement', 'trackedKeys') <= 100);
  assert.equal(num(r.windows[2]!.metrics['port_scan'], 'trackedSources'), 100);
  assert.equal(total(r, 'port_scan', 'evictedInWindow'), 9900);
  assert.equal(num(r.windows[2]!.metrics['port_scan'], 'evicted'), 9900);
  assert.equal(total(r, 'brute_force', 'evictedInWindow'), 19_900); // one key per (source, service): 20,000
  assert.equal(total(r, 'lateral_movement', 'evictedInWindow'), 9900);
  assert.equal(total(r, 'port_scan', 'outcomes.refused'), 20_000);
  silent(r, 'two refused attempts per source');
});

test('bounded: the smallest memory budget (16 remembered probes) keeps the latest probes and counts the evicted ones', async () => {
  const r = await analyze(verticalRefused(new Capture(), '203.0.113.5', '10.0.0.5', 1000, 100).write('vertical-small-budget.pcap'), {
    memory: { budgetMB: 100 },
    analyzers: { port_scan: { minPorts: 10 } },
  });
  const f = one(r, 'port_scan');
  // Only the 16 latest ports are remembered (no `capped`: that is the per-source cap); the look-back counts are not probes.
  assert.equal(f.evidence['kind'], 'vertical');
  assert.equal(f.evidence['target'], '10.0.0.5');
  assert.equal(f.evidence['ports'], 16);
  assert.equal(f.evidence['samplePorts'], '985,986,987,988,989,990,991,992,993,994');
  assert.equal(f.evidence['probes'], 1000);
  assert.equal(f.evidence['capped'], false);
  assert.ok(maxOver(r, 'port_scan', 'rememberedProbes') <= 32);
  // 984 source pairs and 984 target ports.
  assert.equal(total(r, 'port_scan', 'evictedInWindow'), 1968);
});

test('bounded: probes on a target whose host id went to another host are forgotten, never attributed to the new host', async () => {
  // maxKeys 16: 16 targets at most. 203.0.113.1 fails on port 22 of 16 hosts, then 203.0.113.2 on port 80 of 16 others,
  // which take the ids of the first 16; 203.0.113.1 then makes one more attempt, so it is judged.
  const cap = new Capture();
  for (let i = 0; i < 16; i++) cap.refused(i * 0.01, '203.0.113.1', 40000 + i, `10.1.0.${i + 1}`, 22);
  for (let i = 0; i < 16; i++) cap.refused(1 + i * 0.01, '203.0.113.2', 40000 + i, `10.2.0.${i + 1}`, 80);
  cap.session(2, '203.0.113.1', 41000, '10.9.0.1', 443);
  const r = await analyze(cap.write('target-id-reuse.pcap'), { analyzers: { port_scan: { maxKeys: 16, minHosts: 10 } } });
  const f = one(r, 'port_scan');
  assert.equal(f.evidence['source'], '203.0.113.2');
  assert.equal(f.evidence['port'], 80);
  assert.equal(f.evidence['hostsOnPort'], 16);
  assert.equal(f.evidence['sampleHosts'], '10.2.0.1,10.2.0.10,10.2.0.11,10.2.0.12,10.2.0.13,10.2.0.14,10.2.0.15,10.2.0.16,10.2.0.2,10.2.0.3');
  assert.equal(total(r, 'port_scan', 'evictedInWindow'), 16);
});

test('bounded: a target\'s ports whose source host id went to another host are forgotten (no distributed scan named after the new hosts)', async () => {
  // 5 sources x 30 ports on 10.0.0.9 would be a distributed scan; with maxKeys 16, 16 other sources then take their ids.
  const cap = new Capture();
  for (let s = 0; s < 5; s++) {
    for (let i = 0; i < 30; i++) cap.refused(s * 0.01 + i * 0.02, `203.0.113.${11 + s}`, 41000 + i, '10.0.0.9', 1 + s * 30 + i);
  }
  for (let s = 0; s < 16; s++) cap.refused(1 + s * 0.01, `198.51.100.${s + 1}`, 42000, '10.0.0.10', 22);
  cap.refused(2, '198.51.100.100', 42000, '10.0.0.9', 9999);
  const r = await analyze(cap.write('source-id-reuse.pcap'), { analyzers: { port_scan: { maxKeys: 16 } } });
  assert.equal(findings(r, 'port_scan').length, 0);
  assert.equal(total(r, 'port_scan', 'evictedInWindow'), 6); // the 5 sources, then the first of the 16
});

// ---------------------------------------------------------------------------
// Shared captures

test('shared: ppa_synscan.pcapng is a vertical SYN scan of 1,000 ports', async () => {
  const r = await analyze(pcap('ppa_synscan.pcapng'));
  const f = one(r, 'port_scan');
  assert.equal(f.severity, 'critical');
  assert.equal(f.evidence['kind'], 'vertical');
  assert.equal(f.evidence['source'], '172.16.0.8');
  assert.equal(f.evidence['target'], '64.13.134.52');
  // tshark -Y 'tcp.flags.syn==1 && tcp.flags.ack==0': 1994 SYNs to 1000 distinct ports; the 12 SYN/ACKed ports are reset by the scanner.
  assert.equal(f.evidence['ports'], 1000);
  assert.equal(f.evidence['probes'], 1994);
  assert.equal(f.evidence['attempts'], 1994);
  assert.equal(f.evidence['failureRatio'], 1);
  // 5 SYNs refused by RST, 3 SYN/ACKed (3 streams with SYN/ACKs) but never ACKed, the rest unanswered.
  assert.equal(total(r, 'port_scan', 'outcomes.completed'), 0);
  assert.equal(total(r, 'port_scan', 'outcomes.refused'), 5);
  assert.equal(total(r, 'port_scan', 'outcomes.abandoned'), 3);
  assert.equal(total(r, 'port_scan', 'outcomes.unanswered'), 1986);
  assert.equal(findings(r, 'brute_force').length, 0);
  assert.equal(findings(r, 'lateral_movement').length, 0);
});

test('shared: zeek_ftp_bruteforce.pcap is an FTP brute force (30 short connections to port 21)', async () => {
  const r = await analyze(pcap('zeek_ftp_bruteforce.pcap'));
  const f = one(r, 'brute_force');
  assert.equal(f.evidence['source'], '192.168.56.1');
  assert.equal(f.evidence['target'], '192.168.56.101');
  assert.equal(f.evidence['servicePort'], 21);
  assert.equal(f.evidence['service'], 'ftp');
  assert.equal(f.severity, 'warning');
  // Every login completes and fails alike (one size, about 2 s each): the sessions rule fires at 12, before the failures rule's 20 attempts.
  assert.equal(f.evidence['rules'], 'sessions');
  assert.equal(f.evidence['sessions'], 12);
  assert.equal(f.evidence['sessionSizeCv'], 0);
  assert.match(String(f.evidence['thresholds']), /^sessions 12 >= minSessions 10; sessionsPerMinute [\d.]+ >= minSessionRate 3; sessionSizeCv 0 <= maxSizeCv 0\.5; sessionDurationCv 0\.\d+ <= maxDurationCv 0\.75$/);
  assert.equal(f.evidence['ratio'], 1);
  assert.equal(total(r, 'brute_force', 'attempts'), 30);
  assert.equal(total(r, 'brute_force', 'outcomes.shortLived'), 30);
  assert.equal(total(r, 'brute_force', 'sessions'), 30);
  assert.equal(findings(r, 'port_scan').length, 0);
  assert.equal(findings(r, 'lateral_movement').length, 0);

  // Without the sessions rule, the failures rule still fires (30 short-lived connections, >= minAttempts 20).
  const failures = one(await analyze(pcap('zeek_ftp_bruteforce.pcap'), { analyzers: { brute_force: { minSessions: 1000 } } }), 'brute_force');
  assert.equal(failures.evidence['rules'], 'failures');
  assert.ok(num(failures.evidence, 'attempts') >= 20);
  assert.equal(failures.evidence['shortLived'], failures.evidence['attempts']);
  assert.match(String(failures.evidence['thresholds']), /^attempts \d+ >= minAttempts 20; ratio 1 >= minFailureRatio 0\.5$/);
});

const BENIGN = [
  'ppa_http_espn_fail.pcapng', // ~90 connections to one web server, some failing: not a scan, not brute force
  'ppa1e_email-troubles.pcap',
  'ppa1e_evilprogram.pcap', // RSTs, SYN retries, ICMP port unreachable
  'wssample_dns.cap',
  'zeek_tcp_ssh-dups.pcap', // one long SSH session: not brute force
  'ndpi_1kxun.pcap', // ~100 TCP streams of a mobile app
  'ppa_tcp_handshake.pcapng',
  'ppa_tcp_refuseconnection.pcapng',
  'ppa_nowebaccess3.pcapng',
  'pcpp_sll.pcap',
  'arkime_v6.pcap',
  'wssample_dect_new_rfp_on_wire.pcapng', // 10 periodic reconnects to one host:port
  'wssample_smtp_icmp_fragneeded.pcap',
];

test('shared: silent on benign captures', async () => {
  for (const name of BENIGN) silent(await analyze(pcap(name)), name);
});

// ---------------------------------------------------------------------------
// Flow-sharded workers

/** The worker of `workers` that a host pair's packets go to (shard/shard-hash: both directions alike). */
function workerOf(a: string, b: string, workers: number): number {
  const frame = ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', 0x0800, ip(a, b, 17, udp({ srcPort: 1, dstPort: 2, payload: Buffer.alloc(4) })));
  return shardOf(shardHash(frame, 0, frame.length, 1), workers);
}

/**
 * Scans whose sources probe hosts in every worker, many probes at one timestamp: rounds of 16 SYNs at one
 * instant (unanswered, so all settle at the one packet that passes their deadline, in SYN order, across
 * workers), rounds of 16 UDP datagrams settled together at a window close, FIN/NULL/Xmas probes, ICMP port unreachables,
 * a distributed scan of one host by 5 sources; lateral movement from two internal hosts to 30 each; SSH
 * brute force from three clients; and clock ticks.
 */
function shardedScans(): Capture {
  const cap = new Capture();
  const hosts = Array.from({ length: 16 }, (_, i) => `10.2.0.${i + 1}`);
  for (let round = 0; round < 8; round++) {
    // Each round probes the hosts from another one on, so the first-probed host (which names a block scan's
    // target among hosts with as many ports) is in some round's middle.
    for (let i = 0; i < hosts.length; i++) cap.unanswered(3 + round * 0.5, '10.1.0.1', 41000 + round * 16 + i, hosts[(i + 5 * round + 3) % 16]!, 100 + round);
    for (let i = 0; i < hosts.length; i++) cap.udpSilent(12 + round * 0.25, '10.1.0.2', 51000 + round * 16 + i, hosts[(i + 7 * round + 9) % 16]!, 2000 + round);
  }
  for (let i = 0; i < 12; i++) {
    stealth(cap, 25 + i * 0.001, '10.1.0.3', 45100, hosts[i]!, 20 + (i % 4), [FIN, 0, FIN | PSH | URG][i % 3]!);
    cap.udpUnreachable(25.5, '10.1.0.3', 46000 + i, hosts[(i * 5) % 16]!, 3000 + (i % 6));
  }
  for (let src = 0; src < 5; src++) {
    for (let p = 0; p < 6; p++) cap.refused(31 + p * 0.01, `10.4.0.${src + 1}`, 47000 + p, '10.3.0.1', 5000 + src * 6 + p);
  }
  for (let i = 0; i < 30; i++) {
    const port = [445, 3389, 22][i % 3]!;
    if (i % 3 === 0) cap.session(33 + i * 0.1, '10.0.5.5', 49000 + i, `10.0.6.${i + 1}`, port, { duration: 1 });
    else cap.refused(33 + i * 0.1, '10.0.5.5', 49000 + i, `10.0.6.${i + 1}`, port);
    cap.unanswered(33 + i * 0.1, '10.0.5.6', 49500 + i, `10.0.6.${(i * 7) % 30 + 1}`, 445);
  }
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 40; i++) cap.session(40 + i * 0.3 + c * 0.1, `203.0.113.${c + 1}`, 30000 + i, `10.0.0.${22 + c}`, 22, { duration: 0.5, clientBytes: 600, serverBytes: 900 });
  }
  // Ticks (a host pair of their own) move the clock past deadlines and window ends.
  for (let t = 0; t <= 75; t += 0.7) cap.datagram(t, '192.168.9.1', '192.168.9.2');
  return cap;
}

test('flow-sharded over 2 and 4 workers: scans, lateral movement and brute force spread over workers, many probes at one instant, give one pipeline\'s report, byte for byte', async () => {
  const path = shardedScans().write('sharded-scans.pcap');
  // The sources' probes do land in several workers.
  for (const workers of [2, 4]) {
    for (const [src, dsts] of [['10.1.0.1', 16], ['10.1.0.2', 16], ['10.0.5.5', 30]] as const) {
      const used = new Set(Array.from({ length: dsts }, (_, i) => workerOf(src, src.startsWith('10.0.5') ? `10.0.6.${i + 1}` : `10.2.0.${i + 1}`, workers)));
      assert.ok(used.size >= 2, `${src}: ${used.size} of ${workers} workers`);
    }
    assert.ok(new Set([1, 2, 3, 4, 5].map((s) => workerOf(`10.4.0.${s}`, '10.3.0.1', workers))).size >= 2);
  }
  const json = (r: Report): string => [...reportJsonChunks(r)].join('');
  const scanTuning = { minPorts: 8, minHosts: 8, minPortsSmall: 6 };
  const runs: Array<[string, Record<string, unknown>, Record<string, unknown>]> = [
    ['thresholds within reach', { port_scan: { ...scanTuning, suppressFor: 0 }, lateral_movement: { suppressFor: 20 } }, {}],
    // Bounded tables: sources, targets and probes evicted in the order the attempts settled over all workers.
    ['bounded', { port_scan: { ...scanTuning, maxKeys: 6 }, lateral_movement: { maxKeys: 1 } }, {}],
    // UDP flows ending idle before a window closes: the waits of many flows, in several workers, end at one sweep.
    ['UDP waits ending with their flows', { port_scan: { ...scanTuning, suppressFor: 0 } }, { windows: { seconds: 30 }, flows: { timeouts: { udp: 2 } } }],
  ];
  for (const [name, tuning, rest] of runs) {
    const only: Record<string, unknown> = {};
    for (const id of Object.keys(buildConfig(undefined).analyzers)) only[id] = { enabled: (DETECTORS as readonly string[]).includes(id), ...(tuning[id] ?? {}) };
    const config = buildConfig({ ...rest, analyzers: only, report: { maxFindingsPerType: 1000 } });
    const one = (await analyzeCapture(path, config)).report;
    if (name === 'bounded') {
      assert.ok(maxOver(one, 'port_scan', 'evicted') > 0);
      assert.ok(maxOver(one, 'lateral_movement', 'evicted') > 0);
    } else if (name === 'UDP waits ending with their flows') {
      assert.equal(total(one, 'port_scan', 'outcomes.udpUnanswered'), 128);
      assert.ok(findings(one, 'port_scan').some((f) => f.host === '10.1.0.2' && f.evidence['target'] === '10.2.0.10'));
    } else {
      const scans = findings(one, 'port_scan');
      const kinds = new Set(scans.map((f) => `${String(f.evidence['kind'])} ${f.host ?? ''}`));
      for (const kind of ['block 10.1.0.1', 'block 10.1.0.2', 'distributed 10.3.0.1']) assert.ok(kinds.has(kind), `${kind} in ${[...kinds].join(', ')}`);
      // 10.1.0.1's 16 hosts have 8 ports each: the first probed (in SYN order) names the target.
      assert.ok(scans.some((f) => f.host === '10.1.0.1' && f.evidence['kind'] === 'block' && f.evidence['target'] === '10.2.0.4'));
      assert.ok(scans.some((f) => f.host === '10.1.0.2' && f.evidence['kind'] === 'block' && f.evidence['target'] === '10.2.0.10'));
      assert.equal(total(one, 'port_scan', 'outcomes.udpUnanswered'), 128);
      assert.equal(total(one, 'port_scan', 'outcomes.udpUnreachable'), 12);
      assert.deepEqual(new Set(findings(one, 'lateral_movement').map((f) => f.host)), new Set(['10.0.5.5', '10.0.5.6']));
      assert.equal(new Set(findings(one, 'brute_force').map((f) => f.host)).size, 3);
    }
    // 2 workers in this thread, 4 in worker threads (their parts cloned across).
    for (const workers of [2, 4]) {
      const many = (await analyzeCaptureSharded(path, config, { workers, inProcess: workers === 2 })).report;
      assert.equal(json(many), json(one), `${name}, ${workers} workers`);
    }
  }
});
