/**
 * TLS record and hello parsing (RFC 8446 section 4.1, RFC 5246 section 7.4.1):
 * the ClientHello and ServerHello fields the fingerprints and the tls analyzer
 * read, and the JA3 / JA3S / JA4 fingerprints computed from them.
 *
 * The parsers never throw on bytes: every read is bounds-checked, and a
 * malformed or truncated message gives `false` ("not parsed"). They fill
 * preallocated objects (typed arrays with a fixed capacity, offsets into the
 * caller's bytes for the server name and first ALPN value), so parsing
 * allocates nothing; strings are built only by the fingerprint functions,
 * which the analyzer calls once per distinct hello.
 */
import { createHash } from 'node:crypto';

/** TLS record content types (tls.record.content_type). */
export const ContentType = { CHANGE_CIPHER_SPEC: 20, ALERT: 21, HANDSHAKE: 22, APPLICATION_DATA: 23, HEARTBEAT: 24 } as const;
/** Handshake message types (tls.handshake.type). */
export const HandshakeType = { CLIENT_HELLO: 1, SERVER_HELLO: 2 } as const;
/** Extension types read here (tls.handshake.extension.type). */
export const ExtensionType = {
  SERVER_NAME: 0, SUPPORTED_GROUPS: 10, EC_POINT_FORMATS: 11, SIGNATURE_ALGORITHMS: 13, ALPN: 16, SUPPORTED_VERSIONS: 43,
} as const;

/** Entries kept per list (ciphers, extensions, ...): a 16 KiB hello cannot hold more than 8,192 ciphers; real ones hold under 100. */
export const MAX_LIST = 512;

/** RFC 8701 GREASE values: 0x0a0a, 0x1a1a, ... 0xfafa (both bytes equal, low nibble 0xa). */
export function isGrease(v: number): boolean {
  return (v & 0x0f0f) === 0x0a0a && (v >> 8) === (v & 0xff);
}

/** A reusable list of 16-bit values with a fixed capacity; entries past it are counted in `overflow`. */
export class U16List {
  readonly values = new Uint16Array(MAX_LIST);
  length = 0;
  overflow = 0;
  reset(): void { this.length = 0; this.overflow = 0; }
  push(v: number): void {
    if (this.length < MAX_LIST) this.values[this.length++] = v;
    else this.overflow++;
  }
}

/** The fields of one ClientHello (tls.handshake.* of handshake type 1). */
export class ClientHello {
  /** tls.handshake.version: the legacy version field. */
  version = 0;
  readonly ciphers = new U16List();
  /** Extension types in the order they appear. */
  readonly extensions = new U16List();
  /** supported_groups (tls.handshake.extensions_supported_group). */
  readonly groups = new U16List();
  /** ec_point_formats (single bytes). */
  readonly pointFormats = new U16List();
  readonly signatureAlgorithms = new U16List();
  /** supported_versions (tls.handshake.extensions.supported_version). */
  readonly versions = new U16List();
  /** The first host_name of server_name, as an offset and length in the parsed bytes; -1 when absent. */
  sniOff = -1;
  sniLen = 0;
  /** The first ALPN protocol name (tls.handshake.extensions_alpn_str), offset and length in the parsed bytes; -1 when absent. */
  alpnOff = -1;
  alpnLen = 0;

  reset(): void {
    this.version = 0;
    this.ciphers.reset(); this.extensions.reset(); this.groups.reset();
    this.pointFormats.reset(); this.signatureAlgorithms.reset(); this.versions.reset();
    this.sniOff = -1; this.sniLen = 0; this.alpnOff = -1; this.alpnLen = 0;
  }

  /** Any list had more entries than MAX_LIST: the fingerprints would be wrong. */
  get overflowed(): boolean {
    return this.ciphers.overflow + this.extensions.overflow + this.groups.overflow + this.pointFormats.overflow
      + this.signatureAlgorithms.overflow + this.versions.overflow > 0;
  }

  /** The highest version offered: supported_versions when present (GREASE left out), else the legacy version. */
  highestVersion(): number {
    const v = this.versions;
    let best = -1;
    for (let i = 0; i < v.length; i++) {
      const x = v.values[i]!;
      if (!isGrease(x) && x > best) best = x;
    }
    return best >= 0 ? best : this.version;
  }
}

/** The fields of one ServerHello (handshake type 2). */
export class ServerHello {
  /** tls.handshake.version: the legacy version field. */
  version = 0;
  /** tls.handshake.ciphersuite. */
  cipher = 0;
  readonly extensions = new U16List();
  /** supported_versions' selected version (TLS 1.3), 0 when absent. */
  selectedVersion = 0;

  reset(): void {
    this.version = 0; this.cipher = 0; this.extensions.reset(); this.selectedVersion = 0;
  }

  /** The version the server chose: supported_versions when present, else the legacy version. */
  get chosenVersion(): number { return this.selectedVersion || this.version; }
}

const u16 = (b: Uint8Array, p: number): number => (b[p]! << 8) | b[p + 1]!;

/**
 * Parses a ClientHello body (after the 4-byte handshake header) of `len` bytes
 * at `off` into `out`. False when malformed or truncated. Extensions are
 * optional (a hello may end after compression methods).
 */
export function parseClientHello(b: Uint8Array, off: number, len: number, out: ClientHello): boolean {
  out.reset();
  const end = off + len;
  if (off < 0 || len < 0 || end > b.length) return false;
  let p = off;
  if (p + 2 + 32 + 1 > end) return false;
  out.version = u16(b, p);
  p += 34; // version, random
  p += 1 + b[p]!; // session id
  if (p + 2 > end) return false;
  const cipherLen = u16(b, p);
  p += 2;
  if ((cipherLen & 1) !== 0 || p + cipherLen > end) return false;
  for (let q = p; q < p + cipherLen; q += 2) out.ciphers.push(u16(b, q));
  p += cipherLen;
  if (p + 1 > end) return false;
  p += 1 + b[p]!; // compression methods
  if (p > end) return false;
  if (p === end) return true;
  return parseClientExtensions(b, p, end, out);
}

function parseClientExtensions(b: Uint8Array, p: number, end: number, out: ClientHello): boolean {
  if (p + 2 > end) return false;
  const extEnd = p + 2 + u16(b, p);
  if (extEnd > end) return false;
  p += 2;
  while (p < extEnd) {
    if (p + 4 > extEnd) return false;
    const type = u16(b, p);
    const len = u16(b, p + 2);
    const d = p + 4;
    const dEnd = d + len;
    if (dEnd > extEnd) return false;
    out.extensions.push(type);
    let ok = true;
    switch (type) {
      case ExtensionType.SERVER_NAME: ok = parseServerName(b, d, dEnd, out); break;
      case ExtensionType.SUPPORTED_GROUPS: ok = readU16Vector(b, d, dEnd, 2, out.groups); break;
      case ExtensionType.EC_POINT_FORMATS: ok = readU8Vector(b, d, dEnd, out.pointFormats); break;
      case ExtensionType.SIGNATURE_ALGORITHMS: ok = readU16Vector(b, d, dEnd, 2, out.signatureAlgorithms); break;
      case ExtensionType.ALPN: ok = parseAlpn(b, d, dEnd, out); break;
      case ExtensionType.SUPPORTED_VERSIONS: ok = readU16Vector(b, d, dEnd, 1, out.versions); break;
      default: break;
    }
    if (!ok) return false;
    p = dEnd;
  }
  return true;
}

/** A vector of 16-bit values behind a `lenBytes`-byte length (1 or 2) that must fill [p, end). */
function readU16Vector(b: Uint8Array, p: number, end: number, lenBytes: number, out: U16List): boolean {
  if (p + lenBytes > end) return false;
  const n = lenBytes === 1 ? b[p]! : u16(b, p);
  p += lenBytes;
  if ((n & 1) !== 0 || p + n > end) return false;
  for (let q = p; q < p + n; q += 2) out.push(u16(b, q));
  return true;
}

function readU8Vector(b: Uint8Array, p: number, end: number, out: U16List): boolean {
  if (p + 1 > end) return false;
  const n = b[p]!;
  if (p + 1 + n > end) return false;
  for (let q = p + 1; q < p + 1 + n; q++) out.push(b[q]!);
  return true;
}

/** server_name (RFC 6066 section 3): the first host_name (type 0) entry. */
function parseServerName(b: Uint8Array, p: number, end: number, out: ClientHello): boolean {
  if (p === end) return true; // a server's empty acknowledgement; a client never sends it, but it is not an error
  if (p + 2 > end) return false;
  const listEnd = p + 2 + u16(b, p);
  if (listEnd > end) return false;
  for (let q = p + 2; q < listEnd;) {
    if (q + 3 > listEnd) return false;
    const nameType = b[q]!;
    const n = u16(b, q + 1);
    if (q + 3 + n > listEnd) return false;
    if (nameType === 0 && out.sniOff < 0) { out.sniOff = q + 3; out.sniLen = n; }
    q += 3 + n;
  }
  return true;
}

/** ALPN (RFC 7301 section 3.1): the first protocol name. */
function parseAlpn(b: Uint8Array, p: number, end: number, out: ClientHello): boolean {
  if (p + 2 > end) return false;
  const listEnd = p + 2 + u16(b, p);
  if (listEnd > end) return false;
  for (let q = p + 2; q < listEnd;) {
    const n = b[q]!;
    if (q + 1 + n > listEnd) return false;
    if (out.alpnOff < 0) { out.alpnOff = q + 1; out.alpnLen = n; }
    q += 1 + n;
  }
  return true;
}

/** Parses a ServerHello body (after the 4-byte handshake header). False when malformed or truncated. */
export function parseServerHello(b: Uint8Array, off: number, len: number, out: ServerHello): boolean {
  out.reset();
  const end = off + len;
  if (off < 0 || len < 0 || end > b.length) return false;
  let p = off;
  if (p + 35 > end) return false;
  out.version = u16(b, p);
  p += 34;
  p += 1 + b[p]!; // session id
  if (p + 3 > end) return false;
  out.cipher = u16(b, p);
  p += 3; // cipher, compression method
  if (p === end) return true;
  if (p + 2 > end) return false;
  const extEnd = p + 2 + u16(b, p);
  if (extEnd > end) return false;
  p += 2;
  while (p < extEnd) {
    if (p + 4 > extEnd) return false;
    const type = u16(b, p);
    const n = u16(b, p + 2);
    if (p + 4 + n > extEnd) return false;
    out.extensions.push(type);
    if (type === ExtensionType.SUPPORTED_VERSIONS) {
      if (n !== 2) return false;
      out.selectedVersion = u16(b, p + 4);
    }
    p += 4 + n;
  }
  return true;
}

/** Names of record-layer and negotiated versions, as Wireshark writes them. */
export function versionName(v: number): string {
  switch (v) {
    case 0x0002: return 'SSL 2.0';
    case 0x0300: return 'SSL 3.0';
    case 0x0301: return 'TLS 1.0';
    case 0x0302: return 'TLS 1.1';
    case 0x0303: return 'TLS 1.2';
    case 0x0304: return 'TLS 1.3';
    default: return `0x${v.toString(16).padStart(4, '0')}`;
  }
}

/** SSL 3.0, TLS 1.0 and 1.1: deprecated by RFC 7568 and RFC 8996. */
export const isDeprecatedVersion = (v: number): boolean => v >= 0x0300 && v <= 0x0302;

/** Alert descriptions (RFC 8446 section 6, RFC 5246 section 7.2), tls.alert_message.desc. */
const ALERT_NAMES: Record<number, string> = {
  0: 'close_notify', 10: 'unexpected_message', 20: 'bad_record_mac', 21: 'decryption_failed', 22: 'record_overflow',
  30: 'decompression_failure', 40: 'handshake_failure', 41: 'no_certificate', 42: 'bad_certificate', 43: 'unsupported_certificate',
  44: 'certificate_revoked', 45: 'certificate_expired', 46: 'certificate_unknown', 47: 'illegal_parameter', 48: 'unknown_ca',
  49: 'access_denied', 50: 'decode_error', 51: 'decrypt_error', 60: 'export_restriction', 70: 'protocol_version',
  71: 'insufficient_security', 80: 'internal_error', 86: 'inappropriate_fallback', 90: 'user_canceled', 100: 'no_renegotiation',
  109: 'missing_extension', 110: 'unsupported_extension', 111: 'certificate_unobtainable', 112: 'unrecognized_name',
  113: 'bad_certificate_status_response', 114: 'bad_certificate_hash_value', 115: 'unknown_psk_identity', 116: 'certificate_required',
  120: 'no_application_protocol',
};
export const alertName = (d: number): string => ALERT_NAMES[d] ?? `alert_${d}`;

// ---------------------------------------------------------------------------
// Fingerprints (built once per distinct hello; they allocate)

/** Non-GREASE values of a list, decimal, '-' joined (JA3). */
function ja3List(l: U16List): string {
  const out: number[] = [];
  for (let i = 0; i < l.length; i++) if (!isGrease(l.values[i]!)) out.push(l.values[i]!);
  return out.join('-');
}

/** JA3 string (salesforce/ja3): SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats. */
export function ja3String(ch: ClientHello): string {
  return `${ch.version},${ja3List(ch.ciphers)},${ja3List(ch.extensions)},${ja3List(ch.groups)},${ja3List(ch.pointFormats)}`;
}

/** JA3: MD5 of the JA3 string, hex (tls.handshake.ja3). */
export const ja3 = (ch: ClientHello): string => md5(ja3String(ch));

/** JA3S string: SSLVersion,Cipher,Extensions. */
export function ja3sString(sh: ServerHello): string {
  return `${sh.version},${sh.cipher},${ja3List(sh.extensions)}`;
}

/** JA3S: MD5 of the JA3S string, hex (tls.handshake.ja3s). */
export const ja3s = (sh: ServerHello): string => md5(ja3sString(sh));

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
const sha12 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
const hex4 = (v: number): string => v.toString(16).padStart(4, '0');

/** JA4's two-character version. */
function ja4Version(v: number): string {
  switch (v) {
    case 0x0304: return '13';
    case 0x0303: return '12';
    case 0x0302: return '11';
    case 0x0301: return '10';
    case 0x0300: return 's3';
    case 0x0002: return 's2';
    case 0xfeff: return 'd1';
    case 0xfefd: return 'd2';
    case 0xfefc: return 'd3';
    default: return '00';
  }
}

const isAlnum = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/**
 * JA4's ALPN part: first and last character of the first ALPN value, "00"
 * without one; when either is not alphanumeric, the first and last hex digit
 * of the value (FoxIO JA4 technical details).
 */
function ja4Alpn(b: Uint8Array, ch: ClientHello): string {
  if (ch.alpnOff < 0 || ch.alpnLen === 0) return '00';
  const first = b[ch.alpnOff]!;
  const last = b[ch.alpnOff + ch.alpnLen - 1]!;
  if (isAlnum(first) && isAlnum(last)) return String.fromCharCode(first, last);
  return (first >> 4).toString(16) + (last & 0x0f).toString(16);
}

/**
 * The JA4 TLS client fingerprint (FoxIO JA4, the BSD-licensed part of JA4+;
 * the other JA4+ methods are not implemented): JA4_a
 * `t|q` + version + `d|i` + cipher and extension counts + ALPN, JA4_b the
 * truncated SHA-256 of the sorted cipher list, JA4_c that of the sorted
 * extension list without SNI and ALPN, `_`, the signature algorithms in order.
 * GREASE values are left out everywhere. `b` holds the bytes the hello was parsed from.
 */
export function ja4(b: Uint8Array, ch: ClientHello, transport: 't' | 'q'): string {
  const ciphers: string[] = [];
  for (let i = 0; i < ch.ciphers.length; i++) { const v = ch.ciphers.values[i]!; if (!isGrease(v)) ciphers.push(hex4(v)); }
  const exts: string[] = [];
  let extCount = 0;
  for (let i = 0; i < ch.extensions.length; i++) {
    const v = ch.extensions.values[i]!;
    if (isGrease(v)) continue;
    extCount++;
    if (v !== ExtensionType.SERVER_NAME && v !== ExtensionType.ALPN) exts.push(hex4(v));
  }
  const sigs: string[] = [];
  for (let i = 0; i < ch.signatureAlgorithms.length; i++) { const v = ch.signatureAlgorithms.values[i]!; if (!isGrease(v)) sigs.push(hex4(v)); }
  const count = (n: number): string => String(Math.min(n, 99)).padStart(2, '0');
  const a = transport + ja4Version(ch.highestVersion()) + (ch.sniOff >= 0 ? 'd' : 'i') + count(ciphers.length) + count(extCount) + ja4Alpn(b, ch);
  const bPart = ciphers.length === 0 ? '000000000000' : sha12(ciphers.sort().join(','));
  const extText = exts.sort().join(',') + (sigs.length > 0 ? `_${sigs.join(',')}` : '');
  const cPart = exts.length === 0 ? '000000000000' : sha12(extText);
  return `${a}_${bPart}_${cPart}`;
}

/** FNV-1a and a multiply-xorshift lane: module state, so hashing a hello allocates nothing. */
let h1 = 0;
let h2 = 0;
function mix(v: number): void {
  h1 = Math.imul(h1 ^ v, 16777619);
  h2 = Math.imul(h2 ^ v, 0x5bd1e995) ^ (h2 >>> 13);
}
function mixList(l: U16List): void {
  mix(0x10000 + l.length);
  for (let i = 0; i < l.length; i++) mix(l.values[i]!);
}
/** The two lanes as one 52-bit integer (exact in a double). */
const hashValue = (): number => (h1 >>> 0) * 0x100000 + ((h2 >>> 12) & 0xfffff);

/**
 * A 52-bit hash of everything the client fingerprints read, so the analyzer
 * counts hellos by fingerprint without building strings (it builds a
 * fingerprint's text once, when its hash is new).
 */
export function clientHelloShape(b: Uint8Array, ch: ClientHello, transport: 't' | 'q'): number {
  h1 = 0x811c9dc5 ^ (transport === 'q' ? 1 : 0);
  h2 = 0x01000193;
  mix(ch.version);
  mixList(ch.ciphers); mixList(ch.extensions); mixList(ch.groups);
  mixList(ch.pointFormats); mixList(ch.signatureAlgorithms); mixList(ch.versions);
  mix(ch.sniOff >= 0 ? 1 : 0);
  mix(0x20000 + ch.alpnLen);
  for (let i = 0; i < ch.alpnLen; i++) mix(b[ch.alpnOff + i]!);
  return hashValue();
}

/** The same for a ServerHello (the JA3S inputs). */
export function serverHelloShape(sh: ServerHello): number {
  h1 = 0x811c9dc5;
  h2 = 0x01000193;
  mix(sh.version);
  mix(sh.cipher);
  mixList(sh.extensions);
  return hashValue();
}
