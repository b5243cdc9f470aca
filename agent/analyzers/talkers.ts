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
 *
 * A host's `serverName` is the name (ctx.names) of the flow it served that
 * joined the window last, among those with a name: an order of the input's
 * packets, the same in one pipeline and in flow-sharded workers.
 *
 * Flow-sharded workers: a host pair's packets are all in one worker, but a
 * host talks to peers in several, so each worker gives every host and pair of
 * its window with where in the input it was first seen (its `first`), and the
 * coordinator adds them up by host, orders hosts and pairs by first sight (the
 * ids one pipeline would have given them, so ties and each pair's A side come
 * out alike) and applies `maxHosts` as one table would have. Exact unless a
 * worker's own tables overflowed (then the window is over `maxHosts` in one
 * pipeline too, and what a worker did not track cannot be told apart: the
 * merged window keeps what the workers tracked, with their untracked counts
 * added up).
 */
import { formatAddress } from '../../common/address.js';
import type { PacketView } from '../decode/packet-view.js';
import { Dir } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';
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
  /** Per entry: where it was first seen (`at` when it was inserted). */
  first = new Float64Array(0);
  /** Set by the caller before `lookup`: the `first` of an entry it inserts. */
  at = 0;
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
    const first = new Float64Array(cap);
    first.set(this.first.subarray(0, this.size));
    this.first = first;
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
    this.first[id] = this.at;
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

/** The window's counts besides the tables. */
interface Counts {
  ipPackets: number;
  ipBytes: number;
  untracked: number;
  untrackedBytes: number;
  untrackedPairPackets: number;
}

/**
 * A flow-sharded worker's window: every host and pair it tracked, each list
 * in the order of its table's ids, so by first sight (`hostFirst` and
 * `pairFirst` increase): the coordinator merges the lists in that order.
 */
interface TalkersPart extends Counts {
  hostKeys: Uint32Array;
  /** Per host: where in the input it was first seen in the window (2 * packet index, + 1 as a destination). */
  hostFirst: Float64Array;
  hostValues: Float64Array;
  /** The hosts with a server name (indices in this part), the name, and the index of the packet where the flow that named it joined the window. */
  namedHosts: Uint32Array;
  serverNames: string[];
  serverNameOrder: Float64Array;
  /** Per pair: its two hosts (indices in this part, A first), where it was first seen (packet index), its values. */
  pairHosts: Uint32Array;
  pairFirst: Float64Array;
  pairValues: Float64Array;
}

/** The list whose next entry (at its cursor) was seen first, -1 when every list is done. */
function earliest(firsts: readonly Float64Array[], cursor: Int32Array): number {
  let best = -1;
  let bestFirst = 0;
  for (let w = 0; w < firsts.length; w++) {
    const i = cursor[w]!;
    const list = firsts[w]!;
    if (i < list.length && (best < 0 || list[i]! < bestFirst)) {
      best = w;
      bestFirst = list[i]!;
    }
  }
  return best;
}

class TalkersAnalyzer implements Analyzer {
  readonly id = 'talkers';
  private readonly top: number;
  /**
   * Key: IP version, then the four address words. In the coordinator, which
   * sees no packets, the merged window's hosts (and pairs below).
   */
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
  // its client and server (-1: untracked) and of their pair (-1: untracked),
  // and the index of that packet in the input
  private readonly clientHost: Int32Array;
  private readonly serverHost: Int32Array;
  private readonly pairOf: Int32Array;
  private readonly joined: Float64Array;
  private part: TalkersPart | null = null;
  /** Coordinator: per host of the parts being merged (part after part), its id in `hosts`, -1 past maxHosts. */
  private partHostIds = new Int32Array(0);

  constructor(private readonly ctx: AnalyzerContext) {
    const c = ctx.config.analyzers.talkers;
    this.top = c.top;
    this.hosts = new BoundedTable(5, c.maxHosts);
    this.pairs = new BoundedTable(2, c.maxHosts);
    const n = ctx.flows.capacity;
    this.clientHost = new Int32Array(n);
    this.serverHost = new Int32Array(n);
    this.pairOf = new Int32Array(n);
    this.joined = new Float64Array(n);
  }

  /**
   * The name a host was reached by as a server in the window (ctx.names: TLS, HTTP or DNS), by host id, and
   * where the flow that gave it joined the window (the latest such flow's name is kept); emptied at window close.
   */
  private readonly serverNames: Array<string | undefined> = [];
  private readonly serverNameOrder: number[] = [];

  /** The id of a host first seen (if new) at `first` (2 * packet index, + 1 for a destination). */
  private host(version: number, addr: Uint32Array, first: number): number {
    const key = this.hostKey;
    key[0] = version;
    key[1] = addr[0]!;
    key[2] = addr[1]!;
    key[3] = addr[2]!;
    key[4] = addr[3]!;
    this.hosts.at = first;
    return this.hosts.lookup(key);
  }

  /** The id of the pair of two tracked hosts (side A is the lower id), -1 when the pair table is full. */
  private pair(src: number, dst: number): number {
    const forward = src <= dst;
    this.pairKey[0] = forward ? src : dst;
    this.pairKey[1] = forward ? dst : src;
    this.pairs.at = this.ctx.packetOrder;
    return this.pairs.lookup(this.pairKey);
  }

  /** An IP packet without a flow: counted on its own. */
  onFlowlessPacket(v: PacketView): void {
    if (v.ipVersion === 0) return;
    const len = v.wireLen;
    this.ipPackets++;
    this.ipBytes += len;
    const order = this.ctx.packetOrder;
    const src = this.host(v.ipVersion, v.src, 2 * order);
    const dst = this.host(v.ipVersion, v.dst, 2 * order + 1);
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
    const order = this.ctx.packetOrder;
    const src = this.host(v.ipVersion, v.src, 2 * order);
    const dst = this.host(v.ipVersion, v.dst, 2 * order + 1);
    const toServer = dir === Dir.CLIENT_TO_SERVER;
    this.clientHost[slot] = toServer ? src : dst;
    this.serverHost[slot] = toServer ? dst : src;
    this.pairOf[slot] = src >= 0 && dst >= 0 ? this.pair(src, dst) : -1;
    this.joined[slot] = order;
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
      if (serverName !== undefined) this.nameHost(server, serverName, this.joined[slot]!);
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

  /** A host served a flow named `name` that joined the window at packet `joined`: the latest such flow names it. */
  private nameHost(host: number, name: string, joined: number): void {
    if (joined < (this.serverNameOrder[host] ?? -1)) return;
    this.serverNames[host] = name;
    this.serverNameOrder[host] = joined;
  }

  closeWindow(): Metrics {
    const set = this.ctx.windowFlows.active;
    for (let k = 0; k < set.size; k++) this.addFlow(set.slots[k]!);
    const hosts = this.hosts;
    const pairs = this.pairs;
    const counts: Counts = {
      ipPackets: this.ipPackets,
      ipBytes: this.ipBytes,
      untracked: this.untrackedPackets,
      untrackedBytes: this.untrackedBytes,
      untrackedPairPackets: this.untrackedPairPackets,
    };
    const worker = this.ctx.shardRole === 'worker';
    // A worker's top lists are not used: the coordinator makes the window's from the parts.
    const metrics = this.metrics(counts, worker ? 0 : this.top);
    if (worker) {
      const named: number[] = [];
      const names: string[] = [];
      const nameOrder: number[] = [];
      for (let id = 0; id < hosts.size; id++) {
        const name = this.serverNames[id];
        if (name === undefined) continue;
        named.push(id);
        names.push(name);
        nameOrder.push(this.serverNameOrder[id]!);
      }
      this.part = {
        ...counts,
        hostKeys: hosts.keys.slice(0, hosts.size * 5),
        hostFirst: hosts.first.slice(0, hosts.size),
        hostValues: hosts.values.slice(0, hosts.size * 4),
        namedHosts: Uint32Array.from(named),
        serverNames: names,
        serverNameOrder: Float64Array.from(nameOrder),
        pairHosts: pairs.keys.slice(0, pairs.size * 2),
        pairFirst: pairs.first.slice(0, pairs.size),
        pairValues: pairs.values.slice(0, pairs.size * 4),
      };
    }
    this.untrackedPackets = this.untrackedBytes = this.untrackedPairPackets = this.ipPackets = this.ipBytes = 0;
    this.clearTables();
    return metrics;
  }

  private clearTables(): void {
    this.hosts.clear();
    this.pairs.clear();
    this.serverNames.length = 0;
    this.serverNameOrder.length = 0;
  }

  windowPart(): TalkersPart | null {
    const part = this.part;
    this.part = null;
    return part;
  }

  /**
   * The coordinator: every worker's hosts and pairs, in order of first sight
   * over all workers (each worker's lists are in its own: merged like sorted
   * lists), go into this analyzer's tables as one pipeline's packets would
   * have: a host gets the id one table over the whole input would have given
   * it (at its earliest sight), the first `maxHosts` hosts and pairs are
   * tracked, and each pair's A side is its host of the lower id.
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = (input.parts as ReadonlyArray<TalkersPart | null>).filter((p): p is TalkersPart => p !== null);
    const counts: Counts = { ipPackets: 0, ipBytes: 0, untracked: 0, untrackedBytes: 0, untrackedPairPackets: 0 };
    // Where each part's hosts start in partHostIds.
    const base = new Int32Array(parts.length);
    let entries = 0;
    parts.forEach((p, w) => {
      counts.ipPackets += p.ipPackets;
      counts.ipBytes += p.ipBytes;
      counts.untracked += p.untracked;
      counts.untrackedBytes += p.untrackedBytes;
      counts.untrackedPairPackets += p.untrackedPairPackets;
      base[w] = entries;
      entries += p.hostFirst.length;
    });
    if (this.partHostIds.length < entries) this.partHostIds = new Int32Array(entries);
    const ids = this.partHostIds;
    const key = this.hostKey;
    const cursor = new Int32Array(parts.length);
    const hostFirsts = parts.map((p) => p.hostFirst);
    for (let w = earliest(hostFirsts, cursor); w >= 0; w = earliest(hostFirsts, cursor)) {
      const p = parts[w]!;
      const i = cursor[w]!++;
      for (let k = 0; k < 5; k++) key[k] = p.hostKeys[i * 5 + k]!;
      const id = this.hosts.lookup(key);
      ids[base[w]! + i] = id;
      // Past maxHosts: one table would not have tracked the host.
      if (id < 0) continue;
      // Read after the lookup: an insertion may have grown the table.
      const values = this.hosts.values;
      for (let k = 0; k < 4; k++) values[id * 4 + k] += p.hostValues[i * 4 + k]!;
    }
    parts.forEach((p, w) => {
      for (let n = 0; n < p.namedHosts.length; n++) {
        const id = ids[base[w]! + p.namedHosts[n]!]!;
        if (id >= 0) this.nameHost(id, p.serverNames[n]!, p.serverNameOrder[n]!);
      }
    });
    cursor.fill(0);
    const pairFirsts = parts.map((p) => p.pairFirst);
    for (let w = earliest(pairFirsts, cursor); w >= 0; w = earliest(pairFirsts, cursor)) {
      const p = parts[w]!;
      const i = cursor[w]!++;
      const a = ids[base[w]! + p.pairHosts[i * 2]!]!;
      const b = ids[base[w]! + p.pairHosts[i * 2 + 1]!]!;
      const v = p.pairValues;
      if (a < 0 || b < 0) {
        // A host past maxHosts: one table would not have tracked the pair's packets (its tracked host still counts them).
        counts.untracked += v[i * 4 + 2]! + v[i * 4 + 3]!;
        counts.untrackedBytes += v[i * 4]! + v[i * 4 + 1]!;
        continue;
      }
      const pair = this.pair(a, b);
      if (pair < 0) { counts.untrackedPairPackets += v[i * 4 + 2]! + v[i * 4 + 3]!; continue; }
      // Side A is the host of the lower id: in the worker's ids it may have been the other.
      const swap = a > b ? 1 : 0;
      const pv = this.pairs.values;
      pv[pair * 4 + swap] += v[i * 4]!;
      pv[pair * 4 + 1 - swap] += v[i * 4 + 1]!;
      pv[pair * 4 + 2 + swap] += v[i * 4 + 2]!;
      pv[pair * 4 + 3 - swap] += v[i * 4 + 3]!;
    }
    const metrics = this.metrics(counts, this.top);
    this.clearTables();
    return metrics;
  }

  /** The window's metrics from the tables: the top `top` hosts and pairs (ties: the first seen first) and the counts. */
  private metrics(counts: Counts, top: number): Metrics {
    const hosts = this.hosts;
    const pairs = this.pairs;
    const hv = hosts.values;
    const hostBytes = (id: number): number => hv[id * 4 + TX_BYTES]! + hv[id * 4 + RX_BYTES]!;
    const names = new Map<number, string>();
    const name = (id: number): string => {
      let s = names.get(id);
      if (s === undefined) {
        const k = hosts.keys;
        s = formatAddress(k[id * 5]!, k.subarray(id * 5 + 1, id * 5 + 5));
        names.set(id, s);
      }
      return s;
    };
    // Ties keep first-seen order (ids are assigned in packet order): deterministic without building names.
    const topHosts = topIndices(hosts.size, top, hostBytes).map((id) => {
      const serverName = this.serverNames[id];
      return {
        host: name(id),
        ...(serverName !== undefined ? { serverName } : {}),
        packets: hv[id * 4 + TX_PACKETS]! + hv[id * 4 + RX_PACKETS]!,
        bytes: hostBytes(id),
        packetsSent: hv[id * 4 + TX_PACKETS]!,
        bytesSent: hv[id * 4 + TX_BYTES]!,
        packetsReceived: hv[id * 4 + RX_PACKETS]!,
        bytesReceived: hv[id * 4 + RX_BYTES]!,
      };
    });
    const pv = pairs.values;
    const pk = pairs.keys;
    const pairBytes = (id: number): number => pv[id * 4]! + pv[id * 4 + 1]!;
    const topPairs = topIndices(pairs.size, top, pairBytes).map((id) => ({
      a: name(pk[id * 2]!),
      b: name(pk[id * 2 + 1]!),
      packets: pv[id * 4 + 2]! + pv[id * 4 + 3]!,
      bytes: pairBytes(id),
      packetsAToB: pv[id * 4 + 2]!,
      bytesAToB: pv[id * 4]!,
      packetsBToA: pv[id * 4 + 3]!,
      bytesBToA: pv[id * 4 + 1]!,
    }));
    return {
      ipPackets: counts.ipPackets,
      ipBytes: counts.ipBytes,
      hosts: hosts.size,
      pairs: pairs.size,
      untracked: counts.untracked,
      untrackedBytes: counts.untrackedBytes,
      untrackedPairPackets: counts.untrackedPairPackets,
      topHosts,
      topPairs,
    };
  }
}
