/**
 * Streaming reader for classic pcap and pcapng, plain or gzip, from a path or
 * stdin. Records are parsed in place in the chunks the byte source lends;
 * only a record that straddles two chunks is copied, into a carry buffer
 * (64 KiB, grown only for a single larger legal record), so memory stays flat
 * whatever the file size. `next()` is synchronous and allocation-free; when it
 * needs bytes it returns NEED_DATA and the caller awaits `fill()`.
 *
 * Error policy (matches Wireshark's wiretap where it has one):
 *  - unknown magic, impossible lengths, corrupt blocks: InputError with the byte offset;
 *  - input that ends inside a record or block: `truncated` is set and reading stops cleanly.
 */
import { InputError } from '../../common/errors.js';
import { openByteSource, type ByteSource, type DecompressionLimits } from './byte-source.js';
import { FrameRecord } from './frame-record.js';

export const RECORD = 1;
export const NEED_DATA = 0;
export const END = -1;
export type NextStatus = typeof RECORD | typeof NEED_DATA | typeof END;

export type CaptureFormat = 'pcap' | 'pcapng';

/** Largest captured length of a classic pcap record (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD). */
export const MAX_PCAP_RECORD = 262144;
const INITIAL_CARRY = 64 * 1024;
const NO_BYTES = new Uint8Array(0);

const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_IDB = 0x00000001;
const PCAPNG_PB = 0x00000002; // obsolete Packet Block
const PCAPNG_SPB = 0x00000003;
const PCAPNG_EPB = 0x00000006;
const PCAPNG_BOM = 0x1a2b3c4d;

/**
 * Interface Description Blocks accepted per section. Real captures have a
 * handful; without a cap a file made of IDBs would hold memory in proportion
 * to its size (about 5 bytes of RSS per byte of input).
 */
const MAX_INTERFACES = 65536;

/** Parser return value: consumed a block that carries no packet; call again. */
const SKIPPED = 2;

interface PcapngInterface {
  linkType: number;
  /** if_snaplen of the IDB (0 = no limit): a Simple Packet Block's captured length is capped by it. */
  snapLen: number;
  /** Timestamp units per second (if_tsresol). */
  unitsPerSec: number;
  /** 1e9 / unitsPerSec when that is an integer, else 0 (use the float path). */
  nsPerUnit: number;
  /** Seconds added to every timestamp (if_tsoffset). */
  offsetSec: number;
}

export interface ReaderOptions extends DecompressionLimits {
  maxBlockBytes: number;
  /** Largest single read from the source (tests use tiny reads to prove chunking changes nothing). */
  maxReadBytes?: number;
}

/** What a report says of reading the input (a reader's figures once it has read everything). */
export type ReaderFigures = Pick<CaptureReader, 'format' | 'compressed' | 'linkTypes' | 'packets' | 'truncated' | 'truncatedAt' | 'capLenOverWireLen'>;

export class CaptureReader {
  readonly record = new FrameRecord();
  /** Number of records returned so far. */
  packets = 0;
  /** True when the input ended inside a record or block. */
  truncated = false;
  /** Byte offset where the incomplete record or block starts. */
  truncatedAt = -1;
  /** Link types seen, in order of first appearance. */
  readonly linkTypes: number[] = [];
  /** Records whose captured length exceeds their wire length (kept, like Wireshark). */
  capLenOverWireLen = 0;
  /** pcapng sections (SHBs) read. */
  sections = 0;

  format: CaptureFormat = 'pcap';
  /** `format === 'pcapng'`, tested per record without a string comparison. */
  private pcapng = false;
  /** What is parsed: the lent chunk itself, or `carry` while a record straddles two chunks. */
  private buf: Uint8Array = NO_BYTES;
  private view = new DataView(this.buf.buffer);
  private start = 0; // parse position in buf
  private end = 0; // valid bytes in buf
  private base = 0; // file offset of buf[0]
  /** The chunk last lent by the source, and how many of its bytes are in `buf` already. */
  private chunk: Uint8Array = NO_BYTES;
  private chunkTaken = 0;
  /** Holds the bytes of a record that straddles two chunks. */
  private carry = new Uint8Array(INITIAL_CARRY);
  /** While parsing `carry`: the index in it where the chunk's byte 0 is (or would be). */
  private chunkAt = 0;
  private need = 0; // bytes wanted from `start` before parsing can continue
  private eof = false;
  private headerDone = false;
  private little = true;
  // classic pcap
  private nsResolution = false;
  private recordHeaderLen = 16;
  private pcapLinkType = 0;
  // pcapng
  private interfaces: PcapngInterface[] = [];
  private lastTsSec = 0;
  private lastTsNsec = 0;

  private constructor(
    private readonly source: ByteSource,
    readonly compressed: boolean,
    private readonly options: ReaderOptions,
  ) {}

  static async open(path: string, options: ReaderOptions): Promise<CaptureReader> {
    const { source, compressed } = await openByteSource(path, options);
    const reader = new CaptureReader(source, compressed, options);
    try {
      await reader.readFileHeader();
    } catch (err) {
      await source.close();
      throw err;
    }
    return reader;
  }

  /** Fraction of the input consumed, when the size is known (for progress). */
  get progress(): number | undefined {
    const size = this.source.size;
    return size ? Math.min(1, this.source.consumed / size) : undefined;
  }

  /** Bytes of the decompressed capture consumed by parsing. */
  get position(): number { return this.base + this.start; }

  async close(): Promise<void> { await this.source.close(); }

  /** The figures a report gives, as a plain object (to post to another thread). */
  figures(): ReaderFigures {
    const { format, compressed, packets, truncated, truncatedAt, capLenOverWireLen } = this;
    return { format, compressed, linkTypes: [...this.linkTypes], packets, truncated, truncatedAt, capLenOverWireLen };
  }

  /** Reads more input so that `need` bytes from the parse position are present (or end of input). */
  async fill(): Promise<void> {
    for (;;) {
      // Parsing reached the chunk's bytes copied into the carry: parse the chunk itself from there on.
      if (this.buf === this.carry && this.start >= this.chunkAt) {
        this.base += this.chunkAt;
        this.start -= this.chunkAt;
        this.chunkTaken = this.chunk.length;
        this.end = this.chunkTaken;
        this.setBuffer(this.chunk);
      }
      if (this.end - this.start >= this.need || this.eof) return;
      // Too few bytes left: the record straddles chunks. Gather its bytes at the front of the carry.
      const tail = this.end - this.start;
      const inCarry = this.buf === this.carry;
      if (this.need > this.carry.length) {
        const bigger = new Uint8Array(Math.max(this.need, this.carry.length * 2));
        bigger.set(this.buf.subarray(this.start, this.end));
        this.carry = bigger;
      } else if (inCarry) {
        this.carry.copyWithin(0, this.start, this.end);
      } else {
        this.carry.set(this.buf.subarray(this.start, this.end));
      }
      // Coming from the chunk itself, all of it was taken: a new chunk is borrowed below, which sets `chunkAt`.
      if (inCarry) this.chunkAt -= this.start;
      this.base += this.start;
      this.start = 0;
      this.end = tail;
      this.setBuffer(this.carry);
      if (this.chunkTaken === this.chunk.length) {
        // The old chunk's bytes still needed are in the carry now: it may be lent out again.
        this.chunk = await this.source.borrow(this.options.maxReadBytes ?? Infinity);
        this.chunkTaken = 0;
        this.chunkAt = this.end;
        if (this.chunk.length === 0) { this.eof = true; return; }
      }
      const n = Math.min(this.chunk.length - this.chunkTaken, this.need - this.end);
      this.carry.set(this.chunk.subarray(this.chunkTaken, this.chunkTaken + n), this.end);
      this.chunkTaken += n;
      this.end += n;
    }
  }

  private setBuffer(b: Uint8Array): void {
    if (this.buf === b) return;
    this.buf = b;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** Fills `record` with the next packet. Never throws on packet bytes; throws InputError on a corrupt file. */
  next(): NextStatus {
    for (;;) {
      const status = this.pcapng ? this.parsePcapngBlock() : this.parsePcapRecord();
      if (status === RECORD) return RECORD;
      if (status === SKIPPED) continue;
      // NEED_DATA
      if (!this.eof) return NEED_DATA;
      if (!this.headerDone) throw new InputError('short_header', 'input ends inside the pcapng Section Header Block', this.base + this.start);
      if (this.end > this.start) {
        this.truncated = true;
        this.truncatedAt = this.base + this.start;
        this.start = this.end;
      }
      if (this.source.cutShort && !this.truncated) {
        this.truncated = true;
        this.truncatedAt = this.base + this.end;
      }
      return END;
    }
  }

  private async readFileHeader(): Promise<void> {
    this.need = 4;
    await this.fill();
    if (this.end === 0) throw new InputError('empty', 'empty input: no capture file header', 0);
    if (this.end < 4) throw new InputError('short_header', `input is only ${this.end} bytes: no capture file header`, 0);
    const b = this.buf;
    const magicBE = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    if (magicBE === PCAPNG_SHB) {
      this.format = 'pcapng';
      this.pcapng = true;
      this.need = 12;
      await this.fill();
      if (this.end < 12) throw new InputError('short_header', 'input ends inside the pcapng Section Header Block', 0);
      return;
    }
    switch (magicBE) {
      case 0xa1b2c3d4: this.little = false; break;
      case 0xd4c3b2a1: this.little = true; break;
      case 0xa1b23c4d: this.little = false; this.nsResolution = true; break;
      case 0x4d3cb2a1: this.little = true; this.nsResolution = true; break;
      case 0xa1b2cd34: this.little = false; this.recordHeaderLen = 24; break; // Kuznetsov's modified pcap
      case 0x34cdb2a1: this.little = true; this.recordHeaderLen = 24; break;
      default:
        throw new InputError('bad_magic',
          `unknown file format: magic 0x${magicBE.toString(16).padStart(8, '0')} is neither pcap, pcapng nor gzip`, 0);
    }
    this.format = 'pcap';
    this.need = 24;
    await this.fill();
    if (this.end < 24) throw new InputError('short_header', `input ends inside the 24-byte pcap file header (${this.end} bytes)`, 0);
    const major = this.view.getUint16(4, this.little);
    if (major !== 2) throw new InputError('bad_version', `unsupported pcap version ${major}.${this.view.getUint16(6, this.little)}`, 4);
    // The top bits of the link-type field carry FCS information (pcap spec, LinkType and additional information).
    this.pcapLinkType = this.view.getUint32(20, this.little) & 0x03ffffff;
    this.noteLinkType(this.pcapLinkType);
    this.start = 24;
    this.headerDone = true;
  }

  private noteLinkType(linkType: number): void {
    if (!this.linkTypes.includes(linkType)) this.linkTypes.push(linkType);
  }

  private parsePcapRecord(): number {
    const hdr = this.recordHeaderLen;
    const avail = this.end - this.start;
    if (avail < hdr) { this.need = hdr; return NEED_DATA; }
    const v = this.view;
    const p = this.start;
    const little = this.little;
    const capLen = v.getUint32(p + 8, little);
    if (capLen > MAX_PCAP_RECORD) {
      throw new InputError('record_length',
        `record #${this.packets + 1} claims a captured length of ${capLen} bytes, more than the ${MAX_PCAP_RECORD}-byte maximum; the file is corrupt after ${plural(this.packets, 'packet')}`,
        this.base + p);
    }
    if (avail < hdr + capLen) { this.need = hdr + capLen; return NEED_DATA; }
    const r = this.record;
    const sub = v.getUint32(p + 4, little);
    let sec = v.getUint32(p, little);
    let nsec = this.nsResolution ? sub : sub * 1000;
    if (nsec >= 1e9) { // tolerate a sub-second field out of range, as Wireshark does
      sec += Math.floor(nsec / 1e9);
      nsec %= 1e9;
    }
    r.tsSec = sec;
    r.tsNsec = nsec;
    r.capLen = capLen;
    r.wireLen = v.getUint32(p + 12, little);
    if (capLen > r.wireLen) this.capLenOverWireLen++;
    r.data = this.buf;
    r.offset = p + hdr;
    r.linkType = this.pcapLinkType;
    r.interfaceId = 0;
    r.fileOffset = this.base + p;
    r.number = ++this.packets;
    this.start = p + hdr + capLen;
    return RECORD;
  }

  private corrupt(what: string, at: number): InputError {
    return new InputError('corrupt_block', `corrupt pcapng block after ${plural(this.packets, 'packet')}: ${what}`, this.base + at);
  }

  private parsePcapngBlock(): number {
    const avail = this.end - this.start;
    if (avail < 12) { this.need = 12; return NEED_DATA; }
    const p = this.start;
    const v = this.view;
    const type = v.getUint32(p, this.little); // the SHB type reads the same in both byte orders
    if (type === PCAPNG_SHB) {
      const bom = v.getUint32(p + 8, true);
      if (bom === PCAPNG_BOM) this.little = true;
      else if (bom === 0x4d3c2b1a) this.little = false;
      else throw this.corrupt(`Section Header Block has an unknown byte-order magic 0x${bom.toString(16)}`, p);
    }
    const len = v.getUint32(p + 4, this.little);
    if (len < 12 || len % 4 !== 0) throw this.corrupt(`block total length ${len} is ${len < 12 ? 'below the 12-byte minimum' : 'not a multiple of 4'}`, p);
    if (len > this.options.maxBlockBytes) {
      throw this.corrupt(`block total length ${len} exceeds the ${this.options.maxBlockBytes}-byte limit (input.maxBlockBytes)`, p);
    }
    if (avail < len) { this.need = len; return NEED_DATA; }
    const trailing = v.getUint32(p + len - 4, this.little);
    if (trailing !== len) throw this.corrupt(`leading block length ${len} differs from trailing length ${trailing}`, p);
    this.start = p + len;
    const body = p + 8;
    const bodyEnd = p + len - 4;
    switch (type) {
      case PCAPNG_SHB: {
        if (len < 28) throw this.corrupt(`Section Header Block of ${len} bytes is too short`, p);
        const major = v.getUint16(p + 12, this.little);
        if (major !== 1) throw this.corrupt(`unsupported pcapng version ${major}`, p);
        this.interfaces = [];
        this.sections++;
        this.headerDone = true;
        return SKIPPED;
      }
      case PCAPNG_IDB:
        if (len < 20) throw this.corrupt(`Interface Description Block of ${len} bytes is too short`, p);
        if (this.interfaces.length >= MAX_INTERFACES) throw this.corrupt(`more than ${MAX_INTERFACES} Interface Description Blocks in one section`, p);
        this.readInterface(body, bodyEnd);
        return SKIPPED;
      case PCAPNG_EPB: return this.readEnhancedPacket(p, body, bodyEnd);
      case PCAPNG_SPB: return this.readSimplePacket(p, body, bodyEnd);
      case PCAPNG_PB: return this.readObsoletePacket(p, body, bodyEnd);
      default:
        if (!this.headerDone) throw this.corrupt('the first block is not a Section Header Block', p);
        return SKIPPED; // NRB, ISB, DSB, custom and unknown blocks carry no packet
    }
  }

  private readInterface(body: number, bodyEnd: number): void {
    const v = this.view;
    const linkType = v.getUint16(body, this.little);
    const snapLen = v.getUint32(body + 4, this.little);
    const iface: PcapngInterface = { linkType, snapLen, unitsPerSec: 1e6, nsPerUnit: 1000, offsetSec: 0 };
    let o = body + 8;
    while (o + 4 <= bodyEnd) {
      const code = v.getUint16(o, this.little);
      const olen = v.getUint16(o + 2, this.little);
      const val = o + 4;
      if (code === 0 || val + olen > bodyEnd) break; // opt_endofopt, or options running past the block
      if (code === 9 && olen >= 1) { // if_tsresol
        const r = this.buf[val]!;
        const exp = r & 0x7f;
        iface.unitsPerSec = r & 0x80 ? 2 ** exp : 10 ** exp;
        iface.nsPerUnit = !(r & 0x80) && exp <= 9 ? 10 ** (9 - exp) : 0;
      } else if (code === 14 && olen >= 8) { // if_tsoffset, signed 64-bit seconds
        iface.offsetSec = Number(v.getBigInt64(val, this.little));
      }
      o = val + ((olen + 3) & ~3);
    }
    this.interfaces.push(iface);
    this.noteLinkType(linkType);
  }

  private iface(id: number, at: number): PcapngInterface {
    const iface = this.interfaces[id];
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (iface === undefined) throw this.corrupt(`packet refers to interface ${id}, but the section has ${this.interfaces.length}`, at);
    return iface;
  }

  /** Splits a 64-bit timestamp (hi:lo, in the interface's units) into seconds and nanoseconds without losing precision. */
  private setTimestamp(iface: PcapngInterface, hi: number, lo: number): void {
    const d = iface.unitsPerSec;
    // Long division in base 2^16 keeps every intermediate below 2^53.
    const t0 = hi;
    const q0 = Math.floor(t0 / d);
    const t1 = (t0 - q0 * d) * 65536 + (lo >>> 16);
    const q1 = Math.floor(t1 / d);
    const t2 = (t1 - q1 * d) * 65536 + (lo & 0xffff);
    const q2 = Math.floor(t2 / d);
    const rem = t2 - q2 * d;
    const r = this.record;
    r.tsSec = q0 * 4294967296 + q1 * 65536 + q2 + iface.offsetSec;
    r.tsNsec = iface.nsPerUnit ? rem * iface.nsPerUnit : Math.min(999999999, Math.floor((rem / d) * 1e9));
    this.lastTsSec = r.tsSec;
    this.lastTsNsec = r.tsNsec;
  }

  private emit(blockStart: number, dataOff: number, capLen: number, wireLen: number, iface: PcapngInterface, id: number): number {
    const r = this.record;
    r.data = this.buf;
    r.offset = dataOff;
    r.capLen = capLen;
    r.wireLen = wireLen;
    if (capLen > wireLen) this.capLenOverWireLen++;
    r.linkType = iface.linkType;
    r.interfaceId = id;
    r.fileOffset = this.base + blockStart;
    r.number = ++this.packets;
    return RECORD;
  }

  private readEnhancedPacket(p: number, body: number, bodyEnd: number): number {
    if (bodyEnd - body < 20) throw this.corrupt(`Enhanced Packet Block of ${bodyEnd - body + 12} bytes is too short`, p);
    const v = this.view;
    const id = v.getUint32(body, this.little);
    const iface = this.iface(id, p);
    const capLen = v.getUint32(body + 12, this.little);
    if (capLen > bodyEnd - body - 20) throw this.corrupt(`captured length ${capLen} does not fit in its Enhanced Packet Block`, p);
    this.setTimestamp(iface, v.getUint32(body + 4, this.little), v.getUint32(body + 8, this.little));
    return this.emit(p, body + 20, capLen, v.getUint32(body + 16, this.little), iface, id);
  }

  private readSimplePacket(p: number, body: number, bodyEnd: number): number {
    if (bodyEnd - body < 4) throw this.corrupt('Simple Packet Block is too short', p);
    const iface = this.iface(0, p);
    const wireLen = this.view.getUint32(body, this.little);
    // The block has no captured length: it is min(original length, IDB snaplen) (pcapng spec, and
    // Wireshark); the block body alone would count the padding to 4 bytes as packet data.
    const capLen = Math.min(wireLen, iface.snapLen || wireLen, bodyEnd - body - 4);
    // A Simple Packet Block has no timestamp: keep the previous packet's so packet time never jumps to 1970.
    this.record.tsSec = this.lastTsSec;
    this.record.tsNsec = this.lastTsNsec;
    return this.emit(p, body + 4, capLen, wireLen, iface, 0);
  }

  private readObsoletePacket(p: number, body: number, bodyEnd: number): number {
    if (bodyEnd - body < 20) throw this.corrupt('Packet Block is too short', p);
    const v = this.view;
    const id = v.getUint16(body, this.little);
    const iface = this.iface(id, p);
    const capLen = v.getUint32(body + 12, this.little);
    if (capLen > bodyEnd - body - 20) throw this.corrupt(`captured length ${capLen} does not fit in its Packet Block`, p);
    this.setTimestamp(iface, v.getUint32(body + 4, this.little), v.getUint32(body + 8, this.little));
    return this.emit(p, body + 20, capLen, v.getUint32(body + 16, this.little), iface, id);
  }
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
