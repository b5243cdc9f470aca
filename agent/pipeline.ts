/**
 * The per-packet path: record -> decode -> clock -> flow -> window -> analyzers.
 * Used by `analyze` and by the agent. One guard here counts anything
 * unexpected, so no packet can stop the loop.
 */
import type { Config } from '../common/config.js';
import type { FrameRecord } from './capture/frame-record.js';
import { TcpPacketResult, createAnalyzers, type Analyzer, type AnalyzerContext } from './analyzers/index.js';
import { Decoder, Proto, Transport, type PacketView } from './decode/index.js';
import { FlowTable, type EndReasonCode, type FlowListener } from './flow/index.js';
import { Networks } from './analyzers/lib/networks.js';
import { PacketClock } from './window/packet-clock.js';
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

export interface PipelineOptions {
  /** Receives each closed window with its findings. */
  onWindow: (out: WindowOutput) => void;
  /** Extra flow listener (e.g. the report's top flows), called after the analyzers. */
  flowListener?: FlowListener;
}

export class Pipeline {
  readonly decoder: Decoder;
  readonly flows: FlowTable;
  readonly clock = new PacketClock();
  readonly analyzers: Analyzer[];
  readonly windows: WindowEngine;
  /** What the analyzers share (config, flows, clock, the TCP result of the current packet). */
  readonly context: AnalyzerContext;
  readonly frameCounts = new Float64Array(FRAME_COUNTERS.length);
  private readonly counterBits = Int32Array.from(FRAME_COUNTERS, ([, bit]) => bit);
  packets = 0;
  bytes = 0;
  /** Earliest and latest packet time (seconds, nanoseconds). */
  minSec = Infinity;
  minNsec = 0;
  maxSec = -Infinity;
  maxNsec = 0;
  /** Exceptions caught by the guard: bugs, never expected from any input. */
  unexpected = 0;
  lastError: unknown;

  constructor(config: Readonly<Config>, options: PipelineOptions) {
    this.decoder = new Decoder(config.flows);
    this.flows = new FlowTable(config.flows, this.clock);
    const ctx: AnalyzerContext = this.context = {
      config,
      flows: this.flows,
      clock: this.clock,
      decoder: this.decoder,
      networks: new Networks(config.networks.internal),
      tcp: new TcpPacketResult(),
      report: (draft) => this.windows.report(draft),
      windowFindings: () => this.windows.pendingFindings,
    };
    this.analyzers = createAnalyzers(config, ctx);
    this.windows = new WindowEngine(config.windows.seconds, this.analyzers, this.flows, this.clock, options.onWindow, config.report.maxFindingsPerType);
    const analyzers = this.analyzers;
    const windows = this.windows;
    const extra = options.flowListener;
    this.flows.setListener({
      onFlowStart(slot: number): void {
        windows.onFlowStart(slot);
        for (const a of analyzers) a.onFlowStart?.(slot);
        extra?.onFlowStart?.(slot);
      },
      onFlowEnd(slot: number, reason: EndReasonCode): void {
        windows.onFlowEnd();
        for (const a of analyzers) a.onFlowEnd?.(slot, reason);
        extra?.onFlowEnd?.(slot, reason);
      },
    });
  }

  process(rec: FrameRecord): void {
    this.packets++;
    this.bytes += rec.wireLen;
    const sec = rec.tsSec;
    const nsec = rec.tsNsec;
    if (sec < this.minSec || (sec === this.minSec && nsec < this.minNsec)) { this.minSec = sec; this.minNsec = nsec; }
    if (sec > this.maxSec || (sec === this.maxSec && nsec > this.maxNsec)) { this.maxSec = sec; this.maxNsec = nsec; }
    try {
      const view: PacketView = this.decoder.decode(rec);
      if (Number.isNaN(this.clock.base)) this.clock.base = this.decoder.timeBase;
      this.clock.observe(view.ts);
      this.windows.advance();
      this.flows.advance();
      const slot = this.flows.update(view);
      const dir = this.flows.dir;
      if (view.innerTcpFlags >= 0) this.flows.updateQuoted(view);
      this.windows.onPacket(view.ts, rec.wireLen, slot);
      const analyzers = this.analyzers;
      for (let i = 0; i < analyzers.length; i++) analyzers[i]!.onPacket(view, slot, dir);
      let present = view.present;
      // A retransmitted or out-of-order TCP segment is not a `dns` frame in Wireshark.
      if (view.dnsOff >= 0 && view.transport === Transport.TCP && this.context.tcp.payloadRepeated) present &= ~DNS_BITS;
      const bits = this.counterBits;
      for (let i = 0; i < bits.length; i++) if (present & bits[i]!) this.frameCounts[i]++;
    } catch (err) {
      this.unexpected++;
      this.lastError = err;
    }
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
    try {
      this.windows.advance();
      this.flows.advance();
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
    this.windows.finish();
    this.flows.endAll();
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = { frames: this.packets };
    FRAME_COUNTERS.forEach(([name], i) => { out[name] = this.frameCounts[i]!; });
    out['tcp.streams'] = this.flows.tcpStreams;
    out['udp.streams'] = this.flows.udpStreams;
    for (const a of this.analyzers) Object.assign(out, a.counters?.());
    return out;
  }

  /** Whole-capture summaries of the analyzers (e.g. the overall health score). */
  summary(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const a of this.analyzers) Object.assign(out, a.summary?.());
    return out;
  }

  stats(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const a of this.analyzers) Object.assign(out, a.stats?.());
    return out;
  }
}
