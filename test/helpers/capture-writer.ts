/**
 * Builders for capture files and frames, for tests. Plain and explicit: every
 * field a test may want to break can be overridden (lengths, header lengths,
 * block lengths). Checksums are left zero; the decoder never checks them.
 */

export type Endian = 'le' | 'be';

// ---------------------------------------------------------------------------
// Byte helpers

/** A growable byte writer with explicit byte order. */
export class ByteWriter {
  private chunks: number[] = [];
  constructor(private readonly little = false) {}
  get length(): number { return this.chunks.length; }
  u8(v: number): this { this.chunks.push(v & 0xff); return this; }
  u16(v: number): this {
    if (this.little) this.chunks.push(v & 0xff, (v >>> 8) & 0xff);
    else this.chunks.push((v >>> 8) & 0xff, v & 0xff);
    return this;
  }
  u32(v: number): this {
    const b = [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
    this.chunks.push(...(this.little ? b.reverse() : b));
    return this;
  }
  /**
   * pcapng timestamp: upper 32 bits first, then lower 32 bits, each in the
   * section's byte order (not a 64-bit integer in that order).
   */
  ts64(v: bigint): this {
    const x = BigInt.asUintN(64, v);
    return this.u32(Number(x >> 32n)).u32(Number(x & 0xffffffffn));
  }
  /** 64-bit integer in the writer's byte order (section length, if_tsoffset). */
  u64(v: bigint): this {
    const x = BigInt.asUintN(64, v);
    const hi = Number(x >> 32n);
    const lo = Number(x & 0xffffffffn);
    if (this.little) return this.u32(lo).u32(hi);
    return this.u32(hi).u32(lo);
  }
  bytes(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.chunks.push(b[i]! & 0xff);
    return this;
  }
  zeros(n: number): this { for (let i = 0; i < n; i++) this.chunks.push(0); return this; }
  /** Zero bytes up to the next multiple of 4. */
  pad4(): this { while (this.chunks.length % 4) this.chunks.push(0); return this; }
  build(): Buffer { return Buffer.from(this.chunks); }
}

export const concat = (...parts: ArrayLike<number>[]): Buffer => Buffer.concat(parts.map((p) => Buffer.from(Array.from(p))));

/** Bytes from a hex dump: whitespace, `0000`-style offsets and ASCII columns are not allowed, just hex pairs. */
export function hex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new Error('hex(): odd length or non-hex characters');
  return Buffer.from(clean, 'hex');
}

/**
 * Bytes from `tshark -x` output: each line is `OFFSET  HEX...  ASCII`. The
 * offset column and the ASCII column are dropped.
 */
export function tsharkHex(dump: string): Buffer {
  const out: number[] = [];
  for (const line of dump.split('\n')) {
    const m = /^\s*([0-9a-f]{4})\s+((?:[0-9a-f]{2} ){1,16})/i.exec(`${line} `);
    if (!m) continue;
    for (const pair of m[2]!.trim().split(/\s+/)) out.push(parseInt(pair, 16));
  }
  return Buffer.from(out);
}

// ---------------------------------------------------------------------------
// Classic pcap

export interface PcapRecordSpec {
  tsSec: number;
  /** Microseconds, or nanoseconds with `nanos`. */
  tsSub: number;
  data: Uint8Array;
  /** Captured length written in the header (defaults to data.length). */
  capLen?: number;
  /** Original length written in the header (defaults to data.length). */
  wireLen?: number;
}

export interface PcapSpec {
  endian?: Endian;
  /** Nanosecond magic (0xa1b23c4d). */
  nanos?: boolean;
  /** Kuznetsov's modified pcap (0xa1b2cd34): 24-byte record headers. */
  modified?: boolean;
  linkType?: number;
  snaplen?: number;
  versionMajor?: number;
}

export function pcapHeader(spec: PcapSpec = {}): Buffer {
  const w = new ByteWriter(spec.endian !== 'be');
  const magic = spec.modified ? 0xa1b2cd34 : spec.nanos ? 0xa1b23c4d : 0xa1b2c3d4;
  w.u32(magic).u16(spec.versionMajor ?? 2).u16(4).u32(0).u32(0).u32(spec.snaplen ?? 262144).u32(spec.linkType ?? 1);
  return w.build();
}

export function pcapRecord(rec: PcapRecordSpec, spec: PcapSpec = {}): Buffer {
  const w = new ByteWriter(spec.endian !== 'be');
  w.u32(rec.tsSec).u32(rec.tsSub).u32(rec.capLen ?? rec.data.length).u32(rec.wireLen ?? rec.data.length);
  if (spec.modified) w.u32(3).u16(0x0800).u8(0).u8(0); // ifindex, protocol, pkt_type, pad
  w.bytes(rec.data);
  return w.build();
}

/** A whole classic pcap file. */
export function pcapFile(spec: PcapSpec, records: readonly PcapRecordSpec[]): Buffer {
  return Buffer.concat([pcapHeader(spec), ...records.map((r) => pcapRecord(r, spec))]);
}

// ---------------------------------------------------------------------------
// pcapng

export const BlockType = {
  SHB: 0x0a0d0d0a,
  IDB: 0x00000001,
  PB: 0x00000002,
  SPB: 0x00000003,
  NRB: 0x00000004,
  ISB: 0x00000005,
  EPB: 0x00000006,
} as const;

export interface InterfaceSpec {
  linkType: number;
  snaplen?: number;
  /** Raw if_tsresol byte: 6 = 10^-6 (the default), 9 = 10^-9, 0x8a = 2^-10. */
  tsresol?: number;
  /** if_tsoffset in seconds. */
  tsoffset?: bigint;
  /** if_name, to have an option the reader must skip. */
  name?: string;
}

export interface PacketSpec {
  /** Timestamp in the interface's units. */
  ts: bigint;
  data: Uint8Array;
  capLen?: number;
  wireLen?: number;
}

/**
 * Builds a pcapng file block by block. `section()` starts a Section Header
 * Block in a byte order that holds for the blocks after it. `offset` is the
 * byte offset the next block will have, for asserting error offsets.
 */
export class PcapngBuilder {
  private readonly parts: Buffer[] = [];
  private little = true;
  private size = 0;

  get offset(): number { return this.size; }

  private writer(): ByteWriter { return new ByteWriter(this.little); }

  /** Appends bytes as they are (a hand-made or deliberately broken block). */
  raw(bytes: Uint8Array): this {
    const b = Buffer.from(bytes);
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  /**
   * A block of any type: header, body padded to 4, trailing length. `leading`
   * and `trailing` override the two length fields to build corrupt blocks.
   */
  block(type: number, body: Uint8Array, lengths: { leading?: number; trailing?: number } = {}): this {
    const padded = (body.length + 3) & ~3;
    const total = 12 + padded;
    const w = this.writer();
    w.u32(type).u32(lengths.leading ?? total).bytes(body).pad4().u32(lengths.trailing ?? total);
    return this.raw(w.build());
  }

  section(endian: Endian = 'le', versionMajor = 1): this {
    this.little = endian === 'le';
    const body = this.writer().u32(0x1a2b3c4d).u16(versionMajor).u16(0).u64(-1n).build();
    return this.block(BlockType.SHB, body);
  }

  interface(spec: InterfaceSpec): this {
    const w = this.writer().u16(spec.linkType).u16(0).u32(spec.snaplen ?? 262144);
    if (spec.name !== undefined) {
      const name = Buffer.from(spec.name, 'utf8');
      w.u16(2).u16(name.length).bytes(name).pad4();
    }
    if (spec.tsresol !== undefined) w.u16(9).u16(1).u8(spec.tsresol).pad4();
    if (spec.tsoffset !== undefined) w.u16(14).u16(8).u64(spec.tsoffset);
    if (spec.name !== undefined || spec.tsresol !== undefined || spec.tsoffset !== undefined) w.u16(0).u16(0); // opt_endofopt
    return this.block(BlockType.IDB, w.build());
  }

  /** Enhanced Packet Block. */
  epb(interfaceId: number, p: PacketSpec): this {
    const w = this.writer().u32(interfaceId).ts64(p.ts)
      .u32(p.capLen ?? p.data.length).u32(p.wireLen ?? p.data.length).bytes(p.data).pad4();
    return this.block(BlockType.EPB, w.build());
  }

  /** Simple Packet Block: original length, then the data; no interface id, no timestamp. */
  spb(data: Uint8Array, wireLen = data.length): this {
    return this.block(BlockType.SPB, this.writer().u32(wireLen).bytes(data).pad4().build());
  }

  /** Obsolete Packet Block (type 2): 16-bit interface id and drops count. */
  pb(interfaceId: number, p: PacketSpec, drops = 0): this {
    const w = this.writer().u16(interfaceId).u16(drops).ts64(p.ts)
      .u32(p.capLen ?? p.data.length).u32(p.wireLen ?? p.data.length).bytes(p.data).pad4();
    return this.block(BlockType.PB, w.build());
  }

  /** Name Resolution Block with IPv4 records, then nrb_record_end. */
  nrb(entries: ReadonlyArray<{ ip: string; name: string }>): this {
    const w = this.writer();
    for (const e of entries) {
      const value = concat(ipv4Addr(e.ip), Buffer.from(`${e.name}\0`, 'latin1'));
      w.u16(1).u16(value.length).bytes(value).pad4();
    }
    w.u16(0).u16(0);
    return this.block(BlockType.NRB, w.build());
  }

  build(): Buffer { return Buffer.concat(this.parts); }
}

// ---------------------------------------------------------------------------
// Addresses

export function ipv4Addr(text: string): Buffer {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`bad IPv4 address ${text}`);
  return Buffer.from(parts);
}

export function ipv6Addr(text: string): Buffer {
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  if (all.length !== 8) throw new Error(`bad IPv6 address ${text}`);
  const w = new ByteWriter();
  for (const g of all) w.u16(g);
  return w.build();
}

export function mac(text: string): Buffer {
  const parts = text.split(':').map((p) => parseInt(p, 16));
  if (parts.length !== 6) throw new Error(`bad MAC ${text}`);
  return Buffer.from(parts);
}

// ---------------------------------------------------------------------------
// Link layers

export const EtherTypes = { IPV4: 0x0800, ARP: 0x0806, VLAN: 0x8100, QINQ: 0x88a8, IPV6: 0x86dd } as const;

export interface VlanTag {
  /** 0x8100 (C-tag) or 0x88a8 (S-tag). */
  tpid: number;
  vid: number;
  pcp?: number;
}

/** Ethernet II; `tags` go between the source MAC and `etherType`, outermost first. */
export function ethernet(dst: string, src: string, etherType: number, payload: Uint8Array, tags: readonly VlanTag[] = []): Buffer {
  const w = new ByteWriter().bytes(mac(dst)).bytes(mac(src));
  for (const t of tags) w.u16(t.tpid).u16(((t.pcp ?? 0) << 13) | (t.vid & 0x0fff));
  return w.u16(etherType).bytes(payload).build();
}

/** Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16 bytes). */
export function sll(protocol: number, payload: Uint8Array, packetType = 0): Buffer {
  return new ByteWriter().u16(packetType).u16(1).u16(6).bytes(mac('00:11:22:33:44:55')).zeros(2).u16(protocol).bytes(payload).build();
}

/** Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20 bytes). */
export function sll2(protocol: number, payload: Uint8Array, ifindex = 2): Buffer {
  return new ByteWriter().u16(protocol).u16(0).u32(ifindex).u16(1).u8(0).u8(6)
    .bytes(mac('00:11:22:33:44:55')).zeros(2).bytes(payload).build();
}

/** BSD loopback header: the address family as a 32-bit value in the given byte order. */
export function nullHeader(family: number, endian: Endian, payload: Uint8Array): Buffer {
  return new ByteWriter(endian === 'le').u32(family).bytes(payload).build();
}

// ---------------------------------------------------------------------------
// IP

export const Proto = { ICMP: 1, TCP: 6, UDP: 17, IPV6: 41, ROUTING: 43, FRAGMENT: 44, ICMPV6: 58, NONE: 59, DSTOPTS: 60, HOPOPT: 0 } as const;

export interface Ipv4Spec {
  src: string;
  dst: string;
  proto: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
  tos?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in bytes (multiple of 8). */
  fragOffset?: number;
  /** Option bytes, padded to 4 with zeros (end of options). */
  options?: Uint8Array;
  /** Overrides: header length in 32-bit words, total length, version. */
  ihl?: number;
  totalLength?: number;
  version?: number;
}

export function ipv4(s: Ipv4Spec): Buffer {
  const opts = s.options ?? new Uint8Array(0);
  const optLen = (opts.length + 3) & ~3;
  const ihl = s.ihl ?? 5 + optLen / 4;
  const total = s.totalLength ?? 20 + optLen + s.payload.length;
  const flags = (s.df ? 0x4000 : 0) | (s.mf ? 0x2000 : 0) | (((s.fragOffset ?? 0) / 8) & 0x1fff);
  const w = new ByteWriter()
    .u8(((s.version ?? 4) << 4) | (ihl & 0x0f)).u8(s.tos ?? 0).u16(total)
    .u16(s.id ?? 0x1234).u16(flags).u8(s.ttl ?? 64).u8(s.proto).u16(0)
    .bytes(ipv4Addr(s.src)).bytes(ipv4Addr(s.dst))
    .bytes(opts).zeros(optLen - opts.length);
  return w.bytes(s.payload).build();
}

export type Ipv6Ext =
  | { kind: 'hop' | 'dst'; /** Extra 8-byte units beyond the first (hdr ext len). */ units?: number }
  | { kind: 'routing'; routingType?: number; segmentsLeft?: number; addresses?: string[] }
  | { kind: 'fragment'; offset: number; more: boolean; id: number };

const extProto = (e: Ipv6Ext): number =>
  e.kind === 'hop' ? Proto.HOPOPT : e.kind === 'dst' ? Proto.DSTOPTS : e.kind === 'routing' ? Proto.ROUTING : Proto.FRAGMENT;

function ipv6Ext(e: Ipv6Ext, next: number): Buffer {
  const w = new ByteWriter();
  switch (e.kind) {
    case 'hop':
    case 'dst': {
      const units = e.units ?? 0;
      // Option space of 6 + 8*units bytes filled with one PadN option.
      const space = 6 + 8 * units;
      w.u8(next).u8(units).u8(1).u8(space - 2).zeros(space - 2);
      break;
    }
    case 'routing': {
      const addrs = e.addresses ?? [];
      w.u8(next).u8(addrs.length * 2).u8(e.routingType ?? 0).u8(e.segmentsLeft ?? addrs.length).u32(0);
      for (const a of addrs) w.bytes(ipv6Addr(a));
      break;
    }
    case 'fragment':
      w.u8(next).u8(0).u16((e.offset & 0xfff8) | (e.more ? 1 : 0)).u32(e.id);
      break;
  }
  return w.build();
}

export interface Ipv6Spec {
  src: string;
  dst: string;
  /** Upper-layer protocol after the extension headers. */
  proto: number;
  payload: Uint8Array;
  ext?: readonly Ipv6Ext[];
  hopLimit?: number;
  /** Overrides the payload length field. */
  payloadLength?: number;
}

export function ipv6(s: Ipv6Spec): Buffer {
  const exts = s.ext ?? [];
  const chain = exts.map((e, i) => ipv6Ext(e, i + 1 < exts.length ? extProto(exts[i + 1]!) : s.proto));
  const body = Buffer.concat([...chain, Buffer.from(s.payload)]);
  const first = exts.length ? extProto(exts[0]!) : s.proto;
  return new ByteWriter()
    .u32(0x60000000).u16(s.payloadLength ?? body.length).u8(first).u8(s.hopLimit ?? 64)
    .bytes(ipv6Addr(s.src)).bytes(ipv6Addr(s.dst)).bytes(body).build();
}

// ---------------------------------------------------------------------------
// Transport

export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export type TcpOption =
  | { kind: 'mss'; value: number }
  | { kind: 'wscale'; shift: number }
  | { kind: 'sackPermitted' }
  | { kind: 'sack'; blocks: ReadonlyArray<readonly [number, number]> }
  | { kind: 'timestamps'; val: number; ecr: number }
  | { kind: 'nop' }
  | { kind: 'eol' }
  | { kind: 'raw'; bytes: Uint8Array };

export function tcpOptions(options: readonly TcpOption[]): Buffer {
  const w = new ByteWriter();
  for (const o of options) {
    switch (o.kind) {
      case 'mss': w.u8(2).u8(4).u16(o.value); break;
      case 'wscale': w.u8(3).u8(3).u8(o.shift); break;
      case 'sackPermitted': w.u8(4).u8(2); break;
      case 'sack': w.u8(5).u8(2 + 8 * o.blocks.length); for (const [l, r] of o.blocks) w.u32(l).u32(r); break;
      case 'timestamps': w.u8(8).u8(10).u32(o.val).u32(o.ecr); break;
      case 'nop': w.u8(1); break;
      case 'eol': w.u8(0); break;
      case 'raw': w.bytes(o.bytes); break;
    }
  }
  return w.pad4().build();
}

export interface TcpSpec {
  srcPort: number;
  dstPort: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  urgent?: number;
  options?: readonly TcpOption[];
  payload?: Uint8Array;
  /** Overrides the data offset field (32-bit words). */
  dataOffset?: number;
}

export function tcp(s: TcpSpec): Buffer {
  const opts = tcpOptions(s.options ?? []);
  const dataOffset = s.dataOffset ?? 5 + opts.length / 4;
  return new ByteWriter()
    .u16(s.srcPort).u16(s.dstPort).u32(s.seq ?? 0).u32(s.ack ?? 0)
    .u8(dataOffset << 4).u8(s.flags ?? TcpFlags.ACK).u16(s.window ?? 65535).u16(0).u16(s.urgent ?? 0)
    .bytes(opts).bytes(s.payload ?? new Uint8Array(0)).build();
}

export interface UdpSpec {
  srcPort: number;
  dstPort: number;
  payload?: Uint8Array;
  /** Overrides the length field. */
  length?: number;
}

export function udp(s: UdpSpec): Buffer {
  const payload = s.payload ?? new Uint8Array(0);
  return new ByteWriter().u16(s.srcPort).u16(s.dstPort).u16(s.length ?? 8 + payload.length).u16(0).bytes(payload).build();
}

/** ICMP or ICMPv6 message: type, code, checksum (0), the 4-byte "rest of header", then the body. */
export function icmpMessage(type: number, code: number, rest: number, body: Uint8Array = new Uint8Array(0)): Buffer {
  return new ByteWriter().u8(type).u8(code).u16(0).u32(rest).bytes(body).build();
}

export function icmpEcho(id: number, seq: number, reply = false, data: Uint8Array = Buffer.from('abcdefgh')): Buffer {
  return icmpMessage(reply ? 0 : 8, 0, ((id & 0xffff) << 16) | (seq & 0xffff), data);
}

/**
 * ICMPv4 error quoting `quoted` (an IP header and at least 8 bytes after it).
 * `mtu` fills the next-hop MTU of fragmentation-needed (type 3 code 4).
 */
export function icmpError(type: number, code: number, quoted: Uint8Array, mtu = 0): Buffer {
  return icmpMessage(type, code, mtu & 0xffff, quoted);
}

/** ICMPv6 error; for Packet Too Big (type 2) `rest` is the MTU. */
export function icmpv6Error(type: number, code: number, quoted: Uint8Array, rest = 0): Buffer {
  return icmpMessage(type, code, rest, quoted);
}

// ---------------------------------------------------------------------------
// DNS

/** A name as length-prefixed labels ending in the root label. */
export function dnsName(name: string): Buffer {
  const w = new ByteWriter();
  for (const label of name.split('.').filter((l) => l.length > 0)) {
    const b = Buffer.from(label, 'latin1');
    w.u8(b.length).bytes(b);
  }
  return w.u8(0).build();
}

export interface DnsSpec {
  id: number;
  response?: boolean;
  /** Extra flag bits (RD 0x0100 is set by default for queries and responses). */
  flags?: number;
  rcode?: number;
  qname: string;
  qtype?: number;
  qclass?: number;
  /** Number of answer records; each is an A record for the question name (pointer to offset 12). */
  answers?: number;
}

export function dns(s: DnsSpec): Buffer {
  const answers = s.answers ?? 0;
  const flags = (s.response ? 0x8000 : 0) | (s.flags ?? 0x0100) | ((s.rcode ?? 0) & 0x0f) | (s.response ? 0x0080 : 0);
  const w = new ByteWriter().u16(s.id).u16(flags).u16(1).u16(answers).u16(0).u16(0)
    .bytes(dnsName(s.qname)).u16(s.qtype ?? 1).u16(s.qclass ?? 1);
  for (let i = 0; i < answers; i++) w.u16(0xc00c).u16(1).u16(1).u32(300).u16(4).bytes([192, 0, 2, 1 + i]);
  return w.build();
}

/** DNS over TCP: the message behind a 2-byte length. */
export function dnsOverTcp(message: Uint8Array): Buffer {
  return new ByteWriter().u16(message.length).bytes(message).build();
}
