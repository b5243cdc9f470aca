/**
 * The reader thread's shard hash (agent/decode/shard-hash.ts) against the real
 * pipeline: on every shared capture, every flow's packets (ICMP errors
 * counted in the flow they quote too) go to one shard for several worker
 * counts, the hash is that of the address pair the decoder keyed the flow by,
 * and fragments of one datagram meet on one shard. Crafted frames check both
 * directions, every link layer and tunnel the decoder follows, ICMP errors and
 * fragments; the bench's mixed capture checks the spread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildConfig } from '../common/config.js';
import { CaptureReader, END, LinkType, NEED_DATA, FrameRecord } from '../agent/capture/index.js';
import { Decoder, Transport, type PacketView } from '../agent/decode/index.js';
import { addressPairHash, shardHash, shardOf } from '../agent/decode/shard-hash.js';
import { Pipeline } from '../agent/pipeline.js';
import { generateCapture } from '../bench/capture-gen.js';
import {
  ByteWriter, EtherTypes, Proto, ethernet, icmpEcho, icmpError, icmpv6Error, ipv4, ipv6, nullHeader, sll, sll2, tcp, udp,
} from './helpers/capture-writer.js';
import { MAC_A, MAC_B, tcp4, udp4, udp6 } from './helpers/crafted-frames.js';
import { SHARED_PCAPS, readTsv } from './helpers/paths.js';

const CONFIG = buildConfig(undefined);
const WORKER_COUNTS = [2, 3, 4, 7] as const;

/** The pair the decoder left in the view keys the flow; for an ICMP error, the quoted pair keys the hash. */
function viewPairHash(v: PacketView, quoted: boolean): number {
  return quoted ? addressPairHash(v.innerIpVersion as 4 | 6, v.innerSrc, v.innerDst) : addressPairHash(v.ipVersion as 4 | 6, v.src, v.dst);
}

const isIcmp = (transport: number): boolean => transport === Transport.ICMP || transport === Transport.ICMPV6;

interface FlowRecord {
  file: string;
  /** Hash and shard per worker count of the flow's first packet. */
  hash: number;
  shards: number[];
  packets: number;
  /** Packets whose hash differed from the first one's, and worker counts under which the flow spread. */
  otherHashes: number;
  splitUnder: Set<number>;
  proto: number;
  ports: number;
  /** It carried an ICMP error whose quoted pair is not its own (the documented exception). */
  carriesForeignQuote: boolean;
}

interface CaptureResult {
  packets: number;
  flows: Map<number, FlowRecord>;
  /** Packets whose flow is an ICMP error's quoted flow. */
  quotedAttributions: number;
  /** Fragmented datagrams (2+ fragments seen) and those whose fragments hashed differently. */
  fragmentGroups: number;
  splitFragmentGroups: string[];
  /** Packets with a flow whose hash is not that of the pair the decoder keyed (reassembled ICMP errors aside). */
  oracleMismatches: string[];
}

async function runCapture(file: string): Promise<CaptureResult> {
  const flowIds = new Map<number, number>();
  let nextId = 0;
  const pipeline = new Pipeline(CONFIG, {
    onWindow: () => {},
    flowListener: { onFlowStart(slot: number): void { flowIds.set(slot, nextId++); } },
  });
  const flows = pipeline.flows;
  // The ICMP error's quoted flow (found or opened): what updateQuoted returned for this packet.
  let quotedSlot = -1;
  const updateQuoted = flows.updateQuoted.bind(flows);
  flows.updateQuoted = (v: PacketView): number => (quotedSlot = updateQuoted(v));
  const records = new Map<number, FlowRecord>();
  const fragments = new Map<string, Set<number>>();
  const fragmentCounts = new Map<string, number>();
  const result: CaptureResult = { packets: 0, flows: records, quotedAttributions: 0, fragmentGroups: 0, splitFragmentGroups: [], oracleMismatches: [] };

  const note = (slot: number, hash: number, foreignQuote: boolean): void => {
    const id = flowIds.get(slot);
    assert.ok(id !== undefined, `${file}: flow slot ${slot} was never started`);
    let r = records.get(id);
    if (r === undefined) {
      r = {
        file, hash, shards: WORKER_COUNTS.map((n) => shardOf(hash, n)), packets: 0, otherHashes: 0, splitUnder: new Set(),
        proto: flows.proto[slot]!, ports: flows.portA[slot]! << 16 | flows.portB[slot]!, carriesForeignQuote: false,
      };
      records.set(id, r);
    }
    r.packets++;
    if (foreignQuote) r.carriesForeignQuote = true;
    if (hash !== r.hash) r.otherHashes++;
    WORKER_COUNTS.forEach((n, i) => { if (shardOf(hash, n) !== r.shards[i]) r.splitUnder.add(n); });
  };

  const reader = await CaptureReader.open(join(SHARED_PCAPS, file), CONFIG.input);
  try {
    for (let s = reader.next(); s !== END; s = reader.next()) {
      if (s === NEED_DATA) { await reader.fill(); continue; }
      const rec = reader.record;
      const hash = shardHash(rec.data, rec.offset, rec.capLen, rec.linkType);
      quotedSlot = -1;
      pipeline.process(rec);
      result.packets++;
      const v = pipeline.decoder.view;
      const own = flows.lastSlot;
      const quotes = isIcmp(v.transport) && v.innerIpVersion !== 0;
      if (own >= 0) {
        // A datagram completed by reassembly was hashed by its fragment's header, not by the header it may quote.
        if (!(v.reassembled && quotes)) {
          const expected = viewPairHash(v, quotes);
          if (hash !== expected) result.oracleMismatches.push(`${file} frame ${rec.number}: ${hash} != ${expected}`);
        }
        note(own, hash, quotes && viewPairHash(v, true) !== viewPairHash(v, false));
      }
      if (quotedSlot >= 0) {
        result.quotedAttributions++;
        note(quotedSlot, hash, false);
      }
      if (v.ipVersion !== 0 && (v.moreFragments || v.fragOffset > 0)) {
        const key = `${v.ipVersion} ${v.src.join('.')} ${v.dst.join('.')} ${v.ipId} ${v.ipProto}`;
        const set = fragments.get(key) ?? new Set<number>();
        set.add(hash);
        fragments.set(key, set);
        fragmentCounts.set(key, (fragmentCounts.get(key) ?? 0) + 1);
      }
    }
  } finally {
    await reader.close();
  }
  pipeline.finish();
  assert.equal(pipeline.unexpected, 0, `${file}: pipeline errors`);
  for (const [key, hashes] of fragments) {
    if (fragmentCounts.get(key)! < 2) continue;
    result.fragmentGroups++;
    if (hashes.size !== 1) result.splitFragmentGroups.push(`${file}: fragments ${key} hashed ${[...hashes].join(', ')}`);
  }
  return result;
}

test('every shared capture: each flow\'s packets (with ICMP errors in the flow they quote) go to one shard for 2, 3, 4 and 7 workers', async (t) => {
  const manifest = readTsv(readFileSync(join(SHARED_PCAPS, 'MANIFEST.tsv'), 'utf8'));
  const files = manifest.map((r) => r['file']!).filter((f) => !f.startsWith('bad/'));
  assert.ok(files.length >= 40, `captures listed: ${files.length}`);
  let packets = 0;
  let flowCount = 0;
  let quoted = 0;
  let fragmentGroups = 0;
  const split: string[] = [];
  const exempt: string[] = [];
  const oracle: string[] = [];
  const splitFragments: string[] = [];
  for (const file of files) {
    const r = await runCapture(file);
    packets += r.packets;
    quoted += r.quotedAttributions;
    fragmentGroups += r.fragmentGroups;
    oracle.push(...r.oracleMismatches);
    splitFragments.push(...r.splitFragmentGroups);
    for (const f of r.flows.values()) {
      flowCount++;
      if (f.otherHashes === 0 && f.splitUnder.size === 0) continue;
      const line = `${file}: flow proto ${f.proto} ports ${f.ports >>> 16}/${f.ports & 0xffff}, ${f.packets} packets, `
        + `${f.otherHashes} with another hash, split under ${[...f.splitUnder].join(',') || 'none'} workers`;
      // The one case no stateless key keeps together: an ICMP error's own (sender, receiver) flow, hashed by the pairs it quotes.
      if (isIcmp(f.proto) && f.ports === 0 && f.carriesForeignQuote) exempt.push(line);
      else split.push(line);
    }
  }
  t.diagnostic(`${files.length} captures, ${packets} packets, ${flowCount} flows, ${quoted} ICMP errors counted in the flow they quote, `
    + `${fragmentGroups} fragmented datagrams`);
  for (const line of exempt) t.diagnostic(`ICMP error's own flow over several pairs (documented): ${line}`);
  assert.deepEqual(split, [], 'flows spread over more than one shard');
  assert.deepEqual(oracle, [], 'hash is not that of the pair the decoder keyed the flow by');
  assert.deepEqual(splitFragments, [], 'fragments of one datagram on different shards');
  // The captures exercise what the key is about: quoted flows and reassembly.
  assert.ok(quoted > 0, 'some ICMP errors were counted in a quoted flow');
  assert.ok(fragmentGroups >= 10, `fragmented datagrams: ${fragmentGroups}`);
});

// ---------------------------------------------------------------------------
// Crafted frames

const A4 = '10.1.2.3';
const B4 = '192.0.2.77';
const R4 = '198.51.100.1';
const A6 = '2001:db8::1';
const B6 = '2001:db8:ffff::2';

const hashEth = (frame: Uint8Array): number => shardHash(frame, 0, frame.length, LinkType.ETHERNET);

/** The decoder's flow key pair for `frame` (the quoted pair for an ICMP error): what the hash must equal. */
function decodedPairHash(frame: Uint8Array, linkType: number): number {
  const decoder = new Decoder(CONFIG.flows);
  const rec = new FrameRecord();
  rec.data = frame;
  rec.capLen = rec.wireLen = frame.length;
  rec.linkType = linkType;
  const v = decoder.decode(rec);
  assert.ok(v.ipVersion !== 0 && v.transport !== Transport.NONE, 'the crafted frame has a flow');
  return viewPairHash(v, isIcmp(v.transport) && v.innerIpVersion !== 0);
}

test('both directions of TCP, UDP and ICMP-error frames hash equal, to the pair the decoder keys', () => {
  const pairs: Array<[string, Buffer, Buffer]> = [
    ['tcp4', tcp4(A4, 40000, B4, 443, { flags: 0x02 }), tcp4(B4, 443, A4, 40000, { flags: 0x12 })],
    ['udp4', udp4(A4, 5353, B4, 53, Buffer.from('q')), udp4(B4, 53, A4, 5353, Buffer.from('a'))],
    ['udp6', udp6(A6, 40001, B6, 123, Buffer.from('q')), udp6(B6, 123, A6, 40001, Buffer.from('a'))],
    ['tcp6', ethernet(MAC_B, MAC_A, EtherTypes.IPV6, ipv6({ src: A6, dst: B6, proto: Proto.TCP, payload: tcp({ srcPort: 1, dstPort: 2 }) })),
      ethernet(MAC_A, MAC_B, EtherTypes.IPV6, ipv6({ src: B6, dst: A6, proto: Proto.TCP, payload: tcp({ srcPort: 2, dstPort: 1 }) }))],
  ];
  for (const [name, forward, reverse] of pairs) {
    assert.equal(hashEth(forward), hashEth(reverse), `${name}: both directions`);
    assert.equal(hashEth(forward), decodedPairHash(forward, LinkType.ETHERNET), `${name}: the decoder's pair`);
    assert.notEqual(hashEth(forward), 0, name);
  }
  assert.notEqual(hashEth(pairs[0]![1]), hashEth(pairs[2]![1]), 'another pair, another hash');

  // Port unreachable from the destination, and a router's time exceeded, each quoting A -> B: both go with A <-> B.
  const datagram = ipv4({ src: A4, dst: B4, proto: Proto.UDP, payload: udp({ srcPort: 5353, dstPort: 53, payload: Buffer.from('query') }) });
  const segment = ipv4({ src: A4, dst: B4, proto: Proto.TCP, payload: tcp({ srcPort: 40000, dstPort: 443, flags: 0x02 }) });
  const flow = hashEth(tcp4(A4, 40000, B4, 443, {}));
  const errors: Array<[string, Buffer]> = [
    ['port unreachable from B', ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: B4, dst: A4, proto: Proto.ICMP, payload: icmpError(3, 3, datagram) }))],
    ['time exceeded from a router', ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: R4, dst: A4, proto: Proto.ICMP, payload: icmpError(11, 0, segment) }))],
    ['fragmentation needed from a router', ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: R4, dst: A4, proto: Proto.ICMP, payload: icmpError(3, 4, segment, 1400) }))],
  ];
  for (const [name, frame] of errors) {
    assert.equal(hashEth(frame), flow, name);
    assert.equal(hashEth(frame), decodedPairHash(frame, LinkType.ETHERNET), `${name}: the decoder's quoted pair`);
  }
  // Not an error (echo reply from the router): its own pair.
  const echo = ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: R4, dst: A4, proto: Proto.ICMP, payload: icmpEcho(7, 1, true) }));
  assert.equal(hashEth(echo), hashEth(udp4(A4, 1, R4, 2, Buffer.alloc(0))));
  // A quote too short for an IP header: the error's own pair.
  const short = ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: R4, dst: A4, proto: Proto.ICMP, payload: icmpError(11, 0, segment.subarray(0, 19)) }));
  assert.equal(hashEth(short), hashEth(udp4(A4, 1, R4, 2, Buffer.alloc(0))));

  // ICMPv6 packet too big from a router, quoting B6 -> A6 UDP.
  const quoted6 = ipv6({ src: B6, dst: A6, proto: Proto.UDP, payload: udp({ srcPort: 123, dstPort: 40001, payload: Buffer.alloc(1300) }) });
  const tooBig = ethernet(MAC_A, MAC_B, EtherTypes.IPV6, ipv6({ src: '2001:db8:1::fe', dst: B6, proto: Proto.ICMPV6, payload: icmpv6Error(2, 0, quoted6.subarray(0, 1232), 1280) }));
  assert.equal(hashEth(tooBig), hashEth(pairs[2]![1]));
  assert.equal(hashEth(tooBig), decodedPairHash(tooBig, LinkType.ETHERNET));
});

test('every link layer and tunnel the decoder follows gives the innermost pair\'s hash; frames without IP give 0', () => {
  const ip4 = ipv4({ src: A4, dst: B4, proto: Proto.UDP, payload: udp({ srcPort: 1000, dstPort: 2000, payload: Buffer.from('x') }) });
  const ip6 = ipv6({ src: A6, dst: B6, proto: Proto.UDP, payload: udp({ srcPort: 1000, dstPort: 2000, payload: Buffer.from('x') }) });
  const mpls = (ip: Buffer): Buffer => new ByteWriter().u32(0x00010000).u32(0x00020100 | 64).bytes(ip).build(); // two labels, bottom of stack on the second
  const pppoe = (ppp: number, ip: Buffer): Buffer => new ByteWriter().u8(0x11).u8(0).u16(1).u16(ip.length + 2).u16(ppp).bytes(ip).build();
  for (const [ip, etherType, family, ppp] of [[ip4, EtherTypes.IPV4, 2, 0x0021], [ip6, EtherTypes.IPV6, 30, 0x0057]] as const) {
    const want = hashEth(ethernet(MAC_A, MAC_B, etherType, ip));
    const frames: Array<[string, number, Buffer]> = [
      ['802.1Q', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, etherType, ip, [{ tpid: 0x8100, vid: 10 }])],
      ['QinQinQ', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, etherType, ip, [{ tpid: 0x88a8, vid: 1 }, { tpid: 0x8100, vid: 2 }, { tpid: 0x8100, vid: 3 }])],
      ['MPLS', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, 0x8847, mpls(ip))],
      ['PPPoE', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, 0x8864, pppoe(ppp, ip))],
      ['SLL', LinkType.LINUX_SLL, sll(etherType, ip)],
      ['SLL2', LinkType.LINUX_SLL2, sll2(etherType, ip)],
      ['raw', LinkType.RAW, ip],
      ['raw (12)', LinkType.RAW_BSD, ip],
      ['IPv4/IPv6 link type', etherType === EtherTypes.IPV4 ? LinkType.IPV4 : LinkType.IPV6, ip],
      ['NULL little-endian', LinkType.NULL, nullHeader(family, 'le', ip)],
      ['NULL big-endian', LinkType.NULL, nullHeader(family, 'be', ip)],
      ['LOOP', LinkType.LOOP, nullHeader(family, 'be', ip)],
      ['IP in IPv4', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, EtherTypes.IPV4,
        ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: etherType === EtherTypes.IPV4 ? 4 : Proto.IPV6, payload: ip }))],
      ['IP in IPv6 in IPv4', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: Proto.IPV6,
        payload: ipv6({ src: '2001:db8:9::1', dst: '2001:db8:9::2', proto: etherType === EtherTypes.IPV4 ? 4 : Proto.IPV6, payload: ip }) }))],
    ];
    for (const [name, linkType, frame] of frames) {
      assert.equal(shardHash(frame, 0, frame.length, linkType), want, `${name} (IPv${ip === ip4 ? 4 : 6})`);
      assert.equal(want, decodedPairHash(frame, linkType), `${name}: the decoder keys the same pair`);
    }
    // At an offset inside a larger buffer, as the reader's records are.
    const frame = ethernet(MAC_A, MAC_B, etherType, ip);
    const buffer = Buffer.concat([Buffer.alloc(37, 0xee), frame, Buffer.alloc(11, 0xee)]);
    assert.equal(shardHash(buffer, 37, frame.length, LinkType.ETHERNET), want, 'at an offset');
  }
  // A tunnel whose inner header is cut: the decoder keeps the outer pair, and no flow; the hash is the outer pair's.
  const outer = ipv4({ src: '203.0.113.1', dst: '203.0.113.2', proto: 4, payload: ip4.subarray(0, 12) });
  assert.equal(hashEth(ethernet(MAC_A, MAC_B, EtherTypes.IPV4, outer)), hashEth(udp4('203.0.113.2', 1, '203.0.113.1', 2, Buffer.alloc(0))));

  const none: Array<[string, number, Uint8Array]> = [
    ['ARP', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, EtherTypes.ARP, Buffer.alloc(28))],
    ['truncated Ethernet', LinkType.ETHERNET, Buffer.alloc(13)],
    ['truncated IPv4', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ip4.subarray(0, 19))],
    ['truncated IPv6', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, EtherTypes.IPV6, ip6.subarray(0, 39))],
    ['bad IPv4 version', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ip6)],
    ['too many VLAN tags', LinkType.ETHERNET, ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ip4, Array.from({ length: 9 }, () => ({ tpid: 0x8100, vid: 1 })))],
    ['802.11', 105, ip4],
    ['raw, not IP', LinkType.RAW, Buffer.alloc(40)],
    ['empty', LinkType.ETHERNET, Buffer.alloc(0)],
  ];
  for (const [name, linkType, frame] of none) assert.equal(shardHash(frame, 0, frame.length, linkType), 0, name);
  // capLen past the buffer reads nothing outside it.
  assert.equal(shardHash(ip4, 0, ip4.length + 100, LinkType.RAW), shardHash(ip4, 0, ip4.length, LinkType.RAW));
});

test('fragments of one IPv4 (and IPv6) datagram hash equal, with the unfragmented reply', () => {
  const payload = udp({ srcPort: 5000, dstPort: 6000, payload: Buffer.alloc(3000, 7) });
  const cuts = [0, 1480, 2960, payload.length];
  const frags4 = cuts.slice(0, -1).map((start, i) => ethernet(MAC_A, MAC_B, EtherTypes.IPV4, ipv4({
    src: A4, dst: B4, proto: Proto.UDP, id: 0x4242, fragOffset: start, mf: i < cuts.length - 2, payload: payload.subarray(start, cuts[i + 1]),
  })));
  const reply = hashEth(udp4(B4, 6000, A4, 5000, Buffer.from('ok')));
  for (const f of frags4) assert.equal(hashEth(f), reply);
  // Decoded in reverse order: the completing frame (the first fragment) keys the same pair.
  const decoder = new Decoder(CONFIG.flows);
  const rec = new FrameRecord();
  rec.linkType = LinkType.ETHERNET;
  let completed = false;
  for (const f of [...frags4].reverse()) {
    rec.data = f;
    rec.capLen = rec.wireLen = f.length;
    const v = decoder.decode(rec);
    if (v.reassembled) {
      completed = true;
      assert.equal(v.transport, Transport.UDP);
      assert.equal(viewPairHash(v, false), reply);
    }
  }
  assert.ok(completed, 'the decoder reassembled the datagram');
  // A first fragment cut by the snapshot length (decoded as is) still hashes with its datagram.
  assert.equal(hashEth(frags4[0]!.subarray(0, 100)), reply);

  const frags6 = cuts.slice(0, -1).map((start, i) => ethernet(MAC_A, MAC_B, EtherTypes.IPV6, ipv6({
    src: A6, dst: B6, proto: Proto.UDP, ext: [{ kind: 'fragment', offset: start, more: i < cuts.length - 2, id: 0xabcdef }], payload: payload.subarray(start, cuts[i + 1]),
  })));
  const reply6 = hashEth(udp6(B6, 6000, A6, 5000, Buffer.from('ok')));
  for (const f of frags6) assert.equal(hashEth(f), reply6);
});

// ---------------------------------------------------------------------------
// Spread and speed

/** Every record of a capture, copied into one buffer. */
async function loadFrames(path: string): Promise<{ data: Uint8Array; offsets: number[]; lengths: number[]; linkTypes: number[] }> {
  const reader = await CaptureReader.open(path, CONFIG.input);
  const chunks: Uint8Array[] = [];
  const offsets: number[] = [];
  const lengths: number[] = [];
  const linkTypes: number[] = [];
  let size = 0;
  try {
    for (let s = reader.next(); s !== END; s = reader.next()) {
      if (s === NEED_DATA) { await reader.fill(); continue; }
      const r = reader.record;
      chunks.push(r.data.slice(r.offset, r.offset + r.capLen));
      offsets.push(size);
      lengths.push(r.capLen);
      linkTypes.push(r.linkType);
      size += r.capLen;
    }
  } finally {
    await reader.close();
  }
  return { data: Buffer.concat(chunks), offsets, lengths, linkTypes };
}

test('the bench\'s mixed capture: host pairs split within 10 % of even over 2 and 4 shards, packets as far as their pairs allow', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'shard-hash-'));
  try {
    const path = join(dir, 'mix.pcap');
    generateCapture(path, { packets: 200_000, seed: 1 });
    const frames = await loadFrames(path);
    const packets = frames.offsets.length;
    assert.equal(packets, 200_000);
    // Packets per host pair (a pair is its hash here: a 32-bit collision among a few thousand pairs is negligible).
    const perPair = new Map<number, number>();
    for (let i = 0; i < packets; i++) {
      const h = shardHash(frames.data, frames.offsets[i]!, frames.lengths[i]!, frames.linkTypes[i]!);
      perPair.set(h, (perPair.get(h) ?? 0) + 1);
    }
    assert.ok(!perPair.has(0), 'every frame of the mix is IP');
    let sumOfSquares = 0;
    for (const w of perPair.values()) sumOfSquares += w * w;
    for (const n of [2, 4]) {
      const pairCounts = new Array<number>(n).fill(0);
      const packetCounts = new Array<number>(n).fill(0);
      for (const [h, w] of perPair) {
        pairCounts[shardOf(h, n)]!++;
        packetCounts[shardOf(h, n)]! += w;
      }
      const deviation = (counts: number[], total: number): number[] => counts.map((c) => c / (total / n) - 1);
      const percent = (d: number[]): string => d.map((x) => `${(x * 100).toFixed(1)} %`).join(', ');
      const pairDev = deviation(pairCounts, perPair.size);
      const packetDev = deviation(packetCounts, packets);
      // A shard's packet share under a perfectly random placement of pairs: its spread comes from the heaviest pairs.
      const sigma = Math.sqrt((1 / n) * (1 - 1 / n) * sumOfSquares) / (packets / n);
      const worst = Math.max(...packetDev.map(Math.abs));
      t.diagnostic(`${n} shards: ${pairCounts.join(' / ')} of ${perPair.size} host pairs (${percent(pairDev)}); `
        + `${packetCounts.join(' / ')} packets (${percent(packetDev)}); ideal hash's packet spread: sigma ${(sigma * 100).toFixed(1)} %; `
        + `packets within 10 %: ${worst <= 0.1 ? 'yes' : 'no'}`);
      for (const d of pairDev) assert.ok(Math.abs(d) <= 0.1, `${n} shards, host pairs: ${percent(pairDev)}`);
      assert.ok(worst <= Math.max(0.1, 3 * sigma), `${n} shards, packets: ${percent(packetDev)} (sigma ${(sigma * 100).toFixed(1)} %)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shardOf spreads sequential host pairs evenly for every worker count from 1 to 64', () => {
  // 65,536 clients of one subnet talking to one server: low-entropy addresses, the hard case for a weak hash.
  const hashes: number[] = [];
  for (let i = 0; i < 65536; i++) {
    const frame = udp4(`10.0.${i >> 8}.${i & 0xff}`, 40000, '192.168.0.1', 443, Buffer.alloc(0));
    hashes.push(hashEth(frame));
  }
  for (let n = 1; n <= 64; n++) {
    const counts = new Array<number>(n).fill(0);
    for (const h of hashes) {
      const s = shardOf(h, n);
      assert.ok(Number.isInteger(s) && s >= 0 && s < n);
      counts[s]!++;
    }
    const even = hashes.length / n;
    // 64 shards: 1,024 each, a standard deviation of 32; 15 % is about 5 of them.
    for (const c of counts) assert.ok(Math.abs(c - even) <= even * 0.15, `${n} workers: ${counts.join(' ')}`);
  }
  assert.equal(shardOf(0xffffffff, 64), 63);
  assert.equal(shardOf(0, 7), 0);
});

test('throughput over a real capture (diagnostic)', async (t) => {
  const frames = await loadFrames(join(SHARED_PCAPS, 'ndpi_1kxun.pcap'));
  const n = frames.offsets.length;
  let sink = 0;
  const rounds = 600;
  for (let r = 0; r < 20; r++) for (let i = 0; i < n; i++) sink ^= shardHash(frames.data, frames.offsets[i]!, frames.lengths[i]!, frames.linkTypes[i]!);
  const started = performance.now();
  for (let r = 0; r < rounds; r++) for (let i = 0; i < n; i++) sink ^= shardHash(frames.data, frames.offsets[i]!, frames.lengths[i]!, frames.linkTypes[i]!);
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`shardHash: ${((rounds * n) / seconds / 1e6).toFixed(1)} M hashes/s over ndpi_1kxun.pcap (${n} frames x ${rounds}; ${sink & 1})`);
});
