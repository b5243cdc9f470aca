/**
 * A bounded FIFO of flow slots with a due time, for detectors that decide a
 * connection attempt's outcome some seconds after its SYN (no answer by then,
 * still open by then). Entries carry a generation of the slot at push time
 * (e.g. its flow's tcp.stream number), so an entry whose flow ended and whose
 * slot was reused is recognised as stale.
 * Due times are pushed in packet order, so the head is (nearly) the earliest.
 * When full, the caller shifts the head out first and settles it early.
 */
export class SlotDeadlines {
  private readonly slots: Int32Array;
  private readonly gens: Uint32Array;
  private readonly due: Float64Array;
  private head = 0;
  private count = 0;
  /** Slot, generation and due time of the entry removed by the last `shift`. */
  slot = -1;
  gen = 0;
  dueTime = 0;

  constructor(readonly capacity: number) {
    this.slots = new Int32Array(capacity);
    this.gens = new Uint32Array(capacity);
    this.due = new Float64Array(capacity);
  }

  get length(): number { return this.count; }
  get full(): boolean { return this.count >= this.capacity; }
  /** Due time of the head, Infinity when empty. */
  get headDue(): number { return this.count > 0 ? this.due[this.head]! : Infinity; }

  /** Appends an entry; the caller makes room first (see `full`). */
  push(slot: number, gen: number, due: number): void {
    if (this.count >= this.capacity) return;
    const i = (this.head + this.count) % this.capacity;
    this.slots[i] = slot;
    this.gens[i] = gen;
    this.due[i] = due;
    this.count++;
  }

  /** Removes the head into `slot` / `gen`; false when empty. */
  shift(): boolean {
    if (this.count === 0) return false;
    this.slot = this.slots[this.head]!;
    this.gen = this.gens[this.head]!;
    this.dueTime = this.due[this.head]!;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return true;
  }
}
