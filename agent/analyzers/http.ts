/**
 * Cleartext HTTP/1.x on any TCP port: requests by method (http.request.method),
 * responses by status class (http.response.code), the Host of each request
 * (http.host, port stripped, lower-cased, learned as the flow's name), request
 * to first response byte times, top hosts, and two findings per host and
 * window: 5xx bursts (`http_errors`) and slow responses (`http_slow`).
 *
 * A flow is HTTP when the client's first payload starts with a method token
 * and a space (GET, POST, HEAD, PUT, DELETE, OPTIONS, PATCH, CONNECT, TRACE);
 * any other first payload (or the server speaking first) rules it out for the
 * flow's life. Both directions are then followed in sequence order: segments
 * Wireshark does not hand to the application (payloadRepeated) are skipped; on
 * a gap (a segment not starting where the last one ended, or cut by the
 * snapshot length) the direction waits for a segment that starts with a method
 * (client) or "HTTP/1." (server) and resynchronises there (counted).
 *
 * Per direction, an integer state machine: headers, a body of known length
 * (Content-Length), chunked encoding (chunk-size lines and trailers byte by
 * byte, chunk data skipped whole: bounded state), a body whose end is unknown
 * (a response without length: only a segment starting "HTTP/1." starts the
 * next message, counted), a tunnel (CONNECT 2xx, 101 Switching Protocols:
 * nothing more is parsed). A header block that spans segments is gathered in
 * a buffer from a fixed pool (`headerBuffers` buffers of `maxHeaderBytes`):
 * a block longer than a buffer, or no free buffer, is counted and the
 * direction resynchronises. Requests wait for their response in a per-flow
 * queue of `maxPipelined` entries (pipelining; further ones are counted and
 * not timed). Hosts are interned by hash in a bounded LRU table (`maxHosts`;
 * a string is built only for a new host); per-window counts are columns by
 * host id.
 *
 * Per packet nothing is allocated, except a host's name the first time it is
 * seen (then the flow learns it, once per flow and host).
 *
 * Flow-sharded workers (issue 13): a flow is in one worker, so its parsing
 * and timing are; a host's requests may come in several. A worker gives its
 * hosts' figures by name and its first-byte times; its coordinator adds them
 * up and judges the hosts (findings, top hosts) as one pipeline does. Exact
 * unless a worker's bounds (maxHosts, headerBuffers: each worker has them
 * whole) are reached where one pipeline's are not, or the reverse.
 */
import type { QuantileSketch, ReportDistribution } from '../../common/report.js';
import { TcpFlag } from '../decode/constants.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir, NameSource, type TcpPacketResult } from '../flow/index.js';
import { KeyTable } from './lib/key-table.js';
import { Quantiles } from './lib/quantiles.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { duration, plural, round9 } from './lib/format.js';

/** Method tokens recognised, in the order of the window's `methods`. */
export const HTTP_METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'] as const;
const METHOD_BYTES = HTTP_METHODS.map((m) => Uint8Array.from(m, (c) => c.charCodeAt(0)));
const M_HEAD = 2;
const M_CONNECT = 7;

// Flow verdicts.
const UNKNOWN = 0;
const HTTP = 1;
const NOT_HTTP = 2;

// Per-direction parser modes.
/** At a message start or inside its header block. */
const HEADERS = 0;
/** Skipping `remaining` body bytes (Content-Length). */
const BODY = 1;
/** Reading a chunk-size line (hex digits, then extensions up to LF). */
const CHUNK_SIZE = 2;
/** Skipping `remaining` chunk bytes. */
const CHUNK_DATA = 3;
/** Skipping the CRLF after chunk data, up to LF. */
const CHUNK_END = 4;
/** Trailer lines after the last chunk, up to an empty line. */
const TRAILERS = 5;
/** Lost the message boundaries (a gap, an oversized or unparsable header): waits for a segment starting a message. */
const LOST = 6;
/** A body without a length (ends at close): only a segment starting a message ends it. */
const UNTIL_CLOSE = 7;
/** CONNECT accepted or protocol switched: nothing more is HTTP. */
const TUNNEL = 8;

/** Chunk-size line state (`aux`): digits seen, and past the digits (extensions). */
const AUX_DIGITS = 1;
const AUX_EXT = 2;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;

/** Quoted header names, lower case. */
const H_HOST = bytes('host');
const H_CONTENT_LENGTH = bytes('content-length');
const H_TRANSFER_ENCODING = bytes('transfer-encoding');
const CHUNKED = bytes('chunked');
const HTTP1 = bytes('HTTP/1.');

/** Largest Content-Length or chunk size believed (2^53): beyond, the body's end is unknown. */
const MAX_LENGTH = Number.MAX_SAFE_INTEGER;

/** Request (its last byte) to the response's first byte; not Wireshark's http.time, which ends at the frame completing the response. */
const FIRST_BYTE_TIME: ReportDistribution = 'http.first_byte_time';

function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c + 32 : c);

export function createHttpAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new HttpAnalyzer(ctx);
}

interface HttpWindow {
  requests: number; responses: number; requestFrames: number; responseFrames: number;
  methods: Float64Array; statusClasses: Float64Array; codes: Float64Array; unmatchedResponses: number; negativeTimes: number;
  flows: number; resynced: number; gaps: number; malformed: number; untilClose: number;
  headerOversized: number; headerBuffersExhausted: number; pipelineDropped: number; hostsEvicted: number;
}

/** A host's figures in a window. */
interface HostStat { name: string; requests: number; responses: number; errors: number; timed: number; slow: number; max: number }

/** A flow-sharded worker's part of a window. */
interface HttpPart {
  hosts: HostStat[];
  /** Its first-byte times (Quantiles.sketch(true): all of them). */
  time: QuantileSketch;
}

function emptyWindow(): HttpWindow {
  return {
    requests: 0, responses: 0, requestFrames: 0, responseFrames: 0,
    methods: new Float64Array(HTTP_METHODS.length), statusClasses: new Float64Array(6), codes: new Float64Array(1000), unmatchedResponses: 0, negativeTimes: 0,
    flows: 0, resynced: 0, gaps: 0, malformed: 0, untilClose: 0,
    headerOversized: 0, headerBuffersExhausted: 0, pipelineDropped: 0, hostsEvicted: 0,
  };
}

class HttpAnalyzer implements Analyzer {
  readonly id = 'http';
  // per flow
  private readonly verdict: Uint8Array;
  /** The host id (and its generation) the flow last learned as its name (-1: none). */
  private readonly learnedHost: Int32Array;
  private readonly learnedGen: Uint32Array;
  /** Request queue: head and length per flow, entries at slot * q + i. */
  private readonly qHead: Uint8Array;
  private readonly qLen: Uint8Array;
  private readonly qTs: Float64Array;
  private readonly qHost: Int32Array;
  private readonly qGen: Uint32Array;
  private readonly qMethod: Uint8Array;
  /** The newest queued request is still being received (its body): its time moves to its end. */
  private readonly reqOpen: Uint8Array;
  private readonly q: number;
  // per flow direction (slot * 2 + dir)
  private readonly mode: Uint8Array;
  private readonly aux: Uint8Array;
  private readonly remaining: Float64Array;
  private readonly nextSeq: Uint32Array;
  private readonly hasNext: Uint8Array;
  /** When the current message's first byte arrived (a response's first byte). */
  private readonly msgTs: Float64Array;
  /** The status code of the response being received (counted in `statusCodes` when complete, as Wireshark shows it). */
  private readonly code: Int16Array;
  /** Header buffer held (-1: none) and its fill. */
  private readonly buf: Int32Array;
  private readonly bufLen: Int32Array;
  // header buffer pool
  private readonly pool: Uint8Array;
  private readonly bufSize: number;
  private readonly freeBufs: Int32Array;
  private nFree: number;
  // hosts: (fnv-1a, a second hash, length) -> id, LRU
  private readonly hosts: KeyTable;
  private readonly hostName: string[];
  private readonly hostGen: Uint32Array;
  // per host, current window
  private readonly hRequests: Float64Array;
  private readonly hResponses: Float64Array;
  private readonly hErrors: Float64Array;
  private readonly hTimed: Float64Array;
  private readonly hSlow: Float64Array;
  private readonly hMax: Float64Array;
  private readonly hListed: Uint8Array;
  private readonly hTouched: Int32Array;
  private nTouched = 0;

  // what one header block said (set by parseHeaders)
  private pMethod = -1;
  private pCode = -1;
  private pHost = -1;
  private pLength = -1;
  private pChunked = false;
  // this frame had a request / response
  private frameRequest = false;
  private frameResponse = false;

  private frameRequests = 0;
  private frameResponses = 0;
  private w = emptyWindow();
  private readonly time = new Quantiles();
  /** The last closed window's first-byte times: the report's distribution is the merge of the windows' (RangeStats). */
  private closedTime: QuantileSketch = this.time.sketch();
  /** A flow-sharded worker: the closed window's part. */
  private closedPart: HttpPart | null = null;

  private get cfg(): AnalyzerContext['config']['analyzers']['http'] { return this.ctx.config.analyzers.http; }

  constructor(private readonly ctx: AnalyzerContext) {
    const n = ctx.flows.capacity;
    const c = ctx.config.analyzers.http;
    this.verdict = new Uint8Array(n);
    this.learnedHost = new Int32Array(n).fill(-1);
    this.learnedGen = new Uint32Array(n);
    this.q = c.maxPipelined;
    this.qHead = new Uint8Array(n);
    this.qLen = new Uint8Array(n);
    this.qTs = new Float64Array(n * this.q);
    this.qHost = new Int32Array(n * this.q);
    this.qGen = new Uint32Array(n * this.q);
    this.qMethod = new Uint8Array(n * this.q);
    this.reqOpen = new Uint8Array(n);
    this.mode = new Uint8Array(2 * n);
    this.aux = new Uint8Array(2 * n);
    this.remaining = new Float64Array(2 * n);
    this.nextSeq = new Uint32Array(2 * n);
    this.hasNext = new Uint8Array(2 * n);
    this.msgTs = new Float64Array(2 * n);
    this.code = new Int16Array(2 * n);
    this.buf = new Int32Array(2 * n).fill(-1);
    this.bufLen = new Int32Array(2 * n);
    this.bufSize = c.maxHeaderBytes;
    // No more header blocks can wait at once than there are flow directions.
    const buffers = Math.min(c.headerBuffers, 2 * ctx.flows.capacity);
    this.pool = new Uint8Array(buffers * c.maxHeaderBytes);
    this.freeBufs = Int32Array.from({ length: buffers }, (_, i) => buffers - 1 - i);
    this.nFree = buffers;
    const m = c.maxHosts;
    this.hostName = new Array<string>(m).fill('');
    this.hostGen = new Uint32Array(m);
    this.hRequests = new Float64Array(m);
    this.hResponses = new Float64Array(m);
    this.hErrors = new Float64Array(m);
    this.hTimed = new Float64Array(m);
    this.hSlow = new Float64Array(m);
    this.hMax = new Float64Array(m);
    this.hListed = new Uint8Array(m);
    this.hTouched = new Int32Array(m);
    this.hosts = new KeyTable(m, 3, (id) => {
      // The least recently used host makes room: requests still queued for it are no longer attributed.
      this.hostGen[id]++;
      this.w.hostsEvicted++;
      this.resetHost(id);
    });
  }

  onFlowStart(slot: number): void {
    // The rest of the slot's state is reset when the flow turns out to be HTTP (startHttp): most flows never do.
    this.verdict[slot] = UNKNOWN;
  }

  /** The flow in `slot` is HTTP: its per-flow state starts empty. */
  private startHttp(slot: number): void {
    this.verdict[slot] = HTTP;
    this.learnedHost[slot] = -1;
    this.qHead[slot] = 0;
    this.qLen[slot] = 0;
    this.reqOpen[slot] = 0;
    for (let k = slot * 2; k < slot * 2 + 2; k++) {
      this.release(k);
      this.mode[k] = HEADERS;
      this.aux[k] = 0;
      this.remaining[k] = 0;
      this.hasNext[k] = 0;
    }
  }

  onFlowEnd(slot: number): void {
    this.release(slot * 2);
    this.release(slot * 2 + 1);
  }

  onTcpSegment(v: PacketView, slot: number, dir: number, tcp: TcpPacketResult): void {
    const verdict = this.verdict[slot]!;
    if (verdict === NOT_HTTP || v.payloadLen === 0 || tcp.payloadRepeated) return;
    const data = v.l4Data;
    const start = v.payloadOff;
    const end = Math.min(start + v.payloadCapLen, data.length);
    if (verdict === UNKNOWN) {
      if (dir !== Dir.CLIENT_TO_SERVER || matchMethod(data, start, end) < 0) { this.verdict[slot] = NOT_HTTP; return; }
      this.startHttp(slot);
      this.w.flows++;
    }
    const k = slot * 2 + dir;
    if (this.hasNext[k] === 1 && v.seq !== this.nextSeq[k]) {
      // A gap: the bytes in between are not here (yet: Wireshark's reassembly fills it with out-of-order segments).
      this.w.gaps++;
      const skipped = (v.seq - this.nextSeq[k]!) >>> 0;
      // Inside a body of known length, count the hole as body: the message boundary stays known.
      if (this.mode[k] === BODY && skipped < this.remaining[k]!) this.remaining[k]! -= skipped;
      else this.lose(k);
    }
    this.hasNext[k] = 1;
    this.nextSeq[k] = (v.seq + v.payloadLen) >>> 0;
    const mode = this.mode[k]!;
    if (mode === TUNNEL) return;
    this.frameRequest = false;
    this.frameResponse = false;
    if (mode === UNTIL_CLOSE && v.tcpFlags & TcpFlag.FIN) {
      // The close ends the body: Wireshark completes the response on this frame.
      this.mode[k] = LOST;
      this.frameResponse = false;
      this.responseDone(k);
      this.countFrame();
      return;
    }
    if (mode === LOST || mode === UNTIL_CLOSE) {
      if (!this.startsMessage(data, start, end, dir)) return;
      this.w.resynced++;
      this.mode[k] = HEADERS;
    }
    this.parse(data, start, end, k, slot, dir, v.ts);
    if (end - start < v.payloadLen) {
      // Cut by the snapshot length: the rest of the segment is a gap.
      this.w.gaps++;
      this.lose(k);
    }
    this.countFrame();
  }

  private responseDone(k: number): void {
    this.frameResponse = true;
    this.w.codes[this.code[k]!]++;
  }

  private countFrame(): void {
    if (this.frameRequest) { this.frameRequests++; this.w.requestFrames++; }
    if (this.frameResponse) { this.frameResponses++; this.w.responseFrames++; }
  }

  private startsMessage(data: Uint8Array, off: number, end: number, dir: number): boolean {
    return dir === Dir.CLIENT_TO_SERVER ? matchMethod(data, off, end) >= 0 : startsWith(data, off, end, HTTP1);
  }

  /** The direction lost its message boundaries. */
  private lose(k: number): void {
    this.release(k);
    if (this.mode[k] !== TUNNEL && this.mode[k] !== UNTIL_CLOSE) this.mode[k] = LOST;
  }

  private parse(data: Uint8Array, off: number, end: number, k: number, slot: number, dir: number, ts: number): void {
    while (off < end) {
      switch (this.mode[k]) {
        case HEADERS: off = this.headers(data, off, end, k, slot, dir, ts); break;
        case BODY:
        case CHUNK_DATA: {
          const n = Math.min(this.remaining[k]!, end - off);
          off += n;
          this.remaining[k]! -= n;
          if (this.remaining[k] === 0) {
            if (this.mode[k] === BODY) this.messageDone(k, slot, dir, ts);
            else { this.mode[k] = CHUNK_END; }
          }
          break;
        }
        case CHUNK_SIZE: off = this.chunkSize(data, off, end, k); break;
        case CHUNK_END:
          // The CRLF after chunk data (lenient: anything up to LF).
          while (off < end && data[off] !== LF) off++;
          if (off < end) { off++; this.mode[k] = CHUNK_SIZE; this.aux[k] = 0; this.remaining[k] = 0; }
          break;
        case TRAILERS:
          // aux: bytes on the current trailer line other than CR; an empty line ends the message.
          while (off < end) {
            const c = data[off++]!;
            if (c === LF) {
              if (this.aux[k] === 0) { this.messageDone(k, slot, dir, ts); break; }
              this.aux[k] = 0;
            } else if (c !== CR) this.aux[k] = 1;
          }
          break;
        default: return; // LOST, UNTIL_CLOSE, TUNNEL: the rest of the segment is not parsed
      }
    }
  }

  /** Header mode from `off`: returns where parsing goes on. */
  private headers(data: Uint8Array, off: number, end: number, k: number, slot: number, dir: number, ts: number): number {
    const b = this.buf[k]!;
    if (b >= 0) {
      // The block began in an earlier segment: append and look for its end.
      const base = b * this.bufSize;
      const had = this.bufLen[k]!;
      const n = Math.min(end - off, this.bufSize - had);
      for (let i = 0; i < n; i++) this.pool[base + had + i] = data[off + i]!;
      const to = base + had + n;
      const at = headerEnd(this.pool, Math.max(base, base + had - 3), to);
      if (at < 0) {
        if (had + n === this.bufSize) { this.w.headerOversized++; this.lose(k); return end; }
        this.bufLen[k] = had + n;
        return end;
      }
      this.release(k);
      this.headerBlock(this.pool, base, at, k, slot, dir, ts);
      return off + (at - base - had);
    }
    // A message starts here (blank lines between messages are tolerated).
    while (off < end && (data[off] === CR || data[off] === LF)) off++;
    if (off === end) return end;
    if (!this.startsMessage(data, off, end, dir)) { this.w.malformed++; this.lose(k); return end; }
    this.msgTs[k] = ts;
    const at = headerEnd(data, off, end);
    if (at >= 0) { this.headerBlock(data, off, at, k, slot, dir, ts); return at; }
    // Incomplete: keep it in a buffer from the pool until the rest comes.
    if (end - off >= this.bufSize) { this.w.headerOversized++; this.lose(k); return end; }
    if (this.nFree === 0) { this.w.headerBuffersExhausted++; this.lose(k); return end; }
    const nb = this.freeBufs[--this.nFree]!;
    this.buf[k] = nb;
    // Copied with a loop: `set(subarray(...))` would allocate a view.
    const base = nb * this.bufSize;
    for (let i = off; i < end; i++) this.pool[base + i - off] = data[i]!;
    this.bufLen[k] = end - off;
    return end;
  }

  private release(k: number): void {
    const b = this.buf[k]!;
    if (b < 0) return;
    this.freeBufs[this.nFree++] = b;
    this.buf[k] = -1;
    this.bufLen[k] = 0;
  }

  /** A complete header block in d[start, end) (end past the blank line). */
  private headerBlock(d: Uint8Array, start: number, end: number, k: number, slot: number, dir: number, ts: number): void {
    if (!this.parseHeaders(d, start, end, dir)) { this.w.malformed++; this.lose(k); return; }
    const w = this.w;
    const chunked = this.pChunked;
    const length = this.pLength;
    if (dir === Dir.CLIENT_TO_SERVER) {
      w.requests++;
      w.methods[this.pMethod]++;
      const host = this.pHost;
      if (host >= 0) {
        this.hRequests[host]++;
        this.touchHost(host);
        if (this.learnedHost[slot] !== host || this.learnedGen[slot] !== this.hostGen[host]) {
          this.learnedHost[slot] = host;
          this.learnedGen[slot] = this.hostGen[host]!;
          this.ctx.names.learn(slot, NameSource.HTTP_HOST, this.hostName[host]!);
        }
      }
      this.enqueue(slot, host);
      // A request without Content-Length or chunked encoding has no body (RFC 9112 6.3).
      this.bodyMode(k, slot, dir, chunked, length < 0 ? 0 : length, ts);
      return;
    }
    const code = this.pCode;
    w.responses++;
    const cls = Math.floor(code / 100);
    w.statusClasses[cls >= 1 && cls <= 5 ? cls : 0]++;
    this.code[k] = code;
    if (code >= 100 && code < 200 && code !== 101) { this.responseDone(k); return; } // interim: the request still waits for its response
    let method = -1;
    let host = -1;
    let t = -1;
    if (this.qLen[slot] === 0) {
      w.unmatchedResponses++;
    } else {
      const i = slot * this.q + this.qHead[slot]!;
      method = this.qMethod[i]!;
      if (this.qHost[i]! >= 0 && this.qGen[i] === this.hostGen[this.qHost[i]!]) host = this.qHost[i]!;
      t = this.msgTs[k]! - this.qTs[i]!;
      this.qHead[slot] = (this.qHead[slot]! + 1) % this.q;
      this.qLen[slot]--;
      if (this.qLen[slot] === 0) this.reqOpen[slot] = 0;
      if (t < 0) { w.negativeTimes++; t = -1; } else this.time.add(t);
    }
    if (host >= 0) {
      this.touchHost(host);
      this.hResponses[host]++;
      if (code >= 500 && code < 600) this.hErrors[host]++;
      if (t >= 0) {
        this.hTimed[host]++;
        if (round9(t) > this.cfg.slowThreshold) this.hSlow[host]++;
        if (t > this.hMax[host]!) this.hMax[host] = t;
      }
    }
    if (code === 101 || (method === M_CONNECT && code >= 200 && code < 300)) {
      // Another protocol follows in both directions.
      this.responseDone(k);
      this.mode[k] = TUNNEL;
      this.mode[k ^ 1] = TUNNEL;
      this.release(k ^ 1);
      return;
    }
    // No body: HEAD, 1xx, 204, 304 (RFC 9112 6.3).
    if (method === M_HEAD || code < 200 || code === 204 || code === 304) { this.messageDone(k, slot, dir, ts); return; }
    if (!chunked && length < 0) { w.untilClose++; this.mode[k] = UNTIL_CLOSE; return; }
    this.bodyMode(k, slot, dir, chunked, length, ts);
  }

  private bodyMode(k: number, slot: number, dir: number, chunked: boolean, length: number, ts: number): void {
    if (chunked) { this.mode[k] = CHUNK_SIZE; this.aux[k] = 0; this.remaining[k] = 0; return; }
    if (length > 0) { this.mode[k] = BODY; this.remaining[k] = length; return; }
    this.messageDone(k, slot, dir, ts);
  }

  /** A message ended at packet time `ts`. */
  private messageDone(k: number, slot: number, dir: number, ts: number): void {
    this.mode[k] = HEADERS;
    // Wireshark shows http.request / http.response on the frame that completes the message, body included.
    if (dir === Dir.CLIENT_TO_SERVER) this.frameRequest = true; else this.responseDone(k);
    if (dir !== Dir.CLIENT_TO_SERVER || this.reqOpen[slot] === 0) return;
    // The request is sent once its body is: its response time runs from there.
    this.reqOpen[slot] = 0;
    this.qTs[slot * this.q + (this.qHead[slot]! + this.qLen[slot]! - 1) % this.q] = ts;
  }

  private enqueue(slot: number, host: number): void {
    if (this.qLen[slot] === this.q) { this.w.pipelineDropped++; this.reqOpen[slot] = 0; return; }
    const i = slot * this.q + (this.qHead[slot]! + this.qLen[slot]!) % this.q;
    this.qTs[i] = this.msgTs[slot * 2]!;
    this.qHost[i] = host;
    this.qGen[i] = host >= 0 ? this.hostGen[host]! : 0;
    this.qMethod[i] = this.pMethod;
    this.qLen[slot]++;
    this.reqOpen[slot] = 1;
  }

  /** Reads the chunk-size line: hex digits into `remaining`, extensions skipped, up to LF. */
  private chunkSize(d: Uint8Array, off: number, end: number, k: number): number {
    while (off < end) {
      const c = d[off++]!;
      if (c === LF) {
        if ((this.aux[k]! & AUX_DIGITS) === 0) { this.w.malformed++; this.lose(k); return end; }
        if (this.remaining[k] === 0) { this.mode[k] = TRAILERS; this.aux[k] = 0; } else this.mode[k] = CHUNK_DATA;
        return off;
      }
      if (this.aux[k]! & AUX_EXT) continue;
      const h = hexValue(c);
      if (h >= 0) {
        const size = this.remaining[k]! * 16 + h;
        if (size > MAX_LENGTH) { this.w.malformed++; this.lose(k); return end; }
        this.remaining[k] = size;
        this.aux[k] = AUX_DIGITS;
      } else if (c === CR || c === SEMICOLON || c === SP || c === HTAB) {
        this.aux[k] = this.aux[k]! | AUX_EXT;
      } else { this.w.malformed++; this.lose(k); return end; }
    }
    return off;
  }

  /**
   * Parses a header block d[start, end): the request line's method or the
   * status line's code, Host, Content-Length, Transfer-Encoding. False when
   * the start line is not HTTP/1.x.
   */
  private parseHeaders(d: Uint8Array, start: number, end: number, dir: number): boolean {
    this.pMethod = -1;
    this.pCode = -1;
    this.pHost = -1;
    this.pLength = -1;
    this.pChunked = false;
    let eol = lineEnd(d, start, end);
    if (dir === Dir.CLIENT_TO_SERVER) {
      this.pMethod = matchMethod(d, start, eol);
      if (this.pMethod < 0) return false;
    } else {
      // "HTTP/1.x SP ddd"
      const p = start + HTTP1.length + 2;
      if (!startsWith(d, start, eol, HTTP1) || p + 3 > eol || d[p - 1] !== SP) return false;
      let code = 0;
      for (let i = p; i < p + 3; i++) {
        const c = d[i]! - 0x30;
        if (c < 0 || c > 9) return false;
        code = code * 10 + c;
      }
      if (code < 100) return false;
      this.pCode = code;
    }
    for (let line = eol + 1; line < end; line = eol + 1) {
      eol = lineEnd(d, line, end);
      let colon = line;
      while (colon < eol && d[colon] !== COLON) colon++;
      if (colon === eol) continue;
      let vs = colon + 1;
      let ve = eol;
      while (vs < ve && (d[vs] === SP || d[vs] === HTAB)) vs++;
      while (ve > vs && (d[ve - 1] === SP || d[ve - 1] === HTAB || d[ve - 1] === CR)) ve--;
      if (nameIs(d, line, colon, H_HOST)) {
        if (dir === Dir.CLIENT_TO_SERVER && this.pHost < 0) this.pHost = this.host(d, vs, ve);
      } else if (nameIs(d, line, colon, H_CONTENT_LENGTH)) {
        let n = 0;
        let digits = 0;
        for (let i = vs; i < ve; i++) {
          const c = d[i]! - 0x30;
          if (c < 0 || c > 9) { digits = 0; break; }
          n = n * 10 + c;
          digits++;
        }
        if (digits > 0 && n <= MAX_LENGTH) this.pLength = n;
      } else if (nameIs(d, line, colon, H_TRANSFER_ENCODING)) {
        if (contains(d, vs, ve, CHUNKED)) this.pChunked = true;
      }
    }
    return true;
  }

  /** The host id of a Host value d[vs, ve): port stripped, lower-cased, interned (-1: empty). */
  private host(d: Uint8Array, vs: number, ve: number): number {
    let e = vs;
    if (vs < ve && d[vs] === 0x5b /* [ */) {
      while (e < ve && d[e] !== 0x5d /* ] */) e++;
      if (e < ve) e++;
    } else {
      while (e < ve && d[e] !== COLON) e++;
    }
    const n = e - vs;
    if (n === 0 || n > 253) return -1;
    let h1 = 0x811c9dc5;
    let h2 = 0x12345678;
    for (let i = vs; i < e; i++) {
      const c = lower(d[i]!);
      h1 = Math.imul(h1 ^ c, 16777619);
      h2 = Math.imul(h2 + c, 0x5bd1e995) ^ (h2 >>> 15);
    }
    const t = this.hosts;
    t.key[0] = h1 >>> 0;
    t.key[1] = h2 >>> 0;
    t.key[2] = n;
    const id = t.findOrInsert();
    if (t.inserted) {
      let s = '';
      for (let i = vs; i < e; i++) s += String.fromCharCode(lower(d[i]!));
      this.hostName[id] = s;
      this.resetHost(id);
    }
    return id;
  }

  private touchHost(id: number): void {
    if (this.hListed[id] === 1) return;
    this.hListed[id] = 1;
    this.hTouched[this.nTouched++] = id;
  }

  private resetHost(id: number): void {
    this.hRequests[id] = 0;
    this.hResponses[id] = 0;
    this.hErrors[id] = 0;
    this.hTimed[id] = 0;
    this.hSlow[id] = 0;
    this.hMax[id] = 0;
  }

  closeWindow(): Metrics {
    const w = this.w;
    const hosts: HostStat[] = [];
    for (let i = 0; i < this.nTouched; i++) {
      const id = this.hTouched[i]!;
      this.hListed[id] = 0;
      if (this.hRequests[id]! > 0 || this.hResponses[id]! > 0) {
        hosts.push({ name: this.hostName[id]!, requests: this.hRequests[id]!, responses: this.hResponses[id]!, errors: this.hErrors[id]!, timed: this.hTimed[id]!, slow: this.hSlow[id]!, max: this.hMax[id]! });
        this.resetHost(id);
      }
    }
    this.nTouched = 0;
    // A flow-sharded worker has some of a host's requests: its coordinator judges the hosts.
    const worker = this.ctx.shardRole === 'worker';
    if (worker) this.closedPart = { hosts, time: this.time.sketch(true) };
    const judged = this.judgeHosts(hosts, !worker);
    const s = this.time.summary();
    const metrics: Metrics = {
      requests: w.requests,
      responses: w.responses,
      requestFrames: w.requestFrames,
      responseFrames: w.responseFrames,
      methods: Object.fromEntries(HTTP_METHODS.map((m, i) => [m, w.methods[i]!]).filter(([, n]) => n !== 0)),
      statusClasses: { '1xx': w.statusClasses[1]!, '2xx': w.statusClasses[2]!, '3xx': w.statusClasses[3]!, '4xx': w.statusClasses[4]!, '5xx': w.statusClasses[5]!, other: w.statusClasses[0]! },
      statusCodes: Object.fromEntries([...w.codes].map((n, code) => [String(code), n]).filter(([, n]) => n !== 0)),
      unmatchedResponses: w.unmatchedResponses,
      count: s.count, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max,
      negativeTimes: w.negativeTimes,
      flows: w.flows,
      hosts: judged.top,
      hostsSeen: judged.seen,
      bodiesUntilClose: w.untilClose,
      gaps: w.gaps,
      resynced: w.resynced,
      malformed: w.malformed,
      dropped: { headerOversized: w.headerOversized, headerBuffersExhausted: w.headerBuffersExhausted, pipelineDropped: w.pipelineDropped, hostsEvicted: w.hostsEvicted },
    };
    this.closedTime = this.time.sketch();
    this.time.clear();
    this.w = emptyWindow();
    return metrics;
  }

  windowPart(): HttpPart | null {
    return this.closedPart;
  }

  /**
   * Counts add up (key order and all: every worker gives the same keys, but
   * `methods` only those seen); the first-byte times are all workers'; a
   * host's figures add up by name (its largest time the largest), then the
   * hosts are judged.
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly HttpPart[];
    const metrics = sumMetrics(input.metrics);
    const methods = metrics['methods'] as Record<string, number>;
    metrics['methods'] = Object.fromEntries(HTTP_METHODS.filter((m) => (methods[m] ?? 0) !== 0).map((m) => [m, methods[m]!]));
    const time = new Quantiles();
    const byName = new Map<string, HostStat>();
    for (const p of parts) {
      time.addSketch(p.time);
      for (const h of p.hosts) {
        const have = byName.get(h.name);
        if (have === undefined) { byName.set(h.name, { ...h }); continue; }
        have.requests += h.requests;
        have.responses += h.responses;
        have.errors += h.errors;
        have.timed += h.timed;
        have.slow += h.slow;
        if (h.max > have.max) have.max = h.max;
      }
    }
    const s = time.summary();
    Object.assign(metrics, { count: s.count, p50: s.p50, p90: s.p90, p99: s.p99, max: s.max });
    const judged = this.judgeHosts([...byName.values()], true);
    metrics['hosts'] = judged.top;
    metrics['hostsSeen'] = judged.seen;
    return metrics;
  }

  /** The window's hosts: the busiest listed, and (when `report`) their http_errors and http_slow findings. */
  private judgeHosts(hosts: HostStat[], report: boolean): { top: Array<{ host: string; requests: number; responses: number; serverErrors: number }>; seen: number } {
    const c = this.cfg;
    hosts.sort((a, b) => b.requests - a.requests || b.responses - a.responses || (a.name < b.name ? -1 : 1));
    if (report) {
      const errorHosts = hosts.filter((h) => h.errors >= c.errorBurst).sort((a, b) => b.errors - a.errors);
      for (const h of errorHosts) {
        const { name, errors, responses } = h;
        this.ctx.reportLazily('http_errors', () => ({
          type: 'http_errors',
          severity: errors >= 5 * c.errorBurst ? 'critical' : 'warning',
          key: name,
          summary: `${name} answered ${plural(errors, 'HTTP request')} with a server error (5xx) out of ${plural(responses, 'response')}.`,
          evidence: { host: name, serverErrors: errors, responses, requests: h.requests },
        }));
      }
      const p = c.slowPercentile / 100;
      // The percentile is over the threshold when more than n - ceil(p n) responses are (lib/quantiles' definition).
      const slow = hosts.filter((h) => h.timed >= c.slowMinResponses && h.slow > h.timed - Math.ceil(p * h.timed)).sort((a, b) => b.max - a.max);
      for (const h of slow) {
        const { name, timed: n, slow: over, max } = h;
        this.ctx.reportLazily('http_slow', () => ({
          type: 'http_slow',
          severity: 'warning',
          key: name,
          summary: `${name} is slow to answer HTTP: ${over} of ${plural(n, 'response')} took more than ${duration(c.slowThreshold)} to start (max ${duration(max)}).`,
          evidence: { host: name, responses: n, slowResponses: over, maxSeconds: round9(max), threshold: c.slowThreshold, percentile: c.slowPercentile },
        }));
      }
    }
    const top = hosts.slice(0, c.topHosts).map((h) => ({ host: h.name, requests: h.requests, responses: h.responses, serverErrors: h.errors }));
    return { top, seen: hosts.length };
  }

  counters(): Record<string, number> {
    return { 'http.request': this.frameRequests, 'http.response': this.frameResponses };
  }

  rangeInputs(): { stats: Record<string, QuantileSketch> } {
    return { stats: { [FIRST_BYTE_TIME]: this.closedTime } };
  }
}

/** The method index when d[off, end) starts with a method token and a space, else -1. */
export function matchMethod(d: Uint8Array, off: number, end: number): number {
  const first = off < end ? d[off]! : -1;
  for (let m = 0; m < METHOD_BYTES.length; m++) {
    const t = METHOD_BYTES[m]!;
    if (t[0] !== first || off + t.length >= end) continue;
    let i = 1;
    while (i < t.length && d[off + i] === t[i]) i++;
    if (i === t.length && d[off + i] === SP) return m;
  }
  return -1;
}

function startsWith(d: Uint8Array, off: number, end: number, t: Uint8Array): boolean {
  if (end - off < t.length) return false;
  for (let i = 0; i < t.length; i++) if (d[off + i] !== t[i]) return false;
  return true;
}

/** Index of the LF ending the line at `off`, or `end`. */
function lineEnd(d: Uint8Array, off: number, end: number): number {
  while (off < end && d[off] !== LF) off++;
  return off;
}

/** Index just past the blank line ending a header block (CRLFCRLF or LFLF, also CRLF LF) in d[off, end), or -1. */
function headerEnd(d: Uint8Array, off: number, end: number): number {
  for (let i = off; i < end; i++) {
    if (d[i] !== LF) continue;
    if (i + 1 < end && d[i + 1] === LF) return i + 2;
    if (i + 2 < end && d[i + 1] === CR && d[i + 2] === LF) return i + 3;
  }
  return -1;
}

/** Whether the header name d[s, e) is `name` (lower case), ignoring case and trailing blanks. */
function nameIs(d: Uint8Array, s: number, e: number, name: Uint8Array): boolean {
  while (e > s && (d[e - 1] === SP || d[e - 1] === HTAB)) e--;
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (lower(d[s + i]!) !== name[i]) return false;
  return true;
}

/** Whether d[s, e) contains `t` (lower case), ignoring case. */
function contains(d: Uint8Array, s: number, e: number, t: Uint8Array): boolean {
  for (let i = s; i + t.length <= e; i++) {
    let j = 0;
    while (j < t.length && lower(d[i + j]!) === t[j]) j++;
    if (j === t.length) return true;
  }
  return false;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = lower(c);
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}
