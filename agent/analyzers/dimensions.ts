/**
 * Sub-totals per VLAN and per capture interface in every window: packets,
 * bytes (frame.len), TCP retransmissions (frames tcp.analysis.retransmission
 * matches: plain, fast or spurious), ACK RTT (the samples the rtt analyzer
 * takes: tcp.analysis.ack_rtt by Karn's rule) and DNS response times (dns.time
 * as the dns analyzer matches them, read from `ctx.dnsMatch`: no second
 * matching here). The VLAN is the outer tag (the first vlan.id Wireshark
 * lists; QinQ's inner tags are not a dimension), "untagged" for frames without
 * one; the interface is frame.interface_id (pcapng; 0 for classic pcap and the
 * agent's one live interface). An RTT sample counts where its ACK was seen, a
 * DNS time where its response was.
 *
 * Bounded: at most `maxValues` distinct values per dimension per window (the
 * first seen, "untagged" included); the rest share one "other" row and are
 * counted (`vlanValuesOther`, `interfaceValuesOther`). A value maps to its row
 * through a typed array indexed by the value (VLAN ids are 12 bits, pcapng
 * interface ids 16), so the packet path allocates nothing. Percentile sets keep
 * EXACT_SAMPLES samples exactly, then 1 % log buckets (lib/quantiles.ts).
 *
 * Whole-capture frame counts go to the report's counters as the display
 * filters tshark counts them with: `vlan.id#1==<id>` (outer tag) and, when a
 * frame came from an interface other than the first, `frame.interface_id==<id>`.
 *
 * Flow-sharded workers (issue 13): a VLAN or interface carries flows of many
 * workers, and which values a window keeps depends on the order of the whole
 * input. A worker keeps a row for every value (its rows grow past maxValues)
 * with where in the input it first saw it, and gives them whole (percentile
 * sets as all their samples or buckets); the coordinator merges rows by value,
 * keeps the first maxValues seen and folds the rest into "other", as one
 * pipeline does. A worker's counters list every interface; the coordinator's
 * `mergeCounters` lists them when any frame came from another than the first.
 */
import type { QuantileSketch } from '../../common/report.js';
import type { QuantileSummary } from './lib/quantiles.js';
import { Quantiles } from './lib/quantiles.js';
import type { PacketView } from '../decode/packet-view.js';
import { ANY_RETRANSMISSION, type TcpPacketResult } from '../flow/tcp-result.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';

/** The VLAN key of untagged frames (VLAN ids are 0..4095). */
const UNTAGGED = 4096;
const VLAN_KEYS = 4097;
/** pcapng interface ids are below this (the reader refuses more Interface Description Blocks per section). */
const INTERFACE_KEYS = 65536;
/** Samples each value's RTT and DNS sets keep exactly before bucketing: up to 2 × 2 × (maxValues + 1) sets live at once. */
const EXACT_SAMPLES = 1024;

export function createDimensionsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new DimensionsAnalyzer(ctx);
}

/** One row of a window's sub-totals. */
interface DimensionRow {
  packets: number;
  bytes: number;
  retransmissions: number;
  rtt: QuantileSummary;
  dnsTime: QuantileSummary;
  /** The "other" row: how many distinct values it holds. */
  values?: number;
}

/** A value's row of a window, as a flow-sharded worker gives it. */
interface ValuePart {
  value: number;
  /** Input index of the first packet with the value in the window. */
  first: number;
  packets: number;
  bytes: number;
  retransmissions: number;
  /** Samples whole (Quantiles.sketch(true)); null without any. */
  rtt: QuantileSketch | null;
  dnsTime: QuantileSketch | null;
}

/** A flow-sharded worker's `windowPart`. */
interface DimensionsPart {
  vlan: ValuePart[];
  interface: ValuePart[];
  /** A tagged frame was seen so far. */
  tagged: boolean;
}

/** The row of "other"; values' rows are 1, 2, ... */
const OTHER = 0;

/**
 * One dimension's window: values map to rows 1..max in order of first sight,
 * row 0 is "other". `rowOf` is -1 for a value not seen in the window. A
 * flow-sharded worker's `max` is Infinity: its rows grow (doubling).
 */
class Dimension {
  private readonly rowOf: Int32Array;
  /** The value of each kept row. */
  private valueOf: Int32Array;
  /** The values folded into "other", to reset `rowOf` at close. */
  private readonly foldedValues: Int32Array;
  private used = 0;
  private folded = 0;
  packets: Float64Array;
  bytes: Float64Array;
  retransmissions: Float64Array;
  /** Input index of the packet that opened the row (a flow-sharded worker's merge keeps the first `max`). */
  private first: Float64Array;
  readonly rtt: Quantiles[] = [];
  readonly dnsTime: Quantiles[] = [];

  constructor(keys: number, private readonly max: number, rows: number, private readonly label: (value: number) => string,
    private readonly packetOrder: () => number) {
    this.rowOf = new Int32Array(keys).fill(-1);
    this.foldedValues = new Int32Array(keys);
    this.valueOf = new Int32Array(rows + 1);
    this.packets = new Float64Array(rows + 1);
    this.bytes = new Float64Array(rows + 1);
    this.retransmissions = new Float64Array(rows + 1);
    this.first = new Float64Array(rows + 1);
    this.addSets(rows + 1);
  }

  private addSets(n: number): void {
    while (this.rtt.length < n) {
      this.rtt.push(new Quantiles(false, EXACT_SAMPLES));
      this.dnsTime.push(new Quantiles(false, EXACT_SAMPLES));
    }
  }

  /** The row of `value` in this window: a new one while fewer than `max` are kept, else "other". */
  row(value: number): number {
    const r = this.rowOf[value]!;
    if (r >= 0) return r;
    let row = OTHER;
    if (this.used < this.max) {
      row = ++this.used;
      if (row === this.packets.length) this.grow();
      this.valueOf[row] = value;
      this.first[row] = this.packetOrder();
    } else {
      this.foldedValues[this.folded++] = value;
    }
    this.rowOf[value] = row;
    return row;
  }

  /** A flow-sharded worker past its rows: twice the room. */
  private grow(): void {
    const n = this.packets.length * 2;
    const grow = (a: Float64Array): Float64Array => { const b = new Float64Array(n); b.set(a); return b; };
    this.packets = grow(this.packets);
    this.bytes = grow(this.bytes);
    this.retransmissions = grow(this.retransmissions);
    this.first = grow(this.first);
    const values = new Int32Array(n);
    values.set(this.valueOf);
    this.valueOf = values;
    this.addSets(n);
  }

  /** The window's rows as a flow-sharded worker gives them (before `close`). */
  part(): ValuePart[] {
    const out: ValuePart[] = [];
    for (let r = 1; r <= this.used; r++) {
      const rtt = this.rtt[r]!;
      const dns = this.dnsTime[r]!;
      out.push({
        value: this.valueOf[r]!, first: this.first[r]!, packets: this.packets[r]!, bytes: this.bytes[r]!, retransmissions: this.retransmissions[r]!,
        rtt: rtt.count > 0 ? rtt.sketch(true) : null, dnsTime: dns.count > 0 ? dns.sketch(true) : null,
      });
    }
    return out;
  }

  /** The window's rows, by value (numbers ascending, then "untagged"), "other" last; resets the window. */
  close(): { rows: Record<string, DimensionRow>; other: number } {
    const order: number[] = [];
    for (let r = 1; r <= this.used; r++) order.push(r);
    order.sort((a, b) => this.valueOf[a]! - this.valueOf[b]!);
    const rows: Record<string, DimensionRow> = {};
    for (const r of order) rows[this.label(this.valueOf[r]!)] = this.rowSummary(r);
    if (this.folded > 0) rows['other'] = { ...this.rowSummary(OTHER), values: this.folded };
    const other = this.folded;
    for (let r = 1; r <= this.used; r++) this.rowOf[this.valueOf[r]!] = -1;
    for (let i = 0; i < this.folded; i++) this.rowOf[this.foldedValues[i]!] = -1;
    for (let r = 0; r <= this.used; r++) {
      this.packets[r] = this.bytes[r] = this.retransmissions[r] = 0;
      this.rtt[r]!.clear();
      this.dnsTime[r]!.clear();
    }
    this.used = 0;
    this.folded = 0;
    return { rows, other };
  }

  private rowSummary(r: number): DimensionRow {
    return { packets: this.packets[r]!, bytes: this.bytes[r]!, retransmissions: this.retransmissions[r]!, rtt: this.rtt[r]!.summary(), dnsTime: this.dnsTime[r]!.summary() };
  }
}

/** A merged value's row (coordinator). */
interface MergedRow { value: number; first: number; packets: number; bytes: number; retransmissions: number; rtt: Quantiles; dnsTime: Quantiles }

const newMergedRow = (value: number, first: number): MergedRow =>
  ({ value, first, packets: 0, bytes: 0, retransmissions: 0, rtt: new Quantiles(false, EXACT_SAMPLES), dnsTime: new Quantiles(false, EXACT_SAMPLES) });

function addPart(row: MergedRow, p: ValuePart): void {
  row.first = Math.min(row.first, p.first);
  row.packets += p.packets;
  row.bytes += p.bytes;
  row.retransmissions += p.retransmissions;
  if (p.rtt !== null) row.rtt.addSketch(p.rtt);
  if (p.dnsTime !== null) row.dnsTime.addSketch(p.dnsTime);
}

/** One dimension's window from the workers' rows, as Dimension.close gives it: the first `max` values seen kept, the rest "other". */
function mergeDimension(parts: ReadonlyArray<readonly ValuePart[]>, max: number, label: (value: number) => string): { rows: Record<string, DimensionRow>; other: number } {
  const byValue = new Map<number, MergedRow>();
  for (const rows of parts) {
    for (const p of rows) {
      let row = byValue.get(p.value);
      if (row === undefined) byValue.set(p.value, row = newMergedRow(p.value, p.first));
      addPart(row, p);
    }
  }
  const seen = [...byValue.values()].sort((a, b) => a.first - b.first);
  const kept = seen.slice(0, max).sort((a, b) => a.value - b.value);
  const summary = (r: MergedRow): DimensionRow =>
    ({ packets: r.packets, bytes: r.bytes, retransmissions: r.retransmissions, rtt: r.rtt.summary(), dnsTime: r.dnsTime.summary() });
  const rows: Record<string, DimensionRow> = {};
  for (const r of kept) rows[label(r.value)] = summary(r);
  const folded = seen.slice(max);
  if (folded.length > 0) {
    const other = newMergedRow(-1, 0);
    for (const r of folded) {
      other.packets += r.packets;
      other.bytes += r.bytes;
      other.retransmissions += r.retransmissions;
      other.rtt.addAll(r.rtt);
      other.dnsTime.addAll(r.dnsTime);
    }
    rows['other'] = { ...summary(other), values: folded.length };
  }
  return { rows, other: folded.length };
}

const vlanLabel = (v: number): string => (v === UNTAGGED ? 'untagged' : String(v));
const VLAN_COUNTER = 'vlan.id#1==';
const INTERFACE_COUNTER = 'frame.interface_id==';

class DimensionsAnalyzer implements Analyzer {
  readonly id = 'dimensions';
  private readonly vlan: Dimension;
  private readonly iface: Dimension;
  /** The current packet's rows (set in onPacket, which runs before onTcpSegment). */
  private vlanRow = 0;
  private ifaceRow = 0;
  /** Whole-capture frames per outer VLAN id, and per interface id. */
  private readonly vlanFrames = new Float64Array(VLAN_KEYS);
  private readonly interfaceFrames = new Float64Array(INTERFACE_KEYS);
  /** A tagged frame was seen: windows list the VLAN dimension from then on. */
  private tagged = false;
  /** A frame came from an interface other than 0: the report lists frames per interface. */
  private multiInterface = false;

  /** A flow-sharded worker: its last window's part. */
  private part: DimensionsPart | undefined;

  constructor(private readonly ctx: AnalyzerContext) {
    // maxValues is fixed at start (the rows are preallocated); the config bounds it to 1..1024.
    const max = ctx.config.analyzers.dimensions.maxValues;
    const keep = ctx.shardRole === 'worker' ? Infinity : max;
    const packetOrder = (): number => ctx.packetOrder;
    this.vlan = new Dimension(VLAN_KEYS, keep, max, vlanLabel, packetOrder);
    this.iface = new Dimension(INTERFACE_KEYS, keep, max, String, packetOrder);
  }

  onPacket(v: PacketView): void {
    const vlanKey = v.vlan >= 0 ? v.vlan & 0x0fff : UNTAGGED;
    // The reader keeps interface ids below 65536; masked all the same, as the rows are typed arrays.
    const ifaceKey = v.interfaceId & 0xffff;
    if (vlanKey !== UNTAGGED) this.tagged = true;
    if (ifaceKey !== 0) this.multiInterface = true;
    this.vlanFrames[vlanKey]++;
    this.interfaceFrames[ifaceKey]++;
    const vr = this.vlanRow = this.vlan.row(vlanKey);
    const ir = this.ifaceRow = this.iface.row(ifaceKey);
    const bytes = v.wireLen;
    this.vlan.packets[vr]++;
    this.vlan.bytes[vr] += bytes;
    this.iface.packets[ir]++;
    this.iface.bytes[ir] += bytes;
    const dns = this.ctx.dnsMatch;
    if (dns.matched) {
      dns.matched = false;
      this.vlan.dnsTime[vr]!.add(dns.time);
      this.iface.dnsTime[ir]!.add(dns.time);
    }
  }

  onTcpSegment(_v: PacketView, _slot: number, _dir: number, tcp: TcpPacketResult): void {
    if ((tcp.flags & ANY_RETRANSMISSION) !== 0) {
      this.vlan.retransmissions[this.vlanRow]++;
      this.iface.retransmissions[this.ifaceRow]++;
    }
    const rtt = tcp.karnRtt;
    if (rtt > 0) {
      this.vlan.rtt[this.vlanRow]!.add(rtt);
      this.iface.rtt[this.ifaceRow]!.add(rtt);
    }
  }

  closeWindow(): Metrics {
    if (this.ctx.shardRole === 'worker') this.part = { vlan: this.vlan.part(), interface: this.iface.part(), tagged: this.tagged };
    const vlan = this.vlan.close();
    const iface = this.iface.close();
    return {
      vlan: this.tagged ? vlan.rows : {},
      interface: iface.rows,
      vlanValuesOther: vlan.other,
      interfaceValuesOther: iface.other,
    };
  }

  windowPart(): unknown {
    const part = this.part;
    this.part = undefined;
    return part;
  }

  /** The coordinator: the window of one pipeline from the workers' rows (see the top). */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as DimensionsPart[];
    const max = this.ctx.config.analyzers.dimensions.maxValues;
    // Run-wide, as in one pipeline: every worker has seen the input up to here.
    if (parts.some((p) => p.tagged)) this.tagged = true;
    const vlan = mergeDimension(parts.map((p) => p.vlan), max, vlanLabel);
    const iface = mergeDimension(parts.map((p) => p.interface), max, String);
    return {
      vlan: this.tagged ? vlan.rows : {},
      interface: iface.rows,
      vlanValuesOther: vlan.other,
      interfaceValuesOther: iface.other,
    };
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let id = 0; id < UNTAGGED; id++) if (this.vlanFrames[id]! > 0) out[`${VLAN_COUNTER}${id}`] = this.vlanFrames[id]!;
    // A flow-sharded worker lists every interface: whether any frame came from another than the first is the whole input's.
    if (this.multiInterface || this.ctx.shardRole === 'worker') {
      for (let id = 0; id < INTERFACE_KEYS; id++) if (this.interfaceFrames[id]! > 0) out[`${INTERFACE_COUNTER}${id}`] = this.interfaceFrames[id]!;
    }
    return out;
  }

  /** The coordinator: the workers' counters added up, in counters()' order, interfaces listed when any but the first has frames. */
  mergeCounters(parts: ReadonlyArray<Record<string, number>>): Record<string, number> {
    const vlan = new Map<number, number>();
    const iface = new Map<number, number>();
    for (const p of parts) {
      for (const [key, n] of Object.entries(p)) {
        const [into, id] = key.startsWith(VLAN_COUNTER) ? [vlan, key.slice(VLAN_COUNTER.length)] : [iface, key.slice(INTERFACE_COUNTER.length)];
        into.set(Number(id), (into.get(Number(id)) ?? 0) + n);
      }
    }
    const out: Record<string, number> = {};
    for (const id of [...vlan.keys()].sort((a, b) => a - b)) out[`${VLAN_COUNTER}${id}`] = vlan.get(id)!;
    if ([...iface.keys()].some((id) => id !== 0)) {
      for (const id of [...iface.keys()].sort((a, b) => a - b)) out[`${INTERFACE_COUNTER}${id}`] = iface.get(id)!;
    }
    return out;
  }
}
