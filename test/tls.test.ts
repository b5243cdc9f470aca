/**
 * The tls analyzer and its parser (agent/analyzers/lib/tls-hello.ts):
 * JA3 / JA4 on ClientHellos crafted byte by byte to match the examples the
 * specifications publish (FoxIO JA4 technical details, salesforce/ja3),
 * GREASE handling, hellos split across TCP segments, alerts and findings, a
 * comparison with tshark on the shared captures that carry TLS, and a fuzz
 * of the parser and the pipeline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/analyze/index.js';
import { buildConfig } from '../common/config.js';
import type { Report } from '../common/report.js';
import { ClientHello, ServerHello, isGrease, ja3String, ja4, parseClientHello, parseServerHello } from '../agent/analyzers/lib/tls-hello.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { EtherTypes, Proto, TcpFlags, ethernet, ipv4, tcp, type PcapRecordSpec } from './helpers/capture-writer.js';
import { Rng } from './helpers/fuzz-lib.js';
import { haveTshark } from './helpers/difftest.js';
import { SHARED_PCAPS } from './helpers/paths.js';

// ---------------------------------------------------------------------------
// Crafting hellos

const u16 = (v: number): number[] => [(v >> 8) & 0xff, v & 0xff];
const vec16 = (body: number[]): number[] => [...u16(body.length), ...body];
const ext = (type: number, body: number[]): number[] => [...u16(type), ...vec16(body)];

interface HelloSpec {
  version?: number;
  ciphers: number[];
  /** Extension types in order; the bodies of 0, 10, 11, 13, 16, 43 come from the fields below, others are empty. */
  extensions: number[];
  sni?: string;
  groups?: number[];
  pointFormats?: number[];
  sigAlgs?: number[];
  alpn?: string[];
  versions?: number[];
}

/** A ClientHello handshake message (type, length, body). */
function clientHello(s: HelloSpec): number[] {
  const body: number[] = [...u16(s.version ?? 0x0303), ...new Array<number>(32).fill(7), 0];
  body.push(...vec16(s.ciphers.flatMap(u16)), 1, 0);
  const exts: number[] = [];
  for (const t of s.extensions) {
    switch (t) {
      case 0: { const n = [...Buffer.from(s.sni ?? '')]; exts.push(...ext(0, vec16([0, ...u16(n.length), ...n]))); break; }
      case 10: exts.push(...ext(10, vec16((s.groups ?? []).flatMap(u16)))); break;
      case 11: { const pf = s.pointFormats ?? [0]; exts.push(...ext(11, [pf.length, ...pf])); break; }
      case 13: exts.push(...ext(13, vec16((s.sigAlgs ?? []).flatMap(u16)))); break;
      case 16: exts.push(...ext(16, vec16((s.alpn ?? []).flatMap((a) => [a.length, ...Buffer.from(a, 'latin1')])))); break;
      case 43: { const v = (s.versions ?? []).flatMap(u16); exts.push(...ext(43, [v.length, ...v])); break; }
      default: exts.push(...ext(t, []));
    }
  }
  body.push(...vec16(exts));
  return [1, 0, ...u16(body.length), ...body];
}

function serverHello(version: number, cipher: number, selected?: number): number[] {
  const exts = selected === undefined ? [] : ext(43, u16(selected));
  const body = [...u16(version), ...new Array<number>(32).fill(9), 0, ...u16(cipher), 0, ...vec16([...exts, ...ext(0xff01, [0])])];
  return [2, 0, ...u16(body.length), ...body];
}

const record = (type: number, body: number[]): number[] => [type, 3, 1, ...u16(body.length), ...body];

// The JA4 example (FoxIO technical details): Chrome's 15 ciphers and 16 extensions in their original order, plus GREASE.
const JA4_EXAMPLE: HelloSpec = {
  ciphers: [0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035],
  extensions: [0x2a2a, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015, 0xbaba],
  sni: 'example.com',
  groups: [0x4a4a, 0x001d, 0x0017, 0x0018],
  pointFormats: [0],
  sigAlgs: [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
  alpn: ['h2', 'http/1.1'],
  versions: [0x7a7a, 0x0304, 0x0303],
};

function parse(bytes: number[]): { b: Uint8Array; ch: ClientHello } {
  const b = Uint8Array.from(bytes);
  const ch = new ClientHello();
  assert.ok(parseClientHello(b, 4, b.length - 4, ch));
  return { b, ch };
}

test('JA4 of the specification\'s example hello is t13d1516h2_8daaf6152771_e5627efa2ab1 (GREASE left out)', () => {
  const { b, ch } = parse(clientHello(JA4_EXAMPLE));
  assert.equal(ja4(b, ch, 't'), 't13d1516h2_8daaf6152771_e5627efa2ab1');
  assert.equal(ja4(b, ch, 'q'), 'q13d1516h2_8daaf6152771_e5627efa2ab1');
  assert.equal(ch.highestVersion(), 0x0304);
});

test('JA4 without signature algorithms hashes the extension list alone (spec: 6d807ffa2a79); no SNI gives i, no ALPN 00', () => {
  const spec = { ...JA4_EXAMPLE, extensions: JA4_EXAMPLE.extensions.filter((e) => e !== 0x000d && e !== 0x0000 && e !== 0x0010) };
  const { b, ch } = parse(clientHello(spec));
  // the spec's example list, without 000d: its hash is not published, so add 000d back without algorithms
  assert.match(ja4(b, ch, 't'), /^t13i151300_8daaf6152771_[0-9a-f]{12}$/);
  const withEmpty = parse(clientHello({ ...spec, extensions: [...spec.extensions, 0x000d], sigAlgs: [] }));
  assert.equal(ja4(withEmpty.b, withEmpty.ch, 't'), 't13i151400_8daaf6152771_6d807ffa2a79');
});

test('JA4 ALPN: first and last character, hex digits when not alphanumeric; TLS 1.2 without supported_versions', () => {
  const h = parse(clientHello({ ciphers: [0x002f], extensions: [16], alpn: ['http/1.1'] }));
  assert.match(ja4(h.b, h.ch, 't'), /^t12i0101h1_/);
  const odd = parse(clientHello({ ciphers: [0x002f], extensions: [16], alpn: ['\x01ab\xff'] }));
  assert.match(ja4(odd.b, odd.ch, 't'), /^t12i01010f_/);
  const none = parse(clientHello({ ciphers: [], extensions: [] }));
  assert.equal(ja4(none.b, none.ch, 't'), 't12i000000_000000000000_000000000000');
});

test('JA3 string: decimal, dash-joined, GREASE removed from ciphers, extensions and curves', () => {
  const { ch } = parse(clientHello(JA4_EXAMPLE));
  assert.equal(ja3String(ch), '771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,'
    + '27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0');
  for (const g of [0x0a0a, 0x1a1a, 0xfafa]) assert.ok(isGrease(g));
  for (const g of [0x0a1a, 0x0b0b, 0x1301]) assert.ok(!isGrease(g));
});

test('ServerHello: supported_versions gives the chosen version; truncations are "not parsed", never a throw', () => {
  const b = Uint8Array.from(serverHello(0x0303, 0x1301, 0x0304));
  const sh = new ServerHello();
  assert.ok(parseServerHello(b, 4, b.length - 4, sh));
  assert.equal(sh.chosenVersion, 0x0304);
  assert.equal(sh.cipher, 0x1301);
  for (let n = 0; n < b.length - 4; n++) assert.equal(parseServerHello(b, 4, n, sh), n === 38 ? true : false, `length ${n}`);
  const c = Uint8Array.from(clientHello(JA4_EXAMPLE));
  const ch = new ClientHello();
  for (let n = 0; n < c.length - 4; n++) parseClientHello(c, 4, n, ch);
});

// ---------------------------------------------------------------------------
// Through the pipeline

const CLIENT = '10.0.0.1';
const SERVER = '10.0.0.2';

/** One TCP connection: handshake, then payloads alternating as given (in order, sequence numbers tracked). */
function connection(sport: number, dport: number, t0: number, segments: ReadonlyArray<{ fromClient: boolean; data: number[]; dt?: number }>): PcapRecordSpec[] {
  const out: PcapRecordSpec[] = [];
  let t = t0;
  let cseq = 1000;
  let sseq = 5000;
  const frame = (fromClient: boolean, flags: number, payload: number[]): void => {
    const seg = tcp({ srcPort: fromClient ? sport : dport, dstPort: fromClient ? dport : sport, seq: fromClient ? cseq : sseq, ack: fromClient ? sseq : cseq, flags, payload: Uint8Array.from(payload) });
    const ip = ipv4({ src: fromClient ? CLIENT : SERVER, dst: fromClient ? SERVER : CLIENT, proto: Proto.TCP, payload: seg });
    out.push({ tsSec: Math.floor(t), tsSub: Math.round((t % 1) * 1e6), data: ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4, ip) });
  };
  frame(true, TcpFlags.SYN, []); cseq++; t += 0.01;
  frame(false, TcpFlags.SYN | TcpFlags.ACK, []); sseq++; t += 0.01;
  frame(true, TcpFlags.ACK, []); t += 0.01;
  for (const s of segments) {
    frame(s.fromClient, TcpFlags.ACK | TcpFlags.PSH, s.data);
    if (s.fromClient) cseq += s.data.length; else sseq += s.data.length;
    t += s.dt ?? 0.01;
  }
  return out;
}

const tlsMetrics = (r: Report): Array<Record<string, unknown>> => r.windows.map((w) => w.metrics['tls'] as Record<string, unknown>);
const sum = (r: Report, key: string): number => tlsMetrics(r).reduce((a, m) => a + (m[key] as number), 0);

test('a ClientHello split over three segments and two records is reassembled; SNI, JA4, handshake time, TLS 1.3 stated', async () => {
  const hello = clientHello(JA4_EXAMPLE);
  // Two handshake records (the message fragmented at the record layer), then cut into three TCP segments.
  const bytes = [...record(22, hello.slice(0, 100)), ...record(22, hello.slice(100))];
  const sh = record(22, serverHello(0x0303, 0x1301, 0x0304));
  const records = connection(40000, 8443, 1000, [
    { fromClient: true, data: bytes.slice(0, 3) },
    { fromClient: true, data: bytes.slice(3, 150) },
    { fromClient: true, data: bytes.slice(150) },
    { fromClient: false, data: [...sh, ...record(20, [1]), ...record(23, [1, 2, 3])] },
    { fromClient: true, data: [...record(20, [1]), ...record(23, [4, 5, 6])], dt: 0.05 },
    { fromClient: false, data: record(23, [7, 8, 9]) },
  ]);
  const r = await analyzeCrafted(records, {}, 'tls-split');
  assert.equal(sum(r, 'clientHellos'), 1);
  assert.equal(sum(r, 'serverHellos'), 1);
  assert.equal(sum(r, 'certificatesEncrypted'), 1);
  const m = tlsMetrics(r).find((x) => (x['clientHellos'] as number) > 0)!;
  assert.deepEqual(m['serverNames'], [{ name: 'example.com', clientHellos: 1 }]);
  assert.deepEqual(m['ja4'], [{ value: 't13d1516h2_8daaf6152771_e5627efa2ab1', count: 1 }]);
  assert.deepEqual(m['versionsChosen'], { 'TLS 1.3': 1 });
  // The segment completing the ClientHello (t = 1000.05) -> the server's first record after the client's Finished (t = 1000.12).
  const time = m['handshakeTime'] as { count: number; max: number };
  assert.equal(time.count, 1);
  assert.ok(Math.abs(time.max - 0.07) < 1e-6, `handshake time ${time.max}`);
});

test('a fatal alert before the ServerHello is a tls_handshake_failure by server name; TLS 1.0 chosen is tls_deprecated_version', async () => {
  const failing = connection(40001, 443, 2000, [
    { fromClient: true, data: record(22, clientHello({ ciphers: [0x002f], extensions: [0], sni: 'bad.example' })) },
    { fromClient: false, data: record(21, [2, 40]) },
  ]);
  const old = connection(40002, 443, 2000.5, [
    { fromClient: true, data: record(22, clientHello({ version: 0x0301, ciphers: [0x002f], extensions: [0], sni: 'old.example' })) },
    { fromClient: false, data: record(22, serverHello(0x0301, 0x002f)) },
  ]);
  const r = await analyzeCrafted([...failing, ...old].sort((a, b) => a.tsSec + a.tsSub / 1e6 - (b.tsSec + b.tsSub / 1e6)), {}, 'tls-alerts');
  const failure = r.findings.find((f) => f.type === 'tls_handshake_failure');
  assert.ok(failure, 'no tls_handshake_failure');
  assert.equal(failure.evidence['server'], 'bad.example');
  assert.match(failure.summary, /handshake_failure x1/);
  const deprecated = r.findings.find((f) => f.type === 'tls_deprecated_version');
  assert.ok(deprecated);
  assert.equal(deprecated.evidence['server'], 'old.example');
  assert.equal(deprecated.severity, 'warning');
  const m = tlsMetrics(r).find((x) => (x['clientHellos'] as number) > 0)!;
  assert.deepEqual(m['alerts'], { handshake_failure: 1 });
  assert.equal(m['fatalAlerts'], 1);
});

test('a gap in the client\'s sequence ends the flow\'s analysis and is counted; non-TLS payload is ignored', async () => {
  const hello = record(22, clientHello(JA4_EXAMPLE));
  const recs = connection(40003, 443, 3000, [{ fromClient: true, data: hello.slice(0, 50) }, { fromClient: true, data: hello.slice(50, 100) }, { fromClient: true, data: hello.slice(100) }]);
  recs.splice(4, 1); // the second data segment is missing from the capture
  const r = await analyzeCrafted([...recs, ...connection(40004, 80, 3001, [{ fromClient: true, data: [...Buffer.from('GET / HTTP/1.1\r\n\r\n')] }])], {}, 'tls-gap');
  assert.equal(sum(r, 'clientHellos'), 0);
  assert.equal(tlsMetrics(r).reduce((a, m) => a + (m['dropped'] as { gaps: number }).gaps, 0), 1);
});

// ---------------------------------------------------------------------------
// Wireshark agreement

const TLS_CAPTURES = ['ndpi_1kxun.pcap', 'pcpp_pcapng-example.pcapng'];

function tshark(file: string, filter: string, fields: string[]): string[][] {
  const out = execFileSync('tshark', ['-r', file, '-Y', filter, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t'));
}

for (const name of TLS_CAPTURES) {
  const file = join(SHARED_PCAPS, name);
  test(`tls agrees with tshark on ${name}: ClientHellos, ServerHellos, server names, JA3 and JA3S`, { skip: !haveTshark() ? 'tshark not installed' : !existsSync(file) ? 'capture missing' : false }, async () => {
    const ch = tshark(file, 'tls.handshake.type == 1', ['tls.handshake.extensions_server_name', 'tls.handshake.ja3']);
    const sh = tshark(file, 'tls.handshake.type == 2', ['tls.handshake.ja3s']);
    const { report } = await analyzeCapture(file, buildConfig({}));
    const ms = tlsMetrics(report);
    assert.equal(ms.reduce((a, m) => a + (m['clientHellos'] as number), 0), ch.length);
    assert.equal(ms.reduce((a, m) => a + (m['serverHellos'] as number), 0), sh.length);
    const names = ms.flatMap((m) => (m['serverNames'] as Array<{ name: string; clientHellos: number }>).flatMap((x) => new Array<string>(x.clientHellos).fill(x.name))).sort();
    assert.deepEqual(names, ch.map((l) => l[0]!).filter((n) => n !== '').sort());
    const expand = (key: string): string[] => ms.flatMap((m) => (m[key] as Array<{ value: string; count: number }>).flatMap((x) => new Array<string>(x.count).fill(x.value))).sort();
    assert.deepEqual(expand('ja3'), ch.map((l) => l[1]!).sort());
    assert.deepEqual(expand('ja3s'), sh.map((l) => l[0]!).sort());
  });
}

// ---------------------------------------------------------------------------
// Fuzz

function mutate(rng: Rng, base: number[]): number[] {
  const b = [...base];
  const kind = rng.int(4);
  if (kind === 0) return b.slice(0, rng.int(b.length + 1));
  if (kind === 1) { for (let k = rng.range(1, 8); k > 0; k--) b[rng.int(b.length)] = rng.u8(); return b; }
  if (kind === 2) { const p = rng.int(b.length); b.splice(p, rng.int(16), ...rng.bytes(rng.int(16))); return b; }
  return [...rng.bytes(rng.length(600))];
}

test('fuzz: 20,000 mutated and truncated hellos and random bytes never make the parser throw', () => {
  const rng = new Rng(Number(process.env['FUZZ_SEED'] ?? 1616));
  const bases = [clientHello(JA4_EXAMPLE), clientHello({ ciphers: [1, 2], extensions: [0, 16, 43, 10, 11, 13], sni: 'a', alpn: ['x'], versions: [0x0304] }), serverHello(0x0303, 0x1301, 0x0304)];
  const ch = new ClientHello();
  const sh = new ServerHello();
  for (let i = 0; i < 20_000; i++) {
    const b = Uint8Array.from(mutate(rng, rng.pick(bases)));
    const off = rng.int(5);
    const len = rng.int(b.length + 8) - 2;
    if (parseClientHello(b, off, len, ch)) ja4(b, ch, 't');
    parseServerHello(b, off, len, sh);
  }
});

test('fuzz: 3,000 TLS-looking flows with mutated records, cut anywhere, through the pipeline', async () => {
  const rng = new Rng(Number(process.env['FUZZ_SEED'] ?? 2323));
  const all: PcapRecordSpec[] = [];
  for (let i = 0; i < 3000; i++) {
    const hello = [...record(22, mutate(rng, clientHello(JA4_EXAMPLE)))];
    hello[0] = 22; hello[1] = 3; // keep it recognisable as TLS most of the time
    const cut = rng.int(hello.length);
    const server = rng.chance(0.5) ? record(22, mutate(rng, serverHello(0x0303, 0x1301, 0x0304))) : [...rng.bytes(rng.length(80))];
    all.push(...connection(10000 + (i % 50000), 443, 4000 + i * 0.001, [
      { fromClient: true, data: hello.slice(0, Math.max(1, cut)) },
      { fromClient: true, data: hello.slice(Math.max(1, cut)).concat([0]) },
      { fromClient: false, data: server.length ? server : [0] },
      { fromClient: false, data: [...record(rng.range(20, 24), mutate(rng, [2, 40]))] },
    ]));
  }
  all.sort((a, b) => a.tsSec + a.tsSub / 1e6 - (b.tsSec + b.tsSub / 1e6));
  const r = await analyzeCrafted(all, {}, 'tls-fuzz');
  assert.equal(r.capture.decodeErrors['internal.error'] ?? 0, 0, 'the pipeline guard caught an exception');
  assert.ok(sum(r, 'clientHellos') > 0);
});
