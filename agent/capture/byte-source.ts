/**
 * Byte sources for the capture reader: a plain file read with positional reads
 * into two reused read-ahead buffers, or a stream (stdin, gzip). Either lends
 * its bytes chunk by chunk, and the reader parses them in place. Gzip is
 * detected by magic and always inflated as a stream, never in memory, with
 * limits on size and ratio.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { InputError } from '../../common/errors.js';

export interface ByteSource {
  /**
   * Lends the next bytes of input, at most `maxBytes` (an empty array at end of
   * input). They stay valid until the next call: copy what is still needed first.
   */
  borrow(maxBytes: number): Promise<Uint8Array>;
  close(): Promise<void>;
  /** Bytes consumed from the file on disk so far (compressed bytes for gzip), for progress. */
  readonly consumed: number;
  /** Size of the file on disk when known (not for stdin). */
  readonly size: number | undefined;
  /** True when the input ended inside a gzip member (the data before the cut is still returned). */
  readonly cutShort: boolean;
}

export interface DecompressionLimits {
  maxDecompressedBytes: number;
  maxCompressionRatio: number;
}

/** Ratio checks start past this many inflated bytes: small prefixes of ordinary files compress very well. */
const RATIO_CHECK_FLOOR = 64 * 1024 * 1024;

const EMPTY = new Uint8Array(0);

/**
 * Size of each of the two read-ahead buffers. 4 MiB rather than 1: each
 * buffer costs an event-loop turn to learn its read completed, and the read
 * starts further ahead of its use (idle main thread in `analyze` mixed.pcap,
 * median of 5 profiles: 47 ms -> 7 ms).
 */
const READ_AHEAD_BYTES = 4 * 1024 * 1024;

/**
 * A plain file, double-buffered: while the caller parses the bytes of one
 * buffer, the next part of the file is read into the other in the thread
 * pool, so the main thread does not sit idle waiting for the disk (about a
 * tenth of `analyze`'s wall time before). Reads name their file position, so
 * two can be in flight. The caller parses the lent buffer in place (copying
 * every byte cost about 3 % of `analyze`); a buffer is read into again only
 * when the caller borrows the next one.
 */
class FileSource implements ByteSource {
  consumed = 0;
  readonly cutShort = false;
  private readonly buffers = [new Uint8Array(READ_AHEAD_BYTES), new Uint8Array(READ_AHEAD_BYTES)];
  private readonly pending: Array<Promise<number> | null> = [null, null];
  /** Buffer being drained (-1: nothing read yet), its read position and length. */
  private current = -1;
  private pos = 0;
  private len = 0;
  private fileOffset = 0;
  /** A read came back short: the file ends there (a regular file reads short only at its end). */
  private eof = false;
  constructor(private readonly fh: FileHandle, readonly size: number) {}

  async borrow(maxBytes: number): Promise<Uint8Array> {
    if (this.current < 0) {
      this.readAhead(0);
      this.readAhead(1);
      this.current = 0;
      await this.take(0);
    } else if (this.pos === this.len) {
      if (this.len === 0) return EMPTY;
      this.readAhead(this.current); // refill the drained buffer while the other one is parsed
      this.current ^= 1;
      await this.take(this.current);
    }
    const n = Math.min(maxBytes, this.len - this.pos);
    const out = this.buffers[this.current]!.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.consumed += n;
    return out;
  }

  private readAhead(i: number): void {
    if (this.eof) { this.pending[i] = Promise.resolve(0); return; }
    const at = this.fileOffset;
    this.fileOffset += READ_AHEAD_BYTES;
    const read = this.fh.read(this.buffers[i]!, 0, READ_AHEAD_BYTES, at).then((r) => r.bytesRead);
    // The error is rethrown where the read is awaited; until then it must not count as unhandled.
    read.catch(() => {});
    this.pending[i] = read;
  }

  private async take(i: number): Promise<void> {
    const read = this.pending[i] ?? Promise.resolve(0);
    this.pending[i] = null;
    this.len = await read;
    this.pos = 0;
    if (this.len < READ_AHEAD_BYTES) this.eof = true;
  }

  async close(): Promise<void> {
    // A read still in flight would write into a closed descriptor's buffer: let it finish first.
    for (const read of this.pending) if (read) await read.catch(() => 0);
    await this.fh.close();
  }
}

/** Adapts an async iterable of chunks (stdin, a gunzip stream) to positional reads. */
class StreamSource implements ByteSource {
  private readonly chunks: AsyncIterator<Buffer>;
  private pending: Buffer | null = null;
  private pendingOff = 0;
  cutShort = false;
  constructor(
    stream: AsyncIterable<Buffer>,
    private readonly counter: { consumed: number; size: number | undefined },
    private readonly onClose: () => void,
  ) {
    this.chunks = stream[Symbol.asyncIterator]();
  }
  get consumed(): number { return this.counter.consumed; }
  get size(): number | undefined { return this.counter.size; }
  async borrow(maxBytes: number): Promise<Uint8Array> {
    while (this.pending === null || this.pendingOff >= this.pending.length) {
      let next: IteratorResult<Buffer>;
      try {
        next = await this.chunks.next();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'Z_BUF_ERROR') { this.cutShort = true; return EMPTY; }
        // Other zlib errors (bad header, CRC or length check, invalid block) mean a corrupt file, not a bug.
        if (typeof code === 'string' && code.startsWith('Z_')) {
          throw new InputError('gzip_corrupt', `corrupt gzip data: ${(err as Error).message}`, undefined, { cause: err });
        }
        throw err;
      }
      if (next.done) return EMPTY;
      this.pending = next.value;
      this.pendingOff = 0;
    }
    const chunk = this.pending;
    const n = Math.min(maxBytes, chunk.length - this.pendingOff);
    // A plain Uint8Array over the chunk's bytes, not a Buffer: the parser and decoder see one array type.
    const out = new Uint8Array(chunk.buffer, chunk.byteOffset + this.pendingOff, n);
    this.pendingOff += n;
    return out;
  }
  async close(): Promise<void> { this.onClose(); }
}

function gunzipWithLimits(raw: Readable, counter: { consumed: number }, limits: DecompressionLimits): Readable {
  const gunzip = createGunzip();
  let inflated = 0;
  raw.on('data', (chunk: Buffer) => { counter.consumed += chunk.length; });
  gunzip.on('data', (chunk: Buffer) => {
    inflated += chunk.length;
    if (inflated > limits.maxDecompressedBytes) {
      gunzip.destroy(new InputError('decompression_limit',
        `gzip input inflates past ${limits.maxDecompressedBytes} bytes (input.maxDecompressedBytes); refusing to continue`));
    } else if (inflated > RATIO_CHECK_FLOOR && inflated > limits.maxCompressionRatio * Math.max(counter.consumed, 1)) {
      gunzip.destroy(new InputError('decompression_ratio',
        `gzip input inflates more than ${limits.maxCompressionRatio}:1 (input.maxCompressionRatio); looks like a decompression bomb`));
    }
  });
  raw.on('error', (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

const isGzip = (b: Uint8Array, n: number): boolean => n >= 2 && b[0] === 0x1f && b[1] === 0x8b;

export interface OpenedSource { source: ByteSource; compressed: boolean }

/** Opens a path, or `-` for standard input, unwrapping gzip when the first bytes say so. */
export async function openByteSource(path: string, limits: DecompressionLimits): Promise<OpenedSource> {
  if (path === '-') return openStdin(limits);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : code;
    throw new InputError('open', `cannot open ${path}: ${why}`, undefined, { cause: err });
  }
  const stat = await fh.stat();
  if (stat.isDirectory()) { await fh.close(); throw new InputError('open', `cannot open ${path}: is a directory`); }
  const magic = new Uint8Array(2);
  const { bytesRead } = await fh.read(magic, 0, 2, 0);
  if (!isGzip(magic, bytesRead)) return { source: new FileSource(fh, stat.size), compressed: false };
  await fh.close();
  const counter = { consumed: 0, size: stat.size as number | undefined };
  const raw = createReadStream(path, { highWaterMark: 256 * 1024 });
  const inflated = gunzipWithLimits(raw, counter, limits);
  return { source: new StreamSource(inflated, counter, () => { raw.destroy(); inflated.destroy(); }), compressed: true };
}

async function openStdin(limits: DecompressionLimits): Promise<OpenedSource> {
  const stdin = process.stdin;
  const counter = { consumed: 0, size: undefined as number | undefined };
  const it = stdin[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : first.value;
  // Put the sniffed chunk back in front of the rest of stdin.
  async function* rest(): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    for (;;) { const r = await it.next(); if (r.done) return; yield r.value; }
  }
  const close = (): void => { stdin.destroy(); };
  if (!isGzip(head, head.length)) {
    const counted = (async function* (): AsyncGenerator<Buffer> {
      for await (const chunk of rest()) { counter.consumed += chunk.length; yield chunk; }
    })();
    return { source: new StreamSource(counted, counter, close), compressed: false };
  }
  const inflated = gunzipWithLimits(Readable.from(rest()), counter, limits);
  return { source: new StreamSource(inflated, counter, close), compressed: true };
}
