/**
 * Top talkers per window: the `top` hosts by bytes sent plus received, and
 * the `top` host pairs by bytes in both directions, counted like Wireshark's
 * endpoint and conversation tables (`tshark -z endpoints,ip`, `-z conv,ip`):
 * every IP frame adds its frame length to its source (transmitted) and its
 * destination (received), and to the pair of the two. For a tunnelled packet
 * the decoder's (innermost) addresses count, as in the flow table's key.
 *
 * Hosts and pairs live in open-addressing tables of typed arrays (ids in
 * order of first sight in the window, no string keys), emptied at every
 * window close. A table grows (by doubling, allocating) only when a new host
 * or pair appears and it is full, up to `maxHosts` entries; past that, new
 * hosts (and pairs) of the window are not tracked: the packets and bytes they
 * would have added are counted in the metrics as `untracked`.
 *
 * No per-packet work for packets of a flow: a flow's two hosts and their pair
 * are looked up once per window, at its first packet in it (source first, so
 * ids keep the order of first sight), and its packets and bytes per direction
 * come from the window flow accounting (`ctx.windowFlows`, the flow table's
 * counters) at window close, or at the flow's end when it ends during the
 * window. Since a flow's hosts never change, all its packets in the window
 * would have found the same ids. Only IP packets without a flow (non-first
 * fragments, truncated transport headers) are counted one by one.
 */
import { formatAddress } from '../../common/address.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';
import { topIndices } from './window-flows.js';

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
  // per flow slot, set at the flow's first packet in the window: host ids of
  // its client and server (-1: untracked) and of their pair (-1: untracked)
  private readonly clientHost: Int32Array;
  private readonly serverHost: Int32Array;
  private readonly pairOf: Int32Array;

  constructor(private readonly ctx: AnalyzerContext) {
    const c = ctx.config.analyzers.talkers;
    this.top = c.top;
    this.hosts = new BoundedTable(5, c.maxHosts);
    this.pairs = new BoundedTable(2, c.maxHosts);
    const n = ctx.flows.capacity;
    this.clientHost = new Int32Array(n);
    this.serverHost = new Int32Array(n);
    this.pairOf = new Int32Array(n);
  }

  /** The name a host was reached by as a server in the window (ctx.names: TLS, HTTP or DNS), by host id; emptied at window close. */
  private readonly serverNames: Array<string | undefined> = [];

  private host(version: number, addr: Uint32Array): number {
    const key = this.hostKey;
    key[0] = version;
    key[1] = addr[0]!;
    key[2] = addr[1]!;
    key[3] = addr[2]!;
    key[4] = addr[3]!;
    return this.hosts.lookup(key);
  }

  /** The id of the pair of two tracked hosts (side A is the lower id), -1 when the pair table is full. */
  private pair(src: number, dst: number): number {
    const forward = src <= dst;
    this.pairKey[0] = forward ? src : dst;
    this.pairKey[1] = forward ? dst : src;
    return this.pairs.lookup(this.pairKey);
  }

  /** An IP packet without a flow: counted on its own. */
  onFlowlessPacket(v: PacketView): void {
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
    const pair = this.pair(src, dst);
    if (pair < 0) { this.untrackedPairPackets++; return; }
    const forward = src <= dst;
    const pv = this.pairs.values;
    pv[pair * 4 + (forward ? 0 : 1)] += len;
    pv[pair * 4 + (forward ? 2 : 3)]++;
  }

  /** A flow's first packet in the window: its hosts (source first, as a packet would meet them) and pair get their ids. */
  onWindowFlow(v: PacketView, slot: number, dir: number): void {
    const src = this.host(v.ipVersion, v.src);
    const dst = this.host(v.ipVersion, v.dst);
    const toServer = dir === Dir.CLIENT_TO_SERVER;
    this.clientHost[slot] = toServer ? src : dst;
    this.serverHost[slot] = toServer ? dst : src;
    this.pairOf[slot] = src >= 0 && dst >= 0 ? this.pair(src, dst) : -1;
  }

  onFlowEnd(slot: number): void {
    if (this.ctx.windowFlows.active.has(slot)) this.addFlow(slot);
  }

  /** A flow's packets and bytes in the window, to its hosts and pair (what its packets would have added one by one). */
  private addFlow(slot: number): void {
    const win = this.ctx.windowFlows;
    const p0 = win.packetsIn(slot, Dir.CLIENT_TO_SERVER);
    const p1 = win.packetsIn(slot, Dir.SERVER_TO_CLIENT);
    const b0 = win.bytesIn(slot, Dir.CLIENT_TO_SERVER);
    const b1 = win.bytesIn(slot, Dir.SERVER_TO_CLIENT);
    this.ipPackets += p0 + p1;
    this.ipBytes += b0 + b1;
    const client = this.clientHost[slot]!;
    const server = this.serverHost[slot]!;
    const hv = this.hosts.values;
    if (client >= 0) {
      hv[client * 4 + TX_BYTES] += b0; hv[client * 4 + TX_PACKETS] += p0;
      hv[client * 4 + RX_BYTES] += b1; hv[client * 4 + RX_PACKETS] += p1;
    }
    if (server >= 0) {
      hv[server * 4 + TX_BYTES] += b1; hv[server * 4 + TX_PACKETS] += p1;
      hv[server * 4 + RX_BYTES] += b0; hv[server * 4 + RX_PACKETS] += p0;
      const serverName = this.ctx.names.nameOf(slot);
      if (serverName !== undefined) this.serverNames[server] = serverName;
    }
    if (client < 0 || server < 0) {
      this.untrackedPackets += p0 + p1;
      this.untrackedBytes += b0 + b1;
      return;
    }
    const pair = this.pairOf[slot]!;
    if (pair < 0) { this.untrackedPairPackets += p0 + p1; return; }
    // A packet goes A -> B when its source has the lower (or the same) id.
    const pv = this.pairs.values;
    const c2s = client <= server ? 0 : 1;
    const s2c = server <= client ? 0 : 1;
    pv[pair * 4 + c2s] += b0;
    pv[pair * 4 + 2 + c2s] += p0;
    pv[pair * 4 + s2c] += b1;
    pv[pair * 4 + 2 + s2c] += p1;
  }

  private hostName(id: number): string {
    const k = this.hosts.keys;
    return formatAddress(k[id * 5]!, k.subarray(id * 5 + 1, id * 5 + 5));
  }

  closeWindow(): Metrics {
    const set = this.ctx.windowFlows.active;
    for (let k = 0; k < set.size; k++) this.addFlow(set.slots[k]!);
    const hosts = this.hosts;
    const hv = hosts.values;
    const hostBytes = (id: number): number => hv[id * 4 + TX_BYTES]! + hv[id * 4 + RX_BYTES]!;
    const names = new Map<number, string>();
    const name = (id: number): string => {
      let s = names.get(id);
      if (s === undefined) { s = this.hostName(id); names.set(id, s); }
      return s;
    };
    // Ties keep first-seen order (ids are assigned in packet order): deterministic without building names.
    const topHosts = topIndices(hosts.size, this.top, hostBytes).map((id) => ({
      host: name(id),
      ...(this.serverNames[id] !== undefined ? { serverName: this.serverNames[id] } : {}),
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
    const topPairs = topIndices(pairs.size, this.top, pairBytes).map((id) => ({
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
    this.serverNames.length = 0;
    this.untrackedPackets = this.untrackedBytes = this.untrackedPairPackets = this.ipPackets = this.ipBytes = 0;
    return metrics;
  }
}

