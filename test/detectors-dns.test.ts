/**
 * The dns_tunneling detector: it fires on a real tunnel (iodine, shared
 * capture) and on crafted ones (base32 subdomains, high entropy only, TXT
 * only; per client, dnscat2's direct mode without a fixed parent domain),
 * stays silent on benign shared captures and on crafted ordinary traffic (CDN
 * names, Kubernetes search-path NXDOMAINs, browsing, a forwarding resolver,
 * DKIM lookups, allow-listed clients), and its thresholds, suppression,
 * determinism and key and client bounds behave as documented; flow-sharded
 * over 2 and 4 workers (clients asking several resolvers, so their queries
 * span workers) the report is one pipeline's, byte for byte.
 *
 * Set PCAP_ANALYZER_TEST_KEEP_CRAFTED=<dir> to keep the crafted captures there.
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
import { shardHash, shardOf } from '../agent/decode/shard-hash.js';
import { EtherTypes, Proto, dns, ethernet, ipv4, ipv6, pcapFile, udp, type PcapRecordSpec } from './helpers/capture-writer.js';
import { SHARED_PCAPS } from './helpers/paths.js';
import { analyzeCrafted } from './helpers/analyze-crafted.js';
import { MAX_UNIQUE } from '../agent/analyzers/dns-tunneling.js';

// ---------------------------------------------------------------------------
// Crafting

/** Window-aligned start, so offsets are exact packet times. */
const T0 = 1_700_000_000;
const MAC_A = '02:00:00:00:00:01';
const MAC_B = '02:00:00:00:00:02';
const RESOLVER = '10.0.0.53';
const TXT = 16;
const NULL = 10;
const CNAME = 5;
const MX = 15;

/** A record `ms` milliseconds after T0. */
const at = (ms: number, data: Buffer): PcapRecordSpec => ({ tsSec: T0 + Math.floor(ms / 1000), tsSub: Math.round((ms % 1000) * 1000), data });

function udpPacket(src: string, sport: number, dst: string, dport: number, payload: Uint8Array): Buffer {
  const v6 = src.includes(':');
  const segment = udp({ srcPort: sport, dstPort: dport, payload });
  return v6
    ? ethernet(MAC_B, MAC_A, EtherTypes.IPV6, ipv6({ src, dst, proto: Proto.UDP, payload: segment }))
    : ethernet(MAC_B, MAC_A, EtherTypes.IPV4, ipv4({ src, dst, proto: Proto.UDP, payload: segment }));
}

interface Q { ms: number; client: string; qname: string; qtype?: number; rcode?: number; answer?: boolean; server?: string }

/** A query at `ms` and, unless `answer` is false, its response 20 ms later (rcode, default NOERROR). */
function exchange(q: Q, id: number): PcapRecordSpec[] {
  const server = q.server ?? (q.client.includes(':') ? 'fd00::53' : RESOLVER);
  const sport = 20000 + (id % 40000);
  const out = [at(q.ms, udpPacket(q.client, sport, server, 53, dns({ id: id & 0xffff, qname: q.qname, qtype: q.qtype ?? 1 })))];
  if (q.answer !== false) {
    const rcode = q.rcode ?? 0;
    out.push(at(q.ms + 20, udpPacket(server, 53, q.client, sport, dns({ id: id & 0xffff, response: true, rcode, qname: q.qname, qtype: q.qtype ?? 1, answers: rcode === 0 ? 1 : 0 }))));
  }
  return out;
}

const records = (qs: readonly Q[]): PcapRecordSpec[] =>
  qs.flatMap((q, i) => exchange(q, i + 1)).sort((a, b) => a.tsSec - b.tsSec || a.tsSub - b.tsSub);

/** Seeded PRNG (mulberry32): crafted names are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const HEX = '0123456789abcdef';
const randomLabel = (rand: () => number, alphabet: string, n: number): string =>
  Array.from({ length: n }, () => alphabet[Math.floor(rand() * alphabet.length)]!).join('');
/** A low-entropy unique label of exactly `n` characters: 'a's then a 3-digit counter. */
const plainLabel = (i: number, n: number): string => 'a'.repeat(n - 3) + String(i).padStart(3, '0');

/** `count` queries from `client`, one every `gapMs`, names from `name(i)`. */
function series(client: string, count: number, gapMs: number, name: (i: number) => string, extra: Partial<Q> = {}, startMs = 0): Q[] {
  return Array.from({ length: count }, (_, i) => ({ ms: startMs + i * gapMs, client, qname: name(i), ...extra }));
}

/** A base32 tunnel: two 30-character labels per query, as iodine or dnscat2 would send. */
function base32Tunnel(client: string, domain: string, count: number, gapMs = 200, startMs = 0, seed = 7): Q[] {
  const rand = prng(seed);
  return series(client, count, gapMs, () => `${randomLabel(rand, B32, 30)}.${randomLabel(rand, B32, 30)}.${domain}`, {}, startMs);
}

const analyze = analyzeCrafted;

const tunnelConfig = (cfg: Record<string, unknown>): Record<string, unknown> => ({ analyzers: { dns_tunneling: cfg } });
const tunnels = (r: Report): Finding[] => r.findings.filter((f) => f.type === 'dns_tunneling');
/** Sums one numeric dns_tunneling metric over all windows. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
const total = (r: Report, key: string): number => r.windows.reduce((s, w) => s + ((w.metrics['dns_tunneling']?.[key] as number | undefined) ?? 0), 0);
const lastMetric = (r: Report, key: string): unknown => r.windows.at(-1)?.metrics['dns_tunneling']?.[key];

// ---------------------------------------------------------------------------
// Real captures

test('dns_tunneling: fires once on the iodine capture, with the evidence of a NULL-record tunnel', async () => {
  const { report, warnings } = await analyzeCapture(join(SHARED_PCAPS, 'ndpi_dns-tunnel-iodine.pcap'), buildConfig(undefined));
  assert.deepEqual(warnings, []);
  const found = tunnels(report);
  assert.equal(found.length, 1, 'one finding: later windows of the same tunnel are suppressed');
  const f = found[0]!;
  assert.equal(f.severity, 'critical');
  assert.equal(f.host, '10.0.2.30');
  const e = f.evidence;
  assert.equal(e['client'], '10.0.2.30');
  assert.equal(e['domain'], 'pirate.sea');
  // 222 queries in 24.5 s, all of type NULL (tshark -Y 'dns.flags.response == 0' -T fields -e dns.qry.type | sort | uniq -c).
  assert.ok((e['queries'] as number) >= 50 && (e['queries'] as number) <= 222, String(e['queries']));
  assert.ok((e['uniqueSubdomains'] as number) >= 30);
  assert.equal(e['txtNullShare'], 1);
  assert.ok((e['meanLabelLength'] as number) >= 20, String(e['meanLabelLength']));
  assert.ok((e['entropy'] as number) >= 4.5, String(e['entropy']));
  assert.ok((e['queriesPerSecond'] as number) > 5);
  // Sample names: at most 3, each at most 100 characters (plus '...'), raw bytes escaped as \ooo.
  const samples = String(e['sampleNames']).split(' ');
  assert.ok(samples.length >= 1 && samples.length <= 3);
  for (const s of samples) assert.ok(s.length <= 103 && s.endsWith('...') || s.endsWith('.pirate.sea'), s);
  assert.ok(!/[\u0000-\u001f\u007f-\uffff]/.test(String(e['sampleNames'])), 'no raw control or high bytes');
  assert.equal(total(report, 'queries'), 222);
  // Per domain (the client-level aggregate shares its suppression: one finding for one tunnel), with the thresholds it crossed.
  assert.equal(e['scope'], 'domain');
  assert.equal(e['unusualTypeShare'], 1);
  assert.match(String(e['thresholds']), /^queries \d+ >= minQueries 50; uniqueSubdomains \d+ >= minUniqueSubdomains 30; meanLabelLength [\d.]+ >= minLabelLength 20; entropy [\d.]+ >= minEntropy 4\.5; unusualTypeShare 1 >= minUnusualTypeShare 0\.5$/);
  assert.equal(total(report, 'clientFindings'), 0);
});

for (const file of ['wssample_dns.cap', 'ndpi_1kxun.pcap', 'ppa_http_espn_fail.pcapng', 'ppa1e_evilprogram.pcap', 'ppa_dns_query_nonexistent.pcapng', 'arkime_v6.pcap']) {
  test(`dns_tunneling: silent on ${file}`, async () => {
    const { report } = await analyzeCapture(join(SHARED_PCAPS, file), buildConfig(undefined));
    assert.deepEqual(tunnels(report), []);
    assert.equal(total(report, 'findings'), 0);
  });
}

// ---------------------------------------------------------------------------
// Crafted tunnels

test('dns_tunneling: fires on base32 subdomains; the registered domain of a .co.uk name has three labels', async () => {
  const r = await analyze(records(base32Tunnel('10.0.0.5', 't.example.co.uk', 100)), {}, 'base32-tunnel');
  const found = tunnels(r);
  assert.equal(found.length, 1);
  const f = found[0]!;
  assert.equal(f.host, '10.0.0.5');
  assert.equal(f.evidence['domain'], 'example.co.uk');
  // Subdomain of each query: 30-char base32 label, 30-char label, 't' → mean label length (30 + 30 + 1) / 3.
  assert.equal(f.evidence['meanLabelLength'], 20.33);
  assert.ok((f.evidence['entropy'] as number) > 4.8, String(f.evidence['entropy']));
  assert.equal(f.evidence['txtNullShare'], 0);
  assert.equal(f.evidence['queries'], f.evidence['uniqueSubdomains']);
  // 5 queries a second.
  assert.ok(Math.abs((f.evidence['queriesPerSecond'] as number) - 5) < 0.5, String(f.evidence['queriesPerSecond']));
  // Two shape signals but judged as soon as the volume is reached (50 queries): a warning; twice the volume makes it critical.
  assert.equal(f.severity, 'warning');
  assert.equal(f.evidence['queries'], 50);
  assert.match(f.summary, /10\.0\.0\.5 .* example\.co\.uk/);
});

test('dns_tunneling: fires over IPv6 and on high entropy alone (16-character base32 labels, mean length under 20)', async () => {
  const rand = prng(11);
  const r = await analyze(records(series('fd00::5', 60, 100, () => `${randomLabel(rand, B32, 16)}.x.example.net`)), {}, 'entropy-only');
  const found = tunnels(r);
  assert.equal(found.length, 1);
  assert.equal(found[0]!.host, 'fd00::5');
  assert.equal(found[0]!.evidence['meanLabelLength'], 8.5);
  assert.ok((found[0]!.evidence['entropy'] as number) >= 4.5);
  assert.equal(found[0]!.severity, 'warning'); // one shape signal
});

test('dns_tunneling: fires on a TXT/NULL share of at least one half with short, plain names; not below it', async () => {
  // 60 queries, 40 unique low-entropy 8-character names; `txt` of them TXT or NULL.
  const qs = (txt: number): Q[] => series('10.0.0.6', 60, 100, (i) => `${plainLabel(i % 40, 8)}.example.org`)
    .map((q, i) => (i < txt ? { ...q, qtype: i % 2 ? TXT : NULL } : q));
  const half = tunnels(await analyze(records(qs(30)), {}, 'txt-half'));
  assert.equal(half.length, 1);
  assert.equal(half[0]!.evidence['txtNullShare'], 0.5);
  assert.ok((half[0]!.evidence['entropy'] as number) < 4.5);
  assert.ok((half[0]!.evidence['meanLabelLength'] as number) < 20);
  assert.equal(tunnels(await analyze(records(qs(29)), {}, 'txt-below')).length, 0);
});

test('dns_tunneling: CNAME and MX count as unusual record types (minUnusualTypeShare); three shape signals are critical at once', async () => {
  const qs = series('10.0.0.6', 60, 100, (i) => `${plainLabel(i % 40, 8)}.example.org`).map((q, i) => (i < 30 ? { ...q, qtype: i % 2 ? CNAME : MX } : q));
  const found = tunnels(await analyze(records(qs), {}, 'cname-mx'));
  assert.equal(found.length, 1);
  assert.equal(found[0]!.evidence['unusualTypeShare'], 0.5);
  assert.equal(found[0]!.evidence['txtNullShare'], 0);
  assert.match(found[0]!.summary, /50 % unusual record types/);
  assert.equal(tunnels(await analyze(records(qs), tunnelConfig({ minUnusualTypeShare: 0.6 }), 'cname-mx-0.6')).length, 0);
  // Long, random (base32) and TXT: critical at the minimum volume.
  const txt = base32Tunnel('10.0.0.5', 't.example.com', 100).map((q) => ({ ...q, qtype: TXT }));
  const f = tunnels(await analyze(records(txt), {}, 'base32-txt'));
  assert.equal(f.length, 1);
  assert.equal(f[0]!.evidence['queries'], 50);
  assert.equal(f[0]!.severity, 'critical');
});

// ---------------------------------------------------------------------------
// Ordinary traffic

test('dns_tunneling: silent on a CDN client resolving many *.cloudfront.net names (allow-listed), which would fire otherwise', async () => {
  const rand = prng(3);
  const qs = series('10.0.0.7', 200, 50, () => `d${randomLabel(rand, HEX, 13)}${randomLabel(rand, B32, 8)}.cloudfront.net`);
  const r = await analyze(records(qs), {}, 'cloudfront');
  assert.deepEqual(tunnels(r), []);
  assert.equal(total(r, 'allowListed'), 200);
  assert.equal(total(r, 'queries'), 0);
  assert.equal(lastMetric(r, 'keys'), 0);
  // Without the allow list the same traffic is a tunnel (entropy): the allow list is what keeps it silent.
  assert.equal(tunnels(await analyze(records(qs), tunnelConfig({ allowSuffixes: [] }), 'cloudfront-unlisted')).length, 1);
  // Allow-list entries match on label boundaries: 'front.net' does not allow cloudfront.net.
  assert.equal(tunnels(await analyze(records(qs), tunnelConfig({ allowSuffixes: ['front.net'] }), 'cloudfront-partial')).length, 1);
});

test('dns_tunneling: silent on a Kubernetes pod whose search path makes many NXDOMAIN *.svc.cluster.local lookups', async () => {
  // The pod resolves 40 external names; each first goes through the search path
  // (<name>.ns.svc.cluster.local, <name>.svc.cluster.local, <name>.cluster.local: NXDOMAIN), then resolves.
  const rand = prng(5);
  const qs: Q[] = [];
  for (let i = 0; i < 40; i++) {
    const name = `${randomLabel(rand, B32, 24)}.api${i}.example.com`;
    const ms = i * 1000;
    for (const [k, suffix] of ['prod.svc.cluster.local', 'svc.cluster.local', 'cluster.local'].entries()) {
      for (const qtype of [1, 28]) qs.push({ ms: ms + k * 30 + (qtype === 28 ? 5 : 0), client: '10.244.1.17', qname: `${name}.${suffix}`, qtype, rcode: 3 });
    }
    qs.push({ ms: ms + 100, client: '10.244.1.17', qname: `web.prod.svc.cluster.local` }); // an in-cluster service that exists
  }
  const r = await analyze(records(qs), {}, 'kubernetes');
  assert.deepEqual(tunnels(r), []);
  assert.equal(total(r, 'normalNxdomain'), 240);
  assert.equal(total(r, 'queries'), 40, 'only the answered in-cluster lookups count');
  // Without the NXDOMAIN rule the search-path lookups are long, unique names under cluster.local: they would fire.
  assert.equal(tunnels(await analyze(records(qs), tunnelConfig({ nxdomainNormalSuffixes: [] }), 'kubernetes-no-rule')).length, 1);
});

test('dns_tunneling: silent on ordinary browsing of 40 distinct sites', async () => {
  const subs = ['www', 'cdn', 'static', 'img', 'api', 'fonts'];
  const qs: Q[] = [];
  for (let s = 0; s < 40; s++) {
    for (const [k, sub] of subs.entries()) {
      for (const qtype of [1, 28]) qs.push({ ms: s * 3000 + k * 40 + (qtype === 28 ? 3 : 0), client: '192.168.1.20', qname: `${sub}.site${s}-news.com`, qtype });
    }
  }
  const r = await analyze(records(qs), {}, 'browsing');
  assert.deepEqual(tunnels(r), []);
  assert.equal(total(r, 'queries'), 480);
  assert.equal(lastMetric(r, 'keys'), 40);
});

// ---------------------------------------------------------------------------
// Thresholds

test('dns_tunneling: minQueries, minUniqueSubdomains and minLabelLength boundaries', async () => {
  // Low-entropy single labels of `len` characters, `unique` distinct names, `count` queries (TXT/NULL none).
  const run = async (count: number, unique: number, len: number, name: string): Promise<Finding[]> =>
    tunnels(await analyze(records(series('10.0.0.8', count, 100, (i) => `${plainLabel(i % unique, len)}.example.com`)), {}, name));
  const fired = await run(50, 30, 20, 'boundary-at');
  assert.equal(fired.length, 1);
  assert.equal(fired[0]!.evidence['queries'], 50);
  assert.equal(fired[0]!.evidence['uniqueSubdomains'], 30);
  assert.equal(fired[0]!.evidence['meanLabelLength'], 20);
  assert.ok((fired[0]!.evidence['entropy'] as number) < 2);
  assert.equal((await run(49, 30, 20, 'queries-below')).length, 0);
  assert.equal((await run(50, 29, 20, 'unique-below')).length, 0);
  assert.equal((await run(50, 30, 19, 'length-below')).length, 0);
  // The thresholds come from the config.
  const r = await analyze(records(series('10.0.0.8', 20, 100, (i) => `${plainLabel(i, 20)}.example.com`)),
    tunnelConfig({ minQueries: 20, minUniqueSubdomains: 20 }), 'configured');
  assert.equal(tunnels(r).length, 1);
});

test('dns_tunneling: the entropy threshold: base32 passes the default, not 5.5; hex (4 bits/char) does not pass', async () => {
  const rand = prng(13);
  const b32 = records(series('10.0.0.9', 60, 100, () => `${randomLabel(rand, B32, 16)}.example.com`));
  assert.equal(tunnels(await analyze(b32, {}, 'b32')).length, 1);
  assert.equal(tunnels(await analyze(b32, tunnelConfig({ minEntropy: 5.5 }), 'b32-high')).length, 0);
  const hex = records(series('10.0.0.9', 60, 100, () => `${randomLabel(rand, HEX, 16)}.example.com`));
  const r = await analyze(hex, tunnelConfig({ minEntropy: 4.5 }), 'hex');
  assert.equal(tunnels(r).length, 0);
  // ... but the same hex names 24 characters long pass on length.
  const hexLong = records(series('10.0.0.9', 60, 100, () => `${randomLabel(rand, HEX, 24)}.example.com`));
  const long = tunnels(await analyze(hexLong, {}, 'hex-long'));
  assert.equal(long.length, 1);
  assert.ok((long[0]!.evidence['entropy'] as number) < 4.1);
});

test('dns_tunneling: queries older than the look-back do not count', async () => {
  // 40 queries, a 400 s pause, 40 more: never 50 within 300 s.
  const rand = prng(17);
  const name = (): string => `${randomLabel(rand, B32, 30)}.example.com`;
  const qs = [...series('10.0.0.10', 40, 100, name), ...series('10.0.0.10', 40, 100, name, {}, 404_000)];
  assert.equal(tunnels(await analyze(records(qs), {}, 'lookback')).length, 0);
  // With a 600 s look-back they do.
  assert.equal(tunnels(await analyze(records(qs), tunnelConfig({ lookback: 600 }), 'lookback-long')).length, 1);
});

// ---------------------------------------------------------------------------
// Suppression, determinism, bounds

test('dns_tunneling: an ongoing tunnel is re-reported at most once per suppressFor, with updated evidence', async () => {
  // One query a second for 25 minutes: judged in every 10 s window from the 50th query on.
  const recs = records(base32Tunnel('10.0.0.11', 'tunnel.example.net', 1500, 1000));
  const r = await analyze(recs, {}, 'suppression');
  const found = tunnels(r);
  assert.equal(found.length, 3);
  const starts = found.map((f) => Date.parse(f.window.start) / 1000 - T0);
  // The 50th query (t = 49 s) is in window [40, 50); then at most once per 600 s.
  assert.deepEqual(starts, [40, 640, 1240]);
  assert.equal(new Set(found.map((f) => f.id)).size, 3);
  assert.equal(found[0]!.evidence['queries'], 50);
  assert.equal(found[1]!.evidence['queries'], 300); // the look-back's worth
  assert.notEqual(found[1]!.evidence['sampleNames'], found[2]!.evidence['sampleNames']);
  assert.ok(total(r, 'suppressed') > 100);
  // suppressFor is the configured period.
  const often = tunnels(await analyze(recs, tunnelConfig({ suppressFor: 100 }), 'suppression-short'));
  assert.equal(often.length, 15);
});

test('dns_tunneling: deterministic: the same capture gives the same findings, ids and metrics', async () => {
  const recs = records([...base32Tunnel('10.0.0.12', 'a.example.com', 120), ...base32Tunnel('10.0.0.13', 'b.example.com', 120, 150, 5, 9)]);
  const a = await analyze(recs, {}, 'determinism-a');
  const b = await analyze(recs, {}, 'determinism-b');
  assert.equal(tunnels(a).length, 2);
  assert.deepEqual(tunnels(a), tunnels(b));
  assert.deepEqual(a.windows.map((w) => w.metrics['dns_tunneling']), b.windows.map((w) => w.metrics['dns_tunneling']));
});

test('dns_tunneling: keys are capped at maxKeys, evictions are counted, idle keys expire', async () => {
  // 40 clients, one after the other, each resolving two names of its own domain (a key's state starts with
  // its second query: the first waits in the first-sight table); then silence past the look-back, and two more.
  const qs: Q[] = [];
  for (let i = 0; i < 40; i++) for (let k = 0; k < 2; k++) qs.push({ ms: i * 100 + k * 50, client: `10.0.1.${i}`, qname: `host${k}.domain${i}.com` });
  qs.push({ ms: 400_000, client: '10.0.2.1', qname: 'www.example.com' }, { ms: 400_100, client: '10.0.2.1', qname: 'mail.example.com' });
  const r = await analyze(records(qs), tunnelConfig({ maxKeys: 5 }), 'bounded');
  for (const w of r.windows) assert.ok((w.metrics['dns_tunneling']!['keys'] as number) <= 5);
  assert.equal(r.windows[0]!.metrics['dns_tunneling']!['keys'], 5);
  assert.equal(lastMetric(r, 'evictedKeys'), 35);
  assert.equal(lastMetric(r, 'keys'), 1, 'the idle keys expired; only the last client\'s key is left');
  assert.equal(total(r, 'queries'), 82);
  // Round robin over 40 clients with room for 5: keys keep being evicted, the cap holds.
  const rr: Q[] = [];
  for (let i = 0; i < 400; i++) rr.push({ ms: i * 20, client: `10.0.1.${i % 40}`, qname: `host${i}.domain${i % 40}.com` });
  const m = await analyze(records(rr), tunnelConfig({ maxKeys: 5 }), 'bounded-round-robin');
  for (const w of m.windows) assert.ok((w.metrics['dns_tunneling']!['keys'] as number) <= 5);
  assert.ok((lastMetric(m, 'evictedKeys') as number) >= 35);
  // A tunnel among many other clients is still found with a small cap: it is the most recently queried key.
  const mixed: Q[] = [...base32Tunnel('10.0.0.14', 'tunnel.example.net', 100, 100)];
  for (let i = 0; i < 200; i++) mixed.push({ ms: i * 50 + 7, client: `10.0.3.${i % 100}`, qname: `h${i}.site${i % 100}.com` });
  const t = await analyze(records(mixed), tunnelConfig({ maxKeys: 8 }), 'bounded-tunnel');
  assert.equal(tunnels(t).length, 1);
  assert.ok((lastMetric(t, 'evictedKeys') as number) >= 90);
});

// The cap was 4096 names (a set growing per key); with the fixed-size sets of the hot pool it is
// MAX_UNIQUE = 1024 (deliberate: the score saturates at four times minUniqueSubdomains; the evidence's count saturates at 1024).
test(`dns_tunneling: the distinct-subdomain set of a key is capped at ${MAX_UNIQUE} names; further names are counted, not remembered`, async () => {
  // 5000 unique names in 100 s, no answers; re-reported every window (suppressFor 1) to see the evidence grow.
  const qs = base32Tunnel('10.0.0.15', 'big.example.com', 5000, 20).map((q) => ({ ...q, answer: false }));
  const r = await analyze(records(qs), tunnelConfig({ suppressFor: 1 }), 'saturated');
  const found = tunnels(r);
  assert.equal(found.length, 10);
  const last = found.at(-1)!;
  assert.equal(last.evidence['queries'], 5000);
  assert.equal(MAX_UNIQUE, 1024);
  assert.equal(last.evidence['uniqueSubdomains'], MAX_UNIQUE);
  assert.equal(total(r, 'namesNotRemembered'), 5000 - MAX_UNIQUE);
});

test('dns_tunneling: hot keys share a bounded pool; a busy tunnel keeps its slot while quieter hot keys are evicted, counted', async () => {
  // 30 clients, each resolving 20 distinct names of its own domain (hot from the 8th), one query every 10 ms in turn;
  // a tunnel queried every 20 ms. maxKeys 40 gives a pool of 16 hot slots for 31 hot keys.
  const qs: Q[] = [...base32Tunnel('10.0.0.16', 'tunnel.example.net', 300, 20)];
  for (let i = 0; i < 600; i++) qs.push({ ms: i * 10 + 5, client: `10.0.4.${i % 30}`, qname: `${plainLabel(Math.floor(i / 30), 8)}.site${i % 30}.org` });
  const r = await analyze(records(qs), tunnelConfig({ maxKeys: 40 }), 'hot-pool');
  const found = tunnels(r);
  assert.equal(found.length, 1);
  assert.equal(found[0]!.host, '10.0.0.16');
  for (const w of r.windows) assert.ok((w.metrics['dns_tunneling']!['hotKeys'] as number) <= 16);
  assert.ok((lastMetric(r, 'hotKeysEvicted') as number) > 0);
  // With room for every hot key (the default budget), none is evicted and the finding is the same.
  const roomy = await analyze(records(qs), {}, 'hot-pool-roomy');
  assert.equal(lastMetric(roomy, 'hotKeysEvicted'), 0);
  assert.equal(lastMetric(roomy, 'hotKeys'), 31);
  assert.deepEqual(tunnels(roomy).map((f) => f.evidence), found.map((f) => f.evidence));
});

// ---------------------------------------------------------------------------
// Per client, without a fixed parent domain (dnscat2's direct mode)

const ATTACKER = '203.0.113.7';

/** dnscat2 direct mode: `dnscat.<60 hex>` (tool tag first, so every name looks like a new registered domain), TXT/CNAME/MX in turn, to the attacker's IP as resolver. */
function dnscatDirect(client: string, count: number, gapMs: number, seed = 21, startMs = 0): Q[] {
  const rand = prng(seed);
  const types = [TXT, CNAME, MX];
  return series(client, count, gapMs, () => `dnscat.${randomLabel(rand, HEX, 60)}`, { server: ATTACKER }, startMs)
    .map((q, i) => ({ ...q, qtype: types[i % 3]! }));
}

test('dns_tunneling: fires per client on a dnscat2 direct-mode stream (no fixed parent domain: dnscat.<hex>, TXT/CNAME/MX, to the attacker as resolver)', async () => {
  // 200 queries over 60 s from one client.
  const r = await analyze(records(dnscatDirect('10.0.0.20', 200, 300)), {}, 'dnscat-direct');
  const found = tunnels(r);
  assert.equal(found.length, 1);
  const f = found[0]!;
  assert.equal(f.host, '10.0.0.20');
  assert.equal(f.severity, 'critical', 'long labels, random hex, unusual types and a client asking little else agree');
  const e = f.evidence;
  assert.equal(e['scope'], 'client');
  assert.equal(e['domain'], '*');
  // Judged at the close of the window holding the 100th query (t = 29.7 s): [20, 30).
  assert.equal(Date.parse(f.window.start) / 1000 - T0, 20);
  assert.equal(e['encodedQueries'], 100);
  assert.equal(e['queries'], 100);
  assert.equal(e['encodedShare'], 1);
  assert.equal(e['distinctRatio'], 1);
  assert.equal(e['meanLabelLength'], 60);
  assert.equal(e['hexShare'], 1);
  assert.equal(e['base32Share'], 0);
  assert.equal(e['unusualTypeShare'], 1);
  assert.ok((e['entropy'] as number) > 3.9 && (e['entropy'] as number) <= 4, String(e['entropy']));
  assert.ok(Math.abs((e['queriesPerSecond'] as number) - 3.37) < 0.1, String(e['queriesPerSecond']));
  assert.match(String(e['sampleNames']), /^dnscat\.[0-9a-f]{60}$/);
  assert.match(String(e['thresholds']), new RegExp('^encodedQueries 100 >= minClientQueries 100; distinctRatio 1 >= minDistinctRatio 0\\.8; meanLabelLength 60 >= minLabelLength 20; '
    + 'entropy 3\\.9\\d* >= hexEntropy 3\\.5; unusualTypeShare 1 >= minUnusualTypeShare 0\\.5; encodedShare 1 >= encodedShare 0\\.5$'));
  assert.equal(total(r, 'clientFindings'), 1);
  assert.ok(total(r, 'suppressed') >= 3, 'later windows are suppressed');
  // The per-domain keys see nothing to count: each name is a registered domain without a subdomain.
  assert.equal(total(r, 'queries'), 0);
});

test('dns_tunneling: a direct-mode tunnel with several data labels and plain A queries, among a client\'s ordinary browsing, fires; thresholds are configurable', async () => {
  // dnscat.<63 hex>.<40 hex>: the last labels change each query, so no registered domain repeats. 150 queries in 5 minutes,
  // interleaved with the client's 300 ordinary lookups (encoded share under one half).
  const rand = prng(23);
  const tunnel = series('10.0.0.21', 150, 2000, () => `dnscat.${randomLabel(rand, HEX, 63)}.${randomLabel(rand, HEX, 40)}`, { server: ATTACKER });
  const browsing = series('10.0.0.21', 300, 1000, (i) => `www.site${i}-example.com`, {}, 500);
  const r = await analyze(records([...tunnel, ...browsing]), {}, 'dnscat-direct-multi');
  const found = tunnels(r);
  assert.equal(found.length, 1);
  const e = found[0]!.evidence;
  assert.equal(e['scope'], 'client');
  assert.equal(e['encodedQueries'], 100);
  assert.ok((e['encodedShare'] as number) < 0.5, String(e['encodedShare']));
  assert.equal(e['meanLabelLength'], 51.5);
  assert.equal(e['unusualTypeShare'], 0);
  assert.equal(found[0]!.severity, 'warning', 'two signals (long labels, random hex) at the minimum volume');
  // minClientQueries and minDistinctRatio come from the config.
  assert.equal(tunnels(await analyze(records([...tunnel, ...browsing]), tunnelConfig({ minClientQueries: 151 }), 'dnscat-direct-151')).length, 0);
  // A client repeating the same few encoded names (retries, one cached lookup) has a low distinct ratio.
  const repeats = series('10.0.0.22', 200, 300, (i) => `dnscat.${'0123456789abcdef'.repeat(4).slice(0, 60 - 2)}${String(i % 10).padStart(2, '0')}`, { server: ATTACKER, qtype: TXT });
  const rr = await analyze(records(repeats), {}, 'dnscat-repeats');
  assert.equal(tunnels(rr).length, 0);
  assert.ok(total(rr, 'clientsJudged') > 0, 'judged, and the distinct ratio keeps it silent');
  assert.equal(tunnels(await analyze(records(repeats), tunnelConfig({ minDistinctRatio: 0.05 }), 'dnscat-repeats-low')).length, 1);
});

test('dns_tunneling: base32 and base64-ish direct-mode labels are encoded too; 99 encoded queries are not enough', async () => {
  const rand = prng(29);
  const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const b32q = series('10.0.0.23', 120, 100, () => `${randomLabel(rand, B32, 50)}.t`, { server: ATTACKER });
  const r32 = await analyze(records(b32q), {}, 'direct-b32');
  const f32 = tunnels(r32);
  assert.equal(f32.length, 1, JSON.stringify(r32.windows.map((w) => w.metrics['dns_tunneling'])));
  assert.equal(f32[0]!.evidence['base32Share'], 1);
  const b64q = series('10.0.0.23', 120, 100, () => `x${randomLabel(rand, b64, 40)}.t`, { server: ATTACKER, qtype: NULL });
  const r64 = await analyze(records(b64q), {}, 'direct-b64');
  const f64 = tunnels(r64);
  assert.equal(f64.length, 1, JSON.stringify(r64.windows.map((w) => w.metrics['dns_tunneling'])));
  assert.equal(f64[0]!.evidence['base64Share'], 1);
  assert.equal(tunnels(await analyze(records(dnscatDirect('10.0.0.24', 99, 300)), {}, 'dnscat-99')).length, 0);
});

test('dns_tunneling: silent on a browser-like client resolving 300 distinct ordinary domains and CDN names', async () => {
  const qs: Q[] = [];
  const cdn = ['static', 'img-cache', 'assets-v2', 'media', 'edge-delivery-network'];
  for (let i = 0; i < 300; i++) {
    const ms = i * 900;
    qs.push({ ms, client: '192.168.1.30', qname: `www.example-${i}.com` }, { ms: ms + 3, client: '192.168.1.30', qname: `www.example-${i}.com`, qtype: 28 });
    qs.push({ ms: ms + 40, client: '192.168.1.30', qname: `${cdn[i % cdn.length]!}.cdn${i}.example-cdn.net` });
    // Long ordinary labels: words, dashes, a version number, a short hash.
    qs.push({ ms: ms + 80, client: '192.168.1.30', qname: `international-newspaper-frontpage.news-portal-${i}.org` });
    qs.push({ ms: ms + 120, client: '192.168.1.30', qname: `subscriptionmanagement${i % 7}.accounts.example-${i}.com` });
    qs.push({ ms: ms + 160, client: '192.168.1.30', qname: `v${i}-a1b2c3.telemetry.example.com` });
  }
  const r = await analyze(records(qs), {}, 'browser-300');
  assert.deepEqual(tunnels(r), []);
  assert.equal(total(r, 'queries'), 1800);
  assert.equal(lastMetric(r, 'clients'), 0, 'no name was encoded: the client never had client state');
  assert.equal(total(r, 'clientsJudged'), 0);
});

test('dns_tunneling: silent on a resolver forwarding many clients\' ordinary queries (0x20 mixed case, DNSSEC and reverse lookups)', async () => {
  // The resolver 10.0.0.53 asks upstream (8.8.8.8) for 3000 names in 5 minutes: sites, CDN hashes under allow-listed suffixes,
  // DS / DNSKEY for DNSSEC, PTR lookups, mail lookups (MX, TXT), with DNS 0x20 case randomization.
  const rand = prng(31);
  const mixCase = (s: string): string => [...s].map((ch) => (rand() < 0.5 ? ch.toUpperCase() : ch)).join('');
  const qs: Q[] = [];
  for (let i = 0; i < 3000; i++) {
    const ms = i * 100;
    const kind = i % 6;
    const qname = kind === 0 ? `www.example-${i % 700}.com`
      : kind === 1 ? `d${randomLabel(rand, HEX, 14)}.cloudfront.net`
        : kind === 2 ? `example-${i % 500}.org`
          : kind === 3 ? `${i % 256}.${(i >> 8) % 256}.168.192.in-addr.arpa`
            : kind === 4 ? `mail.company${i % 400}.com`
              : `selector${i % 3}._domainkey.company${i % 400}.com`;
    const qtype = kind === 2 ? (i % 12 === 2 ? 43 : 48) : kind === 3 ? 12 : kind === 4 ? MX : kind === 5 ? TXT : 1;
    qs.push({ ms, client: RESOLVER, qname: mixCase(qname), qtype, server: '8.8.8.8' });
  }
  const r = await analyze(records(qs), {}, 'resolver-forwarding');
  assert.deepEqual(tunnels(r), []);
  assert.equal(total(r, 'clientsJudged'), 0);
  assert.equal(lastMetric(r, 'clients'), 0);
});

test('dns_tunneling: silent on a mail server verifying DKIM signatures of 300 senders (random 32-character tokens under _domainkey, TXT)', async () => {
  const rand = prng(37);
  const alnum = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const qs = series('10.0.0.25', 300, 500, (i) => `${randomLabel(rand, alnum, 32)}._domainkey.sender${i}.com`, { qtype: TXT });
  const r = await analyze(records(qs), {}, 'dkim');
  assert.deepEqual(tunnels(r), []);
  assert.equal(lastMetric(r, 'clients'), 0, 'a name with a protocol label is never encoded');
  // The same tokens without the protocol label would be a tunnel's data.
  const bare = qs.map((q) => ({ ...q, qname: q.qname.replace('._domainkey', '') }));
  assert.equal(tunnels(await analyze(records(bare), {}, 'dkim-bare')).length, 1);
});

test('dns_tunneling: an allow-listed client (allowHosts) is not tracked, its queries counted as allowed', async () => {
  const qs = [...dnscatDirect('10.0.0.20', 200, 300), ...base32Tunnel('10.0.0.20', 'tunnel.example.net', 100)];
  assert.equal(tunnels(await analyze(records(qs), {}, 'allowed-not-listed')).length, 1, 'fires when not listed (one finding: the per-domain one; the client-level one is suppressed)');
  for (const allowHosts of [['10.0.0.20'], ['10.0.0.0/24']]) {
    const r = await analyze(records(qs), tunnelConfig({ allowHosts }), 'allowed');
    assert.deepEqual(tunnels(r), []);
    assert.equal(total(r, 'allowed'), 300);
    assert.equal(total(r, 'queries'), 0);
    assert.equal(lastMetric(r, 'clients'), 0);
  }
  // Only the querying client is matched: listing the attacker's server does not hide the tunnel.
  assert.equal(tunnels(await analyze(records(dnscatDirect('10.0.0.20', 200, 300)), tunnelConfig({ allowHosts: [ATTACKER] }), 'allowed-server')).length, 1);
});

test('dns_tunneling: client state is capped (evictions counted) and idle clients expire', async () => {
  // 12 clients in turn, each sending 10 encoded names; maxKeys 5 leaves room for 5 clients.
  const qs: Q[] = [];
  for (let c = 0; c < 12; c++) qs.push(...dnscatDirect(`10.0.5.${c}`, 10, 50, 40 + c, c * 1000));
  qs.push(...dnscatDirect('10.0.5.99', 2, 50, 99, 400_000));
  const r = await analyze(records(qs), tunnelConfig({ maxKeys: 5 }), 'clients-bounded');
  for (const w of r.windows) assert.ok((w.metrics['dns_tunneling']!['clients'] as number) <= 5);
  assert.equal(lastMetric(r, 'clientsEvicted'), 7);
  assert.equal(lastMetric(r, 'clients'), 1, 'the idle clients expired');
});

// ---------------------------------------------------------------------------
// Flow-sharded workers

const RESOLVERS = ['10.0.0.53', '10.0.0.54', '10.0.0.55', '10.0.0.56', '10.0.0.57'];
const RESOLVERS6 = ['fd00::53', 'fd00::52', 'fd00::57'];

test('dns_tunneling: flow-sharded over 2 and 4 workers, clients asking several resolvers give one pipeline\'s report, byte for byte', async () => {
  // Each client asks the resolvers in turn, so its keys, its client state and its first sights span workers.
  const spread = (qs: Q[], offset = 0): Q[] => qs.map((q, i) => ({ ...q, server: RESOLVERS[(i + offset) % RESOLVERS.length]! }));
  const rand = prng(31);
  const plenty: Q[] = [
    // A base32 tunnel for 25 minutes: reported, suppressed, re-reported, its look-back sliding.
    ...spread(base32Tunnel('10.0.0.11', 'tunnel.example.net', 1500, 1000)),
    // dnscat2's direct mode, with retries of the same names (the client's ring of recent names decides what is distinct).
    ...spread(dnscatDirect('10.0.0.20', 200, 300).flatMap((q, i) => (i % 4 === 0 ? [q, { ...q, ms: q.ms + 100 }] : [q])), 1),
    // Base64-ish direct-mode labels from IPv6, to three resolvers.
    ...series('fd00::21', 150, 700, () => `${randomLabel(rand, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', 40)}.t`)
      .map((q, i) => ({ ...q, server: RESOLVERS6[i % RESOLVERS6.length]! })),
    // Kubernetes search-path lookups answered NXDOMAIN, and ordinary browsing: a first query on one worker, the second on another.
    ...spread(series('10.244.1.17', 300, 400, (i) => `${randomLabel(rand, B32, 24)}.api${i % 40}.example.com.prod.svc.cluster.local`, { rcode: 3 }), 3),
    ...spread(series('192.168.1.20', 400, 200, (i) => `${['www', 'cdn', 'img', 'api'][i % 4]}.site${Math.floor(i / 8)}-news.com`), 4),
  ];
  // Bounded tables (maxKeys 40: 40 keys, 16 hot slots, 40 clients): keys, hot slots and clients evicted in the order
  // the queries came in over all workers. 30 clients resolving 20 plain names each of their own domain (hot from the 8th),
  // 50 direct-mode clients sending 10 encoded names each, 60 clients resolving 3 names each, and two tunnels among them.
  const crowded: Q[] = [...spread(base32Tunnel('10.0.0.14', 'tunnel.example.net', 300, 100)), ...spread(dnscatDirect('10.0.0.20', 150, 200), 2)];
  for (let i = 0; i < 600; i++) crowded.push({ ms: i * 50 + 7, client: `10.0.3.${i % 30}`, qname: `${plainLabel(Math.floor(i / 30), 8)}.site${i % 30}.com`, server: RESOLVERS[i % 5]! });
  for (let c = 0; c < 50; c++) crowded.push(...spread(dnscatDirect(`10.0.5.${c}`, 10, 50, 40 + c, c * 500), c));
  for (let i = 0; i < 180; i++) crowded.push({ ms: i * 40 + 13, client: `10.0.6.${i % 60}`, qname: `host${i}.domain${i % 60}.net`, server: RESOLVERS[(3 * i) % 5]! });
  const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-dns-sharded-'));
  try {
    const runs: Array<[string, Q[], { analyzers?: { dns_tunneling?: Record<string, unknown> } }]> = [['plenty', plenty, {}], ['crowded', crowded, { analyzers: { dns_tunneling: { maxKeys: 40 } } }]];
    for (const [name, qs, override] of runs) {
      const recs = records(qs);
      // The tunnels' queries do land in several workers (a host pair's packets go to one worker).
      for (const client of ['10.0.0.11', '10.0.0.20', 'fd00::21', '10.0.0.14', '10.0.5.3']) {
        for (const workers of [2, 4]) {
          const used = new Set(qs.filter((q) => q.client === client).map((q) => {
            const frame = exchange(q, 1)[0]!.data;
            return shardOf(shardHash(frame, 0, frame.length, 1), workers);
          }));
          if (used.size > 0) assert.ok(used.size >= 2, `${name}: ${client}'s queries in ${used.size} of ${workers} workers`);
        }
      }
      const path = join(dir, `${name}.pcap`);
      writeFileSync(path, pcapFile({}, recs));
      // Only this analyzer: the report is its metrics and findings.
      const only: Record<string, unknown> = {};
      for (const id of Object.keys(buildConfig(undefined).analyzers)) only[id] = id === 'dns_tunneling' ? { enabled: true, ...(override.analyzers?.dns_tunneling ?? {}) } : { enabled: false };
      const config = buildConfig({ analyzers: only });
      const json = (r: Report): string => [...reportJsonChunks(r)].join('');
      const one = await analyzeCapture(path, config);
      const found = [...new Set(tunnels(one.report).map((f) => `${f.host} ${f.evidence['scope']}`))].sort();
      assert.deepEqual(found, name === 'plenty' ? ['10.0.0.11 domain', '10.0.0.20 client', 'fd00::21 client'] : ['10.0.0.14 domain', '10.0.0.20 client']);
      // 2 workers in this thread, 4 in worker threads (their parts cloned across).
      for (const workers of [2, 4]) {
        const many = await analyzeCaptureSharded(path, config, { workers, inProcess: workers === 2 });
        assert.equal(json(many.report), json(one.report), `${name}, ${workers} workers`);
      }
      if (name === 'crowded') {
        assert.ok((lastMetric(one.report, 'evictedKeys') as number) > 0);
        assert.ok((lastMetric(one.report, 'hotKeysEvicted') as number) > 0);
        assert.ok((lastMetric(one.report, 'clientsEvicted') as number) > 0);
      } else {
        assert.ok(total(one.report, 'normalNxdomain') > 0);
        assert.ok(total(one.report, 'suppressed') > 0);
        assert.equal(tunnels(one.report).filter((f) => f.host === '10.0.0.11').length, 3, 'reported, then re-reported twice after suppressFor');
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
