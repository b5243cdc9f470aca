#!/usr/bin/env node
/**
 * Writes a large classic pcap (little-endian, microsecond, Ethernet) for
 * memory and throughput checks, by repeating the records of the shared
 * classic-pcap Ethernet captures. The result is not committed: make it when
 * needed (test/large-capture.test.ts does, in the temp dir).
 *
 *   node scripts/make-large-capture.mjs OUT [--size SIZE] [--pcaps DIR] [--max-gap SECONDS]
 *
 * SIZE is a byte count with an optional K/M/G suffix (powers of 1024, decimals
 * allowed); the default is 1.1G. The file is at least SIZE bytes (whole
 * repetitions). DIR defaults to ../shared/pcaps beside the repository.
 *
 * Each repetition holds every record of every source, in order, with:
 *  - timestamps rebuilt so time only moves forward: gaps between records are
 *    kept but clamped to [0, 10] s (--max-gap; some sources are out of order
 *    or span years), sources follow each other 1 s apart, and each repetition
 *    starts 1 s after the previous one ends;
 *  - for IPv4 packets (also behind VLAN tags), the last two bytes of the
 *    source and destination addresses XORed with the repetition number, the
 *    same map for both so both directions of a flow stay one flow, and every
 *    repetition has its own flows. The header checksum is left stale (the
 *    analyzer does not check it).
 *
 * Prints one JSON line: { path, bytes, packets, repetitions, sources, spanSeconds }.
 * No dependencies; large buffered writes.
 */
import { closeSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const USAGE = 'usage: node scripts/make-large-capture.mjs OUT [--size SIZE (default 1.1G)] [--pcaps DIR] [--max-gap SECONDS (default 10)]';
const MAX_CAPLEN = 262144;
const SOURCE_GAP_US = 1_000_000;
const CHUNK = 64 * 1024 * 1024;

function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?)([kmg]?)i?b?$/i.exec(text.trim());
  if (!m) throw new Error(`bad size "${text}"`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase()];
  return Math.ceil(Number(m[1]) * unit);
}

function parseArgs(argv) {
  const out = { path: undefined, size: parseSize('1.1G'), maxGapUs: 10_000_000, pcaps: resolve(dirname(fileURLToPath(import.meta.url)), '../../shared/pcaps') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--size') out.size = parseSize(argv[++i] ?? '');
    else if (a === '--pcaps') out.pcaps = resolve(argv[++i] ?? '');
    else if (a === '--max-gap') {
      const gap = Number(argv[++i]);
      if (!Number.isFinite(gap) || gap < 0) throw new Error('--max-gap needs a number of seconds >= 0');
      out.maxGapUs = Math.round(gap * 1e6);
    }
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (out.path === undefined) out.path = resolve(a);
    else throw new Error(`unexpected argument ${a}`);
  }
  if (out.path === undefined) throw new Error('missing OUT path');
  return out;
}

/** Offset of the IPv4 header in an Ethernet frame (after VLAN tags), or -1. */
function ipv4Offset(frame, capLen) {
  if (capLen < 14) return -1;
  let type = (frame[12] << 8) | frame[13];
  let p = 14;
  while ((type === 0x8100 || type === 0x88a8 || type === 0x9100) && p + 4 <= capLen) {
    type = (frame[p + 2] << 8) | frame[p + 3];
    p += 4;
  }
  if (type !== 0x0800 || p + 20 > capLen || frame[p] >> 4 !== 4) return -1;
  return p;
}

/**
 * Reads the little-endian microsecond Ethernet pcaps of `dir` and lays their
 * records out as one repetition: bytes, and per record its offset, relative
 * time and IPv4 header offset.
 */
function buildTemplate(dir, maxGapUs) {
  const names = readdirSync(dir).filter((n) => /\.(pcap|cap)$/.test(n)).sort();
  const sources = [];
  const parts = [];
  const offsets = [];
  const relUs = [];
  const ipOffsets = [];
  let size = 0;
  let clock = 0;
  let firstSec = 0;
  for (const name of names) {
    const file = readFileSync(join(dir, name));
    if (file.length < 24 || file.readUInt32LE(0) !== 0xa1b2c3d4 || (file.readUInt32LE(20) & 0x03ffffff) !== 1) continue;
    let p = 24;
    let prevUs = -1;
    let records = 0;
    if (sources.length) clock += SOURCE_GAP_US;
    while (p + 16 <= file.length) {
      const sec = file.readUInt32LE(p);
      const usec = file.readUInt32LE(p + 4);
      const capLen = file.readUInt32LE(p + 8);
      if (capLen > MAX_CAPLEN || p + 16 + capLen > file.length) break;
      const us = sec * 1e6 + Math.min(usec, 999_999);
      if (firstSec === 0) firstSec = sec;
      if (prevUs >= 0) clock += Math.min(maxGapUs, Math.max(0, us - prevUs));
      prevUs = us;
      const rec = file.subarray(p, p + 16 + capLen);
      offsets.push(size);
      relUs.push(clock);
      const ip = ipv4Offset(rec.subarray(16), capLen);
      ipOffsets.push(ip < 0 ? -1 : 16 + ip);
      parts.push(rec);
      size += rec.length;
      records++;
      p += 16 + capLen;
    }
    if (records) sources.push(name);
  }
  if (!sources.length) throw new Error(`no little-endian microsecond Ethernet pcaps in ${dir}`);
  return { bytes: Buffer.concat(parts, size), offsets, relUs, ipOffsets, sources, spanUs: clock, startUs: firstSec * 1e6 };
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const t = buildTemplate(args.pcaps, args.maxGapUs);
  const repBytes = t.bytes.length;
  const repetitions = Math.max(1, Math.ceil((args.size - 24) / repBytes));
  if (repetitions > 65536) throw new Error('size too large for distinct addresses per repetition (65536 repetitions at most)');
  const repSpanUs = t.spanUs + SOURCE_GAP_US;
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(MAX_CAPLEN, 16);
  header.writeUInt32LE(1, 20);
  const chunk = Buffer.allocUnsafe(Math.max(CHUNK, repBytes));
  const fd = openSync(args.path, 'w');
  let written = 0;
  let used = 0;
  try {
    writeSync(fd, header);
    written += 24;
    const n = t.offsets.length;
    for (let rep = 0; rep < repetitions; rep++) {
      if (used + repBytes > chunk.length) { writeSync(fd, chunk, 0, used); written += used; used = 0; }
      t.bytes.copy(chunk, used);
      const hi = (rep >> 8) & 0xff;
      const lo = rep & 0xff;
      const baseUs = t.startUs + rep * repSpanUs;
      for (let i = 0; i < n; i++) {
        const at = used + t.offsets[i];
        const us = baseUs + t.relUs[i];
        const sec = Math.floor(us / 1e6);
        chunk.writeUInt32LE(sec >>> 0, at);
        chunk.writeUInt32LE(us - sec * 1e6, at + 4);
        const ip = t.ipOffsets[i];
        if (ip >= 0 && rep > 0) {
          chunk[at + ip + 14] ^= hi; chunk[at + ip + 15] ^= lo; // source x.x.H.L
          chunk[at + ip + 18] ^= hi; chunk[at + ip + 19] ^= lo; // destination
        }
      }
      used += repBytes;
    }
    if (used) { writeSync(fd, chunk, 0, used); written += used; }
  } finally {
    closeSync(fd);
  }
  const result = {
    path: args.path, bytes: written, packets: repetitions * t.offsets.length, repetitions,
    sources: t.sources, spanSeconds: Math.round((repetitions * repSpanUs) / 1e6),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`make-large-capture: ${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
  process.exit(1);
}
