/**
 * A doubly-linked list over integer ids 0..capacity-1 in two typed arrays:
 * append, unlink and move-to-tail in constant time, no allocation. An id is
 * in the list at most once; the caller knows whether it is.
 */
const NIL = -1;

export class IdList {
  private readonly prev: Int32Array;
  private readonly nextOf: Int32Array;
  head = NIL;
  tail = NIL;

  constructor(capacity: number) {
    this.prev = new Int32Array(capacity);
    this.nextOf = new Int32Array(capacity);
  }

  /** The id after `id`, -1 at the end (read it before unlinking `id`). */
  next(id: number): number { return this.nextOf[id]!; }

  append(id: number): void {
    this.prev[id] = this.tail;
    this.nextOf[id] = NIL;
    if (this.tail === NIL) this.head = id; else this.nextOf[this.tail] = id;
    this.tail = id;
  }

  unlink(id: number): void {
    const p = this.prev[id]!;
    const n = this.nextOf[id]!;
    if (p === NIL) this.head = n; else this.nextOf[p] = n;
    if (n === NIL) this.tail = p; else this.prev[n] = p;
  }

  moveToTail(id: number): void {
    if (this.tail === id) return;
    this.unlink(id);
    this.append(id);
  }

  /** Forgets every id at once (their links are rewritten when appended again). */
  clear(): void { this.head = this.tail = NIL; }
}
