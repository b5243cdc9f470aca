/**
 * Top talkers per window: the `top` hosts by bytes sent plus received, and
 * the `top` host pairs by bytes in both directions, counted like Wireshark's
 * endpoint and conversation tables (`tshark -z endpoints,ip`, `-z conv,ip`):
 * every IP frame adds its frame length to its source (transmitted) and its
 * destination (received), and to the pair of the two. For a tunnelled packet
 * the decoder's (innermost) addresses count.
 *
 * Hosts and pairs live in open-addressing tables of typed arrays, emptied at
 * every window close. A table grows (by doubling, allocating) only when a new
 * host or pair appears and it is full, up to `maxHosts` entries; past that,
 * new hosts (and pairs) of the window are not tracked: the packets and bytes
 * they would have added are counted in the metrics as `untracked`.
 */
import { formatAddress } from '../../common/address.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';

const INITIAL = 1024;

/**
 * A hash table from a key of `width` 32-bit words to an entry id, with four
 * numeric values per entry. Bounded by `max` entries.
 */
class BoundedTable {
  cap = 0;
  size = 0;
  keys = new Uint32Array(0);
  hashes = new Int32Array(0);
  values = new Float64Array(0);
  private index = new Int32Array(0);
  private mask = 0;

  constructor(private readonly width: number, private readonly max: number) {
    this.resize(Math.min(INITIAL, max));
  }

  private resize(cap: number): void {
    const w = this.width;
    const keys = new Uint32Array(cap * w);
    keys.set(this.keys.subarray(0, this.size * w));
    const hashes = new Int32Array(cap);
    hashes.set(this.hashes.subarray(0, this.size));
    const values = new Float64Array(cap * 4);
    values.set(this.values.subarray(0, this.size * 4));
    let n = 1;
    while (n < cap * 2) n <<= 1;
    this.index = new Int32Array(n);
    this.mask = n - 1;
    this.keys = keys;
    this.hashes = hashes;
    this.values = values;
    this.cap = cap;
    for (let id = 0; id < this.size; id++) this.place(id);
  }

  private place(id: number): void {
    let i = this.hashes[id]! & this.mask;
    while (this.index[i] !== 0) i = (i + 1) & this.mask;
    this.index[i] = id + 1;
  }

  /** The id of `key` (its first `width` words), inserted if new; -1 when the table is full. */
  lookup(key: Uint32Array): number {
    const w = this.width;
    let h = 0x811c9dc5;
    for (let k = 0; k < w; k++) h = Math.imul(h ^ key[k]!, 16777619);
    h = (h ^ (h >>> 15)) | 0;
    const mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const entry = this.index[i]!;
      if (entry === 0) break;
      const id = entry - 1;
      if (this.hashes[id] !== h) continue;
      let same = true;
      for (let k = 0; k < w; k++) if (this.keys[id * w + k] !== key[k]) { same = false; break; }
      if (same) return id;
    }
    // A new entry: off the common path (once per host or pair and window).
    if (this.size === this.cap) {
      if (this.cap >= this.max) return -1;
      this.resize(Math.min(this.max, this.cap * 2));
    }
    const id = this.size++;
    for (let k = 0; k < w; k++) this.keys[id * w + k] = key[k]!;
    this.hashes[id] = h;
    this.values.fill(0, id * 4, id * 4 + 4);
    this.place(id);
    return id;
  }

  clear(): void {
    if (this.size === 0) return;
    this.index.fill(0);
    this.size = 0;
  }
}

export function createTalkersAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new TalkersAnalyzer(ctx);
}

// Host values: bytes sent, bytes received, packets sent, packets received.
// Pair values (A is the host with the lower id): bytes A->B, bytes B->A, packets A->B, packets B->A.
const TX_BYTES = 0;
const RX_BYTES = 1;
const TX_PACKETS = 2;
const RX_PACKETS = 3;

class TalkersAnalyzer implements Analyzer {
  readonly id = 'talkers';
  private readonly top: number;
  /** Key: IP version, then the four address words. */
  private readonly hosts: BoundedTable;
  /** Key: the two host ids, lower first. */
  private readonly pairs: BoundedTable;
  private readonly hostKey = new Uint32Array(5);
  private readonly pairKey = new Uint32Array(2);
  private untrackedPackets = 0;
  private untrackedBytes = 0;
  private untrackedPairPackets = 0;
  private ipPackets = 0;
  private ipBytes = 0;

  constructor(ctx: AnalyzerContext) {
    const c = ctx.config.analyzers.talkers;
    this.top = c.top;
    this.hosts = new BoundedTable(5, c.maxHosts);
    this.pairs = new BoundedTable(2, c.maxHosts);
  }

  private host(version: number, addr: Uint32Array): number {
    const key = this.hostKey;
    key[0] = version;
    key[1] = addr[0]!;
    key[2] = addr[1]!;
    key[3] = addr[2]!;
    key[4] = addr[3]!;
    return this.hosts.lookup(key);
  }

  onPacket(v: PacketView): void {
    if (v.ipVersion === 0) return;
    const len = v.wireLen;
    this.ipPackets++;
    this.ipBytes += len;
    const src = this.host(v.ipVersion, v.src);
    const dst = this.host(v.ipVersion, v.dst);
    const hv = this.hosts.values;
    if (src >= 0) { hv[src * 4 + TX_BYTES] += len; hv[src * 4 + TX_PACKETS]++; }
    if (dst >= 0) { hv[dst * 4 + RX_BYTES] += len; hv[dst * 4 + RX_PACKETS]++; }
    if (src < 0 || dst < 0) {
      this.untrackedPackets++;
      this.untrackedBytes += len;
      return;
    }
    const forward = src <= dst;
    this.pairKey[0] = forward ? src : dst;
    this.pairKey[1] = forward ? dst : src;
    const pair = this.pairs.lookup(this.pairKey);
    if (pair < 0) { this.untrackedPairPackets++; return; }
    const pv = this.pairs.values;
    pv[pair * 4 + (forward ? 0 : 1)] += len;
    pv[pair * 4 + (forward ? 2 : 3)]++;
  }

  private hostName(id: number): string {
    const k = this.hosts.keys;
    return formatAddress(k[id * 5]!, k.subarray(id * 5 + 1, id * 5 + 5));
  }

  closeWindow(): Metrics {
    const hosts = this.hosts;
    const hv = hosts.values;
    const hostIds = Array.from({ length: hosts.size }, (_, i) => i);
    const hostBytes = (id: number): number => hv[id * 4 + TX_BYTES]! + hv[id * 4 + RX_BYTES]!;
    const names = new Map<number, string>();
    const name = (id: number): string => {
      let s = names.get(id);
      if (s === undefined) { s = this.hostName(id); names.set(id, s); }
      return s;
    };
    // Ties keep first-seen order (ids are assigned in packet order): deterministic without building names.
    hostIds.sort((a, b) => hostBytes(b) - hostBytes(a) || a - b);
    const topHosts = hostIds.slice(0, this.top).map((id) => ({
      host: name(id),
      packets: hv[id * 4 + TX_PACKETS]! + hv[id * 4 + RX_PACKETS]!,
      bytes: hostBytes(id),
      packetsSent: hv[id * 4 + TX_PACKETS]!,
      bytesSent: hv[id * 4 + TX_BYTES]!,
      packetsReceived: hv[id * 4 + RX_PACKETS]!,
      bytesReceived: hv[id * 4 + RX_BYTES]!,
    }));
    const pairs = this.pairs;
    const pv = pairs.values;
    const pk = pairs.keys;
    const pairBytes = (id: number): number => pv[id * 4]! + pv[id * 4 + 1]!;
    const pairIds = Array.from({ length: pairs.size }, (_, i) => i);
    pairIds.sort((a, b) => pairBytes(b) - pairBytes(a) || a - b);
    const topPairs = pairIds.slice(0, this.top).map((id) => ({
      a: name(pk[id * 2]!),
      b: name(pk[id * 2 + 1]!),
      packets: pv[id * 4 + 2]! + pv[id * 4 + 3]!,
      bytes: pairBytes(id),
      packetsAToB: pv[id * 4 + 2]!,
      bytesAToB: pv[id * 4]!,
      packetsBToA: pv[id * 4 + 3]!,
      bytesBToA: pv[id * 4 + 1]!,
    }));
    const metrics: Metrics = {
      ipPackets: this.ipPackets,
      ipBytes: this.ipBytes,
      hosts: hosts.size,
      pairs: pairs.size,
      untracked: this.untrackedPackets,
      untrackedBytes: this.untrackedBytes,
      untrackedPairPackets: this.untrackedPairPackets,
      topHosts,
      topPairs,
    };
    hosts.clear();
    pairs.clear();
    this.untrackedPackets = this.untrackedBytes = this.untrackedPairPackets = this.ipPackets = this.ipBytes = 0;
    return metrics;
  }
}
