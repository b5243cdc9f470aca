/**
 * The per-packet path: record -> decode -> clock -> flow (flow table, TCP
 * sequence analysis, connection attempts) -> window -> analyzers. Used by
 * `analyze` and by the agent. Each event goes only to the analyzers that have
 * its hook (dispatch lists made once, here). One guard here counts anything
 * unexpected, so no packet can stop the loop.
 *
 * The flow stage keeps the window flow accounting (flow/flow-accounting.ts):
 * which flows had packets in the window and their packets and bytes per
 * direction, read from the flow table's counters. Volume analyzers (talkers,
 * throughput, protocols, asymmetry) use it at window close and flow end, and
 * hook only a flow's first packet in the window (`onWindowFlow`) and packets
 * without a flow (`onFlowlessPacket`), not every packet.
 */
import type { Config } from '../common/config.js';
import { MemoryBudget } from '../common/memory-budget.js';
import type { FrameRecord } from './capture/frame-record.js';
import { linkTypeName } from './capture/link-types.js';
import { createAnalyzers, type Analyzer, type AnalyzerContext, type ShardRole } from './analyzers/index.js';
import { Decoder, Proto, Transport, type PacketView } from './decode/index.js';
import { ConnectionAttempts, FlowTable, TcpSequenceAnalysis, type AttemptEventCode, type EndReasonCode, type FlowListener } from './flow/index.js';
import { Networks } from './analyzers/lib/networks.js';
import { DnsMatch } from './analyzers/lib/dns-match.js';
import { WindowFlowAccounting } from './flow/flow-accounting.js';
import { FlowNames } from './flow/flow-names.js';
import { PacketClock } from './core/packet-clock.js';
import { PacketSpan } from './core/packet-span.js';
import { WindowEngine, type WindowOutput } from './window/window-engine.js';

/** Report counter names (Wireshark display-filter fields) and the presence bit each counts. */
export const FRAME_COUNTERS: ReadonlyArray<readonly [string, number]> = [
  ['eth', Proto.ETH],
  ['vlan', Proto.VLAN],
  ['ip', Proto.IP],
  ['ipv6', Proto.IPV6],
  ['tcp', Proto.TCP],
  ['udp', Proto.UDP],
  ['icmp', Proto.ICMP],
  ['icmpv6', Proto.ICMPV6],
  ['dns', Proto.DNS],
  ['ip.fragments', Proto.IP_FRAGMENT],
  ['tcp.flags.syn', Proto.TCP_SYN],
  ['tcp.flags.reset', Proto.TCP_RST],
  ['dns.flags.response', Proto.DNS_RESPONSE],
  ['dns.flags.rcode.nxdomain', Proto.DNS_NXDOMAIN],
];

const DNS_BITS = Proto.DNS | Proto.DNS_RESPONSE | Proto.DNS_NXDOMAIN;
/** Window ends are exclusive: attempts due before a window's end are settled in it, this much before. */
const WINDOW_END_EPSILON = 1e-3;

/** Counter index by presence-bit position. */
function counterIndexByBit(): Int8Array {
  const out = new Int8Array(32).fill(-1);
  FRAME_COUNTERS.forEach(([, bit], i) => {
    const pos = 31 - Math.clz32(bit);
    if (bit !== 1 << pos || out[pos] !== -1) throw new Error('frame counters must be distinct single bits');
    out[pos] = i;
  });
  return out;
}

type PacketHook = (v: PacketView, slot: number, dir: number) => void;

/** The analyzers that have hook `name`, bound, in registry order. */
function subscribers<K extends keyof Analyzer>(analyzers: readonly Analyzer[], name: K): Array<NonNullable<Analyzer[K]>> {
  const out: Array<NonNullable<Analyzer[K]>> = [];
  for (const a of analyzers) {
    const hook = a[name];
    if (typeof hook === 'function') out.push(hook.bind(a) as NonNullable<Analyzer[K]>);
  }
  return out;
}

export interface PipelineOptions {
  /** Receives each closed window with its findings. */
  onWindow: (out: WindowOutput) => void;
  /** Extra flow listener (e.g. the report's top flows), called after the analyzers. */
  flowListener?: FlowListener;
  /**
   * Make every preallocated table resident at start (the sensor: its memory is
   * paid up front and stays flat for days). `analyze` leaves it off: a short
   * capture only pays for the pages it touches.
   */
  commitMemory?: boolean;
  /** Flow-sharded analysis: this pipeline is a worker's or the coordinator's (AnalyzerContext.shardRole; default 'single'). */
  shardRole?: ShardRole;
}

export class Pipeline {
  readonly decoder: Decoder;
  readonly flows: FlowTable;
  readonly clock = new PacketClock();
  readonly tcpSequence: TcpSequenceAnalysis;
  readonly attempts: ConnectionAttempts;
  /** Server names the analyzers proved for flows (TLS, HTTP, DNS). */
  readonly names: FlowNames;
  readonly analyzers: Analyzer[];
  readonly windows: WindowEngine;
  /** What the analyzers share (config, flows, clock, the TCP sequence analysis). */
  readonly context: AnalyzerContext;
  // One dispatch list per event.
  private readonly onPacket: PacketHook[];
  private readonly onFlowless: Array<NonNullable<Analyzer['onFlowlessPacket']>>;
  private readonly onWindowFlow: PacketHook[];
  private readonly onTcp: Array<NonNullable<Analyzer['onTcpSegment']>>;
  private readonly onUdp: PacketHook[];
  private readonly onIcmp: PacketHook[];
  private readonly onDns: PacketHook[];
  private readonly onForeignDns: Array<NonNullable<Analyzer['onForeignDns']>>;
  readonly frameCounts = new Float64Array(FRAME_COUNTERS.length);
  /** Presence bits that have a counter, and the counter of each bit position (every counted bit is a single bit). */
  private readonly countedBits = FRAME_COUNTERS.reduce((m, [, bit]) => m | bit, 0);
  private readonly counterOfBit = counterIndexByBit();
  packets = 0;
  bytes = 0;
  /**
   * Packet times of the whole input so far (the report's capture.first and last), and of
   * the packets since the last window closed: while `onWindow` runs, the closing window's
   * (a packet that closes a window counts in the next one).
   */
  readonly span = new PacketSpan();
  readonly windowSpan = new PacketSpan();
  /** Exceptions caught by the guard: bugs, never expected from any input. */
  unexpected = 0;
  lastError: unknown;

  constructor(config: Readonly<Config>, options: PipelineOptions) {
    this.decoder = new Decoder(config.flows);
    this.flows = new FlowTable(config.flows, this.clock);
    this.tcpSequence = new TcpSequenceAnalysis(config.flows.maxFlows, config.analyzers.tcp.maxUnackedSegments);
    const windowFlows = new WindowFlowAccounting(this.flows);
    // Names held at once are at most one per flow slot: more ids would only cache names of flows gone.
    const names = this.names = new FlowNames(config.flows.maxFlows, Math.min(config.analyzers.services.maxNames, config.flows.maxFlows));
    const windowOrder = (): number => this.windows.order;
    const ctx: AnalyzerContext = this.context = {
      config,
      flows: this.flows,
      clock: this.clock,
      decoder: this.decoder,
      networks: new Networks(config.networks.internal),
      tcpSequence: this.tcpSequence,
      windowFlows,
      names,
      dnsMatch: new DnsMatch(),
      memory: new MemoryBudget(config.memory.budgetMB),
      report: (draft) => this.windows.report(draft),
      reportLazily: (type, draft) => this.windows.reportLazily(type, draft),
      windowFindings: () => this.windows.pendingFindings,
      shardRole: options.shardRole ?? 'single',
      get packetOrder(): number { return windowOrder(); },
    };
    this.analyzers = createAnalyzers(config, ctx);
    const onWindow = (out: WindowOutput): void => {
      options.onWindow(out);
      this.span.add(this.windowSpan);
      this.windowSpan.reset();
    };
    this.windows = new WindowEngine(config.windows.seconds, this.analyzers, this.flows, this.clock, windowFlows, onWindow, config.report.maxFindingsPerType, names);
    const analyzers = this.analyzers;
    this.onPacket = subscribers(analyzers, 'onPacket');
    this.onFlowless = subscribers(analyzers, 'onFlowlessPacket');
    this.onWindowFlow = subscribers(analyzers, 'onWindowFlow');
    this.onTcp = subscribers(analyzers, 'onTcpSegment');
    this.onUdp = subscribers(analyzers, 'onUdpDatagram');
    this.onIcmp = subscribers(analyzers, 'onIcmpMessage');
    this.onDns = subscribers(analyzers, 'onDnsMessage');
    this.onForeignDns = subscribers(analyzers, 'onForeignDns');
    const onStart = subscribers(analyzers, 'onFlowStart');
    const onEnd = subscribers(analyzers, 'onFlowEnd');
    const onAttempt = subscribers(analyzers, 'onConnectionAttempt');
    const attempts = this.attempts = new ConnectionAttempts(this.flows, this.clock, (slot: number, event: AttemptEventCode, at: number): void => {
      for (let i = 0; i < onAttempt.length; i++) onAttempt[i]!(slot, event, at);
    });
    const windows = this.windows;
    const tcpSequence = this.tcpSequence;
    const clock = this.clock;
    const extra = options.flowListener;
    this.flows.setListener({
      onFlowStart(slot: number): void {
        windows.onFlowStart(slot);
        tcpSequence.flowStarted(slot);
        attempts.flowStarted(slot);
        names.flowStarted(slot);
        for (let i = 0; i < onStart.length; i++) onStart[i]!(slot);
        extra?.onFlowStart?.(slot);
      },
      onFlowEnd(slot: number, reason: EndReasonCode): void {
        windows.onFlowEnd();
        attempts.flowEnded(slot, clock.now);
        for (let i = 0; i < onEnd.length; i++) onEnd[i]!(slot, reason);
        tcpSequence.flowEnded(slot);
        windows.flowEnded(slot);
        extra?.onFlowEnd?.(slot, reason);
        // Last: every listener above could still read the flow's name.
        names.flowEnded(slot);
      },
    });
    if (options.commitMemory) commitPreallocated(this);
  }

  /** One packet of the input, the next after the last one processed. */
  process(rec: FrameRecord): void {
    this.windows.order = this.packets;
    this.processPacket(rec, false);
  }

  /**
   * A flow-sharded worker's packet: the caller has set `windows.order` to its
   * index in the whole input and the clock to the input's as the reader
   * computed it (PacketClock.follow). The input's time base is set first
   * (`setTimeBase`).
   */
  processShard(rec: FrameRecord): void {
    this.processPacket(rec, true);
  }

  /**
   * A flow-sharded worker: the input's clock moved on (set as for
   * processShard) at a packet of another worker. Windows close and flows
   * expire here as they would have in one pipeline at that packet.
   */
  advanceShard(): void {
    try {
      this.advanceClocks();
    } catch (err) {
      this.unexpected++;
      this.lastError = err;
    }
  }

  /**
   * A flow-sharded worker: a packet of another worker that may carry DNS
   * answers (shard/foreign-dns.ts; `windows.order` set as for processShard).
   * Only the analyzers' `onForeignDns` see it: it is no packet of this
   * pipeline (no decoder, flow, window or counter sees it).
   */
  processForeign(rec: FrameRecord): void {
    try {
      const hooks = this.onForeignDns;
      for (let i = 0; i < hooks.length; i++) hooks[i]!(rec);
    } catch (err) {
      this.unexpected++;
      this.lastError = err;
    }
  }

  /** A flow-sharded worker: packet times count from the input's first packet's time base (Decoder.timeBase), not this worker's. */
  setTimeBase(base: number): void {
    this.decoder.timeBase = base;
    this.clock.base = base;
  }

  private processPacket(rec: FrameRecord, followed: boolean): void {
    this.packets++;
    this.bytes += rec.wireLen;
    const sec = rec.tsSec;
    const nsec = rec.tsNsec;
    try {
      const view: PacketView = this.decoder.decode(rec);
      if (Number.isNaN(this.clock.base)) this.clock.base = this.decoder.timeBase;
      if (!followed) this.clock.observe(view.ts);
      this.advanceClocks();
      const flows = this.flows;
      const slot = flows.update(view);
      const dir = flows.dir;
      if (view.innerTcpFlags >= 0 || view.innerUdpHeader) {
        const quoted = flows.updateQuoted(view);
        if (quoted >= 0 && view.innerTcpFlags >= 0) this.tcpSequence.quotedHeader(quoted, view.innerTcpFlags, view.ts);
      }
      if (this.windows.onPacket(view, slot)) {
        const first = this.onWindowFlow;
        for (let i = 0; i < first.length; i++) first[i]!(view, slot, dir);
      } else if (slot < 0) {
        const flowless = this.onFlowless;
        for (let i = 0; i < flowless.length; i++) flowless[i]!(view);
      }
      const transport = view.transport;
      const tcpSegment = slot >= 0 && transport === Transport.TCP;
      const seq = this.tcpSequence;
      if (tcpSegment) {
        seq.analyze(view, slot, dir, flows.synEvent);
        this.attempts.segment(view, slot, dir);
      }
      const hooks = this.onPacket;
      for (let i = 0; i < hooks.length; i++) hooks[i]!(view, slot, dir);
      let present = view.present;
      if (tcpSegment) {
        const tcp = this.onTcp;
        for (let i = 0; i < tcp.length; i++) tcp[i]!(view, slot, dir, seq.result);
        // A retransmitted or out-of-order TCP segment is not a `dns` frame in Wireshark.
        if (view.dnsOff >= 0 && seq.result.payloadRepeated) present &= ~DNS_BITS;
      } else if (slot >= 0 && transport === Transport.UDP) {
        const udp = this.onUdp;
        for (let i = 0; i < udp.length; i++) udp[i]!(view, slot, dir);
      } else if (slot >= 0 && (transport === Transport.ICMP || transport === Transport.ICMPV6)) {
        const icmp = this.onIcmp;
        for (let i = 0; i < icmp.length; i++) icmp[i]!(view, slot, dir);
      }
      if (present & Proto.DNS) {
        const dns = this.onDns;
        for (let i = 0; i < dns.length; i++) dns[i]!(view, slot, dir);
      }
      // Only the few bits set: usually three or four, not every counter.
      const counterOf = this.counterOfBit;
      for (let bits = present & this.countedBits; bits !== 0; bits &= bits - 1) this.frameCounts[counterOf[31 - Math.clz32(bits & -bits)]!]++;
    } catch (err) {
      this.unexpected++;
      this.lastError = err;
    }
    this.windowSpan.note(sec, nsec);
  }

  /**
   * Packet time moved on: attempts due before the current window's end are
   * settled in it, and IP datagrams timed out by then dropped (so each worker
   * of a flow-sharded analysis drops its own where one pipeline does), then
   * the window may close, idle flows expire, and attempts due by now are settled.
   */
  private advanceClocks(): void {
    const now = this.clock.now;
    const span = this.windows.current;
    if (now >= span.relEnd) {
      this.attempts.expire(Math.max(span.relStart, span.relEnd - WINDOW_END_EPSILON));
      this.decoder.reassembler.expireAt(span.relEnd);
    }
    this.windows.advance();
    this.flows.advance();
    this.attempts.expire(now);
  }

  /**
   * Live capture with no traffic: packet time also follows the wall clock
   * (kernel timestamps are wall-clock times), so windows and flow timeouts
   * still close. `epochSeconds` is the wall time minus the grace period.
   */
  advanceTo(epochSeconds: number): void {
    if (Number.isNaN(this.clock.base)) return;
    const rel = epochSeconds - this.clock.base;
    if (rel <= this.clock.now) return;
    this.clock.now = rel;
    this.windows.order = this.packets;
    try {
      this.advanceClocks();
    } catch (err) {
      this.unexpected++;
      this.lastError = err;
    }
  }

  /**
   * New analyzer thresholds (SIGHUP), keeping flow and analyzer state. Analyzers
   * read thresholds through `context.config` when they use them; table sizes
   * (maxKeys, maxFlows, ...) and which analyzers run are fixed at start.
   */
  reconfigure(config: Readonly<Config>): void {
    (this.context as { config: Readonly<Config> }).config = config;
  }

  /** End of input: the analyzers report open states, the last window closes, then every flow ends. */
  finish(): void {
    this.finishAt(this.packets);
  }

  /** `finish` of a flow-sharded worker: `seq` is the whole input's packet count. */
  finishAt(seq: number): void {
    this.windows.order = seq;
    this.attempts.finish(this.clock.now);
    this.windows.finish();
    this.flows.endAll();
    // Packets after the last window that closed (or with no window at all): still the input's.
    this.span.add(this.windowSpan);
    this.windowSpan.reset();
  }

  /**
   * The report's capture.decodeErrors and capture.undecoded so far: the decoder's anomalies,
   * the readers' records with caplen over wire length (`capLenOverWireLen`), and the guard's count.
   */
  captureErrors(capLenOverWireLen: number): { decodeErrors: Record<string, number>; undecoded: Record<string, number> } {
    const decodeErrors = this.decoder.anomalies.toRecord();
    if (capLenOverWireLen) decodeErrors['frame.caplen_gt_len'] = capLenOverWireLen;
    if (this.unexpected) decodeErrors['internal.error'] = this.unexpected;
    const undecoded: Record<string, number> = {};
    for (const [linkType, n] of this.decoder.undecodedLinkTypes) undecoded[linkTypeName(linkType)] = n;
    return { decodeErrors, undecoded };
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = { frames: this.packets };
    FRAME_COUNTERS.forEach(([name], i) => { out[name] = this.frameCounts[i]!; });
    out['tcp.streams'] = this.flows.tcpStreams;
    out['udp.streams'] = this.flows.udpStreams;
    for (const a of this.analyzers) Object.assign(out, a.counters?.());
    return out;
  }

  /** Analyzer ids of the key tables granted from the memory budget ("flood.destinations" -> "flood"). */
  tableOwners(): string[] {
    return [...new Set(this.context.memory.grantsMade.map((g) => g.table.split('.')[0]!))];
  }

  /** The report's distributions these analyzers give (from their empty sketches before the first window), in analyzer order. */
  distributionNames(): string[] {
    return this.analyzers.flatMap((a) => Object.keys(a.rangeInputs?.().stats ?? {}));
  }
}

/** One line of the memory plan: a component and the typed arrays it preallocated at start. */
export interface MemoryPlanLine {
  component: string;
  /** Entries it holds at most; 0 when not a keyed table. */
  capacity: number;
  /** What an entry is (flows, conversations, keys). */
  entries: string;
  bytes: number;
}

/**
 * Calls `visit` on each typed array an object holds, directly or in the
 * objects it owns (two levels down), each once: shared objects are in `seen`.
 */
function forEachTypedArray(owner: object, seen: Set<object>, visit: (array: ArrayBufferView) => void, depth = 0): void {
  seen.add(owner);
  for (const value of Object.values(owner) as unknown[]) {
    if (typeof value !== 'object' || value === null || seen.has(value)) continue;
    if (ArrayBuffer.isView(value)) { seen.add(value); visit(value); }
    else if (depth < 2 && !Array.isArray(value)) forEachTypedArray(value, seen, visit, depth + 1);
  }
}

/** Bytes of the typed arrays an object holds; several views of one buffer count it once. */
function typedArrayBytes(owner: object, seen: Set<object>): number {
  let bytes = 0;
  forEachTypedArray(owner, seen, (array) => {
    if (seen.has(array.buffer)) return;
    seen.add(array.buffer);
    bytes += array.buffer.byteLength;
  });
  return bytes;
}

const PAGE_BYTES = 4096;

/**
 * Makes the pipeline's preallocated state resident now: typed arrays are
 * zero pages until first written, so without this a sensor's RSS creeps up
 * over hours as tables fill (it looks like a leak, and an out-of-memory kill
 * would come late, unattended). One write per page: the memory plan's total is
 * paid at start.
 */
function commitPreallocated(p: Pipeline): void {
  const seen = new Set<object>();
  const touch = (array: ArrayBufferView): void => {
    if (seen.has(array.buffer)) return; // another view of a buffer already touched
    seen.add(array.buffer);
    const bytes = new Uint8Array(array.buffer);
    for (let i = 0; i < bytes.length; i += PAGE_BYTES) bytes[i] = bytes[i]!;
  };
  for (const owner of [p.flows, p.tcpSequence, p.attempts, p.names, p.windows, p.context.windowFlows, ...p.analyzers]) forEachTypedArray(owner, seen, touch);
}

/**
 * What a pipeline with `config` preallocates at start (`pcap-analyzer config`
 * prints it): the flow table and the per-flow state of the flow stage and of
 * every analyzer, and each key table granted from memory.budgetMB.
 */
export function memoryPlan(config: Readonly<Config>): MemoryPlanLine[] {
  const p = new Pipeline(config, { onWindow: () => {} });
  // Objects every analyzer refers to: counted once, on their own line, never inside an analyzer.
  const seen = new Set<object>([p, p.context, p.flows, p.tcpSequence, p.attempts, p.names, p.windows, p.clock, p.decoder, p.context.networks, p.context.memory]);
  const own = (o: object): number => { seen.delete(o); return typedArrayBytes(o, seen); };
  const lines: MemoryPlanLine[] = [
    { component: 'flow table', capacity: p.flows.capacity, entries: 'flows', bytes: own(p.flows) },
    // Part of the flow table's bytes (indented: not added again to the total).
    { component: '  ended conversations', capacity: p.flows.ended.capacity, entries: 'conversations', bytes: p.flows.ended.bytes },
    { component: 'TCP sequence analysis', capacity: 0, entries: '', bytes: own(p.tcpSequence) },
    { component: 'connection attempts', capacity: 0, entries: '', bytes: own(p.attempts) },
    { component: 'flow names', capacity: p.names.maxNames, entries: 'names', bytes: own(p.names) },
    { component: 'windows', capacity: 0, entries: '', bytes: own(p.windows) },
  ];
  for (const a of p.analyzers) lines.push({ component: `analyzer ${a.id}`, capacity: 0, entries: '', bytes: typedArrayBytes(a, seen) });
  for (const g of p.context.memory.grantsMade) lines.push({ component: `  key table ${g.table}`, capacity: g.capacity, entries: 'keys', bytes: g.bytes });
  return lines;
}
