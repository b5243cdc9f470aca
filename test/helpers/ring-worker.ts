/**
 * Consumer thread of test/packet-ring.test.ts, and the record hash both sides
 * compute. The worker attaches to the ring in workerData, optionally waits for
 * a gate word to open (a paused consumer), reads until END and posts what it
 * saw. Loaded on the main thread (as `node --test dist/test/` may), it does nothing.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { FrameRecord } from '../../agent/capture/frame-record.js';
import { PacketRing, RingRecord } from '../../agent/core/packet-ring.js';

export type RingWorkerMode = 'verify' | 'count' | 'wait-close';

export interface RingWorkerInput {
  mode: RingWorkerMode;
  ring: SharedArrayBuffer;
  /** When given, the worker waits until word 0 is non-zero before reading (a paused consumer). */
  gate?: SharedArrayBuffer;
  /** verify: packets' seq must be 0, 1, 2, ... (blocking writes); else only increasing. */
  consecutive?: boolean;
}

export interface RingWorkerResult {
  packets: number;
  marks: number;
  /** Order-sensitive hash of every record (seq, now, flags; a packet's fields and bytes). */
  hash: number;
  /** Packets whose seq broke the expected order. */
  seqErrors: number;
  /** verify: packets whose now or flags are not packetNow / packetFlags of the packet. */
  clockErrors: number;
  /** verify: marks whose seq, now or flags are not markSeq / markNow / packetFlags(markSeq) of the packet before them. */
  markErrors: number;
  /** Times a record started before the one read before it (the ring wrapped). */
  wraps: number;
  /** occupiedBytes() when END was read. */
  occupiedAtEnd: number;
  /** Records written as the producer published them, read from this side. */
  recordsWritten: number;
  fullDrops: number;
  /** count: milliseconds from the first record to END. */
  elapsedMs: number;
  /** wait-close: how long waitForData waited, its answer, then what read returned. */
  waitedMs: number;
  waitAnswer: boolean;
  kindAfterWait: number;
}

const FNV_PRIME = 16777619;
const FNV_OFFSET = 0x811c9dc5 | 0;
const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

export function mix(h: number, x: number): number {
  return Math.imul(h ^ x, FNV_PRIME);
}

export function mixFloat(h: number, x: number): number {
  f64[0] = x;
  return mix(mix(h, f64Words[0]!), f64Words[1]!);
}

let hashedBytes: Uint8Array = new Uint8Array(0);
let hashedView: DataView = new DataView(hashedBytes.buffer);

/** FNV-1a of a packet's bytes (four at a time, then the last ones), folded with every FrameRecord field the ring carries. */
export function recordHash(rec: FrameRecord): number {
  let h = FNV_OFFSET;
  const data = rec.data;
  if (data !== hashedBytes) {
    hashedBytes = data;
    hashedView = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  const end = rec.offset + rec.capLen;
  let i = rec.offset;
  for (; i + 4 <= end; i += 4) h = Math.imul(h ^ hashedView.getInt32(i, true), FNV_PRIME);
  for (; i < end; i++) h = Math.imul(h ^ data[i]!, FNV_PRIME);
  h = mix(h, rec.capLen);
  h = mix(h, rec.wireLen);
  h = mix(h, rec.tsNsec);
  h = mix(h, rec.linkType);
  h = mix(h, rec.interfaceId);
  h = mixFloat(h, rec.tsSec);
  h = mixFloat(h, rec.number);
  return mixFloat(h, rec.fileOffset);
}

/** What the producer folds in per packet and per mark; the worker folds the same from what it reads. */
export const foldPacket = (h: number, seq: number, now: number, flags: number, recHash: number): number =>
  mix(mix(mixFloat(mixFloat(h, seq), now), flags), recHash);
export const foldMark = (h: number, seq: number, now: number, flags: number): number => mix(mixFloat(mixFloat(h, seq), now), flags);

/**
 * The clock a verify producer gives packet `seq` (the worker checks it): now
 * from its timestamp, flags from its seq (more than the two clock bits, so the
 * whole word is carried).
 */
export const packetNow = (rec: FrameRecord): number => rec.tsSec + rec.tsNsec / 1e9;
export const packetFlags = (seq: number): number => seq & 0xffff;
/**
 * ... and the mark it writes after packet `seq` at `now`: the next packet's seq
 * and flags, half a second later. None is the packet's own, so a mark read that
 * left the consumer's fields as the packet set them would show.
 */
export const markSeq = (seq: number): number => seq + 1;
export const markNow = (now: number): number => now + 0.5;

function run(input: RingWorkerInput): RingWorkerResult {
  const ring = PacketRing.attach(input.ring);
  const out: RingWorkerResult = {
    packets: 0, marks: 0, hash: 0, seqErrors: 0, clockErrors: 0, markErrors: 0, wraps: 0, occupiedAtEnd: -1,
    recordsWritten: 0, fullDrops: 0, elapsedMs: 0, waitedMs: 0, waitAnswer: false, kindAfterWait: 0,
  };
  const rec = new FrameRecord();
  if (input.mode === 'wait-close') {
    const t0 = performance.now();
    out.waitAnswer = ring.waitForData(60_000);
    out.waitedMs = performance.now() - t0;
    out.kindAfterWait = ring.read(rec);
    return out;
  }
  if (input.gate) {
    const gate = new Int32Array(input.gate);
    while (Atomics.load(gate, 0) === 0) Atomics.wait(gate, 0, 0, 1000);
  }
  const verify = input.mode === 'verify';
  let lastSeq = -1;
  let lastNow = NaN;
  let lastOffset = -1;
  let t0 = 0;
  for (;;) {
    const kind = ring.read(rec);
    if (kind === RingRecord.EMPTY) {
      ring.waitForData(1000);
      continue;
    }
    if (kind === RingRecord.END) break;
    if (t0 === 0) t0 = performance.now();
    if (kind === RingRecord.MARK) {
      out.marks++;
      if (verify) {
        out.hash = foldMark(out.hash, ring.seq, ring.now, ring.flags);
        if (ring.seq !== markSeq(lastSeq) || ring.now !== markNow(lastNow) || ring.flags !== packetFlags(markSeq(lastSeq))) out.markErrors++;
      }
      continue;
    }
    out.packets++;
    if (rec.offset < lastOffset) out.wraps++;
    lastOffset = rec.offset;
    if (!verify) continue;
    const seq = ring.seq;
    if (input.consecutive ? seq !== lastSeq + 1 : seq <= lastSeq) out.seqErrors++;
    if (ring.now !== packetNow(rec) || ring.flags !== packetFlags(seq)) out.clockErrors++;
    lastSeq = seq;
    lastNow = ring.now;
    out.hash = foldPacket(out.hash, seq, ring.now, ring.flags, recordHash(rec));
  }
  out.elapsedMs = performance.now() - t0;
  out.occupiedAtEnd = ring.occupiedBytes();
  out.recordsWritten = ring.recordsWritten;
  out.fullDrops = ring.fullDrops;
  return out;
}

if (!isMainThread && parentPort) {
  parentPort.postMessage(run(workerData as RingWorkerInput));
}
