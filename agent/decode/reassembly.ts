/**
 * IP fragment tracking in bounded memory. Like Wireshark (IP reassembly on by
 * default), a fragmented datagram's transport is decoded once, on the frame
 * that completes it; other fragments carry only IP. The first bytes of the
 * datagram (enough for transport headers and a DNS question) are kept in a
 * pooled buffer; the rest is only accounted as byte ranges.
 *
 * At most `maxDatagrams` are pending; past that the oldest is evicted and
 * counted, and datagrams older than `timeoutSec` of packet time are dropped
 * (Linux's ipfrag_time is 30 s): when a later fragment of theirs comes, when
 * a new datagram of their host pair starts, and at the end of each window
 * (`expireAt`, from the pipeline). Never when another host pair's datagram
 * starts: a flow-sharded worker (issue 13) sees only its host pairs'
 * fragments, and its datagrams must time out where one pipeline's do. Host
 * pairs are told apart by their shard hash (`pairHash`), so pairs that share
 * one also share a worker.
 */
import { Anomaly, type AnomalyCounters } from './anomaly.js';

/** Disjoint byte ranges one datagram may have (each a hole before the next); more drops it. */
const MAX_HOLES = 64;

/** Bytes of each datagram kept for decoding its headers once complete. */
export const HEAD_BYTES = 1024;

class Pending {
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  version = 0;
  id = 0;
  proto = 0;
  firstTs = 0;
  /** Datagram payload length once the last fragment is seen, else -1. */
  total = -1;
  /** Sorted, merged [start, end) byte ranges received. */
  readonly ranges: number[] = [];
  readonly head = new Uint8Array(HEAD_BYTES);
  headLen = 0;
  hash = 0;
  /** The shard hash of its host pair, and its neighbours in that pair's list (oldest first; circular: the head's `pairPrev` is the tail). */
  pair = 0;
  pairPrev: Pending | null = null;
  pairNext: Pending | null = null;
}

/** The shard hash of an address pair (decode/shard-hash.ts addressPairHash; passed in: that module imports ip.ts, which imports this one). */
export type PairHash = (version: 4 | 6, a: ArrayLike<number>, b: ArrayLike<number>) => number;

export class Reassembler {
  private readonly pending = new Map<number, Pending>();
  /** Host pair (shard hash) -> its oldest pending datagram. */
  private readonly pairs = new Map<number, Pending>();
  private readonly free: Pending[] = [];
  /** Longest distance from its home slot at which a live entry was placed (0 when none collided). */
  private maxProbe = 0;
  /** Buffer and length of the datagram completed by the last `add`. */
  completed: Uint8Array = new Uint8Array(0);
  completedCapLen = 0;
  /** Datagrams timed out by `expireAt` so far (also counted as ip.reassembly_timeout): the ip_fragments analyzer puts them in the window that ends there. */
  expiredAtWindowEnd = 0;

  constructor(
    private readonly maxDatagrams: number,
    private readonly timeoutSec: number,
    private readonly anomalies: AnomalyCounters,
    private readonly pairHash: PairHash,
  ) {}

  get size(): number { return this.pending.size; }

  /**
   * Adds a fragment whose payload bytes are all captured. Returns the length of
   * the datagram's payload when this fragment completes it (its first bytes
   * are then in `completed`), else -1.
   */
  add(version: number, src: Uint32Array, dst: Uint32Array, id: number, proto: number, ts: number,
    offset: number, more: boolean, d: Uint8Array, payloadOff: number, payloadLen: number): number {
    let hash = (id * 31 + proto + version * 7) | 0;
    for (let i = 0; i < 4; i++) hash = (Math.imul(hash, 16777619) ^ src[i]! ^ Math.imul(dst[i]!, 3)) | 0;
    // Open addressing over the Map's keys. Removing an entry leaves a hole in the
    // probe path of entries placed after it (IPv6 ids are 32 bits the sender picks,
    // so colliding keys can be crafted), so the search steps over empty slots, as
    // far as any live entry was placed from its home slot.
    let entry: Pending | undefined;
    for (let k = 0; k <= this.maxProbe; k++) {
      const e = this.pending.get((hash + k) | 0);
      if (e !== undefined && this.matches(e, version, src, dst, id, proto)) { entry = e; break; }
    }
    if (entry !== undefined && ts - entry.firstTs > this.timeoutSec) {
      this.anomalies.add(Anomaly['ip.reassembly_timeout']);
      this.release(entry);
      entry = undefined;
    }
    if (entry === undefined) entry = this.create(hash, version, src, dst, id, proto, ts);
    if (!more) entry.total = offset + payloadLen;
    if (offset < HEAD_BYTES) {
      const n = Math.min(payloadLen, HEAD_BYTES - offset);
      entry.head.set(d.subarray(payloadOff, payloadOff + n), offset);
      if (offset + n > entry.headLen) entry.headLen = offset + n;
    }
    if (this.insertRange(entry.ranges, offset, offset + payloadLen)) this.anomalies.add(Anomaly['ip.fragment_overlap']);
    if (entry.ranges.length > MAX_HOLES * 2) {
      // Hundreds of disjoint pieces are an attack on the reassembler, not a datagram: drop it, counted.
      this.anomalies.add(Anomaly['ip.fragment_too_many']);
      this.release(entry);
      return -1;
    }
    if (entry.total < 0 || entry.ranges.length !== 2 || entry.ranges[0] !== 0 || entry.ranges[1]! < entry.total) return -1;
    const total = entry.total;
    // Hand the head out through a spare buffer so the entry can be recycled now.
    this.completed = entry.head;
    this.completedCapLen = Math.min(entry.headLen, total);
    this.remove(entry);
    this.free.push(entry);
    return total;
  }

  private matches(e: Pending, version: number, src: Uint32Array, dst: Uint32Array, id: number, proto: number): boolean {
    if (e.version !== version || e.id !== id || e.proto !== proto) return false;
    for (let i = 0; i < 4; i++) if (e.src[i] !== src[i] || e.dst[i] !== dst[i]) return false;
    return true;
  }

  private create(home: number, version: number, src: Uint32Array, dst: Uint32Array, id: number, proto: number, ts: number): Pending {
    const pair = this.pairHash(version === 6 ? 6 : 4, src, dst);
    this.expirePair(pair, ts);
    if (this.pending.size >= this.maxDatagrams) {
      // Full: the oldest gives way (a timeout if it is one, not yet swept because another host pair's).
      const oldest = this.pending.values().next().value as Pending;
      this.anomalies.add(ts - oldest.firstTs > this.timeoutSec ? Anomaly['ip.reassembly_timeout'] : Anomaly['ip.reassembly_evicted']);
      this.release(oldest);
    }
    let k = 0;
    while (this.pending.has((home + k) | 0)) k++;
    if (k > this.maxProbe) this.maxProbe = k;
    const hash = (home + k) | 0;
    const e = this.free.pop() ?? new Pending();
    e.version = version; e.id = id; e.proto = proto; e.firstTs = ts; e.total = -1;
    e.ranges.length = 0; e.headLen = 0; e.hash = hash;
    e.src.set(src); e.dst.set(dst);
    this.pending.set(hash, e);
    e.pair = pair;
    const head = this.pairs.get(pair);
    if (head === undefined) {
      e.pairPrev = e;
      e.pairNext = null;
      this.pairs.set(pair, e);
    } else {
      const tail = head.pairPrev!;
      tail.pairNext = e;
      e.pairPrev = tail;
      e.pairNext = null;
      head.pairPrev = e;
    }
    return e;
  }

  /** Drops the datagrams of host pair `pair` that timed out by `ts`; its list is oldest first. */
  private expirePair(pair: number, ts: number): void {
    for (let e = this.pairs.get(pair); e !== undefined && ts - e.firstTs > this.timeoutSec; e = this.pairs.get(pair)) {
      this.anomalies.add(Anomaly['ip.reassembly_timeout']);
      this.release(e);
    }
  }

  /**
   * A window ends at packet time `ts`: every datagram older than the timeout
   * then is dropped (counted in `expiredAtWindowEnd` too). All are looked at,
   * not only the oldest ones: with timestamps going backwards the Map's order
   * is not their age, and a worker's subset must give the same ones.
   */
  expireAt(ts: number): void {
    for (const e of this.pending.values()) {
      if (ts - e.firstTs <= this.timeoutSec) continue;
      this.anomalies.add(Anomaly['ip.reassembly_timeout']);
      this.expiredAtWindowEnd++;
      this.release(e);
    }
  }

  private release(e: Pending): void {
    this.remove(e);
    // The completed buffer may alias this entry's head; keep the pool small enough to matter little.
    if (this.free.length < 64) this.free.push(e);
  }

  private remove(e: Pending): void {
    this.pending.delete(e.hash);
    if (this.pending.size === 0) this.maxProbe = 0;
    // Out of its host pair's list.
    const head = this.pairs.get(e.pair)!;
    const next = e.pairNext;
    if (head === e) {
      if (next === null) this.pairs.delete(e.pair);
      else { next.pairPrev = e.pairPrev; this.pairs.set(e.pair, next); }
    } else {
      e.pairPrev!.pairNext = next;
      if (next !== null) next.pairPrev = e.pairPrev; else head.pairPrev = e.pairPrev;
    }
    e.pairPrev = e.pairNext = null;
  }

  /** Merges [start, end) into sorted ranges; returns true if it overlapped bytes already held. */
  private insertRange(r: number[], start: number, end: number): boolean {
    if (end <= start) return false;
    let overlap = false;
    let i = 0;
    while (i < r.length && r[i + 1]! < start) i += 2;
    let s = start;
    let e = end;
    let j = i;
    while (j < r.length && r[j]! <= e) {
      if (r[j]! < e && r[j + 1]! > s) overlap = true;
      s = Math.min(s, r[j]!);
      e = Math.max(e, r[j + 1]!);
      j += 2;
    }
    r.splice(i, j - i, s, e);
    return overlap;
  }
}
