/**
 * Services and names: the IANA port table, behaviour classes on crafted flow
 * figures, FlowNames' bounds and reclamation, DNS-proved server names on a
 * crafted capture, and on the shared captures against tshark 4.0 (run here:
 * which A/AAAA answers each client received, and which flows it then opened).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/analyze/index.js';
import { Behaviour, BEHAVIOUR_NAMES, classifyFlow } from '../agent/flow/behaviour.js';
import { FlowNames, NameSource } from '../agent/flow/flow-names.js';
import { portServiceName } from '../agent/flow/port-service.js';
import { buildConfig } from '../common/config.js';
import type { ReportFlow } from '../common/report.js';
import { renderCsv } from '../common/report-csv.js';
import { ByteWriter, TcpFlags, dns, dnsName, type PcapRecordSpec } from './helpers/capture-writer.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { at, tcp4, udp4 } from './helpers/crafted-frames.js';

test('port table: IANA names by transport and server port', () => {
  assert.equal(portServiceName(6, 443), 'https');
  assert.equal(portServiceName(17, 443), 'https');
  assert.equal(portServiceName(17, 53), 'domain');
  assert.equal(portServiceName(6, 53), 'domain');
  assert.equal(portServiceName(6, 80), 'http');
  assert.equal(portServiceName(6, 22), 'ssh');
  assert.equal(portServiceName(17, 123), 'ntp');
  assert.equal(portServiceName(6, 123), undefined, 'ntp is UDP only in the registry selection');
  assert.equal(portServiceName(6, 0), undefined);
  assert.equal(portServiceName(6, 65535), undefined);
  assert.equal(portServiceName(1, 443), undefined, 'ICMP has no ports');
});

test('behaviour classes on crafted flow figures', () => {
  const name = (code: number): string => BEHAVIOUR_NAMES[code]!;
  // DNS query and answer; a refused handshake; three keep-alives over ten minutes.
  assert.equal(name(classifyFlow(1, 80, 1, 200, 0.02, 1)), 'control');
  assert.equal(name(classifyFlow(1, 60, 1, 54, 0.001, 1)), 'control');
  assert.equal(name(classifyFlow(3, 180, 3, 180, 600, 6)), 'control');
  // A download: 800 full-size segments one way, acknowledgements back.
  assert.equal(name(classifyFlow(400, 400 * 66, 800, 800 * 1514, 8, 9)), 'bulk');
  // The same bytes in small packets are not bulk.
  assert.equal(classifyFlow(400, 400 * 66, 4000, 4000 * 300, 8, 9), Behaviour.UNKNOWN);
  // RTP-like: 50 packets/s of 200 bytes each way for 60 s, every second.
  assert.equal(name(classifyFlow(3000, 3000 * 214, 3000, 3000 * 214, 60, 61)), 'streaming');
  // The same rate in bursts (a packet in 20 of its 61 seconds) is not steady.
  assert.equal(classifyFlow(3000, 3000 * 214, 3000, 3000 * 214, 60, 20), Behaviour.UNKNOWN);
  // A remote shell: 300 small packets over 5 minutes.
  assert.equal(name(classifyFlow(150, 150 * 90, 150, 150 * 120, 300, 120)), 'interactive');
  // Short and middling: unknown.
  assert.equal(classifyFlow(30, 30 * 600, 30, 30 * 600, 2, 3), Behaviour.UNKNOWN);
  assert.equal(classifyFlow(0, 0, 0, 0, 0, 0), Behaviour.UNKNOWN);
});

test('FlowNames: sources by strength, cleared per flow, ids reclaimed from ended flows, dropped when all are live', () => {
  const names = new FlowNames(8, 2);
  for (let s = 0; s < 8; s++) names.flowStarted(s);
  names.learn(0, NameSource.DNS, 'A.example');
  assert.equal(names.nameOf(0), 'a.example');
  assert.equal(names.sourceOf(0), NameSource.DNS);
  names.learn(0, NameSource.TLS_SNI, 'b.example');
  assert.equal(names.nameOf(0), 'b.example', 'a stronger source replaces');
  names.learn(0, NameSource.HTTP_HOST, 'c.example');
  assert.equal(names.nameOf(0), 'b.example', 'a weaker one does not');
  assert.equal(names.size, 2, 'a.example is kept until its id is needed');
  names.learn(1, NameSource.DNS, 'c.example'); // reclaims a.example: no flow holds it
  assert.equal(names.nameOf(1), 'c.example');
  assert.equal(names.namesReclaimed, 1);
  // Both ids held by live flows: a third name is dropped, counted.
  names.learn(2, NameSource.DNS, 'd.example');
  assert.equal(names.nameOf(2), undefined);
  assert.equal(names.namesDropped, 1);
  // Slot 0's flow ends: its name stays readable until the id is reclaimed.
  names.flowEnded(0);
  assert.equal(names.nameOf(0), 'b.example');
  names.learn(2, NameSource.DNS, 'd.example');
  assert.equal(names.nameOf(2), 'd.example');
  assert.equal(names.nameOf(0), undefined, 'the ended flow lost its reclaimed name');
  assert.equal(names.sourceOf(0), NameSource.NONE);
  assert.equal(names.size, 2);
  // Shared names count once; a new flow in a slot starts without one.
  names.learn(3, NameSource.DNS, 'd.example');
  names.flowStarted(2);
  assert.equal(names.nameOf(2), undefined);
  names.learn(4, NameSource.DNS, 'e.example');
  assert.equal(names.nameOf(4), undefined, 'd.example still held by slot 3, c.example by slot 1');
  names.flowStarted(3);
  names.learn(4, NameSource.DNS, 'e.example');
  assert.equal(names.nameOf(4), 'e.example');
  assert.equal(names.nameOf(1), 'c.example');
  assert.equal(names.namesDropped, 2);
  // Bounded however many names go through.
  for (let i = 0; i < 10_000; i++) {
    const slot = 5 + (i % 3);
    names.flowStarted(slot);
    names.learn(slot, NameSource.DNS, `n${i}.example`);
    names.flowEnded(slot);
  }
  const size: number = names.size;
  assert.ok(size <= 2);
  assert.throws(() => new FlowNames(4, 0), RangeError);
});

// ---------------------------------------------------------------------------
// Crafted capture: query, answer, then flows to the answered addresses.


/** A response for `qname`: a CNAME to `cname` first, then A 198.51.100.7 (TTL `ttl`). */
function cnameAnswer(id: number, qname: string, cname: string, ttl: number): Buffer {
  const target = dnsName(cname);
  return new ByteWriter().u16(id).u16(0x8180).u16(1).u16(2).u16(0).u16(0)
    .bytes(dnsName(qname)).u16(1).u16(1)
    .u16(0xc00c).u16(5).u16(1).u32(ttl).u16(target.length).bytes(target)
    .u16(0xc00c).u16(1).u16(1).u32(ttl).u16(4).bytes([198, 51, 100, 7])
    .build();
}

/** A TCP handshake from the client to `server:port` at `us`, then a few data packets. */
function session(us: number, sport: number, server: string, port: number): PcapRecordSpec[] {
  const c = '10.0.0.1';
  return [
    at(us, tcp4(c, sport, server, port, { flags: TcpFlags.SYN, seq: 100 })),
    at(us + 1000, tcp4(server, port, c, sport, { flags: TcpFlags.SYN | TcpFlags.ACK, seq: 500, ack: 101 })),
    at(us + 2000, tcp4(c, sport, server, port, { flags: TcpFlags.ACK, seq: 101, ack: 501 })),
    at(us + 3000, tcp4(c, sport, server, port, { flags: TcpFlags.ACK | TcpFlags.PSH, seq: 101, ack: 501, payload: Buffer.alloc(100) })),
  ];
}

test('a DNS answer names the client\'s next flows to the answered address; the port name otherwise; bounded by the TTL', async () => {
  const records: PcapRecordSpec[] = [
    at(0, udp4('10.0.0.1', 40000, '10.0.0.53', 53, dns({ id: 1, qname: 'www.example.com' }))),
    at(10_000, udp4('10.0.0.53', 53, '10.0.0.1', 40000, dns({ id: 1, response: true, qname: 'WWW.Example.com', answers: 2 }))), // 192.0.2.1, .2
    at(20_000, udp4('10.0.0.1', 40001, '10.0.0.53', 53, dns({ id: 2, qname: 'cdn.example.org' }))),
    at(30_000, udp4('10.0.0.53', 53, '10.0.0.1', 40001, cnameAnswer(2, 'cdn.example.org', 'edge.cdn.example.net', 30))),
    ...session(100_000, 50000, '192.0.2.2', 443),
    ...session(200_000, 50001, '198.51.100.7', 8443),
    ...session(300_000, 50002, '203.0.113.9', 80), // no answer for it
    // The flow's own HTTP Host overrides the DNS name.
    at(350_000, tcp4('10.0.0.1', 50005, '192.0.2.1', 80, { flags: TcpFlags.SYN, seq: 100 })),
    at(351_000, tcp4('192.0.2.1', 80, '10.0.0.1', 50005, { flags: TcpFlags.SYN | TcpFlags.ACK, seq: 500, ack: 101 })),
    at(352_000, tcp4('10.0.0.1', 50005, '192.0.2.1', 80, { flags: TcpFlags.ACK, seq: 101, ack: 501 })),
    at(353_000, tcp4('10.0.0.1', 50005, '192.0.2.1', 80, { flags: TcpFlags.ACK | TcpFlags.PSH, seq: 101, ack: 501, payload: Buffer.from('GET / HTTP/1.1\r\nHost: Other.Example\r\n\r\n') })),
    // Another client never asked: no name.
    at(400_000, tcp4('10.0.0.2', 50003, '192.0.2.1', 443, { flags: TcpFlags.SYN, seq: 1 })),
    // 198.51.100.7's answer (TTL 30, held 60 s) is stale by then.
    ...session(120_000_000, 50004, '198.51.100.7', 8443),
  ];
  const report = await analyzeCrafted(records, { report: { topFlows: 100 } }, 'services-dns');
  const byPort = (port: number): ReportFlow => {
    const f = report.flows.find((x) => x.clientPort === port);
    assert.ok(f, `flow from port ${port}`);
    return f;
  };
  assert.deepEqual(pick(byPort(50000)), { service: 'www.example.com', serverName: 'www.example.com', serverNameSource: 'dns' });
  assert.deepEqual(pick(byPort(50001)), { service: 'cdn.example.org', serverName: 'cdn.example.org', serverNameSource: 'dns' }, 'the name asked for, not the CNAME');
  assert.deepEqual(pick(byPort(50002)), { service: 'http' });
  assert.deepEqual(pick(byPort(50003)), { service: 'https' });
  assert.deepEqual(pick(byPort(50004)), {}, 'stale answer; 8443 has no IANA name in the table');
  assert.deepEqual(pick(byPort(50005)), { service: 'other.example', serverName: 'other.example', serverNameSource: 'http.host' });
  assert.equal(byPort(40000).service, 'domain');
  assert.equal(byPort(40000).behaviour, 'control');
  // Talkers name a host by what its flows were named in the window.
  const talkers = report.windows.flatMap((w) => (w.metrics['talkers'] as { topHosts: Array<{ host: string; serverName?: string }> }).topHosts);
  assert.equal(talkers.find((h) => h.host === byPort(50000).server)?.serverName, 'www.example.com');
  assert.equal(talkers.find((h) => h.host === byPort(50000).client)?.serverName, undefined, 'a client is not named by the servers it reached');
  const m = report.windows[0]!.metrics['services'] as Record<string, unknown>;
  assert.equal(m['dnsAnswers'], 3);
  assert.equal(m['flowsNamedByDns'], 3);
  const csv = renderCsv(report).split('\n');
  assert.match(csv[1]!, /^proto,client,clientPort,server,serverPort,packets,bytes,first,last,state,stream,service,serverName,serverNameSource,behaviour$/);
  assert.ok(csv.some((l) => l.includes(',www.example.com,') && l.includes(',dns,')));
});

function pick(f: ReportFlow): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['service', 'serverName', 'serverNameSource'] as const) if (f[k] !== undefined) out[k] = f[k];
  return out;
}

test('a malformed answer section is counted and names nothing', async () => {
  const good = dns({ id: 1, response: true, qname: 'www.example.com', answers: 1 });
  const cut = good.subarray(0, good.length - 3); // the A record's data cut short
  const report = await analyzeCrafted([
    at(0, udp4('10.0.0.1', 40000, '10.0.0.53', 53, dns({ id: 1, qname: 'www.example.com' }))),
    at(10_000, udp4('10.0.0.53', 53, '10.0.0.1', 40000, cut)),
    ...session(100_000, 50000, '192.0.2.1', 443),
  ], { report: { topFlows: 100 } }, 'services-cut');
  const m = report.windows[0]!.metrics['services'] as Record<string, unknown>;
  assert.equal(m['malformedAnswers'], 1);
  assert.equal(report.flows.find((f) => f.clientPort === 50000)?.serverName, undefined);
});

// ---------------------------------------------------------------------------
// Shared captures against tshark.

const tshark = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
const haveTshark = tshark.status === 0;

/** Shared captures where tshark shows A/AAAA answers (dns.a / dns.aaaa in responses). */
const WITH_ANSWERS = ['arkime_v6.pcap', 'ndpi_1kxun.pcap', 'pcpp_sll.pcap', 'ppa1e_evilprogram.pcap', 'ppa_dns_really_pcapng.pcap',
  'wssample_smtp_icmp_fragneeded.pcap', 'ppa_http_espn_fail.pcapng', 'ppa_nowebaccess3.pcapng', 'zeek_pcapng-multi-interface.pcapng', 'wssample_dns.cap'];

function fields(file: string, filter: string, names: readonly string[]): string[][] {
  const r = spawnSync('tshark', ['-r', join(SHARED_PCAPS, file), '-Y', filter, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,',
    ...names.flatMap((n) => ['-e', n])], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

interface Answer { ts: number; client: string; address: string; name: string; hold: number }

/** The A/AAAA records of each response's answer section (dns.resp.type lists every section's records in order; the first dns.count.answers are answers). */
function answers(file: string): Answer[] {
  const out: Answer[] = [];
  const rows = fields(file, 'dns.flags.response == 1 && dns.flags.rcode == 0 && !mdns && !llmnr && !tcp.analysis.retransmission',
    ['frame.time_epoch', 'ip.dst', 'ipv6.dst', 'dns.qry.name', 'dns.count.answers', 'dns.resp.type', 'dns.resp.ttl', 'dns.a', 'dns.aaaa']);
  for (const [ts, ip, ip6, qname, count, types, ttls, a, aaaa] of rows) {
    const typeList = types.split(',').map(Number);
    const ttlList = ttls.split(',').map(Number);
    const as = a.split(',');
    const as6 = aaaa.split(',');
    let ia = 0;
    let i6 = 0;
    const client = ip || ip6!;
    for (let i = 0; i < Number(count) && i < typeList.length; i++) {
      const hold = Math.min(Math.max(ttlList[i]!, 60), 3600);
      if (typeList[i] === 1) { const addr = as[ia++]!; if (ip) out.push({ ts: Number(ts), client, address: addr, name: qname!.split(',')[0]!.toLowerCase(), hold }); }
      if (typeList[i] === 28) { const addr = as6[i6++]!; if (ip6) out.push({ ts: Number(ts), client, address: addr, name: qname!.split(',')[0]!.toLowerCase(), hold }); }
    }
  }
  return out;
}

test('shared captures: flows a client opens to an address it got in a DNS answer carry the name it asked for (tshark)', { skip: !haveTshark && 'tshark not installed' }, async () => {
  let named = 0;
  for (const file of WITH_ANSWERS) {
    const answered = answers(file);
    const { report } = await analyzeCapture(join(SHARED_PCAPS, file), buildConfig({ report: { topFlows: 100_000 } }));
    for (const f of report.flows) {
      // A stream can hold several flows (a conversation resumed after its idle timeout): each starts at its `first`.
      const start = Date.parse(f.first) / 1000;
      // The latest answer before the flow's start, for its client and address either way round (a capture may start mid-flow).
      const fits = (x: Answer, client: string, server: string): boolean => x.client === client && x.address === server && x.ts <= start + 1e-3 && start <= x.ts + x.hold;
      const found = answered.filter((x) => fits(x, f.client, f.server)).at(-1) ?? answered.filter((x) => fits(x, f.server, f.client)).at(-1);
      const expected = found?.name;
      const what = `${file} ${f.proto} stream ${f.stream} ${f.client} -> ${f.server}`;
      if (f.serverNameSource === 'dns' || expected === undefined) assert.equal(f.serverNameSource === 'dns' ? f.serverName : undefined, expected, what);
      // A TLS server name or HTTP Host proved by the flow itself overrides the DNS name.
      else assert.ok(f.serverNameSource === 'tls.sni' || f.serverNameSource === 'http.host', `${what}: ${f.serverNameSource} ${f.serverName}, expected ${expected}`);
      if (expected !== undefined) named++;
    }
  }
  assert.ok(named >= 5, `flows named by DNS in the shared captures: ${named}`);
});

/** tshark's count of frames matching `filter`. */
function tsharkCount(file: string, filter: string): number {
  return fields(file, filter, ['frame.number']).length;
}

test('shared captures: the window\'s services add up to tshark\'s retransmissions and ACK RTTs, per server port too', { skip: !haveTshark && 'tshark not installed' }, async () => {
  for (const file of ['arkime_wireshark-retrans.pcap', 'ppa1e_email-troubles.pcap', 'ppa_http_espn_fail.pcapng', 'ppa_tcp_dupack.pcapng']) {
    const { report } = await analyzeCapture(join(SHARED_PCAPS, file), buildConfig(undefined));
    const sum = (key: string, service?: string): number => report.windows.reduce((s, w) => {
      const m = w.metrics['services'] as { services: number; byService: Array<Record<string, number | string>> };
      assert.ok(m.services <= 10, `${file}: every service listed`);
      return s + m.byService.filter((r) => service === undefined || r['service'] === service).reduce((a, r) => a + Number(r[key]), 0);
    }, 0);
    assert.equal(sum('tcp.analysis.retransmission'), tsharkCount(file, 'tcp.analysis.retransmission'), `${file} retransmissions`);
    assert.equal(sum('tcp.analysis.ack_rtt.count'), tsharkCount(file, 'tcp.analysis.ack_rtt'), `${file} ack_rtt`);
    assert.equal(sum('tcp.analysis.retransmission', 'http'), tsharkCount(file, 'tcp.analysis.retransmission && tcp.port == 80'), `${file} http retransmissions`);
    assert.equal(sum('packets'), report.capture.packets - tsharkCount(file, '!tcp && !udp && !icmp && !icmpv6 || ip.flags.mf == 1 || ip.frag_offset > 0'), `${file} packets of flows`);
  }
});
