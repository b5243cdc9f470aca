/**
 * Services and names: the DNS-proved server names of flows, and each flow's
 * behaviour class.
 *
 * DNS: a response with A or AAAA answers (class IN, over UDP or TCP) tells
 * that its receiver (the client) may soon connect to each answered address
 * under the name it asked for (dns.qry.name, not the CNAME chain's end).
 * The pair (client address, answered address) is remembered with that name
 * in a KeyTable of `maxAddresses` entries (least recently answered evicted
 * first, counted), for the answer's TTL, at least MIN_HOLD_SECONDS and at
 * most `dnsMaxAge` seconds (clients keep using an address a while after the
 * TTL). A flow that starts from that client to that address within the bound
 * learns the name (`ctx.names`, source DNS); TLS SNI and HTTP Host override it.
 * Answers are walked bounds-checked (agent/decode/dns.ts skipName); a
 * malformed or cut record ends the walk and is counted. The only allocation
 * is the question's name, read once per response that has usable answers.
 * Answers are taken from every frame that carries a DNS response, over TCP
 * too when the segment repeats payload (a retransmission repeats answers the
 * client was sent; Wireshark does not dissect it as DNS, so the dns analyzer
 * skips it): what the table holds follows from the frames alone, not from
 * TCP state, so flow-sharded workers keep it alike (below).
 *
 * Flow-sharded workers (issue 13): a response names flows of other host
 * pairs, so every worker takes every answer of the input into its table: its
 * own frames' here, the others' from the foreign copies the reader sends it
 * (`onForeignDns`, shard/foreign-dns.ts), decoded by a Decoder of its own and
 * counted nowhere. Every worker's table then holds, evicts and names alike,
 * as one pipeline's; the window's dnsAnswers and malformedAnswers count own
 * frames only and add up, addresses and addressesEvicted are the same in
 * every worker and are taken from the first.
 *
 * By service: each flow's first packet in a window files the flow under its
 * service (the proved name it has then, else its transport and server port,
 * labelled with the IANA name at window close) in the window's table of at
 * most MAX_SERVICES services (flows past it are counted under `other`); its
 * packets, bytes, TCP retransmissions (tcp.analysis.retransmission, all three
 * kinds) and ACK RTT samples (tcp.analysis.ack_rtt, as the tcp analyzer takes
 * them) add up there. The window lists the top `TOP_SERVICES` by packets. A
 * name learned later in the window (a TLS SNI on the fourth packet) applies
 * from the next window on. A flow-sharded worker keeps a row for every
 * service with where in the input it opened: the coordinator keeps the first
 * MAX_SERVICES of all workers' and files the rest under `other`. The window's
 * `names` counts the distinct names of every worker's FlowNames (each worker
 * logs the names that join and leave its own).
 *
 * Behaviour: every packet of a flow marks the whole seconds of packet time
 * the flow was active in (two typed arrays by flow slot); at the flow's end
 * flow/behaviour.ts classifies it from the flow table's counters and that
 * count, and the class goes in `ctx.names` for the report's top flows.
 */
import type { QuantileSketch } from '../../common/report.js';
import type { FrameRecord } from '../capture/frame-record.js';
import { Proto, Transport } from '../decode/constants.js';
import { Decoder } from '../decode/decoder.js';
import { Quantiles } from './lib/quantiles.js';
import { skipName, readDnsName } from '../decode/dns.js';
import { u16, u32 } from '../decode/bytes.js';
import type { PacketView } from '../decode/packet-view.js';
import { ANY_RETRANSMISSION, BEHAVIOUR_NAMES, NameSource, classifyFlow, portServiceName, protoName, type TcpPacketResult } from '../flow/index.js';
import { KeyTable } from './lib/key-table.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput } from './analyzer.js';

/** An answered address is kept at least this long, whatever its TTL (many answers have TTLs of seconds). */
const MIN_HOLD_SECONDS = 60;
/** Answer records walked per response at most (hostile counts cost nothing beyond this). */
const MAX_ANSWERS = 64;
const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;
/** Key words: client address (4), answered address (4), IP version. */
const KEY_WIDTH = 9;
/** Services tracked per window (then `other`), and listed. */
const MAX_SERVICES = 256;
const TOP_SERVICES = 10;
/** The row of `other`; services' rows are 1, 2, ... */
const OTHER = 0;

const ANSWERED_BUCKETS = 1 << 16;

/** The bucket of an address (4 words, unused ones 0) in `answered`. */
function addressBucket(a: number, b: number, c: number, d: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ b ^ (h >>> 15), 0xc2b2ae35);
  h = Math.imul(h ^ c ^ (h >>> 13), 0x85ebca6b);
  h = Math.imul(h ^ d ^ (h >>> 16), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & (ANSWERED_BUCKETS - 1);
}

export function createServicesAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ServicesAnalyzer(ctx);
}

/** A service's row of a window, as a flow-sharded worker gives it. */
interface ServiceRowPart {
  /** The proved name, or null for a row by port (`port`: transport << 16 | server port). */
  name: string | null;
  port: number;
  /** Input index of the packet that opened the row (its first flow's first packet in the window). */
  first: number;
  flows: number;
  packets: number;
  bytes: number;
  retransmissions: number;
  /** ACK RTT samples, whole (Quantiles.sketch(true)); null without any. */
  rtt: QuantileSketch | null;
}

/** A flow-sharded worker's `windowPart`. */
interface ServicesPart {
  rows: ServiceRowPart[];
  /** Names that joined and left the worker's FlowNames during the window. */
  namesAdded: string[];
  namesRemoved: string[];
}

/** A row's figures for the window's byService list. */
interface ServiceTotals {
  label: string;
  packets: number;
  bytes: number;
  retransmissions: number;
  rtt: Quantiles | undefined;
}

/** A row's label: its proved name, else the IANA name of its transport and port (else "proto/port"), or the protocol's name. */
function serviceLabel(name: string | null | undefined, key: number): string {
  if (name !== null && name !== undefined) return name;
  const proto = key >>> 16;
  const port = key & 0xffff;
  if (proto !== Transport.TCP && proto !== Transport.UDP) return protoName(proto);
  return portServiceName(proto, port) ?? `${protoName(proto)}/${port}`;
}

/** The top TOP_SERVICES of `rows` (in the order they opened) by packets (ties by label), then `other` when it has packets. */
function topServices(rows: readonly ServiceTotals[], other: ServiceTotals): Array<Record<string, string | number | null>> {
  const live = rows.filter((r) => r.packets > 0);
  const order = live.map((_, i) => i).sort((a, b) => live[b]!.packets - live[a]!.packets || (live[a]!.label < live[b]!.label ? -1 : 1)).slice(0, TOP_SERVICES);
  const pick = order.map((i) => live[i]!);
  if (other.packets > 0) pick.push(other);
  return pick.map((r) => {
    const rtt = r.rtt?.summary() ?? { count: 0, p50: null };
    return {
      service: r.label, packets: r.packets, bytes: r.bytes,
      'tcp.analysis.retransmission': r.retransmissions, 'tcp.analysis.ack_rtt.count': rtt.count, 'tcp.analysis.ack_rtt.p50': rtt.p50,
    };
  });
}

class ServicesAnalyzer implements Analyzer {
  readonly id = 'services';
  /** (client, answered address, version) -> id. */
  private readonly table: KeyTable;
  /** Per id: the name asked for, and until when (packet time) flows may take it. */
  private readonly nameOfId: Array<string | undefined>;
  private readonly until: Float64Array;
  /** Per flow slot: the last whole second of packet time it had a packet in, and how many such seconds. */
  private readonly lastSecond: Float64Array;
  private readonly activeSeconds: Uint32Array;
  private readonly client = new Uint32Array(4);
  private readonly server = new Uint32Array(4);
  /** Flows ended in the window, by behaviour class. */
  private readonly behaviours = new Float64Array(BEHAVIOUR_NAMES.length);
  private w = { answers: 0, flowsNamed: 0, malformedAnswers: 0 };
  private addressesEvicted = 0;
  private lastDropped = 0;
  private lastReclaimed = 0;
  /** Per flow slot: its row in the window's service table (set at its first packet in the window). */
  private readonly serviceOfSlot: Int32Array;
  /**
   * The window's service rows 1..rows (row 0 is `other`): by proved name, or by transport << 16 | server port; the
   * row's key kept for its label. A flow-sharded worker's rows are not capped: the arrays grow (doubling) past MAX_SERVICES.
   */
  private readonly rowOfName = new Map<string, number>();
  private readonly rowOfPort = new Map<number, number>();
  private readonly rowLimit: number;
  private readonly rowName: Array<string | undefined> = new Array<string | undefined>(MAX_SERVICES + 1);
  private rowPort: Int32Array = new Int32Array(MAX_SERVICES + 1);
  private rows = 0;
  private rowPackets: Float64Array = new Float64Array(MAX_SERVICES + 1);
  private rowBytes: Float64Array = new Float64Array(MAX_SERVICES + 1);
  private rowRetransmissions: Float64Array = new Float64Array(MAX_SERVICES + 1);
  /** Flows filed under the row, and the input index of the packet that opened it (ctx.packetOrder). */
  private rowFlows: Float64Array = new Float64Array(MAX_SERVICES + 1);
  private rowFirst: Float64Array = new Float64Array(MAX_SERVICES + 1);
  /** Made at a row's first ACK RTT sample of the run (2 KB each), then reused: at most MAX_SERVICES + 1 ever in one pipeline. */
  private readonly rowRtt: Array<Quantiles | undefined> = new Array<Quantiles | undefined>(MAX_SERVICES + 1);
  private flowsOverflow = 0;
  /** A flow-sharded worker: its last window's part, and the Decoder of the foreign frames it is given (made at the first). */
  private part: ServicesPart | undefined;
  private foreignDecoder: Decoder | undefined;
  /** The coordinator: how many workers' FlowNames hold each name. */
  private readonly nameHolders = new Map<string, number>();
  /**
   * Remembered answers per bucket of answered address (a hash): a flow start whose two addresses
   * fall in empty buckets needs no table lookup, which most flow starts are on a busy link.
   */
  private readonly answered = new Uint32Array(ANSWERED_BUCKETS);

  constructor(private readonly ctx: AnalyzerContext) {
    // At most 4 remembered answers per flow slot: more could not name more flows at once.
    const n = Math.min(ctx.config.analyzers.services.maxAddresses, 4 * ctx.flows.capacity);
    this.table = new KeyTable(n, KEY_WIDTH, (id) => {
      this.addressesEvicted++;
      const t = this.table;
      this.answered[addressBucket(t.keyWord(id, 4), t.keyWord(id, 5), t.keyWord(id, 6), t.keyWord(id, 7))]--;
    });
    this.nameOfId = new Array<string | undefined>(n);
    this.until = new Float64Array(n);
    // Not filled: onFlowStart sets a slot's entries before its first packet (analyze touches only the pages it uses).
    this.lastSecond = new Float64Array(ctx.flows.capacity);
    this.activeSeconds = new Uint32Array(ctx.flows.capacity);
    this.serviceOfSlot = new Int32Array(ctx.flows.capacity);
    this.rowLimit = ctx.shardRole === 'worker' ? Infinity : MAX_SERVICES;
    if (ctx.shardRole === 'worker') ctx.names.logChanges();
  }

  onWindowFlow(_v: PacketView, slot: number): void {
    const name = this.ctx.names.nameOf(slot);
    const flows = this.ctx.flows;
    let row: number | undefined;
    if (name !== undefined) {
      row = this.rowOfName.get(name);
      if (row === undefined && this.rows < this.rowLimit) {
        row = this.newRow();
        this.rowName[row] = name;
        this.rowOfName.set(name, row);
      }
    } else {
      const proto = flows.proto[slot]!;
      // Ports only for TCP and UDP (an ICMP flow's "port" is an echo id).
      const port = proto << 16 | (proto === Transport.TCP || proto === Transport.UDP ? flows.serverPort(slot) : 0);
      row = this.rowOfPort.get(port);
      if (row === undefined && this.rows < this.rowLimit) {
        row = this.newRow();
        this.rowPort[row] = port;
        this.rowOfPort.set(port, row);
      }
    }
    if (row === undefined) { row = OTHER; this.flowsOverflow++; }
    this.rowFlows[row]++;
    this.serviceOfSlot[slot] = row;
  }

  /** A new row of the window (its figures are 0: reset at the last close). */
  private newRow(): number {
    const row = ++this.rows;
    if (row === this.rowPackets.length) this.growRows();
    this.rowName[row] = undefined;
    this.rowFirst[row] = this.ctx.packetOrder;
    return row;
  }

  /** A flow-sharded worker past MAX_SERVICES rows: twice the room. */
  private growRows(): void {
    const n = this.rowPackets.length * 2;
    const grow = (a: Float64Array): Float64Array => { const b = new Float64Array(n); b.set(a); return b; };
    this.rowPackets = grow(this.rowPackets);
    this.rowBytes = grow(this.rowBytes);
    this.rowRetransmissions = grow(this.rowRetransmissions);
    this.rowFlows = grow(this.rowFlows);
    this.rowFirst = grow(this.rowFirst);
    const port = new Int32Array(n);
    port.set(this.rowPort);
    this.rowPort = port;
    this.rowName.length = n;
    this.rowRtt.length = n;
  }

  onTcpSegment(v: PacketView, slot: number, _dir: number, tcp: TcpPacketResult): void {
    const row = this.serviceOfSlot[slot]!;
    if ((tcp.flags & ANY_RETRANSMISSION) !== 0) this.rowRetransmissions[row]++;
    if (tcp.hasAckRtt) (this.rowRtt[row] ??= new Quantiles(true)).add(tcp.ackRtt);
    // A DNS response in a segment repeating payload: no onDnsMessage (not DNS in Wireshark), its answers all the same.
    if (v.dnsOff >= 0 && (v.present & Proto.DNS) !== 0 && tcp.payloadRepeated) this.takeAnswers(v, true);
  }

  onPacket(v: PacketView, slot: number): void {
    if (slot < 0) return;
    const row = this.serviceOfSlot[slot]!;
    this.rowPackets[row]++;
    this.rowBytes[row] += v.wireLen;
    const second = Math.floor(v.ts);
    if (second !== this.lastSecond[slot]) {
      this.lastSecond[slot] = second;
      this.activeSeconds[slot]++;
    }
  }

  onFlowStart(slot: number): void {
    this.lastSecond[slot] = NaN; // the first packet's second always differs
    this.activeSeconds[slot] = 0;
    const flows = this.ctx.flows;
    if (this.table.size === 0) return;
    const c = this.client;
    const sv = this.server;
    flows.copyEndpoints(slot, c, sv);
    const version = flows.version[slot]!;
    const answered = this.answered;
    let id = answered[addressBucket(sv[0]!, sv[1]!, sv[2]!, sv[3]!)] === 0 ? -1 : this.lookup(c, sv, version);
    // The first packet seen may have been the server's (capture started mid-flow): try the other way too.
    if (id < 0 && answered[addressBucket(c[0]!, c[1]!, c[2]!, c[3]!)] !== 0) id = this.lookup(sv, c, version);
    if (id < 0 || this.ctx.clock.now > this.until[id]!) return;
    this.ctx.names.learn(slot, NameSource.DNS, this.nameOfId[id]!);
    this.w.flowsNamed++;
  }

  onFlowEnd(slot: number): void {
    const t = this.ctx.flows;
    const code = classifyFlow(t.packets[slot * 2]!, t.bytes[slot * 2]!, t.packets[slot * 2 + 1]!, t.bytes[slot * 2 + 1]!, t.lastTs[slot]! - t.firstTs[slot]!, this.activeSeconds[slot]!);
    this.ctx.names.setBehaviour(slot, code);
    this.behaviours[code]++;
  }

  onDnsMessage(v: PacketView, slot: number): void {
    if (slot >= 0) this.takeAnswers(v, true);
  }

  /** A flow-sharded worker: another worker's frame that may carry DNS answers (shard/foreign-dns.ts): into the table, counted nowhere. */
  onForeignDns(rec: FrameRecord): void {
    const decoder = this.foreignDecoder ??= new Decoder(this.ctx.config.flows);
    decoder.timeBase = this.ctx.decoder.timeBase;
    const v = decoder.decode(rec);
    // As the pipeline's dispatch: a DNS frame (its transport makes it one of a flow).
    if ((v.present & Proto.DNS) !== 0) this.takeAnswers(v, false);
  }

  /** The A and AAAA answers of a DNS response into the table; `own`: a frame of this pipeline (counted in the window). */
  private takeAnswers(v: PacketView, own: boolean): void {
    if (!v.dnsIsResponse || v.dnsAnCount === 0 || (v.dnsFlags & 0x0f) !== 0 || v.dnsQnameOff < 0) return;
    const d = v.l4Data;
    const msg = v.dnsOff;
    const end = Math.min(d.length, v.payloadOff + v.payloadCapLen, msg + v.dnsLen);
    let p = msg + 12;
    for (let q = 0; q < v.dnsQdCount && q < MAX_ANSWERS; q++) {
      p = skipName(d, msg, p, end);
      if (p < 0 || p + 4 > end) return; // the decoder counted it
      p += 4;
    }
    let name: string | null | undefined;
    const key = this.table.key;
    const ttlCap = this.ctx.config.analyzers.services.dnsMaxAge;
    for (let i = 0; i < v.dnsAnCount && i < MAX_ANSWERS; i++) {
      p = skipName(d, msg, p, end);
      if (p < 0 || p + 10 > end) { if (own) this.w.malformedAnswers++; return; }
      const type = u16(d, p);
      const cls = u16(d, p + 2) & 0x7fff;
      const ttl = u32(d, p + 4);
      const rdLength = u16(d, p + 8);
      const rdata = p + 10;
      if (rdata + rdLength > end) { if (own) this.w.malformedAnswers++; return; }
      p = rdata + rdLength;
      const words = type === TYPE_A && rdLength === 4 ? 1 : type === TYPE_AAAA && rdLength === 16 ? 4 : 0;
      // An address of the other IP version than the client's: the flow to it would come from another client address.
      if (words === 0 || cls !== CLASS_IN || (words === 4) !== (v.ipVersion === 6)) continue;
      if (name === undefined) name = readDnsName(d, msg, v.dnsQnameOff, end);
      if (name === null || name.length === 0) return;
      // The client is the response's receiver.
      for (let k = 0; k < 4; k++) key[k] = v.dst[k]!;
      for (let k = 0; k < 4; k++) key[4 + k] = k < words ? u32(d, rdata + 4 * k) : 0;
      key[8] = v.ipVersion;
      const id = this.table.findOrInsert();
      if (this.table.inserted) this.answered[addressBucket(key[4]!, key[5]!, key[6]!, key[7]!)]++;
      this.nameOfId[id] = name;
      this.until[id] = v.ts + Math.min(Math.max(ttl, MIN_HOLD_SECONDS), ttlCap);
      if (own) this.w.answers++;
    }
  }

  private lookup(client: Uint32Array, server: Uint32Array, version: number): number {
    const key = this.table.key;
    for (let k = 0; k < 4; k++) { key[k] = client[k]!; key[4 + k] = server[k]!; }
    key[8] = version;
    return this.table.find();
  }

  closeWindow(): Metrics {
    const names = this.ctx.names;
    const w = this.w;
    const rows: ServiceTotals[] = [];
    for (let r = 1; r <= this.rows; r++) rows.push(this.totals(r));
    const metrics: Metrics = {
      dnsAnswers: w.answers,
      flowsNamedByDns: w.flowsNamed,
      malformedAnswers: w.malformedAnswers,
      addresses: this.table.size,
      addressesEvicted: this.addressesEvicted,
      names: names.size,
      namesDropped: names.namesDropped - this.lastDropped,
      namesReclaimed: names.namesReclaimed - this.lastReclaimed,
      behaviours: Object.fromEntries(BEHAVIOUR_NAMES.map((name, i) => [name, this.behaviours[i]!])),
      services: this.rows,
      flowsOverflow: this.flowsOverflow,
      byService: topServices(rows, this.totals(OTHER)),
    };
    if (this.ctx.shardRole === 'worker') this.part = this.rowsPart();
    this.clearServices();
    this.behaviours.fill(0);
    this.lastDropped = names.namesDropped;
    this.lastReclaimed = names.namesReclaimed;
    this.addressesEvicted = 0;
    this.w = { answers: 0, flowsNamed: 0, malformedAnswers: 0 };
    return metrics;
  }

  private totals(r: number): ServiceTotals {
    return {
      label: r === OTHER ? 'other' : serviceLabel(this.rowName[r], this.rowPort[r]!),
      packets: this.rowPackets[r]!, bytes: this.rowBytes[r]!, retransmissions: this.rowRetransmissions[r]!, rtt: this.rowRtt[r],
    };
  }

  /** A flow-sharded worker: the window's rows (every service: no `other`) and the names its FlowNames took and let go. */
  private rowsPart(): ServicesPart {
    const rows: ServiceRowPart[] = [];
    for (let r = 1; r <= this.rows; r++) {
      const rtt = this.rowRtt[r];
      rows.push({
        name: this.rowName[r] ?? null, port: this.rowName[r] === undefined ? this.rowPort[r]! : 0, first: this.rowFirst[r]!, flows: this.rowFlows[r]!,
        packets: this.rowPackets[r]!, bytes: this.rowBytes[r]!, retransmissions: this.rowRetransmissions[r]!,
        rtt: rtt !== undefined && rtt.count > 0 ? rtt.sketch(true) : null,
      });
    }
    const { added, removed } = this.ctx.names.takeChanges();
    return { rows, namesAdded: added, namesRemoved: removed };
  }

  windowPart(): unknown {
    const part = this.part;
    this.part = undefined;
    return part;
  }

  /**
   * The coordinator: the window of one pipeline from the workers'. Counts add up; the answer table is alike
   * in every worker (its figures from the first); names are those any worker's FlowNames holds; service rows
   * merge by service, the first MAX_SERVICES to open (in input order) kept and the rest filed under `other`.
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const metrics = input.metrics;
    const parts = input.parts as ServicesPart[];
    const holders = this.nameHolders;
    for (const p of parts) {
      for (const name of p.namesAdded) holders.set(name, (holders.get(name) ?? 0) + 1);
      for (const name of p.namesRemoved) {
        const n = (holders.get(name) ?? 0) - 1;
        if (n > 0) holders.set(name, n); else holders.delete(name);
      }
    }
    interface Merged { row: ServiceRowPart; rtt: Quantiles | undefined }
    const byKey = new Map<string | number, Merged>();
    for (const p of parts) {
      for (const row of p.rows) {
        const key = row.name ?? row.port;
        const have = byKey.get(key);
        let m: Merged;
        if (have === undefined) byKey.set(key, m = { row: { ...row, rtt: null }, rtt: undefined });
        else {
          m = have;
          m.row.first = Math.min(m.row.first, row.first);
          m.row.flows += row.flows;
          m.row.packets += row.packets;
          m.row.bytes += row.bytes;
          m.row.retransmissions += row.retransmissions;
        }
        if (row.rtt !== null) (m.rtt ??= new Quantiles(true)).addSketch(row.rtt);
      }
    }
    const all = [...byKey.values()].sort((a, b) => a.row.first - b.row.first);
    const totals = (m: Merged): ServiceTotals => ({
      label: serviceLabel(m.row.name, m.row.port), packets: m.row.packets, bytes: m.row.bytes, retransmissions: m.row.retransmissions, rtt: m.rtt,
    });
    const other: ServiceTotals = { label: 'other', packets: 0, bytes: 0, retransmissions: 0, rtt: undefined };
    let flowsOverflow = 0;
    for (const m of all.slice(MAX_SERVICES)) {
      flowsOverflow += m.row.flows;
      other.packets += m.row.packets;
      other.bytes += m.row.bytes;
      other.retransmissions += m.row.retransmissions;
      if (m.rtt !== undefined) (other.rtt ??= new Quantiles(true)).addAll(m.rtt);
    }
    const kept = all.slice(0, MAX_SERVICES);
    const sum = (read: (m: Metrics) => unknown): number => metrics.reduce((n, m) => n + (read(m) as number), 0);
    const first = metrics[0]!;
    return {
      dnsAnswers: sum((m) => m['dnsAnswers']),
      flowsNamedByDns: sum((m) => m['flowsNamedByDns']),
      malformedAnswers: sum((m) => m['malformedAnswers']),
      addresses: first['addresses'] as number,
      addressesEvicted: first['addressesEvicted'] as number,
      names: holders.size,
      namesDropped: sum((m) => m['namesDropped']),
      namesReclaimed: sum((m) => m['namesReclaimed']),
      behaviours: Object.fromEntries(BEHAVIOUR_NAMES.map((name) => [name, sum((m) => (m['behaviours'] as Record<string, number>)[name])])),
      services: kept.length,
      flowsOverflow,
      byService: topServices(kept.map(totals), other),
    };
  }

  private clearServices(): void {
    for (let r = 0; r <= this.rows; r++) this.resetRow(r);
    this.rows = 0;
    this.rowOfName.clear();
    this.rowOfPort.clear();
    this.flowsOverflow = 0;
  }

  private resetRow(r: number): void {
    this.rowName[r] = undefined;
    this.rowPackets[r] = 0;
    this.rowBytes[r] = 0;
    this.rowRetransmissions[r] = 0;
    this.rowFlows[r] = 0;
    const rtt = this.rowRtt[r];
    if (rtt !== undefined && rtt.count > 0) rtt.clear();
  }

  counters(): Record<string, number> {
    return this.ctx.names.namesDropped ? { 'services.names_dropped': this.ctx.names.namesDropped } : {};
  }
}
