/**
 * Differential test against tshark: for each seed, writes the capture of
 * test/helpers/tcp-shapes.ts, runs tshark 4.0 once over it (per-frame
 * tcp.stream, udp.stream, every tcp.analysis flag and ack_rtt) and our
 * pipeline frame by frame, and lists every disagreement: per counter (the
 * report's Wireshark-named counters: tcp.analysis.*, tcp.streams,
 * udp.streams) and, per flag and stream number, the first frame where the two
 * diverge.
 *
 *   node dist/test/helpers/difftest.js --seeds 1..200 [--keep DIR] [--quiet]
 *
 * Exit 0 when every seed agrees (named differences aside), 1 otherwise.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildConfig, type Config } from '../../common/config.js';
import { CaptureReader, END, NEED_DATA } from '../../agent/capture/index.js';
import { Pipeline } from '../../agent/pipeline.js';
import { Transport } from '../../agent/decode/constants.js';
import { TcpAnalysisFlag as F, type TcpPacketResult } from '../../agent/analyzers/index.js';
import { pcapFile } from './capture-writer.js';
import { generateShapes, type ShapeOptions } from './tcp-shapes.js';

/** tshark's tcp.analysis field -> our flag bits (retransmission is set for all three kinds, as in tshark). */
export const FLAG_FIELDS: ReadonlyArray<readonly [string, number]> = [
  ['retransmission', F.RETRANSMISSION | F.FAST_RETRANSMISSION | F.SPURIOUS_RETRANSMISSION],
  ['fast_retransmission', F.FAST_RETRANSMISSION],
  ['spurious_retransmission', F.SPURIOUS_RETRANSMISSION],
  ['out_of_order', F.OUT_OF_ORDER],
  ['duplicate_ack', F.DUPLICATE_ACK],
  ['lost_segment', F.LOST_PACKET],
  ['ack_lost_segment', F.ACK_LOST_PACKET],
  ['keep_alive', F.KEEP_ALIVE],
  ['keep_alive_ack', F.KEEP_ALIVE_ACK],
  ['window_update', F.WINDOW_UPDATE],
  ['zero_window', F.ZERO_WINDOW],
  ['zero_window_probe', F.ZERO_WINDOW_PROBE],
  ['zero_window_probe_ack', F.ZERO_WINDOW_PROBE_ACK],
  ['window_full', F.WINDOW_FULL],
  ['reused_ports', F.REUSED_PORTS],
];

interface FrameVerdict { tcpStream: string; udpStream: string; flags: Set<string>; ackRtt: string }

/**
 * Differences Wireshark itself would accept, each with its reason: a
 * disagreement whose text matches `pattern` is reported as named, not counted.
 */
export const NAMED: ReadonlyArray<{ pattern: RegExp; reason: string }> = [];

function tsharkVerdicts(file: string): Map<number, FrameVerdict> {
  const fields = ['frame.number', 'tcp.stream', 'udp.stream', 'tcp.analysis.ack_rtt', ...FLAG_FIELDS.map(([name]) => `tcp.analysis.${name}`)];
  const run = spawnSync('tshark', ['-n', '-r', file, '-T', 'fields', '-E', 'occurrence=f', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (run.status !== 0) throw new Error(`tshark failed: ${run.stderr}`);
  const out = new Map<number, FrameVerdict>();
  for (const line of run.stdout.split('\n')) {
    if (!line) continue;
    const cols = line.split('\t');
    const flags = new Set<string>();
    FLAG_FIELDS.forEach(([name], i) => { if (cols[4 + i]) flags.add(name); });
    out.set(Number(cols[0]), { tcpStream: cols[1] ?? '', udpStream: cols[2] ?? '', ackRtt: cols[3] ?? '', flags });
  }
  return out;
}

/**
 * The sensor must end idle flows (flows.timeouts), Wireshark never forgets a
 * conversation: a TCP flow that resumes after its timeout keeps its tcp.stream
 * (EndedConversations) but its sequence analysis starts over. So the stream
 * numbers are compared with the default configuration, the analysis with TCP
 * timeouts past any capture's span, and a counter that agrees only there is a
 * named difference.
 */
const DEFAULT_CONFIG = buildConfig(undefined);
const NO_TCP_TIMEOUTS = buildConfig({ flows: { timeouts: { tcpHandshake: 1e9, tcpEstablished: 1e9, tcpClosed: 1e9 } } });
const EXPIRED_TCP_REASON = 'a TCP flow idle past flows.timeouts ended and resumed: its stream number is kept, its sequence analysis '
  + 'starts over (Wireshark keeps every conversation\'s state for the whole capture; the sensor\'s flow table is bounded)';

async function ourVerdicts(file: string, config: Readonly<Config>): Promise<{ frames: Map<number, FrameVerdict>; counters: Record<string, number> }> {
  const reader = await CaptureReader.open(file, config.input);
  const pipeline = new Pipeline(config, { onWindow: () => {} });
  const result = pipeline.tcpSequence.result;
  const flows = pipeline.flows;
  const frames = new Map<number, FrameVerdict>();
  for (let s = reader.next(); s !== END; s = reader.next()) {
    if (s === NEED_DATA) { await reader.fill(); continue; }
    result.analyzed = false; // set again only when this frame is a TCP segment of a flow
    pipeline.process(reader.record);
    const slot = flows.lastSlot;
    const tcp = analyzed(result) && slot >= 0;
    const isUdp = slot >= 0 && flows.proto[slot] === Transport.UDP;
    frames.set(reader.record.number, {
      tcpStream: tcp ? String(flows.streamIndex[slot]) : '',
      udpStream: isUdp ? String(flows.streamIndex[slot]) : '',
      flags: new Set(tcp ? FLAG_FIELDS.filter(([, bit]) => result.flags & bit).map(([name]) => name) : []),
      ackRtt: tcp && result.hasAckRtt ? result.ackRtt.toFixed(9) : '',
    });
  }
  await reader.close();
  pipeline.finish();
  return { frames, counters: pipeline.counters() };
}

/** Read through a call: `process` sets it, which the type narrowing after `analyzed = false` does not see. */
const analyzed = (result: TcpPacketResult): boolean => result.analyzed;

export interface SeedResult {
  seed: number;
  frames: number;
  disagreements: string[];
  named: string[];
  /** Frames tshark flags, per flag: what the seed's capture exercises. */
  coverage: Map<string, number>;
}

/** Writes seed's capture (into `dir`), compares tshark and us. */
export async function diffSeed(seed: number, dir: string, shapes: ShapeOptions = {}): Promise<SeedResult> {
  const file = join(dir, `shape-${seed}.pcap`);
  const { spec, records } = generateShapes(seed, shapes);
  writeFileSync(file, pcapFile(spec, records));
  const theirs = tsharkVerdicts(file);
  const byDefault = await ourVerdicts(file, DEFAULT_CONFIG);
  const unexpiring = await ourVerdicts(file, NO_TCP_TIMEOUTS);
  const found: string[] = [];
  const named: string[] = [];
  // Counters: frames with each flag, distinct stream numbers.
  for (const [name] of FLAG_FIELDS) {
    const key = `tcp.analysis.${name}`;
    if (!(key in byDefault.counters)) continue;
    let n = 0;
    for (const v of theirs.values()) if (v.flags.has(name)) n++;
    const text = `${key}: ours ${byDefault.counters[key]} tshark ${n}`;
    if (unexpiring.counters[key] !== n) found.push(`${key}: ours ${unexpiring.counters[key]} tshark ${n} (no TCP timeouts)`);
    else if (byDefault.counters[key] !== n) named.push(`${text}: ${EXPIRED_TCP_REASON}`);
  }
  for (const [key, pick] of [['tcp.streams', (v: FrameVerdict) => v.tcpStream], ['udp.streams', (v: FrameVerdict) => v.udpStream]] as const) {
    const distinct = new Set([...theirs.values()].map(pick).filter((s) => s !== ''));
    if (byDefault.counters[key] !== distinct.size) found.push(`${key}: ours ${byDefault.counters[key]} tshark ${distinct.size}`);
  }
  // Per frame, the first divergence of each flag and of ack_rtt (TCP timeouts lifted), of the stream numbers (defaults).
  const first = new Map<string, string>();
  const note = (what: string, text: string): void => { if (!first.has(what)) first.set(what, text); };
  for (const [n, m] of unexpiring.frames) {
    const t = theirs.get(n);
    if (!t || m.tcpStream === '') continue;
    for (const [name] of FLAG_FIELDS) {
      if (m.flags.has(name) !== t.flags.has(name)) note(name, `${name} first differs at frame ${n}: ours ${m.flags.has(name) ? 'set' : 'unset'} (ours [${[...m.flags].join(',')}] tshark [${[...t.flags].join(',')}])`);
    }
    if (m.ackRtt !== t.ackRtt) note('ack_rtt', `ack_rtt first differs at frame ${n}: ours ${m.ackRtt || '-'} tshark ${t.ackRtt || '-'}`);
  }
  for (const [n, m] of byDefault.frames) {
    const t = theirs.get(n);
    if (!t) continue;
    if (m.tcpStream !== '' && m.tcpStream !== t.tcpStream) note('tcp.stream', `tcp.stream first differs at frame ${n}: ours ${m.tcpStream} tshark ${t.tcpStream}`);
    if (m.udpStream !== '' && m.udpStream !== t.udpStream) note('udp.stream', `udp.stream first differs at frame ${n}: ours ${m.udpStream} tshark ${t.udpStream}`);
  }
  found.push(...first.values());
  const listed = found.filter((d) => NAMED.some((x) => x.pattern.test(d)));
  const coverage = new Map<string, number>();
  for (const v of theirs.values()) for (const f of v.flags) coverage.set(f, (coverage.get(f) ?? 0) + 1);
  coverage.set('tcp.streams', new Set([...theirs.values()].map((v) => v.tcpStream).filter((x) => x !== '')).size);
  coverage.set('udp.streams', new Set([...theirs.values()].map((v) => v.udpStream).filter((x) => x !== '')).size);
  return { seed, frames: theirs.size, disagreements: found.filter((d) => !listed.includes(d)), named: [...named, ...listed], coverage };
}

/** Whether tshark can be run (the differential test is skipped without it). */
export function haveTshark(): boolean {
  return spawnSync('tshark', ['-v'], { encoding: 'utf8' }).status === 0;
}

/** "1..200", "5", "1,7,9..12". */
export function parseSeeds(text: string): number[] {
  return text.split(',').flatMap((part) => {
    const m = /^(\d+)\.\.(\d+)$/.exec(part);
    if (!m) return [Number(part)];
    const out: number[] = [];
    for (let i = Number(m[1]); i <= Number(m[2]); i++) out.push(i);
    return out;
  });
}

async function main(argv: string[]): Promise<number> {
  const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const seeds = parseSeeds(opt('--seeds') ?? '1..20');
  const keep = opt('--keep');
  const quiet = argv.includes('--quiet');
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'difftest-'));
  mkdirSync(dir, { recursive: true });
  let bad = 0;
  let frames = 0;
  const kinds = new Map<string, number>();
  const coverage = new Map<string, number>();
  let namedCount = 0;
  try {
    for (const seed of seeds) {
      const r = await diffSeed(seed, dir);
      frames += r.frames;
      namedCount += r.named.length;
      for (const [k, n] of r.coverage) coverage.set(k, (coverage.get(k) ?? 0) + n);
      if (r.disagreements.length) bad++;
      for (const d of r.disagreements) {
        const kind = d.replace(/[: ].*/, '');
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
        console.log(`seed ${seed}: ${d}`);
      }
      if (!quiet) for (const d of r.named) console.log(`seed ${seed}: (named) ${d}`);
    }
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
  console.log(`tshark's flags over all seeds: ${[...coverage].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  console.log(`${seeds.length} seeds, ${frames} frames, ${namedCount} named differences, ${bad} seeds with disagreements${kinds.size ? `: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`);
  return bad ? 1 : 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => { console.error(err); process.exitCode = 2; });
}
