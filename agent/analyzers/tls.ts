/**
 * TLS over TCP on any port, and QUIC's ClientHello from its Initials
 * (lib/quic-initial.ts; a UDP flow's first client datagrams): ClientHello and
 * ServerHello metadata (versions offered and chosen, server names, JA3 / JA3S / JA4 fingerprints), cleartext
 * alerts, handshake time, and findings for failed handshakes and deprecated
 * versions.
 *
 * A flow is TLS when its client's first payload bytes start a handshake
 * record (0x16 0x03 0x00-0x04), or when one of its client's first 16 payload
 * segments starts a record holding a ClientHello (STARTTLS: SMTP, IMAP,
 * MySQL, ... begin in cleartext); then both directions are read record by
 * record, in order: a segment repeating payload (tcp.analysis retransmission
 * or out-of-order) is skipped, a gap in the sequence (data missing from the
 * capture) ends the analysis of the flow (counted in `gaps`). Each direction's
 * first handshake message (ClientHello, ServerHello) is parsed in place when
 * it lies whole in one segment, else copied into one of a fixed pool of
 * `maxReassemblies` buffers of `maxHelloBytes` (pool empty or hello larger:
 * counted, not parsed). Per-flow state lives in typed arrays by flow slot.
 *
 * What can be seen: alerts only while a direction is in cleartext, i.e.
 * before its ChangeCipherSpec or first application_data record, and for the
 * server in TLS 1.3 before its ServerHello (everything after it is encrypted;
 * a TLS 1.3 alert after it is an application_data record like any other).
 * Alert records seen after ChangeCipherSpec are counted as encryptedAlerts,
 * their description unknown. Certificates are not read: in TLS 1.3 they are
 * encrypted (certificatesEncrypted counts those handshakes).
 *
 * Handshake time: ClientHello to the server's first application_data record;
 * in TLS 1.3 the server's encrypted handshake messages are application_data
 * records too, so there it is to the first one the server sends after the
 * client's first (the client's Finished).
 *
 * Strings: the server name (ctx.names takes a string) once per ClientHello;
 * fingerprints are counted by a 52-bit hash of their inputs and their text
 * built once per distinct hash (at most maxFingerprints kept).
 *
 * Flow-sharded workers (issue 13): a server, a server name and a fingerprint
 * are seen by flows of many workers, and the window's bounded tables keep the
 * first keys of the whole input (server names and servers: the first
 * maxServerNames; fingerprints: the first maxFingerprints of the run). So a
 * worker keeps every key of the window, with where in the input it first came
 * (`first`), builds fingerprint texts per window, and reports no finding; the
 * coordinator merges the keys, keeps the first ones (run-wide for
 * fingerprints), counts the rest as dropped, and reports the servers' findings
 * from the merged issues. Where two workers first met a server at the same
 * packet (flows ending idle at the same sweep), the lower worker counts as
 * first: one pipeline may have met the other first there, which can only
 * change the `host` of a server name seen at several addresses, or which
 * servers the cap keeps.
 */
import { Dir, EndReason, type EndReasonCode } from '../flow/flow-table.js';
import { NameSource } from '../flow/flow-names.js';
import { TcpFlag } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { TcpAnalysisFlag, type TcpPacketResult } from '../flow/tcp-result.js';
import { formatAddress } from '../../common/address.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import type { QuantileSketch } from '../../common/report.js';
import { Quantiles } from './lib/quantiles.js';
import { QuicInitials } from './lib/quic-initial.js';
import { endpoint, plural } from './lib/format.js';
import {
  ClientHello, ContentType, HandshakeType, ServerHello, alertName, clientHelloShape, isDeprecatedVersion, ja3, ja3s, ja4,
  parseClientHello, parseServerHello, serverHelloShape, versionName,
} from './lib/tls-hello.js';

/** Per-flow state. */
const ST_UNKNOWN = 0;
const ST_TLS = 1;
/** Not TLS, finished, or given up: nothing more is read. */
const ST_OFF = 2;

/** Per-flow flags. */
const F_CH = 1;
const F_SH = 2;
const F_TIMED = 4;
const F_CLIENT_APPDATA = 8;
const F_GAVE_UP = 16;
/** The ClientHello came in QUIC Initials: the rest of the handshake is encrypted, nothing more is read. */
const F_QUIC = 32;
/** Datagrams of the flow went to the QUIC assembler: it may hold an entry for the slot. */
const F_QUIC_FED = 64;

/** Per-direction flags. */
const D_SEQ = 1;
/** The first handshake message was parsed (or could not be). */
const D_HELLO_DONE = 2;
/** Cleartext is over in this direction. */
const D_ENCRYPTED = 4;

/** RFC 8446 section 5.1: a record carries at most 2^14 bytes, plus 256 (1.3) or 2048 (1.2) of expansion. */
const MAX_RECORD = 16384 + 2048;
const TLS13 = 0x0304;
/** Client segments of another protocol before TLS may start (STARTTLS): past them, the flow is not TLS. */
const STARTTLS_SEGMENTS = 16;
/** A UDP flow's first client datagrams tried as QUIC Initials (a ClientHello can take several). */
const QUIC_DATAGRAMS = 4;
/** UDP flows assembling a ClientHello from QUIC Initials at once. */
const QUIC_ASSEMBLIES = 64;
/** Entries listed per top list in window metrics. */
const TOP = 10;

interface ServerIssue {
  key: string;
  host: string;
  /** Where in the input it was first met (see TlsAnalyzer.issue), and how often. */
  first: number;
  calls: number;
  fatalAlerts: number;
  noServerHello: number;
  descriptions: Map<number, number>;
  offeredOnly: number;
  chosen: number;
  versions: Set<number>;
  tls13: number;
}

interface TlsWindow {
  clientHellos: number; serverHellos: number; malformed: number; unexpectedHandshake: number;
  versionsOffered: Map<number, number>; versionsChosen: Map<number, number>;
  names: Map<string, number>; namesDropped: number;
  alerts: Map<number, number>; fatalAlerts: number; warningAlerts: number; encryptedAlerts: number;
  time: Quantiles; certificatesEncrypted: number;
  ja4: Map<number, number>; ja3: Map<number, number>; ja3s: Map<number, number>;
  quicClientHellos: number; quicNotDecrypted: number; quicDropped: number;
  gaps: number; truncated: number; reassemblyDropped: number; helloTooLarge: number; notRecords: number; listsTruncated: number; fingerprintsDropped: number;
  issues: Map<string, ServerIssue>; issuesDropped: number;
  /** A flow-sharded worker: the input index where each server name and fingerprint first came in the window. */
  nameFirst: Map<string, number>; ja4First: Map<number, number>; ja3First: Map<number, number>; ja3sFirst: Map<number, number>;
}

/** A flow-sharded worker's `windowPart`: its window, the handshake times whole, and the window's fingerprint texts. */
type TlsPart = Omit<TlsWindow, 'time'> & { time: QuantileSketch; ja4Text: Map<number, string>; ja3Text: Map<number, string>; ja3sText: Map<number, string> };

/** Counts of a window that add up over workers. */
const SUMMED = [
  'clientHellos', 'serverHellos', 'malformed', 'unexpectedHandshake', 'namesDropped', 'fatalAlerts', 'warningAlerts', 'encryptedAlerts',
  'certificatesEncrypted', 'quicClientHellos', 'quicNotDecrypted', 'quicDropped', 'gaps', 'truncated', 'reassemblyDropped', 'helloTooLarge',
  'notRecords', 'listsTruncated', 'fingerprintsDropped', 'issuesDropped',
] as const;

export function createTlsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new TlsAnalyzer(ctx);
}

export class TlsAnalyzer implements Analyzer {
  readonly id = 'tls';
  private readonly maxHello: number;
  private readonly maxNames: number;
  private readonly maxFingerprints: number;
  // per flow slot
  private readonly state: Uint8Array;
  private readonly flags: Uint8Array;
  private readonly chTs: Float64Array;
  private readonly offered: Uint16Array;
  private readonly chosen: Uint16Array;
  /** Client payload segments seen before TLS started. */
  private readonly probes: Uint8Array;
  // per direction (slot * 2 + dir)
  private readonly dflags: Uint8Array;
  private readonly nextSeq: Uint32Array;
  /** Bytes left in the current record's body; 0 while reading a header. */
  private readonly recLeft: Int32Array;
  private readonly recType: Uint8Array;
  /** Bytes of the current record's body read so far. */
  private readonly bodyHave: Int32Array;
  /** Header bytes gathered (a header split across segments), then the first two bytes of an alert's body. */
  private readonly hdr: Uint8Array;
  private readonly hdrHave: Uint8Array;
  /** Reassembly buffer held (-1: none) and bytes in it. */
  private readonly bufId: Int32Array;
  private readonly bufHave: Int32Array;
  /** The reassembly pool: maxReassemblies buffers of maxHello bytes, and a stack of free ones. */
  private readonly pool: Uint8Array;
  private readonly free: Int32Array;
  private freeCount: number;
  private readonly ch = new ClientHello();
  private readonly sh = new ServerHello();
  /** Fingerprint text by input hash, bounded by maxFingerprints (shared by the three kinds: their hashes differ by kind). */
  private readonly ja4Text = new Map<number, string>();
  private readonly ja3Text = new Map<number, string>();
  private readonly ja3sText = new Map<number, string>();
  private readonly textDecoder = new TextDecoder('latin1');
  private readonly quic = new QuicInitials(QUIC_ASSEMBLIES);
  /** The QUIC counters at the last window close (metrics are per window). */
  private quicAuthFailed = 0;
  private quicDropped = 0;
  private w: TlsWindow = this.emptyWindow();
  /** Server names and servers kept per window: maxServerNames, every one in a flow-sharded worker. */
  private readonly keysKept: number;
  /** A flow-sharded worker: its last window's part. */
  private part: TlsPart | undefined;

  constructor(private readonly ctx: AnalyzerContext) {
    const cfg = ctx.config.analyzers.tls;
    const n = ctx.flows.capacity;
    this.maxHello = cfg.maxHelloBytes;
    this.maxNames = cfg.maxServerNames;
    this.maxFingerprints = cfg.maxFingerprints;
    this.keysKept = ctx.shardRole === 'worker' ? Infinity : cfg.maxServerNames;
    this.state = new Uint8Array(n);
    this.flags = new Uint8Array(n);
    this.chTs = new Float64Array(n);
    this.offered = new Uint16Array(n);
    this.chosen = new Uint16Array(n);
    this.probes = new Uint8Array(n);
    this.dflags = new Uint8Array(2 * n);
    this.nextSeq = new Uint32Array(2 * n);
    this.recLeft = new Int32Array(2 * n);
    this.recType = new Uint8Array(2 * n);
    this.bodyHave = new Int32Array(2 * n);
    this.hdr = new Uint8Array(2 * n * 5);
    this.hdrHave = new Uint8Array(2 * n);
    this.bufId = new Int32Array(2 * n).fill(-1);
    this.bufHave = new Int32Array(2 * n);
    // No more hellos can be reassembled at once than there are flow directions.
    const buffers = Math.min(cfg.maxReassemblies, 2 * n);
    this.pool = new Uint8Array(buffers * cfg.maxHelloBytes);
    this.free = new Int32Array(buffers);
    for (let i = 0; i < buffers; i++) this.free[i] = buffers - 1 - i;
    this.freeCount = buffers;
  }

  private emptyWindow(): TlsWindow {
    return {
      clientHellos: 0, serverHellos: 0, malformed: 0, unexpectedHandshake: 0,
      versionsOffered: new Map(), versionsChosen: new Map(), names: new Map(), namesDropped: 0,
      alerts: new Map(), fatalAlerts: 0, warningAlerts: 0, encryptedAlerts: 0,
      time: new Quantiles(), certificatesEncrypted: 0,
      ja4: new Map(), ja3: new Map(), ja3s: new Map(),
      quicClientHellos: 0, quicNotDecrypted: 0, quicDropped: 0,
      gaps: 0, truncated: 0, reassemblyDropped: 0, helloTooLarge: 0, notRecords: 0, listsTruncated: 0, fingerprintsDropped: 0,
      issues: new Map(), issuesDropped: 0,
      nameFirst: new Map(), ja4First: new Map(), ja3First: new Map(), ja3sFirst: new Map(),
    };
  }

  onFlowStart(slot: number): void {
    // The rest of the slot's state is reset when the flow turns out to be TLS (startTls): most flows never do.
    this.state[slot] = ST_UNKNOWN;
    this.flags[slot] = 0;
    this.probes[slot] = 0;
  }

  /** The flow in `slot` is TLS: its per-flow state starts empty. */
  private startTls(slot: number): void {
    this.state[slot] = ST_TLS;
    this.chTs[slot] = 0;
    this.offered[slot] = 0;
    this.chosen[slot] = 0;
    for (let i = 2 * slot; i < 2 * slot + 2; i++) {
      this.dflags[i] = 0; this.recLeft[i] = 0; this.recType[i] = 0; this.bodyHave[i] = 0; this.hdrHave[i] = 0; this.bufHave[i] = 0;
    }
  }

  onFlowEnd(slot: number, reason: EndReasonCode): void {
    const f = this.flags[slot]!;
    // A ClientHello the server never answered: a failed handshake, unless the capture ended first or the analysis gave up.
    if ((f & F_CH) !== 0 && (f & (F_SH | F_GAVE_UP | F_QUIC)) === 0 && reason !== EndReason.END_OF_INPUT) {
      // Idle flows end while the clock moves, before the packet that moved it is read.
      const issue = this.issue(slot, reason === EndReason.IDLE ? 0 : 1);
      if (issue) issue.noServerHello++;
    }
    this.release(slot);
    if ((f & F_QUIC_FED) !== 0) this.quic.flowEnded(slot);
    this.state[slot] = ST_OFF;
  }

  /** QUIC: a UDP flow's first client datagrams, decrypted as Initials where they are (lib/quic-initial.ts). */
  onUdpDatagram(v: PacketView, slot: number, dir: number): void {
    if (slot < 0 || dir !== Dir.CLIENT_TO_SERVER || this.state[slot] !== ST_UNKNOWN) return;
    const probe = this.probes[slot]!;
    if (probe >= QUIC_DATAGRAMS) {
      this.state[slot] = ST_OFF;
      if ((this.flags[slot]! & F_QUIC_FED) !== 0) this.quic.flowEnded(slot);
      return;
    }
    this.probes[slot] = probe + 1;
    // An Initial is authenticated as a whole: a datagram cut short by the snap length cannot be read.
    if (v.payloadCapLen < v.payloadLen) return;
    this.flags[slot] = this.flags[slot]! | F_QUIC_FED;
    const hello = this.quic.clientDatagram(slot, v.l4Data, v.payloadOff, v.payloadLen);
    if (hello === null) return;
    this.startTls(slot); // its per-flow figures start empty; nothing more of the flow is read
    this.state[slot] = ST_OFF;
    this.flags[slot] = this.flags[slot]! | F_QUIC;
    this.w.quicClientHellos++;
    this.handleClientHello(slot, hello, 4, hello.length - 4, 'q', v.ts);
  }

  onTcpSegment(v: PacketView, slot: number, dir: number, tcp: TcpPacketResult): void {
    if (slot < 0) return;
    const st = this.state[slot]!;
    if (st === ST_OFF) return;
    let len = v.payloadLen;
    if (len === 0 || tcp.payloadRepeated || (tcp.flags & TcpAnalysisFlag.KEEP_ALIVE) !== 0) return;
    const b = v.l4Data;
    let off = v.payloadOff;
    if (st === ST_UNKNOWN) {
      // The client speaks first in TLS. Server bytes (a STARTTLS protocol's greeting) are skipped.
      if (dir !== Dir.CLIENT_TO_SERVER) return;
      const probe = this.probes[slot]!;
      const record = v.payloadCapLen >= 3 && b[off] === ContentType.HANDSHAKE && b[off + 1] === 3 && b[off + 2]! <= 4;
      // After the first client segment (STARTTLS in SMTP, IMAP, MySQL, ...) only a record that begins a ClientHello counts, so the middle of another protocol is not mistaken for TLS.
      if (record && (probe === 0 || (v.payloadCapLen >= 6 && b[off + 5] === HandshakeType.CLIENT_HELLO))) {
        this.startTls(slot);
      } else {
        if (probe + 1 >= STARTTLS_SEGMENTS) this.state[slot] = ST_OFF;
        else this.probes[slot] = probe + 1;
        return;
      }
    }
    if (v.payloadCapLen < len) { this.w.truncated++; this.giveUp(slot); return; }
    const i = 2 * slot + dir;
    const seq = (v.tcpFlags & TcpFlag.SYN) !== 0 ? (v.seq + 1) >>> 0 : v.seq;
    if ((this.dflags[i]! & D_SEQ) !== 0) {
      const delta = (seq - this.nextSeq[i]!) | 0;
      if (delta > 0) { this.w.gaps++; this.giveUp(slot); return; }
      if (delta < 0) {
        // Overlaps bytes already read: only the new ones count.
        if (-delta >= len) return;
        off -= delta;
        len += delta;
      }
    }
    this.nextSeq[i] = (seq + v.payloadLen) >>> 0;
    this.dflags[i] = this.dflags[i]! | D_SEQ;
    this.feed(b, off, len, slot, dir, v.ts);
  }

  /** Reads `len` in-order bytes of one direction: record headers, hello bytes, alerts. */
  private feed(b: Uint8Array, off: number, len: number, slot: number, dir: number, ts: number): void {
    const i = 2 * slot + dir;
    const end = off + len;
    let p = off;
    while (p < end) {
      if (this.state[slot] !== ST_TLS) return;
      const left = this.recLeft[i]!;
      if (left === 0) {
        let type: number; let major: number; let minor: number; let length: number;
        const have = this.hdrHave[i]!;
        if (have === 0 && end - p >= 5) {
          type = b[p]!; major = b[p + 1]!; minor = b[p + 2]!; length = (b[p + 3]! << 8) | b[p + 4]!;
          p += 5;
        } else {
          const h = i * 5;
          let k = have;
          while (k < 5 && p < end) this.hdr[h + k++] = b[p++]!;
          this.hdrHave[i] = k;
          if (k < 5) return;
          this.hdrHave[i] = 0;
          type = this.hdr[h]!; major = this.hdr[h + 1]!; minor = this.hdr[h + 2]!; length = (this.hdr[h + 3]! << 8) | this.hdr[h + 4]!;
        }
        if (type < ContentType.CHANGE_CIPHER_SPEC || type > ContentType.HEARTBEAT || major !== 3 || minor > 4 || length > MAX_RECORD) {
          this.w.notRecords++;
          this.giveUp(slot);
          return;
        }
        this.recType[i] = type;
        this.recLeft[i] = length;
        this.bodyHave[i] = 0;
        this.recordStart(type, slot, dir, ts);
        continue;
      }
      const n = left < end - p ? left : end - p;
      const type = this.recType[i]!;
      const df = this.dflags[i]!;
      if (type === ContentType.HANDSHAKE && (df & (D_HELLO_DONE | D_ENCRYPTED)) === 0) {
        this.handshakeBytes(b, p, n, slot, dir, ts);
      } else if (type === ContentType.ALERT && (df & D_ENCRYPTED) === 0) {
        const have = this.bodyHave[i]!;
        for (let k = 0; k < n && have + k < 2; k++) this.hdr[i * 5 + have + k] = b[p + k]!;
        if (have < 2 && have + n >= 2) this.alert(slot, this.hdr[i * 5]!, this.hdr[i * 5 + 1]!);
      }
      this.bodyHave[i] = this.bodyHave[i]! + n;
      this.recLeft[i] = left - n;
      p += n;
    }
  }

  private recordStart(type: number, slot: number, dir: number, ts: number): void {
    const i = 2 * slot + dir;
    if (type === ContentType.CHANGE_CIPHER_SPEC) {
      this.dflags[i] = this.dflags[i]! | D_ENCRYPTED;
    } else if (type === ContentType.ALERT) {
      if ((this.dflags[i]! & D_ENCRYPTED) !== 0) this.w.encryptedAlerts++;
    } else if (type === ContentType.APPLICATION_DATA) {
      this.dflags[i] = this.dflags[i]! | D_ENCRYPTED;
      const f = this.flags[slot]!;
      if (dir === Dir.CLIENT_TO_SERVER) { this.flags[slot] = f | F_CLIENT_APPDATA; return; }
      if ((f & F_CH) === 0 || (f & F_TIMED) !== 0) return;
      if (this.chosen[slot] === TLS13 && (f & F_CLIENT_APPDATA) === 0) return;
      this.w.time.add(ts - this.chTs[slot]!);
      this.flags[slot] = f | F_TIMED;
      // Nothing more to see in cleartext once the server sends data.
      if ((f & F_SH) !== 0) this.stop(slot);
    }
  }

  /** Bytes of a handshake record body before the direction's first message was parsed. */
  private handshakeBytes(b: Uint8Array, p: number, n: number, slot: number, dir: number, ts: number): void {
    const i = 2 * slot + dir;
    const max = this.maxHello;
    let id = this.bufId[i]!;
    if (id < 0) {
      if (n >= 4) {
        const total = 4 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
        if (total <= n) { this.message(b, p, total, slot, dir, ts); return; }
        if (total > max) { this.w.helloTooLarge++; this.helloDone(i); return; }
      }
      if (this.freeCount === 0) { this.w.reassemblyDropped++; this.helloDone(i); return; }
      id = this.free[--this.freeCount]!;
      this.bufId[i] = id;
      this.bufHave[i] = 0;
    }
    const base = id * max;
    let have = this.bufHave[i]!;
    const copy = Math.min(n, max - have);
    this.pool.set(b.subarray(p, p + copy), base + have); // only a split hello is copied
    have += copy;
    this.bufHave[i] = have;
    if (have < 4) return;
    const pool = this.pool;
    const total = 4 + ((pool[base + 1]! << 16) | (pool[base + 2]! << 8) | pool[base + 3]!);
    if (total > max) { this.w.helloTooLarge++; this.helloDone(i); return; }
    if (have >= total) {
      this.message(pool, base, total, slot, dir, ts);
      this.helloDone(i);
    }
  }

  /** The direction's first handshake message is done with: its buffer goes back to the pool. */
  private helloDone(i: number): void {
    this.dflags[i] = this.dflags[i]! | D_HELLO_DONE;
    const id = this.bufId[i]!;
    if (id >= 0) { this.free[this.freeCount++] = id; this.bufId[i] = -1; }
  }

  private message(b: Uint8Array, p: number, total: number, slot: number, dir: number, ts: number): void {
    this.dflags[2 * slot + dir] = this.dflags[2 * slot + dir]! | D_HELLO_DONE;
    const type = b[p]!;
    if (dir === Dir.CLIENT_TO_SERVER && type === HandshakeType.CLIENT_HELLO) this.handleClientHello(slot, b, p + 4, total - 4, 't', ts);
    else if (dir === Dir.SERVER_TO_CLIENT && type === HandshakeType.SERVER_HELLO) this.handleServerHello(slot, b, p + 4, total - 4);
    else this.w.unexpectedHandshake++;
  }

  /**
   * A ClientHello body (after the handshake header) of the flow in `slot`, at
   * packet time `ts`: over TCP from this analyzer, or (`q`) from QUIC's
   * decrypted Initial. Counts it, learns the server name, fingerprints it.
   */
  handleClientHello(slot: number, b: Uint8Array, off: number, len: number, transport: 't' | 'q', ts: number): void {
    const w = this.w;
    const ch = this.ch;
    if (!parseClientHello(b, off, len, ch)) { w.malformed++; return; }
    w.clientHellos++;
    this.flags[slot] = this.flags[slot]! | F_CH;
    this.chTs[slot] = ts;
    const highest = ch.highestVersion();
    this.offered[slot] = highest;
    count(w.versionsOffered, highest);
    if (ch.sniOff >= 0 && ch.sniLen > 0) {
      const name = this.textDecoder.decode(b.subarray(ch.sniOff, ch.sniOff + ch.sniLen));
      this.ctx.names.learn(slot, NameSource.TLS_SNI, name);
      const seen = w.names.get(name);
      if (seen !== undefined) w.names.set(name, seen + 1);
      else if (w.names.size < this.keysKept) {
        w.names.set(name, 1);
        if (this.ctx.shardRole === 'worker') w.nameFirst.set(name, this.ctx.packetOrder);
      } else w.namesDropped++;
    }
    if (isDeprecatedVersion(highest)) {
      const issue = this.issue(slot, 1);
      if (issue) { issue.offeredOnly++; issue.versions.add(highest); }
    }
    if (ch.overflowed) { w.listsTruncated++; return; }
    const shape = clientHelloShape(b, ch, transport);
    if (this.fingerprint(this.ja4Text, shape)) this.ja4Text.set(shape, ja4(b, ch, transport));
    if (this.fingerprint(this.ja3Text, shape)) this.ja3Text.set(shape, ja3(ch));
    this.countFingerprint(w.ja4, w.ja4First, shape, this.ja4Text);
    this.countFingerprint(w.ja3, w.ja3First, shape, this.ja3Text);
  }

  private handleServerHello(slot: number, b: Uint8Array, off: number, len: number): void {
    const w = this.w;
    const sh = this.sh;
    if (!parseServerHello(b, off, len, sh)) { w.malformed++; return; }
    w.serverHellos++;
    this.flags[slot] = this.flags[slot]! | F_SH;
    const v = sh.chosenVersion;
    this.chosen[slot] = v;
    count(w.versionsChosen, v);
    if (v === TLS13) {
      w.certificatesEncrypted++;
      // Everything the server sends after its ServerHello is encrypted.
      this.dflags[2 * slot + 1] = this.dflags[2 * slot + 1]! | D_ENCRYPTED;
    }
    if (isDeprecatedVersion(v)) {
      const issue = this.issue(slot, 1);
      if (issue) {
        issue.chosen++;
        issue.versions.add(v);
      }
    }
    const shape = serverHelloShape(sh);
    if (this.fingerprint(this.ja3sText, shape)) this.ja3sText.set(shape, ja3s(sh));
    this.countFingerprint(w.ja3s, w.ja3sFirst, shape, this.ja3sText);
  }

  /**
   * True when the text of `shape` is to be built now (new, and room for it). A flow-sharded worker's
   * texts are the window's, unbounded: the coordinator keeps the run's first maxFingerprints.
   */
  private fingerprint(texts: Map<number, string>, shape: number): boolean {
    if (texts.has(shape)) return false;
    if (texts.size >= this.maxFingerprints && this.ctx.shardRole !== 'worker') { this.w.fingerprintsDropped++; return false; }
    return true;
  }

  /** Counts a fingerprint by hash when its text is known (else it was counted as dropped); a worker notes where it first came. */
  private countFingerprint(m: Map<number, number>, first: Map<number, number>, key: number, texts: Map<number, string>): void {
    const n = m.get(key);
    if (n !== undefined) m.set(key, n + 1);
    else if (texts.has(key)) {
      m.set(key, 1);
      if (this.ctx.shardRole === 'worker') first.set(key, this.ctx.packetOrder);
    }
    // else: counted in fingerprintsDropped when its text was refused
  }

  private alert(slot: number, level: number, description: number): void {
    const w = this.w;
    count(w.alerts, description);
    if (level === 2) {
      w.fatalAlerts++;
      const issue = this.issue(slot, 1);
      if (issue) { issue.fatalAlerts++; issue.descriptions.set(description, (issue.descriptions.get(description) ?? 0) + 1); }
    } else {
      w.warningAlerts++;
    }
  }

  /**
   * The window's issue entry of the flow's server (its TLS server name, else its address and port); undefined when
   * the window's list is full. `phase`: 0 when a flow ends idle (as the clock moves on to packet i, before packet i
   * is read), 1 while packet i is read: where it came is 2 i + phase.
   */
  private issue(slot: number, phase: number): ServerIssue | undefined {
    const flows = this.ctx.flows;
    const host = formatAddress(flows.version[slot]!, flows.serverAddr(slot));
    const name = this.ctx.names.nameOf(slot);
    const key = name ?? endpoint(host, flows.serverPort(slot));
    let issue = this.w.issues.get(key);
    if (issue === undefined) {
      if (this.w.issues.size >= this.keysKept) { this.w.issuesDropped++; return undefined; }
      issue = {
        key, host, first: 2 * this.ctx.packetOrder + phase, calls: 0,
        fatalAlerts: 0, noServerHello: 0, descriptions: new Map(), offeredOnly: 0, chosen: 0, versions: new Set(), tls13: 0,
      };
      this.w.issues.set(key, issue);
    }
    issue.calls++;
    if (this.chosen[slot] === TLS13) issue.tls13++;
    return issue;
  }

  private giveUp(slot: number): void {
    this.flags[slot] = this.flags[slot]! | F_GAVE_UP;
    this.stop(slot);
  }

  /** Stops reading the flow. */
  private stop(slot: number): void {
    this.state[slot] = ST_OFF;
    this.release(slot);
  }

  private release(slot: number): void {
    for (let i = 2 * slot; i < 2 * slot + 2; i++) {
      const id = this.bufId[i]!;
      if (id >= 0) { this.free[this.freeCount++] = id; this.bufId[i] = -1; }
    }
  }

  closeWindow(): Metrics {
    const w = this.w;
    // A flow-sharded worker's servers are judged by the coordinator, over every worker's flows.
    if (this.ctx.shardRole !== 'worker') this.reportIssues(w.issues.values());
    const q = this.quic.counters;
    w.quicNotDecrypted = q.authFailed - this.quicAuthFailed;
    w.quicDropped = q.assembliesDropped + q.tooLarge - this.quicDropped;
    this.quicAuthFailed = q.authFailed;
    this.quicDropped = q.assembliesDropped + q.tooLarge;
    const metrics = this.metricsOf(w, this.ja4Text, this.ja3Text, this.ja3sText);
    if (this.ctx.shardRole === 'worker') {
      this.part = { ...w, time: w.time.sketch(true), ja4Text: new Map(this.ja4Text), ja3Text: new Map(this.ja3Text), ja3sText: new Map(this.ja3sText) };
      this.ja4Text.clear();
      this.ja3Text.clear();
      this.ja3sText.clear();
    }
    this.w = this.emptyWindow();
    return metrics;
  }

  private metricsOf(w: TlsWindow, ja4Text: Map<number, string>, ja3Text: Map<number, string>, ja3sText: Map<number, string>): Metrics {
    const s = w.time.summary();
    return {
      clientHellos: w.clientHellos,
      serverHellos: w.serverHellos,
      quicClientHellos: w.quicClientHellos,
      quicAuthFailed: w.quicNotDecrypted,
      versionsOffered: versionCounts(w.versionsOffered),
      versionsChosen: versionCounts(w.versionsChosen),
      certificatesEncrypted: w.certificatesEncrypted,
      serverNames: top(w.names).map(([name, n]) => ({ name, clientHellos: n })),
      alerts: Object.fromEntries([...w.alerts].sort((a, b) => a[0] - b[0]).map(([d, n]) => [alertName(d), n])),
      fatalAlerts: w.fatalAlerts,
      warningAlerts: w.warningAlerts,
      encryptedAlerts: w.encryptedAlerts,
      handshakeTime: { count: s.count, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max },
      ja4: topFingerprints(w.ja4, ja4Text),
      ja3: topFingerprints(w.ja3, ja3Text),
      ja3s: topFingerprints(w.ja3s, ja3sText),
      notParsed: { malformed: w.malformed, unexpectedHandshake: w.unexpectedHandshake, notRecords: w.notRecords, listsTruncated: w.listsTruncated },
      dropped: {
        quic: w.quicDropped, gaps: w.gaps, truncated: w.truncated, reassemblyDropped: w.reassemblyDropped, helloTooLarge: w.helloTooLarge,
        serverNames: w.namesDropped, fingerprints: w.fingerprintsDropped, servers: w.issuesDropped,
      },
    };
  }

  windowPart(): unknown {
    const part = this.part;
    this.part = undefined;
    return part;
  }

  /**
   * The coordinator: the window of one pipeline from the workers' (see the top). Counts add up; server names,
   * servers and fingerprints merge by key, the first ones kept in input order (worker order on a tie); the
   * servers' findings are reported here.
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as TlsPart[];
    const w = this.emptyWindow();
    for (const p of parts) {
      for (const k of SUMMED) w[k] += p[k];
      addCounts(w.versionsOffered, p.versionsOffered);
      addCounts(w.versionsChosen, p.versionsChosen);
      addCounts(w.alerts, p.alerts);
      w.time.addSketch(p.time);
    }
    // Server names: the first maxServerNames kept; the ClientHellos of the others dropped.
    const names = firstKept(parts.flatMap((p) => [...p.names].map(([name, n]) => ({ key: name, n, first: p.nameFirst.get(name)! }))), this.maxNames);
    for (const e of names.kept) w.names.set(e.key, e.n);
    w.namesDropped += names.droppedCount;
    // Fingerprints: the run's first maxFingerprints texts kept (this instance's tables are the run's).
    const kinds = [['ja4', 'ja4First', 'ja4Text', this.ja4Text], ['ja3', 'ja3First', 'ja3Text', this.ja3Text], ['ja3s', 'ja3sFirst', 'ja3sText', this.ja3sText]] as const;
    for (const [kind, firstOf, textOf, texts] of kinds) {
      const counts = w[kind];
      const merged = mergeByKey(parts.flatMap((p) => [...p[kind]].map(([hash, n]) => ({ key: hash, n, first: p[firstOf].get(hash)!, text: p[textOf].get(hash)! }))));
      for (const e of merged) {
        if (!texts.has(e.key)) {
          if (texts.size >= this.maxFingerprints) { w.fingerprintsDropped += e.n; continue; }
          texts.set(e.key, e.text);
        }
        counts.set(e.key, e.n);
      }
    }
    // Servers: the first maxServerNames kept, their figures merged; the calls of the others dropped.
    const byKey = new Map<string, ServerIssue>();
    for (const p of parts) {
      for (const issue of p.issues.values()) {
        const have = byKey.get(issue.key);
        if (have === undefined) { byKey.set(issue.key, { ...issue, descriptions: new Map(issue.descriptions), versions: new Set(issue.versions) }); continue; }
        if (issue.first < have.first) { have.first = issue.first; have.host = issue.host; }
        have.calls += issue.calls;
        have.fatalAlerts += issue.fatalAlerts;
        have.noServerHello += issue.noServerHello;
        addCounts(have.descriptions, issue.descriptions);
        have.offeredOnly += issue.offeredOnly;
        have.chosen += issue.chosen;
        for (const v of issue.versions) have.versions.add(v);
        have.tls13 += issue.tls13;
      }
    }
    const servers = [...byKey.values()].sort((a, b) => a.first - b.first);
    for (const issue of servers.slice(this.maxNames)) w.issuesDropped += issue.calls;
    this.reportIssues(servers.slice(0, this.maxNames));
    return this.metricsOf(w, this.ja4Text, this.ja3Text, this.ja3sText);
  }

  private reportIssues(issues: Iterable<ServerIssue>): void {
    for (const issue of issues) {
      const tls13 = issue.tls13 > 0 ? ' (TLS 1.3: the certificate is encrypted and not seen)' : '';
      const failures = issue.fatalAlerts + issue.noServerHello;
      if (failures > 0) {
        this.ctx.reportLazily('tls_handshake_failure', () => {
          const alerts = [...issue.descriptions].sort((a, b) => b[1] - a[1] || a[0] - b[0]).map(([d, n]) => `${alertName(d)} x${n}`).join(', ');
          const parts: string[] = [];
          if (issue.fatalAlerts > 0) parts.push(`${plural(issue.fatalAlerts, 'fatal alert')} (${alerts})`);
          if (issue.noServerHello > 0) parts.push(`${plural(issue.noServerHello, 'connection')} ended with no ServerHello`);
          return {
            type: 'tls_handshake_failure', severity: 'warning', key: issue.key,
            summary: `TLS handshakes with ${issue.key} failed: ${parts.join('; ')}${tls13}.`,
            evidence: { server: issue.key, fatalAlerts: issue.fatalAlerts, noServerHello: issue.noServerHello, alerts },
            host: issue.host,
          };
        });
      }
      if (issue.offeredOnly + issue.chosen > 0) {
        this.ctx.reportLazily('tls_deprecated_version', () => {
          const versions = [...issue.versions].sort((a, b) => a - b).map(versionName).join(', ');
          const what = issue.chosen > 0
            ? `${plural(issue.chosen, 'handshake')} chose ${versions}`
            : `${plural(issue.offeredOnly, 'client')} offered only ${versions} (no ServerHello choosing it seen)`;
          return {
            type: 'tls_deprecated_version', severity: issue.chosen > 0 ? 'warning' : 'info', key: issue.key,
            summary: `Deprecated TLS with ${issue.key}: ${what} (RFC 8996).`,
            evidence: { server: issue.key, offeredOnly: issue.offeredOnly, chosen: issue.chosen, versions },
            host: issue.host,
          };
        });
      }
    }
  }
}

function count(m: Map<number, number>, key: number): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

function addCounts<K>(into: Map<K, number>, add: ReadonlyMap<K, number>): void {
  for (const [k, n] of add) into.set(k, (into.get(k) ?? 0) + n);
}

/** Workers' entries merged by key (counts added, the earliest `first`), in the order they first came (worker order on a tie). */
function mergeByKey<K, E extends { key: K; n: number; first: number }>(entries: readonly E[]): E[] {
  const byKey = new Map<K, E>();
  for (const e of entries) {
    const have = byKey.get(e.key);
    if (have === undefined) byKey.set(e.key, { ...e });
    else { have.n += e.n; if (e.first < have.first) have.first = e.first; }
  }
  return [...byKey.values()].sort((a, b) => a.first - b.first);
}

/** The first `max` keys to come, and the count of the others. */
function firstKept<K>(entries: ReadonlyArray<{ key: K; n: number; first: number }>, max: number): { kept: Array<{ key: K; n: number; first: number }>; droppedCount: number } {
  const merged = mergeByKey(entries);
  return { kept: merged.slice(0, max), droppedCount: merged.slice(max).reduce((n, e) => n + e.n, 0) };
}

function versionCounts(m: Map<number, number>): Record<string, number> {
  return Object.fromEntries([...m].sort((a, b) => b[0] - a[0]).map(([v, n]) => [versionName(v), n]));
}

function top(m: Map<string, number>): Array<[string, number]> {
  return [...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, TOP);
}

function topFingerprints(m: Map<number, number>, texts: Map<number, string>): Array<{ value: string; count: number }> {
  const out = [...m].map(([k, n]) => ({ value: texts.get(k) ?? '', count: n }));
  return out.sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : 1)).slice(0, TOP);
}
