/**
 * The name each flow's server goes by, where the traffic proved one: the TLS
 * server name, the HTTP Host, or the DNS name the client resolved to reach
 * it. Analyzers that parse payloads (`tls`, `http`, `services` for DNS)
 * `learn` names; the report's top flows and findings read them. A flow slot's
 * name is cleared when a new flow takes the slot, so a name outlives its
 * flow's end until the slot is reused (flow-end listeners can still read it).
 * The same table holds each flow's behaviour class, set when the flow ends
 * (flow/behaviour.ts).
 *
 * Names are interned once into a table of at most `maxNames` ids (no string
 * per flow). The agent runs for days, so ids are reclaimed: each id counts
 * the live flows that hold it; an id no live flow holds joins an LRU list
 * and is reused, least recently released first, when a new name needs an id
 * and the table is full (counted in `namesReclaimed`). An ended flow whose
 * id was reclaimed then has no name (a generation per id tells). Only when
 * every id is held by a live flow is a new name not kept (`namesDropped`);
 * the flow keeps the name it had.
 */

/** Where a name came from, weakest first: a stronger source replaces a weaker one. */
export const NameSource = {
  NONE: 0,
  /** The server address's name from a DNS answer the client received. */
  DNS: 1,
  /** HTTP/1.x Host header. */
  HTTP_HOST: 2,
  /** TLS ClientHello server_name (TCP or QUIC). */
  TLS_SNI: 3,
} as const;
export type NameSourceCode = (typeof NameSource)[keyof typeof NameSource];

export const NAME_SOURCE_NAMES = ['none', 'dns', 'http.host', 'tls.sni'] as const;

/** Longest name kept, in characters (DNS names are at most 253). */
export const MAX_NAME_LENGTH = 253;

const NIL = -1;
/** Per-slot reference states. */
const NO_REF = 0;
/** The slot's flow is live and counts in its id's `liveRefs`. */
const LIVE_REF = 1;
/** The slot's flow ended: its id stays readable until reclaimed. */
const ENDED_REF = 2;

export class FlowNames {
  /** Name id + 1 per flow slot (0: none, so the array needs no fill). */
  private readonly nameOfSlot: Int32Array;
  /** The id's generation when the slot took it: a reclaimed id has moved on. */
  private readonly genOfSlot: Uint32Array;
  private readonly sourceOfSlot: Uint8Array;
  private readonly refOfSlot: Uint8Array;
  private readonly behaviourOfSlot: Uint8Array;
  /** Per id: its name (undefined when free), generation, live flows holding it, LRU links. */
  private readonly names: Array<string | undefined> = [];
  private readonly gen: Uint32Array;
  private readonly liveRefs: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly listed: Uint8Array;
  private readonly ids = new Map<string, number>();
  /** Ids no live flow holds, least recently released at the head. */
  private head = NIL;
  private tail = NIL;
  /** New names not kept: every id was held by a live flow. */
  namesDropped = 0;
  /** Ids taken back from names only ended flows held. */
  namesReclaimed = 0;
  /**
   * Names that joined and left the table since the last `takeChanges`, when
   * `logChanges` turned them on (a flow-sharded worker: the coordinator counts
   * the distinct names of all workers' tables).
   */
  private added: string[] | null = null;
  private removed: string[] | null = null;

  constructor(maxFlows: number, readonly maxNames: number) {
    if (!Number.isInteger(maxNames) || maxNames < 1) throw new RangeError(`FlowNames maxNames ${maxNames}: expected a positive integer`);
    // Not filled (analyze touches only the pages it uses): append sets both links.
    this.nameOfSlot = new Int32Array(maxFlows);
    this.genOfSlot = new Uint32Array(maxFlows);
    this.sourceOfSlot = new Uint8Array(maxFlows);
    this.refOfSlot = new Uint8Array(maxFlows);
    this.behaviourOfSlot = new Uint8Array(maxFlows);
    this.gen = new Uint32Array(maxNames);
    this.liveRefs = new Int32Array(maxNames);
    this.prev = new Int32Array(maxNames);
    this.next = new Int32Array(maxNames);
    this.listed = new Uint8Array(maxNames);
  }

  /** A new flow took `slot`: it has no name yet. */
  flowStarted(slot: number): void {
    this.release(slot);
    this.nameOfSlot[slot] = 0;
    this.sourceOfSlot[slot] = NameSource.NONE;
    this.refOfSlot[slot] = NO_REF;
    this.behaviourOfSlot[slot] = 0;
  }

  /** The flow in `slot` ended (after every flow-end listener): its name stays readable until its id is reclaimed. */
  flowEnded(slot: number): void {
    if (this.refOfSlot[slot] !== LIVE_REF) return;
    this.release(slot);
    this.refOfSlot[slot] = ENDED_REF;
  }

  /**
   * The flow in `slot` goes by `name`, proved by `source`. Kept unless the flow
   * already has a name from a stronger source. Names are lower-cased; an empty or
   * over-long name is ignored.
   */
  learn(slot: number, source: NameSourceCode, name: string): void {
    if (source < this.sourceOfSlot[slot]! && this.nameOf(slot) !== undefined) return;
    if (name.length === 0 || name.length > MAX_NAME_LENGTH) return;
    const lower = name.toLowerCase();
    if (this.nameOf(slot) === lower) { this.sourceOfSlot[slot] = Math.max(source, this.sourceOfSlot[slot]!); return; }
    const id = this.intern(lower);
    if (id < 0) return;
    const ended = this.refOfSlot[slot] === ENDED_REF;
    this.release(slot);
    this.nameOfSlot[slot] = id + 1;
    this.genOfSlot[slot] = this.gen[id]!;
    this.sourceOfSlot[slot] = source;
    if (ended) {
      this.refOfSlot[slot] = ENDED_REF;
      if (this.liveRefs[id] === 0) this.append(id);
    } else {
      this.refOfSlot[slot] = LIVE_REF;
      this.liveRefs[id] = this.liveRefs[id]! + 1;
      this.unlink(id);
    }
  }

  /** The flow's name, or undefined. */
  nameOf(slot: number): string | undefined {
    const id = this.nameOfSlot[slot]! - 1;
    return id < 0 || this.gen[id] !== this.genOfSlot[slot] ? undefined : this.names[id];
  }

  /** Where the flow's name came from (NONE when it has none). */
  sourceOf(slot: number): NameSourceCode {
    return (this.nameOf(slot) === undefined ? NameSource.NONE : this.sourceOfSlot[slot]!) as NameSourceCode;
  }

  /** The flow's behaviour class (flow/behaviour.ts `Behaviour`), set when it ended; 0 (unknown) before. */
  behaviourOf(slot: number): number { return this.behaviourOfSlot[slot]!; }
  setBehaviour(slot: number, code: number): void { this.behaviourOfSlot[slot] = code; }

  /** Distinct names kept. */
  get size(): number { return this.ids.size; }

  /** From now on, log the names that join and leave the table (`takeChanges`). */
  logChanges(): void {
    this.added ??= [];
    this.removed ??= [];
  }

  /** The names that joined and left the table since the last call (a name may be in both, even twice: count each). */
  takeChanges(): { added: string[]; removed: string[] } {
    const out = { added: this.added ?? [], removed: this.removed ?? [] };
    if (this.added) { this.added = []; this.removed = []; }
    return out;
  }

  /** Drops the slot's live reference to its id, if it has one. */
  private release(slot: number): void {
    if (this.refOfSlot[slot] !== LIVE_REF) return;
    const id = this.nameOfSlot[slot]! - 1;
    this.refOfSlot[slot] = NO_REF;
    if (id < 0 || this.gen[id] !== this.genOfSlot[slot]) return;
    const refs = this.liveRefs[id] = this.liveRefs[id]! - 1;
    if (refs === 0) this.append(id);
  }

  private intern(name: string): number {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    let id: number;
    if (this.names.length < this.maxNames) {
      id = this.names.length;
      this.names.push(undefined);
    } else {
      id = this.head;
      if (id === NIL) { this.namesDropped++; return -1; }
      this.unlink(id);
      this.ids.delete(this.names[id]!);
      this.removed?.push(this.names[id]!);
      this.gen[id]++;
      this.namesReclaimed++;
    }
    this.names[id] = name;
    this.ids.set(name, id);
    this.added?.push(name);
    // Held by no live flow until `learn` counts one: reclaimable meanwhile.
    this.append(id);
    return id;
  }

  private append(id: number): void {
    if (this.listed[id] === 1) return;
    this.listed[id] = 1;
    this.prev[id] = this.tail;
    this.next[id] = NIL;
    if (this.tail === NIL) this.head = id; else this.next[this.tail] = id;
    this.tail = id;
  }

  private unlink(id: number): void {
    if (this.listed[id] === 0) return;
    this.listed[id] = 0;
    const p = this.prev[id]!;
    const n = this.next[id]!;
    if (p === NIL) this.head = n; else this.next[p] = n;
    if (n === NIL) this.tail = p; else this.prev[n] = p;
    this.prev[id] = this.next[id] = NIL;
  }
}
