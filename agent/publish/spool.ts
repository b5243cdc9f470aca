/**
 * The publisher's outbound FIFO: a bounded memory tier, then a bounded disk tier,
 * so findings produced while NATS is away survive the outage (and a restart).
 *
 * Order: messages leave in the order they were pushed. While anything is on
 * disk, new messages are appended to disk too (never to memory), so everything
 * in memory is always older than everything on disk and the head is read from
 * memory first, then from disk. Past both limits a new message is dropped and
 * counted (`overflowMessages`, `overflowBytes`).
 *
 * Hand-out and acknowledgement: `take()` hands out the next message without
 * removing it; `ack()` marks it stored; only the acknowledged prefix is
 * removed (a disk record is "released" by advancing the cursor), so a crash
 * or `rewind()` re-sends from the oldest unacknowledged message. Messages carry
 * a Nats-Msg-Id, so re-sending a few is harmless.
 *
 * Disk layout, under `<dataDir>/spool/`:
 * - `seg-<id>.jsonl`: append-only segments, read in id order. One record per
 *   line, UTF-8 JSON: `{"s": subject, "i": msgId, "d": data}` where `d` is the
 *   payload as a string (it is UTF-8 JSON, so the line stays readable), or
 *   `{"s", "i", "b": base64}` when the payload is not valid UTF-8 (lossless
 *   either way). A line is self-delimiting, so a corrupt or torn record costs
 *   that record only: it is logged with file and byte offset and skipped.
 *   Each process appends only to segments it created, so a torn last line
 *   left by a crash is never glued to a new record.
 * - `cursor.json`: `{"version":1,"consumed":{"<id>":<byte offset>}}`, how far
 *   each segment is released. Written at most once a second (and whenever a
 *   segment is deleted, and at persist/close), so a crash re-sends at most
 *   about a second of acknowledged records. Written to a temporary file and
 *   renamed, so it is either the old or the new version.
 * - `persist()` (shutdown) writes what is only in memory to a new segment
 *   whose id is just below the oldest one, so it is read first: order kept.
 *   It never drops: the disk tier may then exceed `fileBytes` by at most the
 *   memory tier plus what was in flight. Nothing is fsynced per record; a
 *   process crash loses nothing written, a machine crash may.
 */
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { OutboundMessage } from './message.js';

export interface SpoolOptions {
  /** Segment files go to `<dataDir>/spool/`. */
  dataDir: string;
  /** Memory tier limits (count and payload bytes). */
  memoryMessages: number;
  memoryBytes: number;
  /** Disk tier limit: total size of the segment files. */
  fileBytes: number;
  logger: Logger;
}

/** A handed-out message; pass it back to `ack()` once JetStream stored it. */
export interface SpoolEntry {
  readonly message: OutboundMessage;
}

interface Entry extends SpoolEntry {
  /** Payload bytes. */
  readonly bytes: number;
  /** Segment the record is in, or undefined when it was only in memory. */
  readonly segment: Segment | undefined;
  /** Byte offset just past the record in its segment. */
  readonly end: number;
  acked: boolean;
  /** False once `persist()` forgot the hand-out: a late ack is ignored. */
  live: boolean;
}

interface Segment {
  readonly id: number;
  readonly path: string;
  /** File size in bytes (what we wrote, or found at load). */
  size: number;
  /** Offset up to which records are released: reading a segment starts here. */
  consumed: number;
  /** Valid records not yet handed out, and their payload bytes. */
  untaken: number;
  untakenBytes: number;
  /** Valid records not yet released. */
  unreleased: number;
  /** Open for appending: only the newest segment this process created. */
  fd: number | undefined;
}

const SEGMENT_NAME = /^seg-(\d{1,15})\.jsonl$/;
const CURSOR_FILE = 'cursor.json';
/** First segment id; ids go down from the head at persist, so start well above 0. */
const BASE_ID = 1_000_000_000;
const MAX_SEGMENT_BYTES = 16 * 1024 * 1024;
const MIN_SEGMENT_BYTES = 1024;
const READ_CHUNK = 256 * 1024;
const CURSOR_WRITE_INTERVAL_MS = 1000;
/** Corrupt-record warnings per file at load; the rest are summed up in one line. */
const MAX_WARNINGS_PER_FILE = 10;
const NEWLINE = 0x0a;

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A FIFO over an array with a moving head (Array#shift is O(n)). */
class Queue<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number { return this.items.length - this.head; }
  push(item: T): void { this.items.push(item); }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    // Stryker disable next-line all: when the array is compacted is a memory and speed trade-off; every variant hands out the same items in the same order
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
    return item;
  }
  drainAll(): T[] { const out = this.items.slice(this.head); this.items = []; this.head = 0; return out; }
}

export class Spool {
  private readonly dir: string;
  private readonly log: Logger;
  private readonly memoryMessagesLimit: number;
  private readonly memoryBytesLimit: number;
  private readonly fileBytesLimit: number;
  private readonly segmentBytes: number;

  private readonly memory = new Queue<Entry>();
  private memoryBytesUsed = 0;
  /** Handed out and not released, oldest first (acked ones wait here for the prefix). */
  private outstanding: Entry[] = [];
  /** Index in `outstanding` of the next entry to hand out again after a rewind. */
  private readIndex = 0;
  private outstandingUnacked = 0;
  private outstandingUnackedBytes = 0;

  // Stryker disable next-line ArrayDeclaration: load() replaces it in the constructor before any use
  private segments: Segment[] = [];
  private nextId = BASE_ID;
  private diskFileBytes = 0;
  private diskUntaken = 0;
  private diskUntakenBytes = 0;
  private diskUnreleased = 0;

  private reader: { segment: Segment; pos: number; fd: number } | undefined;
  private readBuf = Buffer.allocUnsafe(READ_CHUNK);
  private readBufStart = 0;
  private readBufLen = 0;
  private readBufSegment: Segment | undefined;

  // Stryker disable next-line BooleanLiteral: load() ends with writeCursor(), which clears it, before any use
  private cursorDirty = false;
  private cursorWrittenAt = 0;
  private cursorTimer: NodeJS.Timeout | undefined;

  private overflowCount = 0;
  private overflowByteCount = 0;
  private acceptedCount = 0;
  private releasedCount = 0;
  private closed = false;

  constructor(options: SpoolOptions) {
    this.dir = join(options.dataDir, 'spool');
    this.log = options.logger;
    this.memoryMessagesLimit = options.memoryMessages;
    this.memoryBytesLimit = options.memoryBytes;
    this.fileBytesLimit = options.fileBytes;
    this.segmentBytes = Math.max(MIN_SEGMENT_BYTES, Math.min(MAX_SEGMENT_BYTES, Math.floor(options.fileBytes / 8)));
    mkdirSync(this.dir, { recursive: true });
    this.load();
  }

  /** Unacknowledged messages held (memory, handed out, disk). */
  get messages(): number { return this.memory.length + this.outstandingUnacked + this.diskUntaken; }
  /** Their payload bytes. */
  get bytes(): number { return this.memoryBytesUsed + this.outstandingUnackedBytes + this.diskUntakenBytes; }
  /** Messages in the memory tier (not counting those handed out). */
  get memoryMessages(): number { return this.memory.length; }
  get memoryBytes(): number { return this.memoryBytesUsed; }
  /** Records on disk not yet released. */
  get diskMessages(): number { return this.diskUnreleased; }
  /** Size of the segment files. */
  get diskBytes(): number { return this.diskFileBytes; }
  get overflowMessages(): number { return this.overflowCount; }
  get overflowBytes(): number { return this.overflowByteCount; }
  /** Messages accepted so far (pushed, plus those found on disk at start). */
  get accepted(): number { return this.acceptedCount; }
  /** Messages acknowledged and removed so far, in order: the first `acknowledged` accepted ones. */
  get acknowledged(): number { return this.releasedCount; }

  /** Appends a message; false (counted as overflow) when both tiers are full. */
  push(message: OutboundMessage): boolean {
    if (this.closed) throw new Error('spool is closed');
    const bytes = message.data.byteLength;
    const diskActive = this.segments.length > 0;
    if (!diskActive && this.memory.length < this.memoryMessagesLimit && this.memoryBytesUsed + bytes <= this.memoryBytesLimit) {
      this.memory.push({ message, bytes, segment: undefined, end: 0, acked: false, live: true });
      this.memoryBytesUsed += bytes;
      this.acceptedCount++;
      return true;
    }
    const record = encodeRecord(message);
    if (this.diskFileBytes + record.length > this.fileBytesLimit || !this.append(record, bytes)) {
      this.overflowCount++;
      this.overflowByteCount += bytes;
      return false;
    }
    this.acceptedCount++;
    return true;
  }

  /**
   * The next message to send, or undefined. After a `rewind()` the unacknowledged
   * hand-outs come again first. A new message is handed out only while fewer than
   * `maxOutstanding` are unreleased, which bounds what is held in memory.
   */
  take(maxOutstanding: number): SpoolEntry | undefined {
    while (this.readIndex < this.outstanding.length) {
      const entry = this.outstanding[this.readIndex++]!;
      if (!entry.acked) return entry;
    }
    if (this.outstanding.length >= maxOutstanding) return undefined;
    let entry = this.memory.shift();
    if (entry) this.memoryBytesUsed -= entry.bytes;
    else entry = this.readDisk();
    if (!entry) return undefined;
    this.outstanding.push(entry);
    this.readIndex = this.outstanding.length;
    this.outstandingUnacked++;
    this.outstandingUnackedBytes += entry.bytes;
    return entry;
  }

  /** The entry is stored by JetStream: it (and any acknowledged prefix) leaves the spool. */
  ack(handle: SpoolEntry): void {
    const entry = handle as Entry;
    if (!entry.live || entry.acked) return;
    entry.acked = true;
    this.outstandingUnacked--;
    this.outstandingUnackedBytes -= entry.bytes;
    let n = 0;
    while (n < this.outstanding.length && this.outstanding[n]!.acked) n++;
    // Stryker disable next-line ConditionalExpression: with n = 0 the rest releases nothing (an empty splice); the return only saves the work
    if (n === 0) return;
    const released = this.outstanding.splice(0, n);
    this.readIndex = Math.max(0, this.readIndex - n);
    this.releasedCount += n;
    for (const e of released) {
      // Stryker disable next-line BooleanLiteral: a released entry is acked, so ack() ignores it either way
      e.live = false;
      if (e.segment) this.release(e.segment, e.end);
    }
  }

  /** Hand out again from the oldest unacknowledged message (after a failed publish). */
  rewind(): void {
    this.readIndex = 0;
  }

  /**
   * Writes every unacknowledged message that is only in memory (handed out, then
   * the memory tier) to disk, ahead of what is already there. Hand-outs are
   * forgotten: late acks for them are ignored and everything is sent again from disk.
   */
  persist(): void {
    if (this.closed) return;
    const forgotten = this.outstanding;
    // Acked ones ahead of an unacked one are kept too: order and counts stay exact; JetStream drops the duplicate.
    const pending = forgotten.filter((e) => e.segment === undefined).concat(this.memory.drainAll());
    for (const e of forgotten) e.live = false;
    this.outstanding = [];
    this.readIndex = 0;
    this.outstandingUnacked = 0;
    this.outstandingUnackedBytes = 0;
    this.memoryBytesUsed = 0;
    // Disk records handed out but not released become untaken again; reading restarts at each cursor.
    for (const e of forgotten) {
      if (!e.segment) continue;
      e.segment.untaken++;
      e.segment.untakenBytes += e.bytes;
      this.diskUntaken++;
      this.diskUntakenBytes += e.bytes;
    }
    this.closeReader();
    if (this.segments.length > 0) this.writeCursor(); // before a segment id could be reused below
    if (pending.length > 0) {
      const id = this.segments.length > 0 ? this.segments[0]!.id - 1 : this.nextId++;
      const path = join(this.dir, segmentName(id));
      const tmp = `${path}.tmp`;
      let size = 0;
      let bytes = 0;
      try {
        const fd = openSync(tmp, 'w');
        try {
          for (const e of pending) {
            const record = encodeRecord(e.message);
            writeAll(fd, record);
            size += record.length;
            bytes += e.bytes;
          }
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        renameSync(tmp, path);
      } catch (err) {
        this.safeUnlink(tmp);
        this.log.error({ file: path, messages: pending.length, err: errorText(err) }, 'spool: cannot persist in-memory messages; they are lost');
        return;
      }
      this.segments.unshift({ id, path, size, consumed: 0, untaken: pending.length, untakenBytes: bytes, unreleased: pending.length, fd: undefined });
      this.diskFileBytes += size;
      this.diskUntaken += pending.length;
      this.diskUntakenBytes += bytes;
      this.diskUnreleased += pending.length;
      this.log.info({ messages: pending.length, bytes: size, file: path }, 'spool: persisted in-memory messages to disk');
    }
    // An fsync only makes a difference when the machine crashes, which no test can do:
    // Stryker disable next-line all: see above
    const tail = this.segments[this.segments.length - 1];
    // Stryker disable next-line all: see above
    if (tail?.fd !== undefined) fsyncSync(tail.fd); // eslint-disable-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  }

  /** Stops the spool: writes the cursor and closes files (call `persist()` first to keep memory). */
  close(): void {
    // Stryker disable next-line ConditionalExpression: a second close finds nothing to do anyway (no timer, nothing dirty, every file closed)
    if (this.closed) return;
    // Stryker disable next-line ConditionalExpression: clearTimeout(undefined) is a no-op, and a timer left running is unref'd and does nothing once closed
    if (this.cursorTimer) clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    // Stryker disable next-line ConditionalExpression: a clean cursor is already on disk; writing it again writes the same content
    if (this.cursorDirty) this.writeCursor();
    this.closeReader();
    for (const seg of this.segments) {
      if (seg.fd !== undefined) { closeSync(seg.fd); seg.fd = undefined; }
    }
    this.closed = true;
  }

  // --- disk tier ---

  /** Loads segments and the cursor an earlier process left; bad records are skipped with a warning. */
  private load(): void {
    const consumed = this.readCursor();
    const segments: Segment[] = [];
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) { this.safeUnlink(path); continue; } // an interrupted persist or cursor write
      const match = SEGMENT_NAME.exec(name);
      if (!match) {
        if (name !== CURSOR_FILE) this.log.warn({ file: path }, 'spool: ignoring unexpected file');
        continue;
      }
      const id = Number(match[1]);
      const size = statSync(path).size;
      let start = consumed.get(id) ?? 0;
      if (start > size) {
        this.log.warn({ file: path, offset: start, size }, 'spool: cursor past the end of its segment; reading it from the start');
        start = 0;
      }
      segments.push({ id, path, size, consumed: start, untaken: 0, untakenBytes: 0, unreleased: 0, fd: undefined });
    }
    segments.sort((a, b) => a.id - b.id);
    const scanned: Segment[] = [];
    for (const seg of segments) {
      const valid = this.scan(seg);
      if (valid === undefined) continue;
      if (seg.unreleased === 0) { this.safeUnlink(seg.path); continue; }
      scanned.push(seg);
      this.diskFileBytes += seg.size;
      this.diskUntaken += seg.untaken;
      this.diskUntakenBytes += seg.untakenBytes;
      this.diskUnreleased += seg.unreleased;
    }
    this.segments = scanned;
    this.acceptedCount = this.diskUnreleased;
    if (scanned.length > 0) {
      this.nextId = scanned[scanned.length - 1]!.id + 1;
      this.log.info({ messages: this.diskUnreleased, bytes: this.diskFileBytes, segments: scanned.length }, 'spool: loaded unacknowledged messages from disk');
    }
    this.writeCursor(); // drops entries of segments that are gone
  }

  /** Counts the valid records of a segment from its start offset; undefined if unreadable. */
  private scan(seg: Segment): number | undefined {
    let fd: number;
    try {
      fd = openSync(seg.path, 'r');
    } catch (err) {
      this.log.warn({ file: seg.path, err: errorText(err) }, 'spool: cannot open segment; skipping it');
      return undefined;
    }
    let warnings = 0;
    const warn = (offset: number, reason: string): void => {
      if (++warnings <= MAX_WARNINGS_PER_FILE) this.log.warn({ file: seg.path, offset, reason }, 'spool: skipping a corrupt record');
    };
    try {
      let pos = 0;
      let buf = Buffer.allocUnsafe(READ_CHUNK);
      let bufStart = 0;
      let bufLen = 0;
      while (pos < seg.size) {
        let nl = -1;
        if (pos >= bufStart && pos < bufStart + bufLen) {
          const i = buf.indexOf(NEWLINE, pos - bufStart);
          if (i >= 0 && i < bufLen) nl = bufStart + i;
        }
        if (nl < 0) {
          const avail = seg.size - pos;
          const want = Math.min(avail, bufStart === pos && bufLen > 0 ? bufLen * 2 : READ_CHUNK);
          if (want > buf.length) buf = Buffer.allocUnsafe(want);
          bufLen = readSync(fd, buf, 0, want, pos);
          bufStart = pos;
          const i = buf.indexOf(NEWLINE, 0);
          if (i >= 0 && i < bufLen) continue;
          if (bufLen < avail && bufLen > 0) continue; // a long record: read a bigger piece
          warn(pos, 'no end of line (torn write)');
          break;
        }
        const end = nl + 1;
        if (end > seg.consumed) {
          if (pos < seg.consumed) seg.consumed = pos; // the cursor pointed inside a record: re-send it whole
          const parsed = decodeRecord(buf.toString('utf8', pos - bufStart, nl - bufStart));
          if (typeof parsed === 'string') warn(pos, parsed);
          else {
            seg.untaken++;
            seg.untakenBytes += parsed.data.byteLength;
            seg.unreleased++;
          }
        }
        pos = end;
      }
      if (warnings > MAX_WARNINGS_PER_FILE) this.log.warn({ file: seg.path, corrupt: warnings }, 'spool: more corrupt records skipped in this file');
      return seg.unreleased;
    } catch (err) {
      this.log.warn({ file: seg.path, err: errorText(err) }, 'spool: error reading segment; keeping what was read');
      return seg.unreleased;
    } finally {
      closeSync(fd);
    }
  }

  /** Appends one record to the newest segment (rotating it when full); false on an I/O error. */
  private append(record: Buffer, bytes: number): boolean {
    let tail = this.segments[this.segments.length - 1];
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (tail && tail.fd !== undefined && tail.size > 0 && tail.size + record.length > this.segmentBytes) {
      closeSync(tail.fd);
      tail.fd = undefined;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (!tail || tail.fd === undefined) {
      const id = this.nextId++;
      const path = join(this.dir, segmentName(id));
      try {
        const fd = openSync(path, 'a');
        tail = { id, path, size: 0, consumed: 0, untaken: 0, untakenBytes: 0, unreleased: 0, fd };
      } catch (err) {
        this.log.warn({ file: path, err: errorText(err) }, 'spool: cannot create a segment');
        return false;
      }
      this.segments.push(tail);
    }
    try {
      writeAll(tail.fd!, record);
    } catch (err) {
      // Part of the record may be on disk: seal this segment so the next record starts a clean line.
      this.log.warn({ file: tail.path, err: errorText(err) }, 'spool: write failed; sealing the segment');
      const fd = tail.fd!;
      try { this.diskFileBytes += fstatSync(fd).size - tail.size; tail.size = fstatSync(fd).size; } catch { /* size stays as written */ }
      closeSync(fd);
      tail.fd = undefined;
      if (tail.unreleased === 0) this.dropSegment(tail);
      return false;
    }
    tail.size += record.length;
    tail.untaken++;
    tail.untakenBytes += bytes;
    tail.unreleased++;
    this.diskFileBytes += record.length;
    this.diskUntaken++;
    this.diskUntakenBytes += bytes;
    this.diskUnreleased++;
    return true;
  }

  /** The next valid record from disk, or undefined when all are handed out. */
  private readDisk(): Entry | undefined {
    if (this.diskUntaken === 0) return undefined;
    for (;;) {
      if (!this.reader) {
        const first = this.segments[0];
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
        if (!first) return undefined;
        this.openReader(first, first.consumed);
      }
      const reader = this.reader!;
      const seg = reader.segment;
      if (reader.pos >= seg.size) {
        const next = this.segments[this.segments.indexOf(seg) + 1];
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
        if (!next) return undefined;
        this.forgetUntaken(seg, 'records missing at the end of the segment');
        this.openReader(next, next.consumed);
        continue;
      }
      let line: { text: string; end: number } | undefined;
      try {
        line = this.readLine(seg, reader.fd, reader.pos);
      } catch (err) {
        this.log.warn({ file: seg.path, offset: reader.pos, err: errorText(err) }, 'spool: read failed; skipping the rest of the segment');
      }
      if (!line) {
        reader.pos = seg.size;
        this.forgetUntaken(seg, 'unreadable end of segment');
        continue;
      }
      const offset = reader.pos;
      reader.pos = line.end;
      const message = decodeRecord(line.text);
      if (typeof message === 'string') {
        if (seg.fd !== undefined) this.log.warn({ file: seg.path, offset, reason: message }, 'spool: skipping a corrupt record');
        continue; // a segment from an earlier run: warned about at load
      }
      const bytes = message.data.byteLength;
      seg.untaken--;
      seg.untakenBytes -= bytes;
      this.diskUntaken--;
      this.diskUntakenBytes -= bytes;
      return { message, bytes, segment: seg, end: line.end, acked: false, live: true };
    }
  }

  /** One line at `pos` (without its newline), or undefined if the segment ends before a newline. */
  private readLine(seg: Segment, fd: number, pos: number): { text: string; end: number } | undefined {
    for (;;) {
      if (this.readBufSegment === seg && pos >= this.readBufStart && pos < this.readBufStart + this.readBufLen) {
        const i = this.readBuf.indexOf(NEWLINE, pos - this.readBufStart);
        if (i >= 0 && i < this.readBufLen) {
          return { text: this.readBuf.toString('utf8', pos - this.readBufStart, i), end: this.readBufStart + i + 1 };
        }
      }
      const avail = seg.size - pos;
      if (avail <= 0) return undefined;
      const grow = this.readBufSegment === seg && this.readBufStart === pos && this.readBufLen > 0;
      const want = Math.min(avail, grow ? this.readBufLen * 2 : READ_CHUNK);
      if (want > this.readBuf.length) this.readBuf = Buffer.allocUnsafe(want);
      const n = readSync(fd, this.readBuf, 0, want, pos);
      this.readBufSegment = seg;
      this.readBufStart = pos;
      this.readBufLen = n;
      const i = this.readBuf.indexOf(NEWLINE, 0);
      if (i >= 0 && i < n) continue;
      if (n === 0 || n >= avail) return undefined;
    }
  }

  private openReader(seg: Segment, pos: number): void {
    this.closeReader();
    this.reader = { segment: seg, pos, fd: openSync(seg.path, 'r') };
  }

  private closeReader(): void {
    if (this.reader) closeSync(this.reader.fd);
    this.reader = undefined;
    this.readBufSegment = undefined;
    if (this.readBuf.length > READ_CHUNK) this.readBuf = Buffer.allocUnsafe(READ_CHUNK); // don't keep a huge record's buffer
  }

  /** Records the counts said were there but reading did not find (file changed under us). */
  private forgetUntaken(seg: Segment, reason: string): void {
    if (seg.untaken === 0) return;
    this.log.warn({ file: seg.path, records: seg.untaken, reason }, 'spool: records lost');
    this.diskUntaken -= seg.untaken;
    this.diskUntakenBytes -= seg.untakenBytes;
    this.diskUnreleased -= seg.untaken;
    seg.unreleased -= seg.untaken;
    seg.untaken = 0;
    seg.untakenBytes = 0;
    if (seg.unreleased === 0) this.dropSegment(seg);
  }

  /** A disk record is acknowledged: advance its segment's cursor, drop drained segments. */
  private release(seg: Segment, end: number): void {
    seg.consumed = Math.max(seg.consumed, end);
    seg.unreleased--;
    this.diskUnreleased--;
    this.cursorDirty = true;
    if (seg.unreleased === 0) this.dropSegment(seg);
    else this.scheduleCursorWrite();
  }

  /** Deletes a segment whose records are all released (or lost). */
  private dropSegment(seg: Segment): void {
    if (this.diskUnreleased === 0) { this.resetDisk(); return; }
    if (seg.fd !== undefined) return; // still being appended to: it has newer records coming
    if (this.reader?.segment === seg) this.closeReader();
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
    this.diskFileBytes -= seg.size;
    this.safeUnlink(seg.path);
    this.writeCursor(); // now, so a reused id can never meet a stale offset
  }

  /** The disk tier drained: delete every segment, so new messages go to memory again. */
  private resetDisk(): void {
    this.closeReader();
    for (const seg of this.segments) {
      if (seg.fd !== undefined) closeSync(seg.fd);
      this.safeUnlink(seg.path);
    }
    this.segments = [];
    this.diskFileBytes = 0;
    this.diskUntaken = 0;
    this.diskUntakenBytes = 0;
    this.diskUnreleased = 0;
    this.writeCursor();
  }

  private readCursor(): Map<number, number> {
    const path = join(this.dir, CURSOR_FILE);
    const out = new Map<number, number>();
    let text: string;
    try {
      // Stryker disable next-line StringLiteral: with no encoding readFileSync returns a Buffer, which JSON.parse reads as UTF-8 alike
      text = readFileSync(path, 'utf8');
    } catch {
      return out;
    }
    try {
      const doc: unknown = JSON.parse(text);
      const consumed = typeof doc === 'object' && doc !== null ? (doc as { consumed?: unknown }).consumed : undefined;
      if (typeof consumed !== 'object' || consumed === null) throw new Error('no "consumed" object');
      for (const [key, value] of Object.entries(consumed)) {
        if (/^\d{1,15}$/.test(key) && typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) out.set(Number(key), value);
        else this.log.warn({ file: path, key }, 'spool: ignoring a bad cursor entry');
      }
    } catch (err) {
      this.log.warn({ file: path, offset: 0, err: errorText(err) }, 'spool: cursor file is corrupt; re-sending from the start of each segment');
      out.clear();
    }
    return out;
  }

  private scheduleCursorWrite(): void {
    if (this.cursorTimer || this.closed) return;
    const wait = CURSOR_WRITE_INTERVAL_MS - (Date.now() - this.cursorWrittenAt);
    if (wait <= 0) { this.writeCursor(); return; }
    this.cursorTimer = setTimeout(() => { this.cursorTimer = undefined; if (this.cursorDirty && !this.closed) this.writeCursor(); }, wait);
    this.cursorTimer.unref();
  }

  private writeCursor(): void {
    const path = join(this.dir, CURSOR_FILE);
    // Stryker disable next-line BooleanLiteral: left set, close() or the timer only write the same cursor again
    this.cursorDirty = false;
    this.cursorWrittenAt = Date.now();
    if (this.cursorTimer) { clearTimeout(this.cursorTimer); this.cursorTimer = undefined; }
    const consumed: Record<string, number> = {};
    for (const seg of this.segments) if (seg.consumed > 0) consumed[String(seg.id)] = seg.consumed;
    try {
      if (Object.keys(consumed).length === 0) { this.safeUnlink(path); return; }
      writeFileSync(`${path}.tmp`, JSON.stringify({ version: 1, consumed }));
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      this.log.warn({ file: path, err: errorText(err) }, 'spool: cannot write the cursor (acknowledged records may be re-sent)');
    }
  }

  private safeUnlink(path: string): void {
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file: path, err: errorText(err) }, 'spool: cannot delete file');
    }
  }
}

function segmentName(id: number): string {
  return `seg-${String(id).padStart(12, '0')}.jsonl`;
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  // Stryker disable next-line ArithmeticOperator: a regular file takes the whole buffer in one write, so the length is only ever asked with off = 0
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

/** One spool line (with its newline). */
export function encodeRecord(message: OutboundMessage): Buffer {
  let text: string | undefined;
  try {
    text = utf8Strict.decode(message.data);
  // Stryker disable next-line BlockStatement: text is still undefined when decode() throws
  } catch {
    text = undefined;
  }
  const record = text !== undefined
    ? { s: message.subject, i: message.msgId, d: text }
    : { s: message.subject, i: message.msgId, b: Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength).toString('base64') };
  // Stryker disable next-line StringLiteral: Buffer.from takes an empty encoding as UTF-8
  return Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A spool line (without newline) back into a message, or the reason it is not one. */
export function decodeRecord(line: string): OutboundMessage | string {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'not a JSON object';
  const { s, i, d, b } = doc as Record<string, unknown>;
  if (typeof s !== 'string' || s === '') return 'missing subject "s"';
  if (typeof i !== 'string' || i === '') return 'missing message id "i"';
  if (typeof d === 'string' && b === undefined) return { subject: s, msgId: i, data: Buffer.from(d, 'utf8') };
  if (typeof b === 'string' && d === undefined && b.length % 4 === 0 && BASE64.test(b)) return { subject: s, msgId: i, data: Buffer.from(b, 'base64') };
  return 'missing or bad data ("d" string or "b" base64)';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
