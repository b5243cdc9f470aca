/**
 * CaptureReader against capture files built byte by byte: both classic pcap
 * byte orders and resolutions, pcapng sections/interfaces/blocks, gzip and
 * stdin, buffer growth and chunked reads, truncation and corrupt lengths
 * (which must name the byte offset of the bad record or block).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { CaptureReader, END, MAX_PCAP_RECORD, NEED_DATA, type ReaderOptions } from '../agent/capture/index.js';
import { analyzeCapture } from '../agent/analyze/index.js';
import { buildConfig } from '../common/config.js';
import { InputError } from '../common/errors.js';
import type { Report } from '../common/report.js';
import {
  BlockType, ByteWriter, PcapngBuilder, Proto, dns, ethernet, EtherTypes, ipv4, pcapFile, pcapHeader, pcapRecord,
  sll, udp, type Endian, type PcapRecordSpec,
} from './helpers/capture-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'pcap-reader-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let fileNo = 0;
function writeTemp(bytes: Uint8Array, ext = '.pcap'): string {
  const path = join(tmp, `capture-${++fileNo}${ext}`);
  writeFileSync(path, bytes);
  return path;
}

const CONFIG = buildConfig(undefined);
const OPTIONS: ReaderOptions = { ...CONFIG.input };
const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/pcap-analyzer.js');

interface ReadRecord {
  number: number;
  tsSec: number;
  tsNsec: number;
  capLen: number;
  wireLen: number;
  linkType: number;
  interfaceId: number;
  fileOffset: number;
  data: Buffer;
}

/** Reads every record, copying its bytes (the reader's buffer is reused). Closes the reader in all cases. */
async function readAll(path: string, options: ReaderOptions = OPTIONS): Promise<{ records: ReadRecord[]; reader: CaptureReader }> {
  const reader = await CaptureReader.open(path, options);
  const records: ReadRecord[] = [];
  try {
    const r = reader.record;
    for (let status = reader.next(); status !== END; status = reader.next()) {
      if (status === NEED_DATA) { await reader.fill(); continue; }
      records.push({
        number: r.number, tsSec: r.tsSec, tsNsec: r.tsNsec, capLen: r.capLen, wireLen: r.wireLen,
        linkType: r.linkType, interfaceId: r.interfaceId, fileOffset: r.fileOffset,
        data: Buffer.from(r.data.subarray(r.offset, r.offset + r.capLen)),
      });
    }
  } finally {
    await reader.close();
  }
  return { records, reader };
}

/** Asserts that reading `path` fails with an InputError of `code` at byte `offset`. */
async function assertInputError(path: string, code: string, offset: number, options: ReaderOptions = OPTIONS): Promise<void> {
  await assert.rejects(readAll(path, options), (err: unknown) => {
    assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.offset, offset, err.message);
    assert.match(err.message, new RegExp(`at byte offset ${offset}\\)$`));
    return true;
  });
}

/** A small distinct Ethernet/IPv4/UDP frame; `n` is written into the UDP payload. */
function frame(n: number, extra = 0): Buffer {
  const payload = Buffer.alloc(4 + extra, 0x5a);
  payload.writeUInt32BE(n >>> 0, 0);
  return ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4,
    ipv4({ src: '192.0.2.1', dst: '198.51.100.7', proto: Proto.UDP, payload: udp({ srcPort: 40000 + (n % 1000), dstPort: 9999, payload }) }));
}

const dnsFrame = ethernet('02:00:00:00:00:02', '02:00:00:00:00:01', EtherTypes.IPV4,
  ipv4({ src: '192.0.2.1', dst: '192.0.2.53', proto: Proto.UDP, payload: udp({ srcPort: 5353, dstPort: 53, payload: dns({ id: 7, qname: 'example.org' }) }) }));

// ---------------------------------------------------------------------------

describe('classic pcap', () => {
  for (const endian of ['le', 'be'] as const) {
    test(`${endian} microsecond magic: header fields, timestamps and data`, async () => {
      const f1 = frame(1);
      const f2 = frame(2, 100);
      const path = writeTemp(pcapFile({ endian, linkType: 1 }, [
        { tsSec: 1700000000, tsSub: 123456, data: f1 },
        // Snapshot length cut: 60 bytes captured of 146 on the wire.
        { tsSec: 4000000000, tsSub: 999999, data: f2.subarray(0, 60), wireLen: f2.length },
      ]));
      const { records, reader } = await readAll(path);
      assert.equal(reader.format, 'pcap');
      assert.equal(reader.compressed, false);
      assert.deepEqual(reader.linkTypes, [1]);
      assert.equal(reader.truncated, false);
      assert.equal(records.length, 2);
      const [a, b] = records as [ReadRecord, ReadRecord];
      assert.deepEqual([a.number, a.tsSec, a.tsNsec, a.capLen, a.wireLen, a.linkType, a.interfaceId, a.fileOffset],
        [1, 1700000000, 123456000, f1.length, f1.length, 1, 0, 24]);
      assert.deepEqual(a.data, f1);
      // Seconds past 2^31 are unsigned; microseconds become nanoseconds.
      assert.deepEqual([b.number, b.tsSec, b.tsNsec, b.capLen, b.wireLen, b.fileOffset],
        [2, 4000000000, 999999000, 60, f2.length, 24 + 16 + f1.length]);
      assert.deepEqual(b.data, f2.subarray(0, 60));
    });

    test(`${endian} nanosecond magic keeps every nanosecond`, async () => {
      const path = writeTemp(pcapFile({ endian, nanos: true, linkType: 101 }, [
        { tsSec: 1, tsSub: 1, data: frame(1).subarray(14) },
        { tsSec: 1700000000, tsSub: 999999999, data: frame(2).subarray(14) },
        { tsSec: 1700000001, tsSub: 0, data: frame(3).subarray(14) },
      ]));
      const { records, reader } = await readAll(path);
      assert.deepEqual(reader.linkTypes, [101]);
      assert.deepEqual(records.map((r) => [r.tsSec, r.tsNsec]), [[1, 1], [1700000000, 999999999], [1700000001, 0]]);
      assert.deepEqual(records.map((r) => r.linkType), [101, 101, 101]);
    });
  }

  test('a microsecond field past one second carries into the seconds', async () => {
    const path = writeTemp(pcapFile({}, [{ tsSec: 10, tsSub: 1500000, data: frame(1) }]));
    const { records } = await readAll(path);
    assert.deepEqual([records[0]!.tsSec, records[0]!.tsNsec], [11, 500000000]);
  });

  test('FCS bits in the header link-type field are masked off', async () => {
    const path = writeTemp(pcapFile({ linkType: 0x14000001 }, [{ tsSec: 1, tsSub: 0, data: frame(1) }]));
    const { records, reader } = await readAll(path);
    assert.deepEqual(reader.linkTypes, [1]);
    assert.equal(records[0]!.linkType, 1);
  });

  for (const endian of ['le', 'be'] as const) {
    test(`modified pcap magic 0xa1b2cd34 (${endian}): 24-byte record headers`, async () => {
      const f1 = frame(1);
      const f2 = frame(2, 7);
      const path = writeTemp(pcapFile({ endian, modified: true }, [
        { tsSec: 100, tsSub: 5, data: f1 },
        { tsSec: 101, tsSub: 6, data: f2 },
      ]));
      const { records } = await readAll(path);
      assert.equal(records.length, 2);
      assert.deepEqual(records[0]!.data, f1);
      assert.deepEqual(records[1]!.data, f2);
      assert.deepEqual(records.map((r) => r.fileOffset), [24, 24 + 24 + f1.length]);
      assert.deepEqual(records.map((r) => r.tsNsec), [5000, 6000]);
    });
  }

  test('unknown magic and a wrong major version are rejected at their offset', async () => {
    await assert.rejects(CaptureReader.open(writeTemp(Buffer.from('hello, world, not a capture file')), OPTIONS),
      (err: unknown) => err instanceof InputError && err.code === 'bad_magic' && err.offset === 0);
    await assert.rejects(CaptureReader.open(writeTemp(pcapHeader({ versionMajor: 3 })), OPTIONS),
      (err: unknown) => err instanceof InputError && err.code === 'bad_version' && err.offset === 4);
    await assert.rejects(CaptureReader.open(writeTemp(Buffer.alloc(0)), OPTIONS),
      (err: unknown) => err instanceof InputError && err.code === 'empty');
    await assert.rejects(CaptureReader.open(writeTemp(pcapHeader().subarray(0, 20)), OPTIONS),
      (err: unknown) => err instanceof InputError && err.code === 'short_header');
  });

  test('a header with no records is an empty capture, not an error', async () => {
    const { records, reader } = await readAll(writeTemp(pcapHeader({ linkType: 113 })));
    assert.equal(records.length, 0);
    assert.equal(reader.truncated, false);
    assert.deepEqual(reader.linkTypes, [113]);
  });
});

// ---------------------------------------------------------------------------

describe('pcapng', () => {
  for (const endian of ['le', 'be'] as const) {
    test(`${endian} section: IDB defaults to microseconds, EPB fields`, async () => {
      const f1 = frame(1);
      const f2 = frame(2, 33);
      const b = new PcapngBuilder().section(endian).interface({ linkType: 1, name: 'eth0' });
      const epb1 = b.offset;
      b.epb(0, { ts: 1700000000123456n, data: f1 });
      const epb2 = b.offset;
      b.epb(0, { ts: 1700000001000001n, data: f2.subarray(0, 50), wireLen: f2.length });
      const { records, reader } = await readAll(writeTemp(b.build(), '.pcapng'));
      assert.equal(reader.format, 'pcapng');
      assert.equal(reader.sections, 1);
      assert.deepEqual(reader.linkTypes, [1]);
      assert.equal(records.length, 2);
      assert.deepEqual(records.map((r) => [r.number, r.tsSec, r.tsNsec, r.capLen, r.wireLen, r.interfaceId, r.fileOffset]), [
        [1, 1700000000, 123456000, f1.length, f1.length, 0, epb1],
        [2, 1700000001, 1000, 50, f2.length, 0, epb2],
      ]);
      assert.deepEqual(records[0]!.data, f1);
      assert.deepEqual(records[1]!.data, f2.subarray(0, 50));
    });
  }

  test('two sections with different byte orders; the second section starts with no interfaces', async () => {
    const b = new PcapngBuilder()
      .section('le')
      .interface({ linkType: 1 })
      .interface({ linkType: 101 })
      .epb(1, { ts: 1000000n, data: frame(1).subarray(14) })
      .epb(0, { ts: 2000000n, data: frame(2) })
      .section('be')
      .interface({ linkType: 113, tsresol: 9 })
      .epb(0, { ts: 3000000005n, data: sll(EtherTypes.IPV4, frame(3).subarray(14)) });
    const path = writeTemp(b.build(), '.pcapng');
    const { records, reader } = await readAll(path);
    assert.equal(reader.sections, 2);
    assert.deepEqual(reader.linkTypes, [1, 101, 113]);
    assert.deepEqual(records.map((r) => [r.linkType, r.interfaceId, r.tsSec, r.tsNsec]), [
      [101, 1, 1, 0],
      [1, 0, 2, 0],
      [113, 0, 3, 5], // interface 0 of the second section, nanosecond resolution
    ]);
    const { report } = await analyzeCapture(path, CONFIG);
    assert.deepEqual(report.source.linkTypes, ['EN10MB', 'RAW', 'LINUX_SLL']);
    assert.equal(report.capture.packets, 3);
    assert.equal(report.counters['ip'], 3);
    assert.equal(report.counters['udp'], 3);

    // Interface 1 existed in the first section only: referring to it after the second SHB is corrupt.
    const bad = new PcapngBuilder()
      .section('le').interface({ linkType: 1 }).interface({ linkType: 1 })
      .epb(1, { ts: 1n, data: frame(1) })
      .section('be').interface({ linkType: 1 });
    const badAt = bad.offset;
    bad.epb(1, { ts: 2n, data: frame(2) });
    await assertInputError(writeTemp(bad.build(), '.pcapng'), 'corrupt_block', badAt);
  });

  test('several interfaces with different link types are all listed in the report', async () => {
    const b = new PcapngBuilder().section()
      .interface({ linkType: 1 })
      .interface({ linkType: 113 })
      .epb(0, { ts: 1n, data: frame(1) })
      .epb(1, { ts: 2n, data: sll(EtherTypes.IPV4, frame(2).subarray(14)) })
      .epb(0, { ts: 3n, data: dnsFrame });
    const path = writeTemp(b.build(), '.pcapng');
    const { records } = await readAll(path);
    assert.deepEqual(records.map((r) => [r.linkType, r.interfaceId]), [[1, 0], [113, 1], [1, 0]]);
    const { report } = await analyzeCapture(path, CONFIG);
    assert.deepEqual(report.source.linkTypes, ['EN10MB', 'LINUX_SLL']);
    assert.equal(report.source.format, 'pcapng');
    assert.equal(report.counters['eth'], 2);
    assert.equal(report.counters['udp'], 3);
    assert.equal(report.counters['dns'], 1);
  });

  test('if_tsresol 10^-9, 10^-3, 2^-10 and if_tsoffset', async () => {
    const b = new PcapngBuilder().section('be')
      .interface({ linkType: 1, tsresol: 9 })
      .interface({ linkType: 1, tsresol: 3 })
      .interface({ linkType: 1, tsresol: 0x8a })
      .interface({ linkType: 1, tsoffset: 1600000000n })
      .interface({ linkType: 1, tsresol: 9, tsoffset: -10n })
      // 64-bit nanosecond count well past 2^53: must split exactly.
      .epb(0, { ts: 1700000000123456789n, data: frame(1) })
      .epb(1, { ts: 1700000000250n, data: frame(2) })
      .epb(2, { ts: 1700000000n * 1024n + 512n, data: frame(3) })
      .epb(2, { ts: 1700000000n * 1024n + 1n, data: frame(4) })
      .epb(3, { ts: 1500000n, data: frame(5) })
      .epb(4, { ts: 20000000007n, data: frame(6) });
    const { records } = await readAll(writeTemp(b.build(), '.pcapng'));
    assert.deepEqual(records.map((r) => [r.interfaceId, r.tsSec, r.tsNsec]), [
      [0, 1700000000, 123456789],
      [1, 1700000000, 250000000],
      [2, 1700000000, 500000000],
      [2, 1700000000, 976562], // 1/1024 s = 976562.5 ns, truncated
      [3, 1600000001, 500000000],
      [4, 10, 7],
    ]);
  });

  test('a Simple Packet Block takes the previous timestamp and interface 0', async () => {
    const full = frame(9, 200);
    const b = new PcapngBuilder().section()
      .interface({ linkType: 1, snaplen: 62, tsresol: 9 })
      .interface({ linkType: 113 })
      .epb(1, { ts: 5000123n, data: sll(EtherTypes.IPV4, frame(1).subarray(14)) })
      .epb(0, { ts: 1700000000000000042n, data: frame(2) });
    const spbAt = b.offset;
    // 62 bytes captured (the interface's snaplen) of a longer packet; the block pads them to 64.
    b.spb(full.subarray(0, 62), full.length);
    b.spb(frame(3));
    const { records } = await readAll(writeTemp(b.build(), '.pcapng'));
    assert.equal(records.length, 4);
    const spb = records[2]!;
    assert.deepEqual([spb.interfaceId, spb.linkType, spb.tsSec, spb.tsNsec, spb.fileOffset], [0, 1, 1700000000, 42, spbAt]);
    assert.equal(spb.wireLen, full.length);
    assert.equal(spb.capLen, 62, 'captured length is min(original length, snaplen), not the padded block body');
    assert.deepEqual(spb.data, full.subarray(0, 62));
    const whole = records[3]!;
    assert.deepEqual([whole.capLen, whole.wireLen, whole.tsSec, whole.tsNsec], [frame(3).length, frame(3).length, 1700000000, 42]);
    assert.deepEqual(whole.data, frame(3));
  });

  test('an SPB before any interface is corrupt', async () => {
    const b = new PcapngBuilder().section();
    const at = b.offset;
    b.spb(frame(1));
    await assertInputError(writeTemp(b.build(), '.pcapng'), 'corrupt_block', at);
  });

  test('obsolete Packet Block (type 2)', async () => {
    const f = frame(4, 3);
    const b = new PcapngBuilder().section('be')
      .interface({ linkType: 101 })
      .interface({ linkType: 1, tsresol: 3 })
      .pb(1, { ts: 1234567n, data: f }, 7);
    const { records } = await readAll(writeTemp(b.build(), '.pcapng'));
    assert.equal(records.length, 1);
    assert.deepEqual([records[0]!.interfaceId, records[0]!.linkType, records[0]!.tsSec, records[0]!.tsNsec, records[0]!.capLen],
      [1, 1, 1234, 567000000, f.length]);
    assert.deepEqual(records[0]!.data, f);
  });

  test('unknown, custom (0x0BAD), NRB and ISB blocks are skipped', async () => {
    const b = new PcapngBuilder().section()
      .block(0x00000bad, Buffer.from('before any interface')) // Custom Block, may be copied
      .interface({ linkType: 1 })
      .nrb([{ ip: '192.0.2.1', name: 'host.example' }])
      .epb(0, { ts: 1n, data: frame(1) })
      .block(0x00007777, Buffer.alloc(0)) // a type no spec defines
      .block(BlockType.ISB, new ByteWriter(true).u32(0).ts64(0n).build())
      .block(0x40000bad, Buffer.from([1, 2, 3, 4, 5])) // Custom Block, not to be copied
      .epb(0, { ts: 2n, data: frame(2) });
    const { records } = await readAll(writeTemp(b.build(), '.pcapng'));
    assert.deepEqual(records.map((r) => [r.number, r.tsNsec]), [[1, 1000], [2, 2000]]);
    assert.deepEqual(records[1]!.data, frame(2));
  });
});

// ---------------------------------------------------------------------------

describe('gzip and stdin', () => {
  test('gzip is detected by magic, whatever the name', async () => {
    const plain = pcapFile({ endian: 'be', nanos: true }, [
      { tsSec: 1, tsSub: 2, data: frame(1) },
      { tsSec: 3, tsSub: 4, data: dnsFrame },
    ]);
    const path = writeTemp(gzipSync(plain), '.pcap'); // no .gz suffix on purpose
    const { records, reader } = await readAll(path);
    assert.equal(reader.compressed, true);
    assert.equal(reader.format, 'pcap');
    assert.deepEqual(records.map((r) => [r.tsSec, r.tsNsec, r.capLen]), [[1, 2, frame(1).length], [3, 4, dnsFrame.length]]);
    assert.deepEqual(records[1]!.data, dnsFrame);
    const { report } = await analyzeCapture(path, CONFIG);
    assert.equal(report.source.compressed, true);
    assert.equal(report.capture.packets, 2);
    assert.equal(report.counters['dns'], 1);

    const ng = new PcapngBuilder().section('be').interface({ linkType: 1 }).epb(0, { ts: 7n, data: frame(7) }).build();
    const ngResult = await readAll(writeTemp(gzipSync(ng), '.gz'));
    assert.equal(ngResult.reader.compressed, true);
    assert.equal(ngResult.reader.format, 'pcapng');
    assert.deepEqual(ngResult.records[0]!.data, frame(7));
  });

  test('a gzip stream cut short keeps the packets before the cut and sets truncated', async () => {
    const records: PcapRecordSpec[] = [];
    for (let i = 0; i < 2000; i++) records.push({ tsSec: i, tsSub: 0, data: frame(i, i % 50) });
    const gz = gzipSync(pcapFile({}, records));
    const { records: got, reader } = await readAll(writeTemp(gz.subarray(0, Math.floor(gz.length * 0.6)), '.gz'));
    assert.equal(reader.truncated, true);
    assert.ok(got.length > 0 && got.length < 2000, `read ${got.length}`);
    got.forEach((r, i) => assert.equal(r.data.readUInt32BE(42), i));
  });

  test('corrupt gzip data (bad CRC) is an InputError, not an internal error', async () => {
    const gz = gzipSync(pcapFile({}, [{ tsSec: 1, tsSub: 0, data: frame(1) }, { tsSec: 2, tsSub: 0, data: frame(2) }]));
    gz[gz.length - 8]! ^= 0xff; // first byte of the CRC-32 in the gzip trailer
    await assert.rejects(readAll(writeTemp(gz, '.gz')), (err: unknown) => {
      assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
      assert.match(err.code, /gzip/);
      return true;
    });
  });

  test('input.maxDecompressedBytes stops a capture that inflates past it', async () => {
    const records: PcapRecordSpec[] = [];
    for (let i = 0; i < 4000; i++) records.push({ tsSec: i, tsSub: 0, data: frame(i, 200) });
    const plain = pcapFile({}, records); // about 1 MB, compresses very well
    assert.ok(plain.length > 900000);
    const path = writeTemp(gzipSync(plain), '.pcap.gz');
    const config = buildConfig({ input: { maxDecompressedBytes: 100000 } });
    const isLimit = (err: unknown): boolean => {
      assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
      assert.equal(err.code, 'decompression_limit');
      return true;
    };
    await assert.rejects(readAll(path, { ...config.input }), isLimit);
    await assert.rejects(analyzeCapture(path, config), isLimit);
    // The same file under the default limit reads completely.
    const { records: all } = await readAll(path);
    assert.equal(all.length, 4000);
  });

  async function runCli(input: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [BIN, 'analyze', '-', '--format', 'json'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.stdin.end(input);
    const code = await new Promise<number | null>((done, fail) => {
      const timer = setTimeout(() => { child.kill(); fail(new Error(`CLI timed out; stderr: ${stderr}`)); }, 30000);
      child.on('close', (c) => { clearTimeout(timer); done(c); });
    });
    return { code, stdout, stderr };
  }

  test('stdin: `analyze - --format json` reads a pcap piped into a child process', async () => {
    const records: PcapRecordSpec[] = [];
    for (let i = 0; i < 300; i++) records.push({ tsSec: 1700000000 + i, tsSub: i, data: i % 3 === 0 ? dnsFrame : frame(i, i) });
    const input = pcapFile({ endian: 'be' }, records);
    const { code, stdout, stderr } = await runCli(input);
    assert.equal(code, 0, stderr);
    const report = JSON.parse(stdout) as Report;
    assert.equal(report.source.path, '-');
    assert.equal(report.source.format, 'pcap');
    assert.equal(report.source.compressed, false);
    assert.equal(report.capture.packets, 300);
    assert.equal(report.counters['dns'], 100);
    assert.equal(report.capture.first, '2023-11-14T22:13:20.000000Z');
    assert.equal(report.capture.truncatedRecords, 0);
  });

  test('stdin: gzip pcapng on stdin', async () => {
    const b = new PcapngBuilder().section('be').interface({ linkType: 1 });
    for (let i = 0; i < 50; i++) b.epb(0, { ts: BigInt(i) * 1000000n, data: frame(i) });
    const { code, stdout, stderr } = await runCli(gzipSync(b.build()));
    assert.equal(code, 0, stderr);
    const report = JSON.parse(stdout) as Report;
    assert.equal(report.source.format, 'pcapng');
    assert.equal(report.source.compressed, true);
    assert.equal(report.capture.packets, 50);
    assert.equal(report.capture.durationSeconds, 49);
  });
});

// ---------------------------------------------------------------------------

describe('buffering', () => {
  /** 60,000 records of varying size: over 9 MiB, so the 4 MiB read-ahead buffers are refilled, each time mid-record. */
  const MANY = 60000;
  function manyFrames(): Buffer[] {
    const frames: Buffer[] = [];
    for (let i = 0; i < MANY; i++) {
      const f = frame(i, (i * 37) % 300);
      f[f.length - 1] = i & 0xff;
      frames.push(f);
    }
    return frames;
  }

  function checkAll(records: ReadRecord[], frames: Buffer[]): void {
    assert.equal(records.length, frames.length);
    for (let i = 0; i < frames.length; i++) {
      const r = records[i]!;
      const f = frames[i]!;
      if (r.number !== i + 1 || r.capLen !== f.length || r.wireLen !== f.length || !r.data.equals(f)) {
        assert.fail(`record ${i + 1}: number ${r.number}, capLen ${r.capLen} (want ${f.length}), data equal ${r.data.equals(f)}`);
      }
    }
  }

  test('a pcap larger than the buffer gives every record, in order', async () => {
    const frames = manyFrames();
    const file = pcapFile({ endian: 'be', nanos: true }, frames.map((data, i) => ({ tsSec: i, tsSub: i, data })));
    assert.ok(file.length > 9 * 1024 * 1024);
    const { records, reader } = await readAll(writeTemp(file));
    checkAll(records, frames);
    assert.equal(records[MANY - 1]!.tsSec, MANY - 1);
    assert.equal(records[MANY - 1]!.tsNsec, MANY - 1);
    let offset = 24;
    for (let i = 0; i < frames.length; i++) {
      if (records[i]!.fileOffset !== offset) assert.fail(`record ${i + 1} at ${records[i]!.fileOffset}, want ${offset}`);
      offset += 16 + frames[i]!.length;
    }
    assert.equal(reader.position, file.length);
    assert.equal(reader.truncated, false);
  });

  test('a pcapng larger than the buffer, plain and gzip', async () => {
    const frames = manyFrames();
    const b = new PcapngBuilder().section('be').interface({ linkType: 1, tsresol: 9 });
    frames.forEach((data, i) => b.epb(0, { ts: BigInt(i), data }));
    const file = b.build();
    checkAll((await readAll(writeTemp(file, '.pcapng'))).records, frames);
    checkAll((await readAll(writeTemp(gzipSync(file), '.pcapng.gz'))).records, frames);
  });

  test('one 5 MiB Enhanced Packet Block (across two 4 MiB reads, over the 64 KiB carry buffer) is read whole', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 3);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
    const b = new PcapngBuilder().section().interface({ linkType: 1 })
      .epb(0, { ts: 1n, data: frame(1) });
    const bigAt = b.offset;
    b.epb(0, { ts: 2n, data: big }).epb(0, { ts: 3n, data: frame(3) });
    const path = writeTemp(b.build(), '.pcapng');
    const { records } = await readAll(path);
    assert.equal(records.length, 3);
    assert.equal(records[1]!.capLen, big.length);
    assert.equal(records[1]!.fileOffset, bigAt);
    assert.ok(records[1]!.data.equals(big), 'big record bytes differ');
    assert.deepEqual(records[2]!.data, frame(3));

    // The same block over input.maxBlockBytes is refused, at its offset.
    const limited = buildConfig({ input: { maxBlockBytes: 1024 * 1024 } });
    await assertInputError(path, 'corrupt_block', bigAt, { ...limited.input });
  });
});

// ---------------------------------------------------------------------------

describe('truncation', () => {
  const f1 = frame(1);
  const f2 = frame(2, 10);
  const f3 = frame(3, 20);
  const pcap = pcapFile({}, [f1, f2, f3].map((data, i) => ({ tsSec: i, tsSub: 0, data })));
  const thirdAt = 24 + 16 + f1.length + 16 + f2.length;

  test('pcap cut inside a record\'s data keeps the earlier packets', async () => {
    const { records, reader } = await readAll(writeTemp(pcap.subarray(0, thirdAt + 16 + 5)));
    assert.equal(records.length, 2);
    assert.deepEqual(records[1]!.data, f2);
    assert.equal(reader.truncated, true);
    assert.equal(reader.truncatedAt, thirdAt);
  });

  test('pcap cut inside a record header', async () => {
    const { records, reader } = await readAll(writeTemp(pcap.subarray(0, thirdAt + 9)));
    assert.equal(records.length, 2);
    assert.equal(reader.truncated, true);
    assert.equal(reader.truncatedAt, thirdAt);
  });

  test('a pcap ending exactly at a record boundary is not truncated', async () => {
    const { records, reader } = await readAll(writeTemp(pcap.subarray(0, thirdAt)));
    assert.equal(records.length, 2);
    assert.equal(reader.truncated, false);
  });

  test('pcapng cut inside a block (body and first 12 bytes)', async () => {
    const b = new PcapngBuilder().section().interface({ linkType: 1 }).epb(0, { ts: 1n, data: f1 }).epb(0, { ts: 2n, data: f2 });
    const lastAt = b.offset;
    b.epb(0, { ts: 3n, data: f3 });
    const file = b.build();
    for (const cut of [file.length - 4, lastAt + 20, lastAt + 6]) {
      const path = writeTemp(file.subarray(0, cut), '.pcapng');
      const { records, reader } = await readAll(path);
      assert.equal(records.length, 2, `cut at ${cut}`);
      assert.deepEqual(records[1]!.data, f2);
      assert.equal(reader.truncated, true);
      assert.equal(reader.truncatedAt, lastAt);
    }
    const { report, warnings } = await analyzeCapture(writeTemp(file.subarray(0, lastAt + 20), '.pcapng'), CONFIG);
    assert.equal(report.capture.packets, 2);
    assert.equal(report.capture.truncatedRecords, 1);
    assert.match(warnings.join('\n'), new RegExp(`byte offset ${lastAt}\\b`));
  });
});

// ---------------------------------------------------------------------------

describe('impossible lengths throw InputError at the offset of the bad record or block', () => {
  test(`pcap captured length over ${MAX_PCAP_RECORD}`, async () => {
    const f1 = frame(1);
    const file = Buffer.concat([
      pcapHeader(),
      pcapRecord({ tsSec: 1, tsSub: 0, data: f1 }),
      pcapRecord({ tsSec: 2, tsSub: 0, data: frame(2), capLen: MAX_PCAP_RECORD + 1 }),
      Buffer.alloc(64),
    ]);
    await assertInputError(writeTemp(file), 'record_length', 24 + 16 + f1.length);
    // Exactly the maximum is legal (and here simply truncated).
    const legal = Buffer.concat([pcapHeader(), pcapRecord({ tsSec: 1, tsSub: 0, data: frame(2), capLen: MAX_PCAP_RECORD })]);
    const { reader } = await readAll(writeTemp(legal));
    assert.equal(reader.truncated, true);
  });

  /** A section, one Ethernet interface and one good packet; returns the builder and the next block's offset. */
  function goodStart(endian: Endian = 'le'): { b: PcapngBuilder; at: number } {
    const b = new PcapngBuilder().section(endian).interface({ linkType: 1 }).epb(0, { ts: 1n, data: frame(1) });
    return { b, at: b.offset };
  }

  for (const endian of ['le', 'be'] as const) {
    test(`pcapng (${endian}): block length not a multiple of 4`, async () => {
      const { b, at } = goodStart(endian);
      b.block(BlockType.EPB, Buffer.alloc(40), { leading: 50 }).raw(Buffer.alloc(64));
      await assertInputError(writeTemp(b.build(), '.pcapng'), 'corrupt_block', at);
    });

    test(`pcapng (${endian}): block length below 12`, async () => {
      const { b, at } = goodStart(endian);
      b.block(0x00000bad, Buffer.alloc(8), { leading: 8 });
      await assertInputError(writeTemp(b.build(), '.pcapng'), 'corrupt_block', at);
    });

    test(`pcapng (${endian}): EPB referring to a missing interface`, async () => {
      const { b, at } = goodStart(endian);
      b.epb(1, { ts: 2n, data: frame(2) });
      await assertInputError(writeTemp(b.build(), '.pcapng'), 'corrupt_block', at);
    });

    test(`pcapng (${endian}): trailing block length differs from the leading one`, async () => {
      const { b, at } = goodStart(endian);
      b.block(BlockType.EPB, Buffer.alloc(84), { trailing: 92 }).epb(0, { ts: 3n, data: frame(3) });
      await assertInputError(writeTemp(b.build(), '.pcapng'), 'corrupt_block', at);
    });

    test(`pcapng (${endian}): EPB captured length beyond its block`, async () => {
      const { b, at } = goodStart(endian);
      b.epb(0, { ts: 2n, data: frame(2), capLen: 5000 });
      await assertInputError(writeTemp(b.build(), '.pcapng'), 'corrupt_block', at);
    });
  }

  test('pcapng: a second SHB with an unknown byte-order magic', async () => {
    const { b, at } = goodStart();
    b.block(BlockType.SHB, new ByteWriter(true).u32(0x11223344).u16(1).u16(0).u64(-1n).build());
    await assertInputError(writeTemp(b.build(), '.pcapng'), 'corrupt_block', at);
  });

  test('pcapng: the first Section Header Block with an unknown byte-order magic', async () => {
    const file = new ByteWriter(true).u32(BlockType.SHB).u32(28).u32(0xdeadbeef).u16(1).u16(0).u64(-1n).u32(28).build();
    await assertInputError(writeTemp(file, '.pcapng'), 'corrupt_block', 0);
  });
});

