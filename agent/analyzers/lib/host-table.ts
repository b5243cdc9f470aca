/**
 * Hosts interned into dense ids 0..capacity-1, shared by the detectors: an
 * address (IP version + four big-endian words, IPv4 in word 0, as PacketView
 * and FlowTable give them) becomes an id once, so detector keys are small
 * integers ([hostId], [srcId, dstId, port]) and the address is formatted only
 * when a finding names it.
 *
 * A KeyTable of 5 words (version, address) underneath: least recently
 * interned or touched host evicted when full. A reused id gets a new
 * `generation`: a detector that kept (id, generation) sees its state is about
 * another host when `generation[id]` differs, without an eviction callback.
 * The flags every detector asks about (internal, loopback, special) are
 * computed once, at interning.
 */
import { formatAddress } from '../../../common/address.js';
import { KeyTable } from './key-table.js';
import { isLoopback, type Networks } from './networks.js';
import { isSpecialAddress } from './networks.js';

const F_INTERNAL = 1;
const F_LOOPBACK = 2;
const F_SPECIAL = 4;
const F_V6 = 8;

export class HostTable {
  /** Bumped each time an id is (re)assigned to a host: 0 = never assigned. */
  readonly generation: Uint32Array;
  private readonly table: KeyTable;
  private readonly flags: Uint8Array;
  private readonly words = new Uint32Array(4);

  /**
   * `networks` decides `isInternal`; `includeLoopback` (networks.includeLoopback)
   * decides `isIgnored`.
   */
  constructor(capacity: number, private readonly networks: Networks, readonly includeLoopback: boolean) {
    this.table = new KeyTable(capacity, 5);
    this.generation = new Uint32Array(capacity);
    this.flags = new Uint8Array(capacity);
  }

  /** Upper bound of the bytes per host (see KeyTable.bytesPerEntry). */
  static readonly bytesPerEntry = KeyTable.bytesPerEntry(5) + 4 + 1;

  get size(): number { return this.table.size; }
  get capacity(): number { return this.table.capacity; }
  /** Hosts dropped because the table was full. */
  get evicted(): number { return this.table.evicted; }
  /** Whether the last `intern` assigned a new id (or reused an evicted one). */
  get inserted(): boolean { return this.table.inserted; }

  /** The host's id, assigned if new (evicting the least recently used host when full); made most recent. */
  intern(version: number, words: ArrayLike<number>): number {
    this.fill(version, words);
    const table = this.table;
    const id = table.findOrInsert();
    if (table.inserted) {
      this.generation[id]++;
      let f = version === 6 ? F_V6 : 0;
      if (this.networks.isInternal(version, words)) f |= F_INTERNAL;
      if (isLoopback(version, words)) f |= F_LOOPBACK;
      if (isSpecialAddress(version, words)) f |= F_SPECIAL;
      this.flags[id] = f;
    }
    return id;
  }

  /** The host's id, -1 when not interned; recency is not changed. */
  find(version: number, words: ArrayLike<number>): number {
    this.fill(version, words);
    return this.table.find();
  }

  /** Makes `id` the most recently used host. */
  touch(id: number): void { this.table.touch(id); }

  /** In networks.internal. */
  isInternal(id: number): boolean { return (this.flags[id]! & F_INTERNAL) !== 0; }
  /** 127.0.0.0/8 or ::1. */
  isLoopback(id: number): boolean { return (this.flags[id]! & F_LOOPBACK) !== 0; }
  /** Multicast, limited broadcast, link-local or unspecified (isSpecialAddress): never a remote host. */
  isSpecial(id: number): boolean { return (this.flags[id]! & F_SPECIAL) !== 0; }
  /** Loopback while networks.includeLoopback is off: traffic the detectors skip. */
  isIgnored(id: number): boolean { return !this.includeLoopback && (this.flags[id]! & F_LOOPBACK) !== 0; }
  version(id: number): 4 | 6 { return (this.flags[id]! & F_V6) !== 0 ? 6 : 4; }

  /** Address word `i` (0..3) of `id`, big-endian; IPv4 in word 0. */
  addressWord(id: number, i: number): number { return this.table.keyWord(id, 1 + i); }

  /** Writes the host's version then its four address words into `into` at `at` (5 words): a key that outlives the id. */
  writeHost(id: number, into: Uint32Array, at: number): void {
    into[at] = this.version(id);
    for (let i = 0; i < 4; i++) into[at + 1 + i] = this.table.keyWord(id, 1 + i);
  }

  /** The address as text (dotted IPv4, RFC 5952 IPv6): made on each call, for reports. */
  name(id: number): string {
    const w = this.words;
    for (let i = 0; i < 4; i++) w[i] = this.table.keyWord(id, 1 + i);
    return formatAddress(this.version(id), w);
  }

  /** IPv4 keeps only word 0, so stray words never split one host in two. */
  private fill(version: number, words: ArrayLike<number>): void {
    const k = this.table.key;
    k[0] = version;
    k[1] = words[0]!;
    if (version === 6) {
      k[2] = words[1]!; k[3] = words[2]!; k[4] = words[3]!;
    } else {
      k[2] = 0; k[3] = 0; k[4] = 0;
    }
  }
}
