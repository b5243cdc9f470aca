/**
 * Shared pieces of the fuzz tests (test/fuzz.test.ts and its worker): a seeded
 * PRNG, a small parser of the seed captures that is independent of the reader
 * (it only has to find where the length fields are), the mutators, and a
 * generator of random frames for the decoder. Defines no tests itself.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

// ---------------------------------------------------------------------------
// PRNG

/** mulberry32: 32-bit state, good enough for fuzzing and trivially replayable. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives the seed of case `index` from the run seed, so one case can be replayed alone. */
export function mixSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class Rng {
  private readonly next: () => number;
  constructor(seed: number) { this.next = mulberry32(seed); }
  float(): number { return this.next(); }
  /** Integer in [0, n). */
  int(n: number): number { return Math.floor(this.next() * n); }
  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number { return lo + this.int(hi - lo + 1); }
  chance(p: number): boolean { return this.next() < p; }
  pick<T>(items: readonly T[]): T { return items[this.int(items.length)]!; }
  u8(): number { return this.int(256); }
  u16(): number { return this.int(65536); }
  u32(): number { return (this.int(65536) * 65536 + this.int(65536)) >>> 0; }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** Lengths biased towards the small ones, where header boundaries are. */
  length(max: number): number {
    const r = this.int(4);
    if (r === 0) return this.int(Math.min(max, 24) + 1);
    if (r === 1) return this.int(Math.min(max, 80) + 1);
    return this.int(max + 1);
  }
}

/** Parses FUZZ_SEED (decimal or 0x hex); undefined when unset or unusable. */
export function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text.trim());
  return Number.isInteger(n) && n >= 0 ? n >>> 0 : undefined;
}

// ---------------------------------------------------------------------------
// Messages between the fuzz test and its worker

export interface WorkerInput {
  mode: 'files' | 'decoder';
  seed: number;
  cases: number;
  /** Replay only this case index (files mode), or -1. */
  onlyCase: number;
  pcapDir: string;
  tmpDir: string;
  artifactsDir: string;
}

export interface CaseFailure { index: number; label: string; error: string; artifact: string }

export interface WorkerResult {
  cases: number;
  seeds: string[];
  outcomes: Record<string, number>;
  slowestMs: number;
  slowestCase: number;
  slowestLabel: string;
  totalMs: number;
  rssStart: number;
  rssEnd: number;
  rssPeak: number;
  failures: CaseFailure[];
  failureCount: number;
}

export type WorkerMessage =
  | { type: 'start'; index: number; label: string; path: string }
  | { type: 'done'; result: WorkerResult };

// ---------------------------------------------------------------------------
// Seed captures: where the records and length fields are

/** Field offsets inside one packet (network byte order), -1 when absent. */
export interface PacketFields {
  etherTypeOff: number;
  ipOff: number;
  ipVersion: number;
  l4Off: number;
  l4Proto: number;
  dnsOff: number;
}

export interface RecordInfo {
  /** Start of the 16-byte record header (pcap) or of the block (pcapng). */
  at: number;
  /** Whole extent in the file (header + data, or block). */
  size: number;
  dataOff: number;
  capLen: number;
  linkType: number;
  /** pcapng block type; 0 for classic pcap. */
  blockType: number;
  fields: PacketFields;
}

export interface BlockInfo { at: number; len: number; type: number }

export interface SeedCapture {
  name: string;
  bytes: Uint8Array;
  format: 'pcap' | 'pcapng';
  little: boolean;
  records: RecordInfo[];
  /** pcapng blocks (all types), empty for pcap. */
  blocks: BlockInfo[];
  linkTypes: number[];
}

const be16 = (d: Uint8Array, o: number): number => (d[o]! << 8) | d[o + 1]!;
const ETH_VLAN = [0x8100, 0x88a8, 0x9100];

/** Finds the network and transport headers of a frame, as far as they are captured. */
export function locateFields(d: Uint8Array, off: number, end: number, linkType: number): PacketFields {
  const f: PacketFields = { etherTypeOff: -1, ipOff: -1, ipVersion: 0, l4Off: -1, l4Proto: -1, dnsOff: -1 };
  let p = off;
  let etherType = -1;
  switch (linkType) {
    case 1:
      if (end - off < 14) return f;
      f.etherTypeOff = off + 12;
      etherType = be16(d, off + 12);
      p = off + 14;
      while (ETH_VLAN.includes(etherType) && p + 4 <= end) { f.etherTypeOff = p + 2; etherType = be16(d, p + 2); p += 4; }
      break;
    case 113:
      if (end - off < 16) return f;
      f.etherTypeOff = off + 14; etherType = be16(d, off + 14); p = off + 16;
      break;
    case 276:
      if (end - off < 20) return f;
      f.etherTypeOff = off; etherType = be16(d, off); p = off + 20;
      break;
    case 0: case 108: p = off + 4; break;
    case 12: case 14: case 101: case 228: case 229: break;
    default: return f;
  }
  if (etherType === -1 && p < end) etherType = d[p]! >> 4 === 4 ? 0x0800 : d[p]! >> 4 === 6 ? 0x86dd : 0;
  let proto = -1;
  if (etherType === 0x0800 && p + 20 <= end && d[p]! >> 4 === 4) {
    f.ipOff = p; f.ipVersion = 4;
    const ihl = (d[p]! & 0x0f) * 4;
    proto = d[p + 9]!;
    if ((be16(d, p + 6) & 0x1fff) === 0 && ihl >= 20) { f.l4Off = p + ihl; f.l4Proto = proto; }
  } else if (etherType === 0x86dd && p + 40 <= end && d[p]! >> 4 === 6) {
    f.ipOff = p; f.ipVersion = 6;
    proto = d[p + 6]!;
    f.l4Off = p + 40; f.l4Proto = proto;
  }
  const l4 = f.l4Off;
  if (l4 < 0) return f;
  if (f.l4Proto === 17 && l4 + 8 <= end) {
    if (be16(d, l4) === 53 || be16(d, l4 + 2) === 53) f.dnsOff = l4 + 8;
  } else if (f.l4Proto === 6 && l4 + 20 <= end) {
    const hl = (d[l4 + 12]! >> 4) * 4;
    if ((be16(d, l4) === 53 || be16(d, l4 + 2) === 53) && l4 + hl + 14 <= end) f.dnsOff = l4 + hl + 2;
  }
  if (f.dnsOff >= 0 && f.dnsOff + 12 > end) f.dnsOff = -1;
  return f;
}

/** Parses a pcap or pcapng file, cut at a record boundary near `maxBytes`. */
export function parseSeedCapture(name: string, file: Uint8Array, maxBytes: number): SeedCapture {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = dv.getUint32(0, false);
  const records: RecordInfo[] = [];
  const blocks: BlockInfo[] = [];
  const linkTypes: number[] = [];
  if (magic === 0x0a0d0d0a) {
    let little = true;
    let ifaces: number[] = [];
    let p = 0;
    while (p + 12 <= file.length) {
      if (dv.getUint32(p, true) === 0x0a0d0d0a) little = dv.getUint32(p + 8, true) === 0x1a2b3c4d;
      const type = dv.getUint32(p, little);
      const len = dv.getUint32(p + 4, little);
      if (len < 12 || p + len > file.length) break;
      if (p + len > maxBytes && records.length > 0) break;
      blocks.push({ at: p, len, type });
      if (type === 0x0a0d0d0a) ifaces = [];
      else if (type === 1) { ifaces.push(dv.getUint16(p + 8, little)); if (!linkTypes.includes(ifaces.at(-1)!)) linkTypes.push(ifaces.at(-1)!); }
      else if (type === 6 || type === 2) {
        const id = type === 6 ? dv.getUint32(p + 8, little) : dv.getUint16(p + 8, little);
        const capLen = dv.getUint32(p + 20, little);
        const linkType = ifaces[id] ?? 1;
        records.push({ at: p, size: len, dataOff: p + 28, capLen, linkType, blockType: type, fields: locateFields(file, p + 28, p + 28 + capLen, linkType) });
      } else if (type === 3) {
        const capLen = Math.min(dv.getUint32(p + 8, little), len - 16);
        const linkType = ifaces[0] ?? 1;
        records.push({ at: p, size: len, dataOff: p + 12, capLen, linkType, blockType: type, fields: locateFields(file, p + 12, p + 12 + capLen, linkType) });
      }
      p += len;
    }
    return { name, bytes: file.slice(0, p), format: 'pcapng', little, records, blocks, linkTypes };
  }
  const little = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  const linkType = dv.getUint32(20, little) & 0x03ffffff;
  linkTypes.push(linkType);
  let p = 24;
  while (p + 16 <= file.length) {
    const capLen = dv.getUint32(p + 8, little);
    if (p + 16 + capLen > file.length) break;
    if (p + 16 + capLen > maxBytes && records.length > 0) break;
    records.push({ at: p, size: 16 + capLen, dataOff: p + 16, capLen, linkType, blockType: 0, fields: locateFields(file, p + 16, p + 16 + capLen, linkType) });
    p += 16 + capLen;
  }
  return { name, bytes: file.slice(0, p), format: 'pcap', little, records, blocks, linkTypes };
}

/** Every good capture listed in MANIFEST.tsv, cut to `maxBytes` each. */
export function loadCorpus(pcapDir: string, maxBytes: number): SeedCapture[] {
  const manifest = readFileSync(join(pcapDir, 'MANIFEST.tsv'), 'utf8').split('\n').slice(1);
  const out: SeedCapture[] = [];
  for (const line of manifest) {
    const name = line.split('\t')[0];
    if (!name) continue;
    out.push(parseSeedCapture(name, new Uint8Array(readFileSync(join(pcapDir, name))), maxBytes));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Mutations

const EXTREME32 = [0, 1, 2, 3, 4, 8, 11, 12, 13, 15, 16, 19, 20, 24, 27, 28, 31, 32, 64, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000,
  262143, 262144, 262145, 0x7fffffff, 0x80000000, 0xfffffff0, 0xfffffffc, 0xfffffffe, 0xffffffff, 16 * 1024 * 1024, 16 * 1024 * 1024 + 4, 1e9];
const EXTREME16 = [0, 1, 2, 7, 8, 9, 11, 12, 13, 19, 20, 21, 39, 40, 41, 0x3f, 0x40, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x7fff, 0x8000, 0xfffe, 0xffff];

function interesting32(rng: Rng, old: number): number {
  switch (rng.int(4)) {
    case 0: return rng.pick(EXTREME32) >>> 0;
    case 1: return (old + rng.pick([-16, -8, -4, -2, -1, 1, 2, 4, 8, 16])) >>> 0;
    case 2: return (old + rng.range(-4096, 4096)) >>> 0;
    default: return rng.chance(0.5) ? rng.u32() : rng.int(2 * old + 64) >>> 0;
  }
}

function interesting16(rng: Rng, old: number): number {
  switch (rng.int(4)) {
    case 0: return rng.pick(EXTREME16);
    case 1: return (old + rng.pick([-8, -4, -2, -1, 1, 2, 4, 8])) & 0xffff;
    case 2: return (old + rng.range(-600, 600)) & 0xffff;
    default: return rng.u16();
  }
}

interface MutationTarget {
  rng: Rng;
  seed: SeedCapture;
  buf: Uint8Array;
  view: DataView;
}

type FieldMutator = (m: MutationTarget) => string | null;

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

function setU32(m: MutationTarget, at: number, value: number): void {
  if (at >= 0 && at + 4 <= m.buf.length) m.view.setUint32(at, value >>> 0, m.seed.little);
}
function setU16(m: MutationTarget, at: number, value: number, little: boolean): void {
  if (at >= 0 && at + 2 <= m.buf.length) m.view.setUint16(at, value & 0xffff, little);
}
function getU32(m: MutationTarget, at: number): number { return at + 4 <= m.buf.length ? m.view.getUint32(at, m.seed.little) : 0; }
function getBe16(m: MutationTarget, at: number): number { return at + 2 <= m.buf.length ? be16(m.buf, at) : 0; }

function pickRecord(m: MutationTarget, filter?: (r: RecordInfo) => boolean): RecordInfo | null {
  const recs = filter ? m.seed.records.filter(filter) : m.seed.records;
  return recs.length ? m.rng.pick(recs) : null;
}

/** Mutators of container fields (file byte order) and of protocol fields (network byte order). */
const FIELD_MUTATORS: ReadonlyArray<readonly [string, number, FieldMutator]> = [
  ['pcap.caplen', 3, (m) => {
    if (m.seed.format !== 'pcap') return null;
    const r = pickRecord(m); if (!r) return null;
    const v = interesting32(m.rng, r.capLen); setU32(m, r.at + 8, v); return `record@${r.at} caplen ${r.capLen} -> ${v}`;
  }],
  ['pcap.origlen', 2, (m) => {
    if (m.seed.format !== 'pcap') return null;
    const r = pickRecord(m); if (!r) return null;
    const v = interesting32(m.rng, getU32(m, r.at + 12)); setU32(m, r.at + 12, v); return `record@${r.at} origlen -> ${v}`;
  }],
  ['pcap.timestamp', 1, (m) => {
    if (m.seed.format !== 'pcap') return null;
    const r = pickRecord(m); if (!r) return null;
    const which = m.rng.int(2) * 4; const v = m.rng.chance(0.5) ? interesting32(m.rng, getU32(m, r.at + which)) : m.rng.u32();
    setU32(m, r.at + which, v); return `record@${r.at} ts[${which}] -> ${v}`;
  }],
  ['pcap.header', 1, (m) => {
    if (m.seed.format !== 'pcap') return null;
    switch (m.rng.int(4)) {
      case 0: { const v = m.rng.pick([0, 1, 12, 14, 101, 105, 108, 113, 127, 228, 229, 276, 0xffff, 0x10000001, 0xfc000001, m.rng.u32()]); setU32(m, 20, v); return `linktype -> ${hex(v)}`; }
      case 1: { const v = interesting32(m.rng, 65535); setU32(m, 16, v); return `snaplen -> ${v}`; }
      case 2: { setU16(m, 4, m.rng.pick([1, 2, 3, 0xffff]), m.seed.little); setU16(m, 6, m.rng.u16(), m.seed.little); return 'version changed'; }
      default: {
        // Another magic: byte order or resolution or record header size changes under the same bytes.
        const v = m.rng.pick([0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1, 0xa1b2cd34, 0x34cdb2a1]);
        m.view.setUint32(0, v, false); return `magic -> ${hex(v)}`;
      }
    }
  }],
  ['pcapng.block_length', 4, (m) => {
    if (m.seed.format !== 'pcapng' || m.seed.blocks.length === 0) return null;
    const b = m.rng.pick(m.seed.blocks);
    const v = interesting32(m.rng, b.len);
    const where = m.rng.int(3);
    if (where !== 1) setU32(m, b.at + 4, v);
    if (where !== 0) setU32(m, b.at + b.len - 4, v);
    return `block@${b.at} type ${b.type} total length ${b.len} -> ${v} (${['leading', 'trailing', 'both'][where]})`;
  }],
  ['pcapng.block_type', 2, (m) => {
    if (m.seed.format !== 'pcapng' || m.seed.blocks.length === 0) return null;
    const b = m.rng.pick(m.seed.blocks);
    // Packet blocks turned into one another (EPB, obsolete PB, SPB) parse further than random types.
    const v = m.rng.chance(0.5) ? m.rng.pick([2, 3, 6]) : m.rng.pick([0x0a0d0d0a, 1, 4, 5, 0xbad, 0x80000001, m.rng.u32()]);
    setU32(m, b.at, v); return `block@${b.at} type ${b.type} -> ${hex(v)}`;
  }],
  ['pcapng.shrink_block', 2, (m) => {
    // Leading and trailing lengths agree on a shorter block: reaches the per-type minimum-size checks.
    if (m.seed.format !== 'pcapng' || m.seed.blocks.length === 0) return null;
    const b = m.rng.pick(m.seed.blocks);
    const v = m.rng.pick([12, 16, 20, 24, 28, 32, 36]);
    if (v >= b.len) return null;
    setU32(m, b.at + 4, v); setU32(m, b.at + v - 4, v); return `block@${b.at} type ${b.type} shrunk ${b.len} -> ${v}`;
  }],
  ['pcapng.epb_caplen', 3, (m) => {
    const r = pickRecord(m, (x) => x.blockType === 6 || x.blockType === 2); if (!r) return null;
    const v = interesting32(m.rng, r.capLen); setU32(m, r.at + 20, v); return `EPB@${r.at} caplen ${r.capLen} -> ${v}`;
  }],
  ['pcapng.epb_origlen', 1, (m) => {
    const r = pickRecord(m, (x) => x.blockType === 6 || x.blockType === 3); if (!r) return null;
    const at = r.blockType === 6 ? r.at + 24 : r.at + 8;
    const v = interesting32(m.rng, getU32(m, at)); setU32(m, at, v); return `block@${r.at} origlen -> ${v}`;
  }],
  ['pcapng.epb_interface', 1, (m) => {
    const r = pickRecord(m, (x) => x.blockType === 6); if (!r) return null;
    const v = m.rng.pick([0, 1, 2, 3, 0xffffffff, m.rng.u32()]); setU32(m, r.at + 8, v); return `EPB@${r.at} interface -> ${v}`;
  }],
  ['pcapng.epb_timestamp', 1, (m) => {
    const r = pickRecord(m, (x) => x.blockType === 6); if (!r) return null;
    setU32(m, r.at + 12, m.rng.chance(0.5) ? m.rng.u32() : m.rng.pick([0, 0xffffffff, 0x7fffffff]));
    setU32(m, r.at + 16, m.rng.u32()); return `EPB@${r.at} timestamp randomized`;
  }],
  ['pcapng.shb', 1, (m) => {
    const shbs = m.seed.blocks.filter((b) => b.type === 0x0a0d0d0a); if (!shbs.length) return null;
    const b = m.rng.pick(shbs);
    if (m.rng.chance(0.5)) { m.view.setUint32(b.at + 8, m.rng.pick([0x4d3c2b1a, 0x1a2b3c4d, m.rng.u32()]), true); return `SHB@${b.at} byte-order magic changed`; }
    setU16(m, b.at + 12, m.rng.pick([0, 1, 2, 0xffff]), m.seed.little); return `SHB@${b.at} version changed`;
  }],
  ['pcapng.idb_linktype', 1, (m) => {
    const idbs = m.seed.blocks.filter((b) => b.type === 1); if (!idbs.length) return null;
    const b = m.rng.pick(idbs); const v = m.rng.pick([0, 1, 12, 101, 105, 108, 113, 228, 229, 276, m.rng.u16()]);
    setU16(m, b.at + 8, v, m.seed.little); return `IDB@${b.at} linktype -> ${v}`;
  }],
  ['ethertype', 2, (m) => {
    const r = pickRecord(m, (x) => x.fields.etherTypeOff >= 0); if (!r) return null;
    const v = m.rng.pick([0x0800, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x8864, 0x8847, 0x8848, 0x0806, m.rng.u16()]);
    setU16(m, r.fields.etherTypeOff, v, false); return `frame@${r.at} ethertype -> ${hex(v)}`;
  }],
  ['ipv4.total_length', 4, (m) => {
    const r = pickRecord(m, (x) => x.fields.ipVersion === 4); if (!r) return null;
    const at = r.fields.ipOff + 2; const v = interesting16(m.rng, getBe16(m, at)); setU16(m, at, v, false); return `frame@${r.at} ip.len -> ${v}`;
  }],
  ['ipv4.ihl', 3, (m) => {
    const r = pickRecord(m, (x) => x.fields.ipVersion === 4); if (!r) return null;
    const v = m.rng.int(16); m.buf[r.fields.ipOff] = (m.rng.chance(0.9) ? 0x40 : m.rng.int(16) << 4) | v; return `frame@${r.at} ip.hdr_len -> ${v * 4}`;
  }],
  ['ipv4.fragment', 2, (m) => {
    const r = pickRecord(m, (x) => x.fields.ipVersion === 4); if (!r) return null;
    const v = m.rng.pick([0x2000, 0x2001, 0x0001, 0x1fff, 0x3fff, 0x4000, m.rng.u16()]); setU16(m, r.fields.ipOff + 6, v, false); return `frame@${r.at} ip.frag -> ${hex(v)}`;
  }],
  ['ip.protocol', 2, (m) => {
    const r = pickRecord(m, (x) => x.fields.ipVersion !== 0); if (!r) return null;
    const v = m.rng.pick([0, 1, 4, 6, 17, 41, 43, 44, 50, 51, 58, 59, 60, 135, 139, 140, m.rng.u8()]);
    m.buf[r.fields.ipOff + (r.fields.ipVersion === 4 ? 9 : 6)] = v; return `frame@${r.at} ip.proto -> ${v}`;
  }],
  ['ipv6.payload_length', 3, (m) => {
    const r = pickRecord(m, (x) => x.fields.ipVersion === 6); if (!r) return null;
    const at = r.fields.ipOff + 4; const v = interesting16(m.rng, getBe16(m, at)); setU16(m, at, v, false); return `frame@${r.at} ipv6.plen -> ${v}`;
  }],
  ['tcp.data_offset', 4, (m) => {
    const r = pickRecord(m, (x) => x.fields.l4Proto === 6 && x.fields.l4Off + 13 <= x.dataOff + x.capLen); if (!r) return null;
    const at = r.fields.l4Off + 12; const v = m.rng.int(16); m.buf[at] = (v << 4) | (m.buf[at]! & 0x0f); return `frame@${r.at} tcp.hdr_len -> ${v * 4}`;
  }],
  ['tcp.options', 2, (m) => {
    const r = pickRecord(m, (x) => x.fields.l4Proto === 6 && x.fields.l4Off + 24 <= x.dataOff + x.capLen); if (!r) return null;
    const at = r.fields.l4Off + 20 + m.rng.int(4);
    m.buf[at] = m.rng.pick([0, 1, 2, 3, 4, 5, 8, 30, 255]); if (at + 1 < m.buf.length) m.buf[at + 1] = m.rng.pick([0, 1, 2, 3, 10, 18, 34, 40, 255]);
    return `frame@${r.at} tcp option bytes`;
  }],
  ['udp.length', 4, (m) => {
    const r = pickRecord(m, (x) => x.fields.l4Proto === 17 && x.fields.l4Off + 8 <= x.dataOff + x.capLen); if (!r) return null;
    const at = r.fields.l4Off + 4; const v = interesting16(m.rng, getBe16(m, at)); setU16(m, at, v, false); return `frame@${r.at} udp.length -> ${v}`;
  }],
  ['dns.counts', 4, (m) => {
    const r = pickRecord(m, (x) => x.fields.dnsOff >= 0); if (!r) return null;
    const at = r.fields.dnsOff + 4 + 2 * m.rng.int(4); const v = interesting16(m.rng, getBe16(m, at)); setU16(m, at, v, false);
    return `frame@${r.at} dns count@${at - r.fields.dnsOff} -> ${v}`;
  }],
  ['dns.name', 3, (m) => {
    const r = pickRecord(m, (x) => x.fields.dnsOff >= 0 && x.fields.dnsOff + 14 <= x.dataOff + x.capLen); if (!r) return null;
    const at = r.fields.dnsOff + 12 + m.rng.int(Math.min(40, r.dataOff + r.capLen - r.fields.dnsOff - 13));
    const v = m.rng.pick([0, 0x3f, 0x40, 0x80, 0xc0, 0xff, 1, 63]);
    m.buf[at] = v;
    if (v === 0xc0 && at + 1 < m.buf.length) m.buf[at + 1] = m.rng.pick([0, 12, at - r.fields.dnsOff, at - r.fields.dnsOff + 2, 0xff]);
    return `frame@${r.at} dns name byte@${at - r.fields.dnsOff} -> ${hex(v)}`;
  }],
];

const FIELD_WEIGHT_TOTAL = FIELD_MUTATORS.reduce((s, [, w]) => s + w, 0);

function pickFieldMutator(rng: Rng): readonly [string, number, FieldMutator] {
  let r = rng.int(FIELD_WEIGHT_TOTAL);
  for (const entry of FIELD_MUTATORS) { r -= entry[1]; if (r < 0) return entry; }
  return FIELD_MUTATORS[0]!;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** A new Interface Description Block with random options (if_tsresol, if_tsoffset, junk). */
function randomIdb(rng: Rng, little: boolean, linkType: number): Uint8Array {
  const opts: number[][] = [];
  const count = rng.range(0, 4);
  for (let i = 0; i < count; i++) {
    const kind = rng.int(4);
    if (kind === 0) opts.push([9, 1, rng.pick([0, 3, 6, 9, 10, 12, 19, 0x7f, 0x80, 0x8a, 0x9e, 0xff, rng.u8()])]);
    else if (kind === 1) {
      const bytes = Array.from(rng.pick([
        [0, 0, 0, 0, 0, 0, 0, 0], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], [0, 0, 0, 0, 0, 0, 0, 0x80],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Array.from(rng.bytes(8)),
      ]));
      opts.push([14, 8, ...bytes]);
    } else if (kind === 2) { const len = rng.int(12); opts.push([rng.u16(), len, ...rng.bytes(len)]); }
    else opts.push([rng.pick([2, 3, 9, 14]), rng.pick([0, 1, 7, 200, 0xffff]), ...rng.bytes(rng.int(8))]); // lying option length
  }
  const body: number[] = [];
  const push16 = (v: number): void => { if (little) body.push(v & 0xff, (v >> 8) & 0xff); else body.push((v >> 8) & 0xff, v & 0xff); };
  const push32 = (v: number): void => { if (little) body.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24); else body.push(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff); };
  push16(linkType); push16(0); push32(rng.pick([0, 65535, 262144]));
  for (const o of opts) {
    push16(o[0]!); push16(o[1]!);
    const val = o.slice(2);
    body.push(...val);
    while (body.length % 4) body.push(0);
  }
  if (rng.chance(0.5)) { push16(0); push16(0); }
  while (body.length % 4) body.push(0);
  const total = 12 + body.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 1, little); dv.setUint32(4, total, little); out.set(body, 8); dv.setUint32(total - 4, total, little);
  return out;
}

export interface BuiltCase { bytes: Uint8Array; label: string; log: string[] }

/**
 * Builds one mutated capture: field rewrites at the seed's own offsets, then
 * structural splices (duplicated records, replaced IDBs), then byte-level
 * damage, truncation, and sometimes gzip (itself damaged now and then).
 */
export function buildCase(rng: Rng, corpus: readonly SeedCapture[]): BuiltCase {
  const seed = rng.pick(corpus);
  const log: string[] = [];
  let buf: Uint8Array = seed.bytes.slice();
  const target: MutationTarget = { rng, seed, buf, view: new DataView(buf.buffer) };
  // 1. fields at known offsets
  const fieldCount = rng.chance(0.15) ? 0 : rng.chance(0.7) ? 1 : rng.range(2, 6);
  for (let i = 0; i < fieldCount; i++) {
    const [name, , mutate] = pickFieldMutator(rng);
    const what = mutate(target);
    if (what !== null) log.push(`${name}: ${what}`);
  }
  // 2. splices
  if (rng.chance(0.08) && seed.records.length) {
    const r = rng.pick(seed.records);
    const n = rng.chance(0.7) ? rng.range(1, 8) : rng.range(50, 400);
    const rec = buf.slice(r.at, r.at + r.size);
    buf = concat([buf.subarray(0, r.at + r.size), ...Array.from({ length: n }, () => rec), buf.subarray(r.at + r.size)]);
    log.push(`duplicate record@${r.at} x${n}`);
  }
  if (seed.format === 'pcapng' && rng.chance(0.08)) {
    const idbs = seed.blocks.filter((b) => b.type === 1);
    if (idbs.length && buf.length === seed.bytes.length) {
      const b = rng.pick(idbs);
      const idb = randomIdb(rng, seed.little, rng.chance(0.8) ? new DataView(seed.bytes.buffer, seed.bytes.byteOffset).getUint16(b.at + 8, seed.little) : rng.u16());
      buf = concat([buf.subarray(0, b.at), idb, buf.subarray(b.at + b.len)]);
      log.push(`IDB@${b.at} replaced by a ${idb.length}-byte IDB with random options`);
    }
  }
  // 3. byte-level damage
  const byteCount = fieldCount === 0 ? rng.range(1, 6) : rng.chance(0.5) ? 0 : rng.range(1, 4);
  for (let i = 0; i < byteCount && buf.length > 0; i++) {
    // Half the hits land in the first few hundred bytes, where the headers are.
    const at = rng.chance(0.5) ? rng.int(Math.min(buf.length, 400)) : rng.int(buf.length);
    switch (rng.int(4)) {
      case 0: { const bit = rng.int(8); buf[at] = buf[at]! ^ (1 << bit); log.push(`flip bit ${bit} @${at}`); break; }
      case 1: { const n = rng.range(1, 8); buf.fill(0, at, at + n); log.push(`zero ${n} bytes @${at}`); break; }
      case 2: { const n = rng.range(1, 8); buf.fill(0xff, at, at + n); log.push(`0xff ${n} bytes @${at}`); break; }
      default: { const n = rng.range(1, 16); for (let k = at; k < Math.min(buf.length, at + n); k++) buf[k] = rng.u8(); log.push(`random ${n} bytes @${at}`); }
    }
  }
  // 4. truncation
  if (rng.chance(0.2)) {
    const at = rng.chance(0.3) ? rng.int(Math.min(buf.length, 64) + 1) : rng.int(buf.length + 1);
    buf = buf.slice(0, at);
    log.push(`truncate at ${at}`);
  }
  // 5. gzip
  if (rng.chance(0.07)) {
    let gz: Uint8Array = new Uint8Array(gzipSync(buf, { level: 1 }));
    log.push('gzip');
    if (rng.chance(0.15)) { gz = concat([gz, new Uint8Array(gzipSync(buf.subarray(24), { level: 1 }))]); log.push('second gzip member'); }
    if (rng.chance(0.6)) {
      const k = rng.int(4);
      if (k === 0) { const at = rng.int(gz.length); gz[at] = gz[at]! ^ (1 << rng.int(8)); log.push(`gzip: flip bit @${at}`); }
      else if (k === 1) { const at = rng.range(2, Math.min(gz.length - 1, 12)); gz[at] = rng.u8(); log.push(`gzip: header byte @${at}`); }
      else if (k === 2) { const at = rng.range(2, gz.length); gz = gz.slice(0, at); log.push(`gzip: truncate at ${at}`); }
      else { const at = Math.max(2, gz.length - 1 - rng.int(8)); gz[at] = gz[at]! ^ 0xff; log.push(`gzip: trailer byte @${at}`); }
    }
    buf = gz;
  }
  return { bytes: buf, label: `${seed.name}: ${log.join('; ') || 'unchanged'}`, log };
}

// ---------------------------------------------------------------------------
// Random frames for the decoder

/** Link types the decoder knows, plus two it does not. */
export const FUZZ_LINK_TYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 105, 127] as const;

const ADDR4 = [0x0a000001, 0x0a000002, 0xc0a80101, 0x08080808, 0xffffffff, 0];

function u16be(v: number): number[] { return [(v >> 8) & 0xff, v & 0xff]; }
function u32be(v: number): number[] { return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]; }

/** A length field: usually right, sometimes extreme or off by a little. */
function lengthField(rng: Rng, right: number): number {
  if (rng.chance(0.7)) return right & 0xffff;
  return interesting16(rng, right);
}

function dnsMessage(rng: Rng): number[] {
  const out = [...u16be(rng.u16()), ...u16be(rng.chance(0.5) ? 0x0100 : rng.u16())];
  for (let i = 0; i < 4; i++) out.push(...u16be(rng.chance(0.6) ? rng.int(3) : rng.pick(EXTREME16)));
  const labels = rng.int(6);
  for (let i = 0; i < labels; i++) {
    const kind = rng.int(10);
    if (kind === 0) { out.push(0xc0, rng.pick([0, 12, out.length, out.length + 2, 0xff])); break; }
    if (kind === 1) { out.push(rng.pick([0x40, 0x80, 0x3f, 0xff])); continue; }
    const len = rng.range(1, 20);
    out.push(len, ...Array.from(rng.bytes(len), (b) => 0x61 + (b % 26)));
  }
  if (rng.chance(0.8)) out.push(0);
  if (rng.chance(0.8)) out.push(...u16be(rng.pick([1, 28, 16, 255, rng.u16()])), ...u16be(1));
  if (rng.chance(0.3)) out.push(...rng.bytes(rng.int(60)));
  return out;
}

function transportSegment(rng: Rng, proto: number, depth: number): number[] {
  const port = (): number => rng.pick([53, 53, 80, 443, 1024, 40000, 0, 65535, rng.u16()]);
  switch (proto) {
    case 6: {
      const opts: number[] = [];
      const optLen = rng.chance(0.5) ? 0 : rng.int(41);
      for (let i = 0; i < optLen; i++) opts.push(rng.chance(0.5) ? rng.pick([0, 1, 2, 3, 4, 5, 8, 4, 10, 18, 34]) : rng.u8());
      while (opts.length % 4) opts.push(1);
      const sport = port();
      const dport = port();
      const payload = sport === 53 || dport === 53 ? (() => { const msg = dnsMessage(rng); return [...u16be(lengthField(rng, msg.length)), ...msg]; })() : Array.from(rng.bytes(rng.length(120)));
      const doff = rng.chance(0.8) ? (20 + opts.length) / 4 : rng.int(16);
      return [...u16be(sport), ...u16be(dport), ...u32be(rng.u32()), ...u32be(rng.u32()), (doff & 0x0f) << 4 | rng.int(2),
        rng.chance(0.5) ? rng.pick([0x02, 0x12, 0x10, 0x11, 0x04, 0x18, 0x01]) : rng.u8(), ...u16be(rng.u16()), 0, 0, 0, 0, ...opts, ...payload];
    }
    case 17: {
      const sport = port();
      const dport = port();
      const payload = sport === 53 || dport === 53 || rng.chance(0.2) ? dnsMessage(rng) : Array.from(rng.bytes(rng.length(120)));
      return [...u16be(sport), ...u16be(dport), ...u16be(lengthField(rng, 8 + payload.length)), 0, 0, ...payload];
    }
    case 1: case 58: {
      const type = proto === 1 ? rng.pick([0, 3, 4, 5, 8, 11, 12, rng.u8()]) : rng.pick([1, 2, 3, 4, 128, 129, 135, rng.u8()]);
      const head = [type, rng.pick([0, 1, 3, 4, rng.u8()]), 0, 0, ...u32be(rng.u32())];
      if (rng.chance(0.6) && depth < 3) return [...head, ...ipPacket(rng, depth + 1, rng.chance(0.5) ? 4 : 6)];
      return [...head, ...rng.bytes(rng.length(60))];
    }
    default: return Array.from(rng.bytes(rng.length(60)));
  }
}

const V4_PROTOS = [6, 6, 17, 17, 1, 4, 41, 47, 50, 58, 0, 255];
const V6_NEXT = [6, 6, 17, 17, 58, 0, 43, 44, 60, 51, 135, 139, 140, 59, 4, 41, 50];

/** An IPv4 or IPv6 packet with plausible, sometimes lying, headers. */
export function ipPacket(rng: Rng, depth: number, version: 4 | 6): number[] {
  if (version === 4) {
    const proto = rng.pick(V4_PROTOS);
    const inner = (proto === 4 || proto === 41) && depth < 6 ? ipPacket(rng, depth + 1, proto === 4 ? 4 : 6) : transportSegment(rng, proto, depth);
    const optWords = rng.chance(0.8) ? 0 : rng.int(11);
    const ihl = rng.chance(0.9) ? 5 + optWords : rng.int(16);
    const total = 20 + optWords * 4 + inner.length;
    const frag = rng.chance(0.8) ? 0x4000 : rng.pick([0x2000, 0x2000 | rng.int(200), rng.int(200), rng.u16()]);
    return [0x40 | ihl, 0, ...u16be(rng.chance(0.9) ? total : lengthField(rng, total)), ...u16be(rng.int(4)), ...u16be(frag), 64, proto, 0, 0,
      ...u32be(rng.pick(ADDR4)), ...u32be(rng.pick(ADDR4)), ...rng.bytes(optWords * 4), ...inner];
  }
  const exts: number[] = [];
  let next = rng.pick(V6_NEXT);
  const first = next;
  for (let hops = 0; hops < 20 && [0, 43, 60, 51, 135, 139, 140, 44].includes(next); hops++) {
    const following = rng.pick(V6_NEXT);
    if (next === 44) exts.push(following, 0, ...u16be(rng.chance(0.5) ? 0 : rng.u16()), ...u32be(rng.int(4)));
    else if (next === 51) { const n = rng.int(4); exts.push(following, n, ...rng.bytes((n + 2) * 4 - 2)); }
    else { const n = rng.int(3); exts.push(following, n, ...rng.bytes((n + 1) * 8 - 2)); }
    next = following;
  }
  const inner = (next === 4 || next === 41) && depth < 6 ? ipPacket(rng, depth + 1, next === 4 ? 4 : 6) : transportSegment(rng, next, depth);
  const plen = exts.length + inner.length;
  const addr = (): number[] => (rng.chance(0.5) ? [0xfe, 0x80, ...new Array<number>(13).fill(0), rng.int(4)] : Array.from(rng.bytes(16)));
  return [0x60, 0, 0, 0, ...u16be(rng.chance(0.9) ? plen : lengthField(rng, plen)), first, 64, ...addr(), ...addr(), ...exts, ...inner];
}

function etherTypeChain(rng: Rng, ip: number[], version: 4 | 6): number[] {
  const out: number[] = [];
  const tags = rng.chance(0.8) ? 0 : rng.int(10);
  for (let i = 0; i < tags; i++) out.push(...u16be(rng.pick([0x8100, 0x88a8, 0x9100])), ...u16be(rng.u16()));
  const kind = rng.int(10);
  if (kind === 0) { // PPPoE session
    out.push(0x88, 0x64, 0x11, 0, ...u16be(rng.u16()), ...u16be(ip.length + 2), ...u16be(version === 4 ? 0x0021 : rng.pick([0x0057, 0xc021])), ...ip);
  } else if (kind === 1) { // MPLS
    out.push(0x88, 0x47);
    const labels = rng.range(1, 10);
    for (let i = 0; i < labels; i++) out.push(rng.u8(), rng.u8(), (rng.u8() & 0xfe) | (i === labels - 1 && rng.chance(0.8) ? 1 : 0), 64);
    out.push(...ip);
  } else {
    out.push(...u16be(rng.chance(0.9) ? (version === 4 ? 0x0800 : 0x86dd) : rng.pick([0x0806, 0x8100, 0x0800, 0x86dd, rng.u16()])), ...ip);
  }
  // The caller strips the leading EtherType for link layers that put it elsewhere.
  return out;
}

/** One frame of the given link type: random bytes, or a layered packet (sometimes damaged afterwards). */
export function randomFrame(rng: Rng, linkType: number): Uint8Array {
  if (rng.chance(0.2)) return rng.bytes(rng.length(1600));
  const version: 4 | 6 = rng.chance(0.6) ? 4 : 6;
  const ip = ipPacket(rng, 0, version);
  let frame: number[];
  switch (linkType) {
    case 1: frame = [...rng.bytes(12), ...etherTypeChain(rng, ip, version)]; break;
    case 113: frame = [...rng.bytes(14), ...etherTypeChain(rng, ip, version)]; break;
    case 276: { const chain = etherTypeChain(rng, ip, version); frame = [chain[0]!, chain[1]!, ...rng.bytes(18), ...chain.slice(2)]; break; }
    case 0: {
      const fam = rng.pick(version === 4 ? [2] : [10, 24, 28, 30]);
      frame = [...(rng.chance(0.5) ? [fam, 0, 0, 0] : u32be(fam)), ...ip];
      if (rng.chance(0.1)) frame.splice(0, 4, ...rng.bytes(4));
      break;
    }
    case 108: frame = [...u32be(rng.chance(0.9) ? (version === 4 ? 2 : rng.pick([10, 24, 28, 30])) : rng.u32()), ...ip]; break;
    default: frame = ip;
  }
  const out = Uint8Array.from(frame);
  if (rng.chance(0.3)) { const n = rng.range(1, 4); for (let i = 0; i < n; i++) out[rng.int(out.length)] = rng.u8(); }
  if (rng.chance(0.3)) return out.slice(0, rng.int(out.length + 1));
  return out;
}

/**
 * An IPv4 datagram cut into fragments (in random order, sometimes duplicated or
 * overlapping), each as a raw-IP frame: exercises reassembly.
 */
export function fragmentTrain(rng: Rng): Uint8Array[] {
  const whole = ipPacket(rng, 0, 4);
  const ihl = (whole[0]! & 0x0f) * 4;
  if (ihl < 20 || whole.length <= ihl) return [Uint8Array.from(whole)];
  const header = whole.slice(0, ihl);
  const payload = whole.slice(ihl);
  const frames: Uint8Array[] = [];
  let off = 0;
  while (off < payload.length) {
    const size = rng.chance(0.8) ? Math.max(8, rng.int(64) * 8) : rng.range(1, 2000);
    const end = Math.min(payload.length, off + size);
    const more = end < payload.length;
    const start = rng.chance(0.1) ? Math.max(0, off - 8 * rng.range(1, 4)) : off; // overlap
    const h = header.slice();
    const total = ihl + (end - start);
    h[2] = (total >> 8) & 0xff; h[3] = total & 0xff;
    const fo = ((more || rng.chance(0.05) ? 0x2000 : 0) | ((start / 8) & 0x1fff)) >>> 0;
    h[6] = fo >> 8; h[7] = fo & 0xff;
    frames.push(Uint8Array.from([...h, ...payload.slice(start, end)]));
    off = end;
  }
  for (let i = frames.length - 1; i > 0; i--) { const j = rng.int(i + 1); [frames[i], frames[j]] = [frames[j]!, frames[i]!]; }
  if (rng.chance(0.2) && frames.length) frames.push(rng.pick(frames));
  return frames;
}
