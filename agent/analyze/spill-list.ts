/**
 * A list that keeps its first `memoryLimit` items in memory and, past that,
 * moves everything to a temporary file of JSON lines, so a report of a
 * capture spanning days (tens of thousands of windows) is written without
 * holding it all. Iterating reads the file back in 1 MiB pieces.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class SpillList<T> implements Iterable<T> {
  private items: T[] = [];
  private file: string | undefined;
  private fd = -1;
  private count = 0;

  constructor(private readonly memoryLimit: number) {}

  get length(): number { return this.count; }
  /** True once items went to disk. */
  get spilled(): boolean { return this.file !== undefined; }

  push(item: T): void {
    this.count++;
    if (this.fd < 0) {
      this.items.push(item);
      if (this.items.length <= this.memoryLimit) return;
      const dir = mkdtempSync(join(tmpdir(), 'pcap-analyzer-spill-'));
      this.file = join(dir, 'items.jsonl');
      this.fd = openSync(this.file, 'w+');
      for (const held of this.items) writeSync(this.fd, `${JSON.stringify(held)}\n`);
      this.items = [];
      return;
    }
    writeSync(this.fd, `${JSON.stringify(item)}\n`);
  }

  *[Symbol.iterator](): Iterator<T> {
    if (this.fd < 0) { yield* this.items; return; }
    const buf = Buffer.allocUnsafe(1024 * 1024);
    let position = 0;
    let rest = '';
    const decoder = new StringDecoder('utf8'); // a piece may end inside a multi-byte character
    for (;;) {
      const n = readSync(this.fd, buf, 0, buf.length, position);
      if (n === 0) break;
      position += n;
      const text = rest + decoder.write(buf.subarray(0, n));
      const lines = text.split('\n');
      rest = lines.pop()!;
      for (const line of lines) if (line) yield JSON.parse(line) as T;
    }
    if (rest) yield JSON.parse(rest) as T;
  }

  /** Removes the temporary file. */
  dispose(): void {
    if (this.fd >= 0) { closeSync(this.fd); this.fd = -1; }
    if (this.file) rmSync(join(this.file, '..'), { recursive: true, force: true });
  }
}
