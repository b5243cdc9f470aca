/**
 * The TLS ClientHello carried in a QUIC connection's client Initial packets.
 *
 * Initial packets are encrypted, but with keys anyone can derive: the
 * version's public salt and the client's Destination Connection ID (RFC 9001
 * section 5.2; RFC 9369 section 3.3 for version 2). So an observer can read
 * the ClientHello, and its server name, as Wireshark does. This module:
 * recognises long-header Initial packets of version 1 (0x00000001) and
 * version 2 (0x6b3343cf) among the coalesced packets of a UDP datagram
 * (RFC 9000 section 17.2.2), removes header protection (AES-128-ECB mask over
 * a 16-byte sample, RFC 9001 section 5.4), decrypts and authenticates the
 * payload (AES-128-GCM, RFC 9001 section 5.3), walks the frames allowed in an
 * Initial (PADDING, PING, ACK, CRYPTO, CONNECTION_CLOSE) and assembles CRYPTO
 * data by offset until the ClientHello handshake message is whole: it may
 * span several packets and datagrams (post-quantum key shares make it larger
 * than one datagram), in any order.
 *
 * Cost: a datagram that is not a v1/v2 long header is rejected after reading
 * at most 5 bytes, allocating nothing. An Initial costs a key derivation
 * (cached for the last Destination Connection ID), one AES block and one GCM
 * decryption, and a few small buffers: callers pass only a QUIC flow's first
 * client datagrams.
 *
 * Bounded: at most `maxAssemblies` flows assemble at once, each in a fixed
 * 8 KiB buffer (`QuicInitials.maxHello`) of one preallocated pool; a flow
 * that finds the pool full (`assembliesDropped`) or a ClientHello longer than
 * the buffer (`tooLarge`) is counted, never grown into. Nothing on packet
 * bytes throws: every read is bounds-checked, an authentication failure is a
 * counter.
 */
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';

export const QUIC_V1 = 0x00000001;
export const QUIC_V2 = 0x6b3343cf;

/** What differs between the versions for a client Initial. */
interface VersionSpec {
  readonly salt: Buffer;
  readonly keyLabel: string;
  readonly ivLabel: string;
  readonly hpLabel: string;
  /** Long-header type bits (first byte, bits 0x30 >> 4) of an Initial and of a Retry (which has no Length field). */
  readonly initialType: number;
  readonly retryType: number;
}

const V1: VersionSpec = {
  salt: Buffer.from('38762cf7f55934b34d179ae6a4c80cadccbb7f0a', 'hex'), // RFC 9001 section 5.2
  keyLabel: 'quic key', ivLabel: 'quic iv', hpLabel: 'quic hp',
  initialType: 0, retryType: 3,
};
const V2: VersionSpec = {
  salt: Buffer.from('0dede3def700a6db819381be6e269dcbf9bd2ed9', 'hex'), // RFC 9369 section 3.3.1
  keyLabel: 'quicv2 key', ivLabel: 'quicv2 iv', hpLabel: 'quicv2 hp',
  initialType: 1, retryType: 0, // RFC 9369 section 3.2
};

function versionSpec(version: number): VersionSpec | null {
  return version === QUIC_V1 ? V1 : version === QUIC_V2 ? V2 : null;
}

/** HKDF-Extract (RFC 5869) with SHA-256. */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Buffer {
  return createHmac('sha256', salt).update(ikm).digest();
}

/**
 * HKDF-Expand-Label (RFC 8446 section 7.1) with SHA-256 and an empty
 * context: HKDF-Expand(secret, HkdfLabel{length, "tls13 " + label, ""}).
 * node:crypto's hkdfSync always extracts first, so the expand is written out.
 */
export function hkdfExpandLabel(secret: Uint8Array, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.alloc(4 + full.length);
  info.writeUInt16BE(length, 0);
  info[2] = full.length;
  full.copy(info, 3);
  info[3 + full.length] = 0; // empty context
  const out = Buffer.alloc(length);
  let block = Buffer.alloc(0);
  for (let i = 1, done = 0; done < length; i++) {
    block = createHmac('sha256', secret).update(block).update(info).update(Uint8Array.of(i)).digest();
    done += block.copy(out, done);
  }
  return out;
}

/** A client's Initial secrets and packet protection keys (RFC 9001 section 5.2, appendix A.1). */
export interface InitialKeys {
  initialSecret: Buffer;
  clientSecret: Buffer;
  key: Buffer;
  iv: Buffer;
  hp: Buffer;
}

/** The client Initial keys for `dcid` in QUIC `version` (1 or 2); null for any other version. */
export function clientInitialKeys(version: number, dcid: Uint8Array): InitialKeys | null {
  const spec = versionSpec(version);
  if (!spec) return null;
  const initialSecret = hkdfExtract(spec.salt, dcid);
  const clientSecret = hkdfExpandLabel(initialSecret, 'client in', 32);
  return {
    initialSecret,
    clientSecret,
    key: hkdfExpandLabel(clientSecret, spec.keyLabel, 16),
    iv: hkdfExpandLabel(clientSecret, spec.ivLabel, 12),
    hp: hkdfExpandLabel(clientSecret, spec.hpLabel, 16),
  };
}

/** What `QuicInitials` saw and what it set aside, all counts. */
export interface QuicInitialCounters {
  /** Version 1 or 2 Initial packets seen in client datagrams. */
  initials: number;
  /** Initials that decrypted and authenticated. */
  decrypted: number;
  /** Initials whose AEAD tag did not verify (not sent with the client keys of their DCID, or damaged). */
  authFailed: number;
  /** Packets cut short: a Length past the datagram's end, or too few bytes for the header protection sample. */
  truncated: number;
  /** Long headers with a field out of range (a connection ID over 20 bytes, a bad varint). */
  malformed: number;
  /** Datagrams starting with a long header of another version (version negotiation, drafts, unknown). */
  otherVersion: number;
  /** Datagrams starting with a short-header (1-RTT) packet. */
  shortHeader: number;
  /** Decrypted Initials whose frame walk stopped at a frame type not allowed in an Initial. */
  framesUnknown: number;
  /** Decrypted Initials whose frame walk ran out of bytes inside a frame. */
  framesMalformed: number;
  /** Whole ClientHellos returned. */
  clientHellos: number;
  /** Flows whose CRYPTO data did not start with a ClientHello (handshake type 1). */
  notClientHello: number;
  /** ClientHellos longer than `QuicInitials.maxHello` bytes (given up). */
  tooLarge: number;
  /** Flows that could not start assembling: every assembly slot held a flow still assembling. */
  assembliesDropped: number;
}

const FREE = 0;
const ASSEMBLING = 1;
/** Finished (ClientHello returned or given up): ignored until `flowEnded`, evictable when the pool is full. */
const DONE = 2;

/** A QUIC varint is 1, 2, 4 or 8 bytes: the first byte's top two bits say which (RFC 9000 section 16). */
const TWO_32 = 4294967296;

export class QuicInitials {
  /** Bytes of CRYPTO data assembled per flow: the largest ClientHello accepted (with its 4-byte header). */
  static readonly maxHello = 8192;
  /** Bytes per assembly slot: the buffer and its one-bit-per-byte "received" map. */
  static readonly bytesPerAssembly = QuicInitials.maxHello + QuicInitials.maxHello / 8;

  readonly counters: QuicInitialCounters = {
    initials: 0, decrypted: 0, authFailed: 0, truncated: 0, malformed: 0, otherVersion: 0, shortHeader: 0,
    framesUnknown: 0, framesMalformed: 0, clientHellos: 0, notClientHello: 0, tooLarge: 0, assembliesDropped: 0,
  };

  /** Flow slot of each assembly entry (-1: none). */
  private readonly owner: Int32Array;
  private readonly state: Uint8Array;
  /** Bytes received without a gap from CRYPTO offset 0. */
  private readonly contiguous: Int32Array;
  /** Largest packet number decrypted (-1: none), for decoding the next truncated one. */
  private readonly largestPn: Float64Array;
  private readonly buffers: Uint8Array;
  private readonly received: Uint8Array;
  /** Where eviction of finished entries resumes, so they are reused in turn. */
  private evictFrom = 0;
  /** Value of the last `varint` read. */
  private value = 0;
  /** The last DCID's keys: the Initials of one connection share them. */
  private cacheVersion = -1;
  private readonly cacheDcid = new Uint8Array(20);
  private cacheDcidLength = -1;
  private cacheKeys: InitialKeys | null = null;
  /** Nonce scratch (the cipher copies it). */
  private readonly nonce = Buffer.alloc(12);

  constructor(readonly maxAssemblies: number) {
    if (!Number.isInteger(maxAssemblies) || maxAssemblies < 1) throw new RangeError(`QuicInitials maxAssemblies ${maxAssemblies}: expected a positive integer`);
    this.owner = new Int32Array(maxAssemblies).fill(-1);
    this.state = new Uint8Array(maxAssemblies);
    this.contiguous = new Int32Array(maxAssemblies);
    this.largestPn = new Float64Array(maxAssemblies).fill(-1);
    this.buffers = new Uint8Array(maxAssemblies * QuicInitials.maxHello);
    this.received = new Uint8Array(maxAssemblies * (QuicInitials.maxHello >>> 3));
  }

  /**
   * A client-to-server UDP payload of flow `slot` (`len` bytes at `off` of
   * `data`, not modified). Returns the whole ClientHello handshake message
   * (type 1, 3-byte length, body; a copy) the first time this flow's CRYPTO
   * data completes it, else null.
   */
  clientDatagram(slot: number, data: Uint8Array, off: number, len: number): Uint8Array | null {
    const end = Math.min(off + len, data.length);
    if (off < 0 || end - off < 5) return null;
    // The usual packets (short headers, other versions) are rejected before anything else.
    if ((data[off]! & 0x80) === 0) { this.counters.shortHeader++; return null; }
    if (!versionSpec(((data[off + 1]! << 24) | (data[off + 2]! << 16) | (data[off + 3]! << 8) | data[off + 4]!) >>> 0)) { this.counters.otherVersion++; return null; }
    const entry = this.find(slot);
    if (entry >= 0 && this.state[entry] === DONE) return null;
    let pos = off;
    let hello: Uint8Array | null = null;
    while (pos < end && hello === null) {
      const b0 = data[pos]!;
      if ((b0 & 0x80) === 0) break; // a short header, or the zero padding some stacks put after the last coalesced packet
      if (end - pos < 7) { this.counters.truncated++; break; }
      const version = ((data[pos + 1]! << 24) | (data[pos + 2]! << 16) | (data[pos + 3]! << 8) | data[pos + 4]!) >>> 0;
      const spec = versionSpec(version);
      if (!spec) break; // a coalesced packet of another version (the first packet's was checked above)
      const dcidLength = data[pos + 5]!;
      if (dcidLength > 20) { this.counters.malformed++; break; }
      let p = pos + 6 + dcidLength;
      if (p >= end) { this.counters.truncated++; break; }
      const scidLength = data[p]!;
      if (scidLength > 20) { this.counters.malformed++; break; }
      p += 1 + scidLength;
      const type = (b0 >>> 4) & 3;
      if (type === spec.retryType) break; // no Length field: nothing after it can be found (and clients do not send it)
      if (type === spec.initialType) {
        p = this.varint(data, p, end);
        if (p < 0) { this.counters.truncated++; break; }
        p += this.value; // token
      }
      p = this.varint(data, p, end);
      if (p < 0) { this.counters.truncated++; break; }
      const packetEnd = p + this.value;
      if (packetEnd > end) { this.counters.truncated++; break; }
      if (type === spec.initialType) {
        this.counters.initials++;
        hello = this.initial(slot, spec === V1 ? QUIC_V1 : QUIC_V2, data, pos, pos + 6, dcidLength, p, packetEnd);
      }
      pos = packetEnd; // 0-RTT and Handshake packets are skipped by their Length
    }
    return hello;
  }

  /**
   * Forgets the flow in `slot`. Call it whenever the slot is released or
   * taken by a new flow (an analyzer's onFlowStart): a finished flow's entry
   * otherwise keeps ignoring the slot's datagrams until the pool reuses it.
   */
  flowEnded(slot: number): void {
    const entry = this.find(slot);
    if (entry >= 0) this.release(entry);
  }

  /** Flows assembling now (not finished). */
  get assembling(): number {
    let n = 0;
    for (let i = 0; i < this.maxAssemblies; i++) if (this.state[i] === ASSEMBLING) n++;
    return n;
  }

  /** One Initial packet from `start` to `packetEnd`, its packet number at `pnOffset`. */
  private initial(slot: number, version: number, data: Uint8Array, start: number, dcidOffset: number, dcidLength: number, pnOffset: number, packetEnd: number): Uint8Array | null {
    // The sample starts 4 bytes after the packet number's first byte whatever its length (RFC 9001 section 5.4.2).
    if (packetEnd - pnOffset < 4 + 16) { this.counters.truncated++; return null; }
    const keys = this.keysFor(version, data, dcidOffset, dcidLength);
    const ecb = createCipheriv('aes-128-ecb', keys.hp, null);
    ecb.setAutoPadding(false);
    const mask = ecb.update(data.subarray(pnOffset + 4, pnOffset + 20));
    const header = Buffer.from(data.subarray(start, pnOffset + 4));
    header[0] = header[0]! ^ (mask[0]! & 0x0f);
    const pnLength = (header[0]! & 3) + 1;
    const at = pnOffset - start;
    let truncatedPn = 0;
    for (let i = 0; i < pnLength; i++) {
      header[at + i] = header[at + i]! ^ mask[1 + i]!;
      truncatedPn = truncatedPn * 256 + header[at + i]!;
    }
    const entry = this.find(slot);
    const pn = decodePacketNumber(entry >= 0 ? this.largestPn[entry]! : -1, truncatedPn, pnLength * 8);
    const nonce = this.nonce;
    keys.iv.copy(nonce);
    // The packet number, big-endian, XORed into the IV's last 8 bytes (pn < 2^62 fits a double's 53 bits here: at most 2^32 beyond the largest seen).
    let rest = pn;
    for (let i = 11; i >= 4 && rest > 0; i--) {
      nonce[i] = nonce[i]! ^ (rest % 256);
      rest = Math.floor(rest / 256);
    }
    const payloadStart = pnOffset + pnLength;
    let plain: Buffer;
    try {
      const gcm = createDecipheriv('aes-128-gcm', keys.key, nonce);
      gcm.setAAD(header.subarray(0, at + pnLength));
      gcm.setAuthTag(data.subarray(packetEnd - 16, packetEnd));
      const body = gcm.update(data.subarray(payloadStart, packetEnd - 16));
      gcm.final(); // throws when the tag does not verify
      plain = body;
    } catch {
      this.counters.authFailed++;
      return null;
    }
    this.counters.decrypted++;
    return this.frames(slot, entry, pn, plain);
  }

  /** Walks a decrypted Initial's frames, storing CRYPTO data; returns the ClientHello once whole. */
  private frames(slot: number, entry: number, pn: number, plain: Buffer): Uint8Array | null {
    const end = plain.length;
    let p = 0;
    while (p < end) {
      p = this.varint(plain, p, end);
      if (p < 0) { this.counters.framesMalformed++; break; }
      const type = this.value;
      if (type === 0x00 || type === 0x01) continue; // PADDING, PING
      if (type === 0x02 || type === 0x03) { // ACK: largest, delay, range count, first range, ranges, ECN counts
        p = this.varints(plain, p, end, 3);
        const ranges = this.value;
        p = this.varint(plain, p, end);
        for (let i = 0; i < ranges && p >= 0; i++) p = this.varints(plain, p, end, 2);
        if (type === 0x03) p = this.varints(plain, p, end, 3);
        if (p < 0) { this.counters.framesMalformed++; break; }
        continue;
      }
      if (type === 0x06) { // CRYPTO: offset, length, data
        p = this.varint(plain, p, end);
        const offset = this.value;
        p = this.varint(plain, p, end);
        const length = this.value;
        if (p < 0 || length > end - p) { this.counters.framesMalformed++; break; }
        if (entry < 0) {
          entry = this.allocate(slot);
          if (entry < 0) return null;
        }
        if (this.state[entry] === ASSEMBLING) this.store(entry, offset, plain, p, length);
        else break; // given up in this packet
        p += length;
        continue;
      }
      if (type === 0x1c || type === 0x1d) { // CONNECTION_CLOSE: error code, [frame type], reason length, reason
        p = this.varints(plain, p, end, type === 0x1c ? 3 : 2);
        if (p < 0 || this.value > end - p) { this.counters.framesMalformed++; break; }
        p += this.value;
        continue;
      }
      this.counters.framesUnknown++;
      break;
    }
    if (entry < 0) return null;
    if (pn > this.largestPn[entry]!) this.largestPn[entry] = pn;
    return this.state[entry] === ASSEMBLING ? this.complete(entry) : null;
  }

  /**
   * Copies CRYPTO bytes at `offset` into the entry's buffer. Bytes past
   * `maxHello` mean a ClientHello too large to keep (the client sends nothing
   * else in Initials before the server answers): the flow is given up.
   */
  private store(entry: number, offset: number, src: Uint8Array, from: number, length: number): void {
    const max = QuicInitials.maxHello;
    if (offset + length > max) {
      this.counters.tooLarge++;
      this.state[entry] = DONE;
      return;
    }
    const n = length;
    this.buffers.set(src.subarray(from, from + n), entry * max + offset);
    const bits = entry * (max >>> 3);
    for (let i = offset; i < offset + n; i++) this.received[bits + (i >>> 3)] = this.received[bits + (i >>> 3)]! | (1 << (i & 7));
    let c = this.contiguous[entry]!;
    while (c < max && (this.received[bits + (c >>> 3)]! & (1 << (c & 7))) !== 0) c++;
    this.contiguous[entry] = c;
  }

  /** The ClientHello when its bytes are all in, null while some are missing; finishes the entry when it can never be. */
  private complete(entry: number): Uint8Array | null {
    const have = this.contiguous[entry]!;
    if (have < 4) return null;
    const base = entry * QuicInitials.maxHello;
    const b = this.buffers;
    if (b[base] !== 1) {
      this.counters.notClientHello++;
      this.state[entry] = DONE;
      return null;
    }
    const total = 4 + ((b[base + 1]! << 16) | (b[base + 2]! << 8) | b[base + 3]!);
    if (total > QuicInitials.maxHello) {
      this.counters.tooLarge++;
      this.state[entry] = DONE;
      return null;
    }
    if (have < total) return null;
    this.state[entry] = DONE;
    this.counters.clientHellos++;
    return b.slice(base, base + total);
  }

  private find(slot: number): number {
    const owner = this.owner;
    for (let i = 0; i < owner.length; i++) if (owner[i] === slot) return i;
    return -1;
  }

  /** A free entry for `slot`, else a finished one (in turn), else -1 (counted). */
  private allocate(slot: number): number {
    let entry = this.state.indexOf(FREE);
    if (entry < 0) {
      const n = this.maxAssemblies;
      for (let k = 0; k < n; k++) {
        const i = (this.evictFrom + k) % n;
        if (this.state[i] === DONE) { entry = i; this.evictFrom = (i + 1) % n; break; }
      }
      if (entry < 0) { this.counters.assembliesDropped++; return -1; }
      this.release(entry);
    }
    this.owner[entry] = slot;
    this.state[entry] = ASSEMBLING;
    return entry;
  }

  private release(entry: number): void {
    this.owner[entry] = -1;
    this.state[entry] = FREE;
    this.contiguous[entry] = 0;
    this.largestPn[entry] = -1;
    const bytes = QuicInitials.maxHello >>> 3;
    this.received.fill(0, entry * bytes, (entry + 1) * bytes);
  }

  private keysFor(version: number, data: Uint8Array, dcidOffset: number, dcidLength: number): InitialKeys {
    let same = this.cacheKeys !== null && this.cacheVersion === version && this.cacheDcidLength === dcidLength;
    for (let i = 0; same && i < dcidLength; i++) same = this.cacheDcid[i] === data[dcidOffset + i];
    if (same && this.cacheKeys) return this.cacheKeys;
    const dcid = data.subarray(dcidOffset, dcidOffset + dcidLength);
    const keys = clientInitialKeys(version, dcid)!; // version is 1 or 2 here
    this.cacheDcid.set(dcid);
    this.cacheDcidLength = dcidLength;
    this.cacheVersion = version;
    this.cacheKeys = keys;
    return keys;
  }

  /** Reads a varint at `p` into `value`; returns the position after it, or -1 past `end` (or when `p` is already -1). */
  private varint(data: Uint8Array, p: number, end: number): number {
    if (p < 0 || p >= end) return -1;
    const b0 = data[p]!;
    const n = 1 << (b0 >>> 6);
    if (end - p < n) return -1;
    let v = b0 & 0x3f;
    if (n === 8) {
      // Above 2^53 precision is lost; such values exceed every bound they are checked against anyway.
      const hi = ((v << 24) | (data[p + 1]! << 16) | (data[p + 2]! << 8) | data[p + 3]!) >>> 0;
      const lo = ((data[p + 4]! << 24) | (data[p + 5]! << 16) | (data[p + 6]! << 8) | data[p + 7]!) >>> 0;
      v = hi * TWO_32 + lo;
    } else {
      for (let i = 1; i < n; i++) v = v * 256 + data[p + i]!;
    }
    this.value = v;
    return p + n;
  }

  /** `count` varints in a row; `value` is the last one's. */
  private varints(data: Uint8Array, p: number, end: number, count: number): number {
    for (let i = 0; i < count; i++) p = this.varint(data, p, end);
    return p;
  }
}

/**
 * The full packet number from its `bits`-bit truncation, the one closest to
 * the largest seen + 1 (RFC 9000 appendix A.3); `largest` -1 when none.
 */
export function decodePacketNumber(largest: number, truncated: number, bits: number): number {
  const expected = largest + 1;
  const win = 2 ** bits;
  const half = win / 2;
  const candidate = expected - (expected % win) + truncated;
  if (candidate <= expected - half && candidate < 2 ** 62 - win) return candidate + win;
  if (candidate > expected + half && candidate >= win) return candidate - win;
  return candidate;
}
