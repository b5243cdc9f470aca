/**
 * The name each flow's server goes by, where the traffic proved one: the TLS
 * server name, the HTTP Host, or the DNS name the client resolved to reach
 * it. Analyzers that parse payloads (`tls`, `http`, `dns`) `learn` names; the
 * report's top flows, talkers and findings read them. A flow slot's name is
 * cleared when a new flow takes the slot, so a name outlives its flow's end
 * until the slot is reused (flow-end listeners can still read it).
 *
 * Names are interned once into a bounded table (ids, no string per flow): a
 * new name when the table is full is not kept (counted in `namesDropped`),
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

export class FlowNames {
  /** Name id per flow slot (-1: none). */
  private readonly nameOfSlot: Int32Array;
  private readonly sourceOfSlot: Uint8Array;
  private readonly names: string[] = [];
  private readonly ids = new Map<string, number>();
  namesDropped = 0;

  constructor(maxFlows: number, readonly maxNames: number) {
    this.nameOfSlot = new Int32Array(maxFlows).fill(-1);
    this.sourceOfSlot = new Uint8Array(maxFlows);
  }

  /** A new flow took `slot`: it has no name yet. */
  flowStarted(slot: number): void {
    this.nameOfSlot[slot] = -1;
    this.sourceOfSlot[slot] = NameSource.NONE;
  }

  /**
   * The flow in `slot` goes by `name`, proved by `source`. Kept unless the flow
   * already has a name from a stronger source. Names are lower-cased; an empty or
   * over-long name is ignored.
   */
  learn(slot: number, source: NameSourceCode, name: string): void {
    if (source < this.sourceOfSlot[slot]!) return;
    if (name.length === 0 || name.length > MAX_NAME_LENGTH) return;
    const id = this.intern(name.toLowerCase());
    if (id < 0) return;
    this.nameOfSlot[slot] = id;
    this.sourceOfSlot[slot] = source;
  }

  /** The flow's name, or undefined. */
  nameOf(slot: number): string | undefined {
    const id = this.nameOfSlot[slot]!;
    return id < 0 ? undefined : this.names[id];
  }

  sourceOf(slot: number): NameSourceCode {
    return this.sourceOfSlot[slot]! as NameSourceCode;
  }

  /** Distinct names kept. */
  get size(): number { return this.names.length; }

  private intern(name: string): number {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    if (this.names.length >= this.maxNames) { this.namesDropped++; return -1; }
    const id = this.names.length;
    this.names.push(name);
    this.ids.set(name, id);
    return id;
  }
}
