/**
 * The reader parses records in place in the chunks its byte source lends and
 * copies only a record that straddles two chunks: whatever the chunk size,
 * every record, offset, position and truncation point must be the same as
 * when the whole file is one chunk.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CaptureReader, END, NEED_DATA, type ReaderOptions } from '../agent/capture/index.js';
import { buildConfig } from '../common/config.js';
import { EtherTypes, PcapngBuilder, Proto, ethernet, ipv4, pcapFile, udp } from './helpers/capture-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'pcap-reader-chunks-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
function writeTemp(bytes: Uint8Array, ext: string): string {
  const path = join(tmp, `capture-${++fileNo}${ext}`);
  writeFileSync(path, bytes);
  return path;
}

const INPUT = buildConfig(undefined).input;

function frame(n: number, extra: number): Buffer {
  const payload = Buffer.alloc(4 + extra, n & 0xff);
  payload.writeUInt32BE(n >>> 0, 0);
  return ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4,
    ipv4({ src: '192.0.2.1', dst: '198.51.100.7', proto: Proto.UDP, payload: udp({ srcPort: 40000, dstPort: 9999, payload }) }));
}

/** Frames of many sizes, one of 100 KiB (over the 64 KiB carry, which must grow for it). */
function frames(): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < 400; i++) out.push(frame(i, i === 200 ? 100 * 1024 : (i * 53) % 700));
  return out;
}

/** One line per record and the reader's final state, as text to compare. */
async function readAll(path: string, maxReadBytes?: number): Promise<string[]> {
  const options: ReaderOptions = { ...INPUT, ...(maxReadBytes ? { maxReadBytes } : {}) };
  const reader = await CaptureReader.open(path, options);
  const lines: string[] = [];
  try {
    const r = reader.record;
    for (let s = reader.next(); s !== END; s = reader.next()) {
      if (s === NEED_DATA) { await reader.fill(); continue; }
      const bytes = Buffer.from(r.data.subarray(r.offset, r.offset + r.capLen)).toString('hex');
      lines.push(`${r.number} ${r.tsSec}.${r.tsNsec} ${r.capLen}/${r.wireLen} @${r.fileOffset} ${bytes}`);
    }
  } finally {
    await reader.close();
  }
  lines.push(`end position ${reader.position} truncated ${reader.truncated} at ${reader.truncatedAt} packets ${reader.packets}`);
  return lines;
}

const SIZES = [1, 3, 16, 17, 100, 1000, 4093, 65536, 70001];

async function sameAtEverySize(path: string): Promise<void> {
  const whole = await readAll(path);
  for (const size of SIZES) {
    const chunked = await readAll(path, size);
    assert.equal(chunked.length, whole.length, `${size}-byte chunks: record count`);
    for (let i = 0; i < whole.length; i++) if (chunked[i] !== whole[i]) assert.fail(`${size}-byte chunks, line ${i + 1} differs`);
  }
}

test('pcap: same records at every chunk size, and when cut anywhere', async () => {
  const fs = frames();
  const file = pcapFile({ endian: 'le', nanos: false }, fs.map((data, i) => ({ tsSec: 1000 + i, tsSub: i, data })));
  await sameAtEverySize(writeTemp(file, '.pcap'));
  // Cuts inside the file header's end, a record header and a record's data, and at a record boundary.
  for (const cut of [24, 30, 24 + 16 + fs[0]!.length, 24 + 16 + fs[0]!.length + 5, Math.floor(file.length / 2), file.length - 1]) {
    await sameAtEverySize(writeTemp(file.subarray(0, cut), '.pcap'));
  }
});

test('pcapng, plain and gzip: same records at every chunk size', async () => {
  const b = new PcapngBuilder().section('le').interface({ linkType: 1, tsresol: 9 });
  frames().forEach((data, i) => b.epb(0, { ts: BigInt(i) * 1000n, data }));
  const file = b.build();
  await sameAtEverySize(writeTemp(file, '.pcapng'));
  await sameAtEverySize(writeTemp(gzipSync(file), '.pcapng.gz'));
  await sameAtEverySize(writeTemp(file.subarray(0, file.length - 7), '.pcapng'));
});
