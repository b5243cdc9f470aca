/**
 * Allow-lists and threshold evidence of the flood, beaconing, exfiltration and
 * lateral_movement detectors: a crafted capture that fires a detector is
 * analyzed again with a host or port allowed (what each detector lets through:
 * see its file header), which stops the finding and counts the flows (or, for
 * lateral_movement, the attempts) in the window metric `allowed`; a listed
 * host or port the behaviour does not involve changes nothing. Every finding
 * names the thresholds it crossed with the measured values
 * (evidence.thresholds). Also beaconing's severity rule for internal
 * destinations observed over a short span.
 *
 * Crafted captures start at BASE, a multiple of 10^6 (the decoder's time base)
 * and of the window length.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Finding, Report } from '../common/report.js';
import { SHORT_INTERNAL_SPAN } from '../agent/analyzers/beaconing.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { EtherTypes, Proto, TcpFlags, ethernet, icmpEcho, ipv4, ipv6, tcp, udp, type PcapRecordSpec } from './helpers/capture-writer.js';

const BASE = 1_700_000_000;
const { SYN, ACK, FIN, PSH, RST } = TcpFlags;

// ---------------------------------------------------------------------------
// Crafting

type Rec = PcapRecordSpec;

function frame(t: number, packet: Buffer, wireLen?: number): Rec {
  const us = Math.round(t * 1e6);
  const v6 = packet[0]! >> 4 === 6;
  const data = ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', v6 ? EtherTypes.IPV6 : EtherTypes.IPV4, packet);
  return { tsSec: BASE + Math.floor(us / 1e6), tsSub: us % 1e6, data, wireLen: wireLen ?? data.length };
}

function ip(src: string, dst: string, proto: number, payload: Buffer): Buffer {
  return src.includes(':') ? ipv6({ src, dst, proto, payload }) : ipv4({ src, dst, proto, payload });
}

function seg(t: number, src: string, sport: number, dst: string, dport: number, flags: number, seq = 0, ack = 0, len = 0): Rec {
  return frame(t, ip(src, dst, Proto.TCP, tcp({ srcPort: sport, dstPort: dport, flags, seq, ack, payload: Buffer.alloc(len, 0x61) })));
}

function datagram(t: number, src: string, sport: number, dst: string, dport: number, len = 8): Rec {
  return frame(t, ip(src, dst, Proto.UDP, udp({ srcPort: sport, dstPort: dport, payload: Buffer.alloc(len, 0x62) })));
}

/** A UDP datagram whose frame is `wireLen` bytes on the wire (only 64 payload bytes captured). */
function bulk(t: number, src: string, sport: number, dst: string, dport: number, wireLen: number): Rec {
  return frame(t, ipv4({ src, dst, proto: Proto.UDP, payload: udp({ srcPort: sport, dstPort: dport, payload: Buffer.alloc(64) }) }), wireLen);
}

/** A whole TCP connection at `t`: handshake, request, response, FINs. */
function connection(t: number, c: string, cp: number, s: string, sp: number, request = 300, response = 600): Rec[] {
  const ci = 1000 + cp;
  const si = 5000;
  return [
    seg(t, c, cp, s, sp, SYN, ci),
    seg(t + 0.001, s, sp, c, cp, SYN | ACK, si, ci + 1),
    seg(t + 0.002, c, cp, s, sp, ACK, ci + 1, si + 1),
    seg(t + 0.003, c, cp, s, sp, PSH | ACK, ci + 1, si + 1, request),
    seg(t + 0.02, s, sp, c, cp, PSH | ACK, si + 1, ci + 1 + request, response),
    seg(t + 0.021, c, cp, s, sp, FIN | ACK, ci + 1 + request, si + 1 + response),
    seg(t + 0.022, s, sp, c, cp, FIN | ACK, si + 1 + response, ci + 2 + request),
    seg(t + 0.023, c, cp, s, sp, ACK, ci + 2 + request, si + 2 + response),
  ];
}

/** Connections every `period` s (no jitter), `events` of them, from `start`. */
function periodic(client: string, server: string, port: number, period: number, events: number, start = 1): Rec[] {
  const out: Rec[] = [];
  for (let i = 0; i < events; i++) out.push(...connection(start + i * period, client, 40000 + i, server, port));
  return out;
}

// ---------------------------------------------------------------------------
// Report access

const findings = (r: Report, type: string): Finding[] => r.findings.filter((f) => f.type === type);
/** Sum over the windows of a detector's metric. */
const total = (r: Report, id: string, key: string): number => r.windows.reduce((s, w) => {
  const m = w.metrics[id];
  assert.ok(m, `metrics.${id}`);
  assert.equal(typeof m[key], 'number', `metrics.${id}.${key}`);
  return s + (m[key] as number);
}, 0);
const evidence = (f: Finding, key: string): unknown => {
  assert.ok(key in f.evidence, `evidence.${key}`);
  return f.evidence[key];
};

/** The finding count and `allowed` total of one detector on `recs` with a config. */
async function run(recs: readonly Rec[], type: string, config: Record<string, unknown>): Promise<{ found: Finding[]; allowed: number }> {
  const r = await analyzeCrafted(recs, config, type);
  return { found: findings(r, type), allowed: total(r, type, 'allowed') };
}

const withAllow = (id: string, base: Record<string, unknown>, allow: Record<string, unknown>): Record<string, unknown> =>
  ({ analyzers: { [id]: { ...base, ...allow } } });

// ---------------------------------------------------------------------------
// flood

/** 1,000 SYNs in 10 s to 10.0.0.80:80 from 20 sources 100.64.0.x, none answered. */
function synFlood(): Rec[] {
  const out: Rec[] = [];
  for (let i = 0; i < 1000; i++) out.push(seg(i / 100, `100.64.0.${1 + (i % 20)}`, 20000 + i, '10.0.0.80', 80, SYN, i * 7919));
  return out;
}

const FLOOD = { synRate: 50, udpRate: 100, icmpRate: 50 };

test('flood: an allowed destination, source or destination port stops a SYN flood; `allowed` counts its flows', async () => {
  const recs = synFlood();
  const plain = await run(recs, 'flood', withAllow('flood', FLOOD, {}));
  assert.equal(plain.found.length, 1);
  assert.equal(plain.allowed, 0);
  const x = plain.found[0]!;
  assert.equal(x.host, '10.0.0.80');
  assert.equal(evidence(x, 'kind'), 'syn');
  // Named with the measured values: the rate against synRate, the half-open ratio against halfOpenRatio.
  assert.equal(evidence(x, 'thresholds'), `ratePerSecond ${String(evidence(x, 'ratePerSecond'))} >= synRate 50; halfOpenRatio 1 >= halfOpenRatio 0.8`);
  assert.ok((evidence(x, 'ratePerSecond') as number) >= 50);

  for (const allow of [{ allowHosts: ['10.0.0.80'] }, { allowHosts: ['100.64.0.0/24'] }, { allowPorts: [80] }]) {
    const a = await run(recs, 'flood', withAllow('flood', FLOOD, allow));
    assert.equal(a.found.length, 0, JSON.stringify(allow));
    assert.equal(a.allowed, 1000, `${JSON.stringify(allow)}: every SYN is its own flow`);
  }
  // Listed hosts and ports the flood does not involve change nothing (a source port is not the destination port).
  for (const allow of [{ allowHosts: ['10.0.0.81', '100.64.1.0/24'] }, { allowPorts: [443, 20000] }]) {
    const a = await run(recs, 'flood', withAllow('flood', FLOOD, allow));
    assert.equal(a.found.length, 1, JSON.stringify(allow));
    assert.equal(a.allowed, 0);
  }
});

test('flood: UDP and ICMP floods name their rate threshold; unsolicited replies are allowed by the port they are sent to; ICMP has no ports', async () => {
  // Unsolicited "replies" from port 53 to 10.0.0.20:50000 (reflection): the flooded port is 50000.
  const reflected: Rec[] = [];
  for (let i = 0; i < 1200; i++) reflected.push(datagram(i / 120, `198.51.100.${1 + (i % 3)}`, 53, '10.0.0.20', 50000, 200));
  const u = await run(reflected, 'flood', withAllow('flood', FLOOD, {}));
  assert.equal(u.found.length, 1);
  const x = u.found[0]!;
  assert.equal(evidence(x, 'kind'), 'udp');
  assert.equal(x.host, '10.0.0.20');
  assert.equal(evidence(x, 'thresholds'), `ratePerSecond ${String(evidence(x, 'ratePerSecond'))} >= udpRate 100`);
  assert.equal((await run(reflected, 'flood', withAllow('flood', FLOOD, { allowPorts: [53] }))).found.length, 1, 'the reflecting service\'s port is not the destination');
  const byPort = await run(reflected, 'flood', withAllow('flood', FLOOD, { allowPorts: [50000] }));
  assert.equal(byPort.found.length, 0);
  assert.equal(byPort.allowed, 3, 'one flow per source');

  const echoes: Rec[] = [];
  for (let i = 0; i < 600; i++) echoes.push(frame(i / 60, ipv4({ src: '198.51.100.9', dst: '10.0.0.7', proto: Proto.ICMP, payload: icmpEcho(7, i) })));
  const e = await run(echoes, 'flood', withAllow('flood', FLOOD, { allowPorts: [7] }));
  assert.equal(e.found.length, 1, 'an echo identifier is not a port');
  assert.equal(e.allowed, 0);
  assert.equal(evidence(e.found[0]!, 'thresholds'), `ratePerSecond ${String(evidence(e.found[0]!, 'ratePerSecond'))} >= icmpRate 50`);
  assert.equal((await run(echoes, 'flood', withAllow('flood', FLOOD, { allowHosts: ['198.51.100.9'] }))).found.length, 0);
});

// ---------------------------------------------------------------------------
// beaconing

const BEACON_RUN = (): Rec[] => periodic('10.0.0.66', '198.51.100.77', 8443, 30, 12);

test('beaconing: an allowed endpoint or destination port stops a beacon; `allowed` counts its flows; ignorePorts stay the default list', async () => {
  const recs = BEACON_RUN();
  const plain = await run(recs, 'beaconing', {});
  assert.equal(plain.found.length, 1);
  assert.equal(plain.allowed, 0);
  const x = plain.found[0]!;
  assert.equal(x.severity, 'warning', 'an external destination');
  assert.equal(evidence(x, 'events'), 10);
  // No jitter, equal sizes: both CVs 0 (the intervals' to within rounding).
  assert.match(String(evidence(x, 'thresholds')), /^events 10 >= minEvents 10; intervalCv 0(\.0+\d*)? <= maxIntervalCv 0\.1; sizeCv 0 <= maxSizeCv 0\.25$/);

  for (const allow of [{ allowHosts: ['198.51.100.77'] }, { allowHosts: ['10.0.0.0/24'] }, { allowPorts: [8443] }]) {
    const a = await run(recs, 'beaconing', { analyzers: { beaconing: allow } });
    assert.equal(a.found.length, 0, JSON.stringify(allow));
    assert.equal(a.allowed, 12, `${JSON.stringify(allow)}: one flow per connection`);
  }
  const other = await run(recs, 'beaconing', { analyzers: { beaconing: { allowHosts: ['198.51.100.78'], allowPorts: [443, 40000] } } });
  assert.equal(other.found.length, 1, 'a client port is not the destination port');
  assert.equal(other.allowed, 0);
  // allowPorts adds to ignorePorts, it does not replace them: port 123 stays ignored.
  const ntp: Rec[] = [];
  for (let i = 0; i < 12; i++) ntp.push(datagram(1 + i * 64, '10.0.0.5', 40123, '162.159.200.1', 123, 48), datagram(1.02 + i * 64, '162.159.200.1', 123, '10.0.0.5', 40123, 48));
  const n = await analyzeCrafted(ntp, { analyzers: { beaconing: { allowPorts: [8443] } } }, 'ntp');
  assert.equal(findings(n, 'beaconing').length, 0);
  assert.equal(total(n, 'beaconing', 'ignoredPortFlows'), 1);
  assert.equal(total(n, 'beaconing', 'allowed'), 0);
});

test('beaconing: IPv6 endpoints are allowed by CIDR block', async () => {
  const recs = periodic('fd00::66', '2001:db8::77', 8443, 30, 12);
  assert.equal((await run(recs, 'beaconing', {})).found.length, 1);
  const a = await run(recs, 'beaconing', { analyzers: { beaconing: { allowHosts: ['2001:db8::/32'] } } });
  assert.equal(a.found.length, 0);
  assert.equal(a.allowed, 12);
});

test(`beaconing: an internal destination observed for less than ${SHORT_INTERNAL_SPAN} s is info, over longer a warning; external destinations keep their severity`, async () => {
  // 10 reconnects every 2.5 s to an internal controller (22.5 s): a score of a warning, reported as info.
  const short = findings(await analyzeCrafted(periodic('10.0.0.66', '10.0.1.50', 16321, 2.5, 10), {}, 'internal-short'), 'beaconing');
  assert.equal(short.length, 1);
  assert.equal(evidence(short[0]!, 'internalDestination'), true);
  assert.ok((evidence(short[0]!, 'score') as number) >= 80, 'the score alone would make it a warning');
  assert.ok((evidence(short[0]!, 'observedSeconds') as number) < SHORT_INTERNAL_SPAN);
  assert.equal(short[0]!.severity, 'info');
  // The same to an external host: a warning, as before.
  const external = findings(await analyzeCrafted(periodic('10.0.0.66', '198.51.100.50', 16321, 2.5, 10), {}, 'external-short'), 'beaconing');
  assert.equal(external.length, 1);
  assert.equal(external[0]!.severity, 'warning');
  // To the internal host every 7 s, judged from the 50th event (343 s observed): a warning.
  const long = findings(await analyzeCrafted(periodic('10.0.0.66', '10.0.1.50', 16321, 7, 50), { analyzers: { beaconing: { minEvents: 50 } } }, 'internal-long'), 'beaconing');
  assert.equal(long.length, 1);
  assert.ok((evidence(long[0]!, 'observedSeconds') as number) >= SHORT_INTERNAL_SPAN);
  assert.equal(long[0]!.severity, 'warning');
  assert.match(String(evidence(long[0]!, 'thresholds')), /^events 50 >= minEvents 50; /);
});

// ---------------------------------------------------------------------------
// exfiltration

/** 10 datagrams of 10,000 bytes from 10.0.0.9:50000 to 198.51.100.9:7000, `back` bytes back. */
function upload(back: number): Rec[] {
  const out: Rec[] = [];
  for (let i = 0; i < 10; i++) out.push(bulk(i * 0.5, '10.0.0.9', 50000, '198.51.100.9', 7000, 10_000));
  if (back > 0) out.push(bulk(0.25, '198.51.100.9', 7000, '10.0.0.9', 50000, back));
  return out;
}

const EXFIL = { minBytes: 100_000, minRatio: 10 };

test('exfiltration: an allowed internal host, external host or external port stops an upload; `allowed` counts its flows', async () => {
  const recs = upload(10_000);
  const plain = await run(recs, 'exfiltration', withAllow('exfiltration', EXFIL, {}));
  assert.equal(plain.found.length, 1);
  assert.equal(plain.allowed, 0);
  assert.equal(evidence(plain.found[0]!, 'thresholds'), 'sentBytes 100000 >= minBytes 100000; ratio 10 >= minRatio 10');
  for (const allow of [{ allowHosts: ['10.0.0.9'] }, { allowHosts: ['198.51.100.0/24'] }, { allowPorts: [7000] }]) {
    const a = await run(recs, 'exfiltration', withAllow('exfiltration', EXFIL, allow));
    assert.equal(a.found.length, 0, JSON.stringify(allow));
    assert.equal(a.allowed, 1, JSON.stringify(allow));
  }
  const other = await run(recs, 'exfiltration', withAllow('exfiltration', EXFIL, { allowHosts: ['10.0.0.10', '198.51.101.0/24'], allowPorts: [50000] }));
  assert.equal(other.found.length, 1, 'the internal host\'s own port is not the external port');
  assert.equal(other.allowed, 0);
  // Nothing received: the ratio is unbounded.
  const oneWay = await run(upload(0), 'exfiltration', withAllow('exfiltration', EXFIL, {}));
  assert.equal(evidence(oneWay.found[0]!, 'thresholds'), 'sentBytes 100000 >= minBytes 100000; ratio Infinity >= minRatio 10');
});

// ---------------------------------------------------------------------------
// lateral_movement

/** 10.0.5.5 opening an SMB session to 12 internal hosts 10.0.6.1-12, and an RDP attempt (refused) to 10.0.6.20. */
function sweep(): Rec[] {
  const out: Rec[] = [];
  for (let i = 0; i < 12; i++) out.push(...connection(i * 0.5, '10.0.5.5', 49000 + i, `10.0.6.${i + 1}`, 445));
  out.push(seg(7, '10.0.5.5', 49100, '10.0.6.20', 3389, SYN, 77), seg(7.001, '10.0.6.20', 3389, '10.0.5.5', 49100, RST | ACK, 0, 78));
  return out;
}

test('lateral_movement: an allowed source, target or port is not tracked; `allowed` counts the attempts', async () => {
  const recs = sweep();
  const plain = await run(recs, 'lateral_movement', {});
  assert.equal(plain.found.length, 1);
  assert.equal(plain.allowed, 0);
  const x = plain.found[0]!;
  assert.equal(evidence(x, 'hosts'), 13);
  assert.equal(evidence(x, 'thresholds'), 'hosts 13 >= minHosts 10');
  // A jump host: none of its attempts tracked.
  const jump = await run(recs, 'lateral_movement', { analyzers: { lateral_movement: { allowHosts: ['10.0.5.5'] } } });
  assert.equal(jump.found.length, 0);
  assert.equal(jump.allowed, 13);
  // Four targets allowed (file servers): 9 hosts left, under minHosts.
  const targets = await run(recs, 'lateral_movement', { analyzers: { lateral_movement: { allowHosts: ['10.0.6.0/30', '10.0.6.20'] } } });
  assert.equal(targets.found.length, 0);
  assert.equal(targets.allowed, 4);
  // SMB allowed: the one RDP attempt is left.
  const smb = await run(recs, 'lateral_movement', { analyzers: { lateral_movement: { allowPorts: [445] } } });
  assert.equal(smb.found.length, 0);
  assert.equal(smb.allowed, 12);
  const rdp = await run(recs, 'lateral_movement', { analyzers: { lateral_movement: { allowPorts: [3389], allowHosts: ['10.0.7.0/24'] } } });
  assert.equal(rdp.found.length, 1);
  assert.equal(rdp.allowed, 1);
  assert.equal(evidence(rdp.found[0]!, 'thresholds'), 'hosts 12 >= minHosts 10');
});
