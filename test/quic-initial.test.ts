/**
 * QUIC Initial → ClientHello (agent/analyzers/lib/quic-initial.ts).
 *
 * 1. The published vectors: RFC 9001 appendix A.1 (keys) and A.2 (the
 *    protected client Initial, test/fixtures/quic-initial/*.hex, copied from
 *    the RFC text) and the same for version 2 from RFC 9369 appendix A.
 * 2. A test-side encoder written from the RFCs (its own HKDF, AES-GCM and
 *    header protection, not the module's), checked against the A.2 packets
 *    byte for byte, then used to build ClientHellos the module must recover,
 *    and a capture that tshark 4.0 must read the same server name from
 *    (skipped when tshark is missing): one datagram, a ClientHello split over
 *    two datagrams in either order.
 * 3. Bad input: truncated, corrupted (authentication fails), other versions,
 *    short headers, not a ClientHello, too large, a full pool, and a fuzz
 *    loop of random and mutated datagrams that must never throw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QUIC_V1, QUIC_V2, QuicInitials, clientInitialKeys, decodePacketNumber } from '../agent/analyzers/lib/quic-initial.js';
import { EtherTypes, Proto, ByteWriter, ethernet, hex, ipv4, pcapFile, udp } from './helpers/capture-writer.js';
import { REPO_ROOT } from './helpers/paths.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import { DEFAULT_CONFIG } from '../common/config.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'quic-initial');
const fixture = (name: string): Buffer => hex(readFileSync(join(FIXTURES, name), 'utf8').split('\n').filter((l) => !l.startsWith('#')).join(''));

const DCID = hex('8394c8f03e515708');
/** RFC 9001 A.2 (and RFC 9369 A.2): the CRYPTO frame of the client Initial; the ClientHello follows its 4-byte frame header. */
const A2_CRYPTO_FRAME = hex(`
  060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868
  04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578
  616d706c652e636f6dff01000100000a00080006001d00170018001000070005
  04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba
  baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400
  0d0010000e0403050306030203080408 050806002d00020101001c0002400100
  3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000
  75300901100f088394c8f03e51570806 048000ffff`);
const A2_CLIENT_HELLO = A2_CRYPTO_FRAME.subarray(4);

// ---------------------------------------------------------------------------
// Test-side encoder, from RFC 9000 section 17.2.2 and RFC 9001 section 5

const SALTS: Record<number, string> = { [QUIC_V1]: '38762cf7f55934b34d179ae6a4c80cadccbb7f0a', [QUIC_V2]: '0dede3def700a6db819381be6e269dcbf9bd2ed9' };

function expandLabel(secret: Buffer, label: string, length: number): Buffer {
  const name = Buffer.from(`tls13 ${label}`);
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, name.length]), name, Buffer.from([0])]);
  // One HMAC block is enough for every length used here (<= 32).
  return createHmac('sha256', secret).update(Buffer.concat([info, Buffer.from([1])])).digest().subarray(0, length);
}

function encoderKeys(version: number, dcid: Buffer): { key: Buffer; iv: Buffer; hp: Buffer } {
  const v2 = version === QUIC_V2 ? 'v2' : '';
  const initial = createHmac('sha256', Buffer.from(SALTS[version]!, 'hex')).update(dcid).digest();
  const client = expandLabel(initial, 'client in', 32);
  return { key: expandLabel(client, `quic${v2} key`, 16), iv: expandLabel(client, `quic${v2} iv`, 12), hp: expandLabel(client, `quic${v2} hp`, 16) };
}

interface InitialSpec {
  version?: number;
  dcid?: Buffer;
  scid?: Buffer;
  token?: Buffer;
  pn?: number;
  pnLength?: number;
  /** Plaintext frames; PADDING is appended up to `payloadLength` when given. */
  frames: Buffer;
  payloadLength?: number;
}

/** A protected client Initial packet. */
function protectInitial(s: InitialSpec): Buffer {
  const version = s.version ?? QUIC_V1;
  const dcid = s.dcid ?? DCID;
  const scid = s.scid ?? Buffer.alloc(0);
  const token = s.token ?? Buffer.alloc(0);
  const pn = s.pn ?? 0;
  const pnLength = s.pnLength ?? 4;
  const frames = s.payloadLength !== undefined && s.frames.length < s.payloadLength ? Buffer.concat([s.frames, Buffer.alloc(s.payloadLength - s.frames.length)]) : s.frames;
  const type = version === QUIC_V2 ? 1 : 0;
  const length = pnLength + frames.length + 16;
  const w = new ByteWriter().u8(0xc0 | (type << 4) | (pnLength - 1)).u32(version)
    .u8(dcid.length).bytes(dcid).u8(scid.length).bytes(scid);
  if (token.length < 64) w.u8(token.length); // the shortest varint, as RFC 9001 A.2 has it
  else w.u8(0x40 | (token.length >> 8)).u8(token.length & 0xff);
  w.bytes(token);
  w.u16(0x4000 | length);
  const pnOffset = w.length;
  for (let i = pnLength - 1; i >= 0; i--) w.u8(Math.floor(pn / 256 ** i) & 0xff);
  const header = w.build();
  const { key, iv, hp } = encoderKeys(version, dcid);
  const nonce = Buffer.from(iv);
  for (let i = 0; i < 8; i++) nonce[11 - i]! ^= Math.floor(pn / 256 ** i) & 0xff;
  const gcm = createCipheriv('aes-128-gcm', key, nonce);
  gcm.setAAD(header);
  const sealed = Buffer.concat([gcm.update(frames), gcm.final(), gcm.getAuthTag()]);
  const packet = Buffer.concat([header, sealed]);
  const ecb = createCipheriv('aes-128-ecb', hp, null);
  const mask = ecb.update(packet.subarray(pnOffset + 4, pnOffset + 20));
  packet[0]! ^= mask[0]! & 0x0f;
  for (let i = 0; i < pnLength; i++) packet[pnOffset + i]! ^= mask[1 + i]!;
  return packet;
}

const cryptoFrame = (offset: number, data: Buffer): Buffer => {
  const w = new ByteWriter().u8(0x06);
  w.u32(0x80000000 | offset); // 4-byte varint
  w.u16(0x4000 | data.length);
  return Buffer.concat([w.build(), data]);
};

const u24 = (n: number): Buffer => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const ext = (type: number, body: Buffer): Buffer => Buffer.concat([u16(type), u16(body.length), body]);

/** A TLS 1.3 ClientHello handshake message as a QUIC client sends it; `keyShare` bytes for the first group. */
function clientHello(sni: string, keyShare = 32, group = 0x001d): Buffer {
  const name = Buffer.from(sni);
  const serverName = Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name]);
  const share = Buffer.alloc(keyShare, 0x5a);
  const body = Buffer.concat([
    Buffer.from([3, 3]), Buffer.alloc(32, 0x11), Buffer.from([0]), u16(2), u16(0x1301), Buffer.from([1, 0]),
  ]);
  const extensions = Buffer.concat([
    ext(0, serverName),
    ext(43, Buffer.from([2, 3, 4])),
    ext(10, Buffer.concat([u16(2), u16(group)])),
    ext(13, Buffer.concat([u16(2), u16(0x0403)])),
    ext(16, Buffer.concat([u16(3), Buffer.from([2]), Buffer.from('h3')])),
    ext(51, Buffer.concat([u16(share.length + 4), u16(group), u16(share.length), share])),
    ext(0x39, Buffer.from([0x0f, 0x00])), // quic_transport_parameters: an empty initial_source_connection_id
  ]);
  const hello = Buffer.concat([body, u16(extensions.length), extensions]);
  return Buffer.concat([Buffer.from([1]), u24(hello.length), hello]);
}

/** The ClientHello's server name as the module's caller would read it (enough for these tests). */
function sniOf(hello: Uint8Array): string {
  const b = Buffer.from(hello);
  let p = 4 + 2 + 32;
  p += 1 + b[p]!;
  p += 2 + b.readUInt16BE(p);
  p += 1 + b[p]!;
  const end = p + 2 + b.readUInt16BE(p);
  for (p += 2; p + 4 <= end; p += 4 + b.readUInt16BE(p + 2)) {
    if (b.readUInt16BE(p) === 0) return b.toString('latin1', p + 9, p + 9 + b.readUInt16BE(p + 7));
  }
  return '';
}

/** Client datagrams carrying `hello` in `parts` CRYPTO frames, one Initial per datagram, each padded to 1200 bytes. */
function helloDatagrams(hello: Buffer, parts: number, version = QUIC_V1, dcid = DCID): Buffer[] {
  const size = Math.ceil(hello.length / parts);
  const out: Buffer[] = [];
  for (let i = 0; i < parts; i++) {
    const frame = cryptoFrame(i * size, hello.subarray(i * size, (i + 1) * size));
    const headerGuess = 1 + 4 + 1 + dcid.length + 1 + 2 + 2 + 4 + 16;
    out.push(protectInitial({ version, dcid, pn: i, frames: frame, payloadLength: Math.max(frame.length, 1200 - headerGuess) }));
  }
  return out;
}

// ---------------------------------------------------------------------------
// 1. Published vectors

test('RFC 9001 A.1 and RFC 9369 A.1: client Initial keys from the DCID', () => {
  const v1 = clientInitialKeys(QUIC_V1, DCID)!;
  assert.equal(v1.initialSecret.toString('hex'), '7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44');
  assert.equal(v1.clientSecret.toString('hex'), 'c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea');
  assert.equal(v1.key.toString('hex'), '1f369613dd76d5467730efcbe3b1a22d');
  assert.equal(v1.iv.toString('hex'), 'fa044b2f42a3fd3b46fb255c');
  assert.equal(v1.hp.toString('hex'), '9f50449e04a0e810283a1e9933adedd2');
  const v2 = clientInitialKeys(QUIC_V2, DCID)!;
  assert.equal(v2.initialSecret.toString('hex'), '2062e8b3cd8d52092614b8071d0aa1fb7c2e3ac193f78b280e72d8f5751f6aba');
  assert.equal(v2.clientSecret.toString('hex'), '14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b');
  assert.equal(v2.key.toString('hex'), '8b1a0bc121284290a29e0971b5cd045d');
  assert.equal(v2.iv.toString('hex'), '91f73e2351d8fa91660e909f');
  assert.equal(v2.hp.toString('hex'), '45b95e15235d6f45a6b19cbcb0294ba9');
  assert.equal(clientInitialKeys(0xff00001d, DCID), null, 'a draft version has other salts: not derived');
});

for (const [name, file, version] of [['RFC 9001 A.2 (v1)', 'rfc9001-a2-client-initial.hex', QUIC_V1], ['RFC 9369 A.2 (v2)', 'rfc9369-a2-client-initial.hex', QUIC_V2]] as const) {
  test(`${name}: the protected client Initial decrypts to the ClientHello it shows`, () => {
    const packet = fixture(file);
    assert.equal(packet.length, 1200);
    const copy = Buffer.from(packet);
    const q = new QuicInitials(4);
    const hello = q.clientDatagram(7, packet, 0, packet.length);
    assert.ok(hello, JSON.stringify(q.counters));
    assert.equal(Buffer.from(hello).toString('hex'), A2_CLIENT_HELLO.toString('hex'));
    assert.equal(sniOf(hello), 'example.com');
    assert.deepEqual(packet, copy, 'the datagram is not modified');
    assert.equal(q.counters.initials, 1);
    assert.equal(q.counters.decrypted, 1);
    assert.equal(q.counters.clientHellos, 1);
    assert.equal(q.clientDatagram(7, packet, 0, packet.length), null, 'once per flow');
    q.flowEnded(7);
    assert.ok(q.clientDatagram(7, packet, 0, packet.length), 'a new flow in the slot starts again');
  });

  test(`${name}: the test encoder reproduces the RFC's protected packet`, () => {
    const frames = Buffer.concat([A2_CRYPTO_FRAME, Buffer.alloc(1162 - A2_CRYPTO_FRAME.length)]);
    assert.equal(protectInitial({ version, pn: 2, pnLength: 4, frames }).toString('hex'), fixture(file).toString('hex'));
  });
}

test('the datagram may sit at an offset in a larger buffer', () => {
  const packet = fixture('rfc9001-a2-client-initial.hex');
  const frame = Buffer.concat([Buffer.alloc(42, 0xee), packet, Buffer.alloc(10, 0xee)]);
  const hello = new QuicInitials(1).clientDatagram(0, frame, 42, packet.length);
  assert.equal(Buffer.from(hello!).toString('hex'), A2_CLIENT_HELLO.toString('hex'));
});

test('packet numbers decode as RFC 9000 appendix A.3 shows', () => {
  assert.equal(decodePacketNumber(0xa82f30ea, 0x9b32, 16), 0xa82f9b32);
  assert.equal(decodePacketNumber(-1, 2, 32), 2);
  assert.equal(decodePacketNumber(255, 0x01, 8), 257);
});

// ---------------------------------------------------------------------------
// 2. Built with the encoder

test('a ClientHello split across two datagrams, in order and reversed; v1 and v2', () => {
  for (const version of [QUIC_V1, QUIC_V2]) {
    const hello = clientHello('split.example.org', 1216, 0x11ec); // X25519MLKEM768-sized key share
    assert.ok(hello.length > 1300);
    const [a, b] = helloDatagrams(hello, 2, version) as [Buffer, Buffer];
    for (const order of [[a, b], [b, a]]) {
      const q = new QuicInitials(2);
      assert.equal(q.clientDatagram(3, order[0]!, 0, order[0]!.length), null);
      assert.equal(q.assembling, 1);
      const got = q.clientDatagram(3, order[1]!, 0, order[1]!.length);
      assert.ok(got, JSON.stringify(q.counters));
      assert.equal(Buffer.compare(Buffer.from(got), hello), 0);
      assert.equal(sniOf(got), 'split.example.org');
      assert.equal(q.assembling, 0);
    }
    const both = Buffer.concat([b, a]);
    const q = new QuicInitials(1);
    assert.equal(sniOf(q.clientDatagram(0, both, 0, both.length)!), 'split.example.org', 'two Initials coalesced in one datagram');
  }
});

test('coalesced packets: an Initial after a skipped Handshake-type packet, then zero padding', () => {
  const hello = clientHello('coalesced.example');
  const initial = protectInitial({ frames: Buffer.concat([Buffer.from([0x01]), cryptoFrame(0, hello)]), payloadLength: 600 });
  // A v1 Handshake packet (type 2): header, Length 30, 30 bytes; skipped by its Length.
  const handshake = new ByteWriter().u8(0xe0).u32(QUIC_V1).u8(4).bytes([1, 2, 3, 4]).u8(0).u16(0x4000 | 30).zeros(30).build();
  const datagram = Buffer.concat([handshake, initial, Buffer.alloc(100)]);
  const q = new QuicInitials(1);
  assert.equal(sniOf(q.clientDatagram(0, datagram, 0, datagram.length)!), 'coalesced.example');
  assert.equal(q.counters.shortHeader, 0, 'trailing zeros are padding, not a short header');
});

test('ACK, PING and CONNECTION_CLOSE frames are walked over; an unknown frame stops the walk', () => {
  const hello = clientHello('frames.example');
  const ack = hex('03 05 00 01 02 00 01 01 00 00'); // ACK_ECN: largest 5, delay 0, 1 range, first 2, gap 0 len 1, ECN 1 0 0
  const close = hex('1c 00 06 03 616263');
  const q = new QuicInitials(1);
  const packet = protectInitial({ frames: Buffer.concat([ack, Buffer.from([1]), close, cryptoFrame(0, hello)]), payloadLength: 400 });
  assert.equal(sniOf(q.clientDatagram(1, packet, 0, packet.length)!), 'frames.example');
  const stream = protectInitial({ frames: Buffer.concat([hex('08 00 01 61'), cryptoFrame(0, hello)]), payloadLength: 400 });
  assert.equal(q.clientDatagram(2, stream, 0, stream.length), null);
  assert.equal(q.counters.framesUnknown, 1, 'a STREAM frame in an Initial');
});

test('a Retry-style new DCID: each packet is decrypted with the keys of its own DCID', () => {
  const hello = clientHello('retry.example');
  const q = new QuicInitials(1);
  const first = protectInitial({ dcid: hex('0102030405060708'), frames: cryptoFrame(0, hello.subarray(0, 40)), payloadLength: 300 });
  const second = protectInitial({ dcid: hex('a1a2a3a4a5a6a7a8a9aa'), pn: 1, frames: cryptoFrame(40, hello.subarray(40)), payloadLength: 300 });
  assert.equal(q.clientDatagram(0, first, 0, first.length), null);
  assert.equal(sniOf(q.clientDatagram(0, second, 0, second.length)!), 'retry.example');
});

// ---------------------------------------------------------------------------
// 3. Bad input

test('truncated, corrupted, other versions and short headers give null and a counter', () => {
  const packet = fixture('rfc9001-a2-client-initial.hex');
  const q = new QuicInitials(2);
  assert.equal(q.clientDatagram(0, packet, 0, 1199), null);
  assert.equal(q.counters.truncated, 1, 'one byte short of its Length');
  assert.equal(q.clientDatagram(0, packet, 0, 20), null);
  assert.equal(q.counters.truncated, 2, 'cut inside the header');
  for (const at of [100, 1199, 30]) {
    const bad = Buffer.from(packet);
    bad[at]! ^= 0x01;
    assert.equal(q.clientDatagram(0, bad, 0, bad.length), null);
  }
  assert.equal(q.counters.authFailed, 3, 'a flipped ciphertext, tag or sample byte fails authentication');
  const draft = Buffer.from(packet);
  draft.writeUInt32BE(0xff00001d, 1);
  assert.equal(q.clientDatagram(0, draft, 0, draft.length), null);
  const negotiation = Buffer.from(packet);
  negotiation.writeUInt32BE(0, 1);
  assert.equal(q.clientDatagram(0, negotiation, 0, negotiation.length), null);
  assert.equal(q.counters.otherVersion, 2);
  const short = hex('4f 8394c8f03e515708 00000000000000000000000000000000000000000000');
  assert.equal(q.clientDatagram(0, short, 0, short.length), null);
  assert.equal(q.counters.shortHeader, 1);
  const longCid = Buffer.from(packet);
  longCid[5] = 21;
  assert.equal(q.clientDatagram(0, longCid, 0, longCid.length), null);
  assert.equal(q.counters.malformed, 1, 'a connection ID over 20 bytes');
  assert.equal(q.counters.decrypted, 0);
  assert.equal(q.assembling, 0);
  assert.ok(q.clientDatagram(0, packet, 0, packet.length), 'the intact packet still decrypts');
});

test('CRYPTO data that is not a ClientHello, or one over 8 KiB, is given up and counted', () => {
  const q = new QuicInitials(2);
  const serverHelloLike = protectInitial({ frames: cryptoFrame(0, hex('02000004 00000000')), payloadLength: 300 });
  assert.equal(q.clientDatagram(0, serverHelloLike, 0, serverHelloLike.length), null);
  assert.equal(q.counters.notClientHello, 1);
  const huge = protectInitial({ frames: cryptoFrame(0, Buffer.concat([Buffer.from([1]), u24(9000), Buffer.alloc(500)])), payloadLength: 600 });
  assert.equal(q.clientDatagram(1, huge, 0, huge.length), null);
  assert.equal(q.counters.tooLarge, 1);
  const far = protectInitial({ frames: cryptoFrame(20000, Buffer.alloc(100)), payloadLength: 300 });
  assert.equal(q.clientDatagram(2, far, 0, far.length), null);
  assert.equal(q.counters.tooLarge, 2, 'CRYPTO data past 8 KiB: the ClientHello cannot fit');
  assert.equal(q.assembling, 0, 'both given up, neither holds an entry as assembling');
});

test('the assembly pool is bounded: a full pool of unfinished flows drops the next, finished ones are reused', () => {
  const hello = clientHello('pool.example', 1216, 0x11ec);
  const [first, second] = helloDatagrams(hello, 2) as [Buffer, Buffer];
  const q = new QuicInitials(3);
  for (let slot = 0; slot < 3; slot++) assert.equal(q.clientDatagram(slot, first, 0, first.length), null);
  assert.equal(q.assembling, 3);
  assert.equal(q.clientDatagram(3, first, 0, first.length), null);
  assert.equal(q.counters.assembliesDropped, 1);
  assert.ok(q.clientDatagram(1, second, 0, second.length), 'slot 1 completes');
  assert.equal(q.clientDatagram(3, first, 0, first.length), null, 'slot 3 takes the finished entry');
  assert.ok(q.clientDatagram(3, second, 0, second.length));
  assert.equal(q.counters.assembliesDropped, 1);
  q.flowEnded(0);
  q.flowEnded(2);
  assert.equal(q.assembling, 0);
  assert.throws(() => new QuicInitials(0), RangeError);
});

test('fuzz: random and mutated datagrams never throw', () => {
  let seed = 0x9e3779b9;
  const rand = (): number => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  const base = [
    fixture('rfc9001-a2-client-initial.hex'),
    fixture('rfc9369-a2-client-initial.hex'),
    ...helloDatagrams(clientHello('fuzz.example', 1216, 0x11ec), 2),
    protectInitial({ frames: hex('03 05 00 01 02 00 01 01 00 00 1c 00 06 03 616263'), payloadLength: 100 }),
  ];
  const q = new QuicInitials(8);
  for (let i = 0; i < 3000; i++) {
    let d: Buffer;
    if (i % 4 === 0) {
      d = Buffer.alloc(Math.floor(rand() * 1400));
      for (let k = 0; k < d.length; k++) d[k] = Math.floor(rand() * 256);
      if (d.length > 0 && rand() < 0.5) d[0]! |= 0xc0;
      if (d.length > 5 && rand() < 0.5) d.writeUInt32BE(rand() < 0.5 ? QUIC_V1 : QUIC_V2, 1);
    } else {
      d = Buffer.from(base[i % base.length]!);
      const flips = 1 + Math.floor(rand() * 4);
      // Mostly the header (where parsing decisions are), sometimes anywhere.
      for (let k = 0; k < flips; k++) d[Math.floor(rand() * (rand() < 0.7 ? Math.min(30, d.length) : d.length))] = Math.floor(rand() * 256);
      if (rand() < 0.3) d = d.subarray(0, Math.floor(rand() * d.length));
    }
    const off = Math.floor(rand() * 3);
    q.clientDatagram(i % 11, d, off, Math.max(0, d.length - off + Math.floor(rand() * 3) - 1));
    if (rand() < 0.05) q.flowEnded(i % 11);
  }
  assert.ok(q.counters.authFailed > 0 && q.counters.truncated > 0, JSON.stringify(q.counters));
  // Random plaintext frames, properly encrypted: the frame walk and the assembler see them.
  const frameTypes = [0x00, 0x01, 0x02, 0x03, 0x06, 0x1c, 0x1d, 0x08, 0x40, 0xc0];
  const before = q.counters.decrypted;
  for (let i = 0; i < 500; i++) {
    const frames = Buffer.alloc(4 + Math.floor(rand() * 300)); // enough for the header protection sample
    for (let k = 0; k < frames.length; k++) frames[k] = rand() < 0.3 ? frameTypes[Math.floor(rand() * frameTypes.length)]! : Math.floor(rand() * 256);
    const d = protectInitial({ frames, pn: Math.floor(rand() * 100), pnLength: 1 + Math.floor(rand() * 4), payloadLength: rand() < 0.5 ? 0 : 400 });
    q.flowEnded(i % 13); // a fresh flow: not given up earlier, and no larger packet number seen
    q.clientDatagram(i % 13, d, 0, d.length);
  }
  assert.equal(q.counters.decrypted - before, 500, 'every encrypted packet decrypts (packet numbers of 1 to 4 bytes)');
  assert.ok(q.counters.framesMalformed > 0 && q.counters.framesUnknown > 0, JSON.stringify(q.counters));
});

// ---------------------------------------------------------------------------
// tshark reads the same server names from the encoder's packets (version 1 only:
// tshark 4.0.17 fails to decrypt RFC 9369's own v2 packet, "Decryption (checktag)
// failed", so RFC 9369 appendix A is the only reference for v2 here)

const hasTshark = spawnSync('tshark', ['-v'], { encoding: 'utf8' }).status === 0;

test('tshark 4.0 reads the same server name from the encoded Initials (one datagram, split, reversed), and so does analyze', { skip: !hasTshark && 'tshark not installed' }, async () => {
  const cases: { sni: string; datagrams: Buffer[] }[] = [];
  const one = clientHello('one.quic.example');
  cases.push({ sni: 'one.quic.example', datagrams: helloDatagrams(one, 1, QUIC_V1, hex('0011223344556677')) });
  const big = clientHello('split.quic.example', 1216, 0x11ec);
  cases.push({ sni: 'split.quic.example', datagrams: helloDatagrams(big, 2, QUIC_V1, hex('1011223344556677')) });
  const rev = clientHello('reversed.quic.example', 1216, 0x11ec);
  cases.push({ sni: 'reversed.quic.example', datagrams: helloDatagrams(rev, 2, QUIC_V1, hex('2011223344556677')).reverse() });
  const records: { tsSec: number; tsSub: number; data: Buffer }[] = [];
  cases.forEach((c, i) => {
    for (const d of c.datagrams) {
      const frame = ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4,
        ipv4({ src: '10.0.0.1', dst: '10.0.0.2', proto: Proto.UDP, payload: udp({ srcPort: 50000 + i, dstPort: 443, payload: d }) }));
      records.push({ tsSec: 1000 + records.length, tsSub: 0, data: frame });
    }
  });
  const dir = mkdtempSync(join(tmpdir(), 'quic-initial-'));
  try {
    const file = join(dir, 'quic.pcap');
    writeFileSync(file, pcapFile({}, records));
    const run = spawnSync('tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'udp.srcport', '-e', 'tls.handshake.extensions_server_name'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const theirs = new Map<number, string>();
    for (const line of run.stdout.split('\n')) {
      const [port, sni] = line.split('\t');
      if (sni) theirs.set(Number(port) - 50000, sni);
    }
    // The same capture through the whole pipeline: the tls analyzer names each flow from its Initials, fingerprints it as QUIC (JA4 "q").
    const { report } = await analyzeCapture(file, DEFAULT_CONFIG);
    const tls = report.windows.map((w) => w.metrics['tls'] as { quicClientHellos: number; serverNames: { name: string }[]; ja4: { value: string }[] });
    assert.equal(tls.reduce((n, m) => n + m.quicClientHellos, 0), cases.length);
    assert.deepEqual(tls.flatMap((m) => m.serverNames.map((x) => x.name)).sort(), [...theirs.values()].sort());
    assert.ok(tls.flatMap((m) => m.ja4).every((f) => f.value.startsWith('q13')), JSON.stringify(tls.map((m) => m.ja4)));
    cases.forEach((c, i) => {
      const q = new QuicInitials(1);
      let ours = '';
      for (const d of c.datagrams) {
        const hello = q.clientDatagram(i, d, 0, d.length);
        if (hello) ours = sniOf(hello);
      }
      assert.equal(ours, c.sni);
      assert.equal(theirs.get(i), ours, `tshark's tls.handshake.extensions_server_name for case ${i}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
