/**
 * TCP resets and connections left open.
 *
 * Every RST is counted by the side that sent it (client or server, as the flow
 * table decides them) and by phase:
 *   refused  the server's RST answering a SYN before any SYN/ACK (and no data);
 *   abort    a RST after payload was seen in either direction;
 *   other    anything else (a client resetting its own handshake, a RST on an
 *            idle connection without data, a RST of a flow seen mid-stream...).
 * Refusals become one 'connection_refused' finding per server host:port and
 * window, with counts, the most refused first (servers are tracked up to
 * MAX_REFUSED_SERVERS per window: beyond, those of the lowest hash of their
 * address and port, then the lowest key; refusals of the others are only
 * counted); aborts one
 * 'connection_reset' finding per flow (its first RST), a warning unless a FIN
 * was seen before (a close by RST). The window engine lists
 * report.maxFindingsPerType findings of a type and counts the rest.
 *
 * At the end of the input (finish): live TCP flows still half-open (SYN sent,
 * never established), still established (no FIN, no RST), and among those the
 * zombies: idle for more than zombieIdle seconds before the last packet. One
 * 'zombie_flows' finding names the idlest (of equally idle ones, the first by
 * connection key).
 *
 * Flow-sharded workers: a server's refusals and the connections open at the
 * end are spread over workers, so a worker gives its tracked servers (with
 * where in the input each was first refused) and its figures at the end, and
 * its coordinator makes the metrics and both findings as one pipeline does.
 * The servers tracked are chosen by an order of their own (hash, key), not
 * the order they came in: a server among all workers' lowest
 * MAX_REFUSED_SERVERS is among the lowest of each worker that refused it, so
 * the workers' tracked servers hold every refusal one pipeline counts for
 * its tracked ones.
 *
 * State: what each flow has shown (one byte per flow slot), and per window
 * the refused servers in a KeyTable of (version, server address, port) with
 * their hash, count, first client (address, port) and where first refused in
 * typed columns; addresses become text when the window closes (and to break
 * a tie of hashes). Refusals are classified per RST, not
 * taken from the connection-attempt tracker's REFUSED: a client that retries
 * its SYN in the same flow after a RST is refused again (each RST is one),
 * where the tracker ends the attempt at the first.
 */
import type { PacketView } from '../decode/packet-view.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import type { FlowRef } from '../../common/report.js';
import { Dir, FlowState, connectionKey, describeFlow, describeFlowWithService, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, FindingDraft, Metrics, WindowMergeInput } from './analyzer.js';
import { round9, endpoint, duration, plural } from './lib/format.js';
import { formatAddress } from '../../common/address.js';
import { sumMetrics } from './lib/merge-metrics.js';
import { KeyTable } from './lib/key-table.js';

const { SYN, ACK, FIN, RST } = TcpFlag;

// What a flow has shown so far.
const SAW_SYN = 1;
const SAW_SYNACK = 2;
const SAW_DATA = 4;
const SAW_RST = 8;
const SAW_FIN = 16;

/** Servers tracked with their refusals per window; refusals by further servers are only counted. */
const MAX_REFUSED_SERVERS = 1000;
/** A refused server's key: IP version, address words, port. */
const SERVER_KEY_WORDS = 6;
/** Servers named in the window metrics (the most refused). */
const LISTED_REFUSED_SERVERS = 10;

/** A server refused in a window: its refusals, its first refused client, and where in the input the first was. */
interface RefusedServer {
  key: string;
  host: string;
  port: number;
  hash: number;
  count: number;
  firstClient: string;
  firstOrder: number;
}

/** TCP connections still open at the end of the input, and the idlest zombie. */
interface OpenAtEnd {
  halfOpen: number;
  established: number;
  zombies: number;
  /** The idlest zombie's idle time (-1 without zombies), its connection key, its flow. */
  maxIdle: number;
  idlestKey: string;
  idlest: FlowRef | null;
  /** Where in the input the end was (the zombie_flows finding's place). */
  order: number;
}

/** A flow-sharded worker's part of a window. */
interface ResetsPart {
  /** The worker's tracked servers. */
  refused: RefusedServer[];
  atEnd: OpenAtEnd | null;
}

export function createResetsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ResetsAnalyzer(ctx);
}

class ResetsAnalyzer implements Analyzer {
  readonly id = 'resets';
  private readonly seen: Uint8Array;
  private readonly live: Uint8Array;

  // per window
  private w = emptyWindow();
  /** (version, server address words, server port) -> id, and by id: hash, refusals, first refused client (address words, port), where first refused (ctx.packetOrder). */
  private readonly refused = new KeyTable(MAX_REFUSED_SERVERS, SERVER_KEY_WORDS);
  private readonly refusedHash = new Uint32Array(MAX_REFUSED_SERVERS);
  private readonly refusedCount = new Int32Array(MAX_REFUSED_SERVERS);
  private readonly firstClient = new Uint32Array(MAX_REFUSED_SERVERS * 4);
  private readonly firstClientPort = new Int32Array(MAX_REFUSED_SERVERS);
  private readonly firstOrder = new Float64Array(MAX_REFUSED_SERVERS);
  /** The tracked server of the highest (hash, key) once the table is full: the next to give way. */
  private highest = -1;
  private atEnd: OpenAtEnd | null = null;
  /** A flow-sharded worker: the closed window's part. */
  private closedPart: ResetsPart | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    const n = ctx.flows.capacity;
    this.seen = new Uint8Array(n);
    this.live = new Uint8Array(n);
  }

  onFlowStart(slot: number): void {
    this.seen[slot] = 0;
    this.live[slot] = 1;
  }

  onFlowEnd(slot: number): void {
    this.live[slot] = 0;
  }

  onTcpSegment(v: PacketView, slot: number, dir: number): void {
    const tf = v.tcpFlags;
    const seen = this.seen[slot]!;
    if (tf & RST) {
      const w = this.w;
      w.rst[dir]!++;
      if (!(seen & SAW_RST)) w.flowsReset++;
      if (seen & SAW_SYN && !(seen & (SAW_SYNACK | SAW_DATA)) && dir === Dir.SERVER_TO_CLIENT) {
        w.refused++;
        this.noteRefused(slot);
      } else if (seen & SAW_DATA) {
        w.abort++;
        if (!(seen & SAW_RST)) this.reportAbort(slot, dir, v.ts, (seen & SAW_FIN) !== 0);
      } else {
        w.other++;
      }
    }
    let next = seen;
    if (tf & RST) next |= SAW_RST;
    if (tf & SYN) next |= tf & ACK ? SAW_SYNACK : SAW_SYN;
    if (tf & FIN) next |= SAW_FIN;
    if (v.payloadLen > 0) next |= SAW_DATA;
    this.seen[slot] = next;
  }

  /** A refusal, counted for its server host and port. */
  private noteRefused(slot: number): void {
    const table = this.refused;
    this.serverKey(slot);
    let id = table.find();
    if (id >= 0) { this.refusedCount[id]++; return; }
    const hash = table.keyHash() >>> 0;
    if (table.size === table.capacity) {
      // Full: a server of a lower (hash, key) takes the place of the highest (its refusals become untracked), others are only counted.
      const highest = this.highest;
      if (hash > this.refusedHash[highest]! || (hash === this.refusedHash[highest] && this.keyText(-1) > this.keyText(highest))) return;
      table.remove(highest);
    }
    const flows = this.ctx.flows;
    id = table.findOrInsert();
    this.refusedHash[id] = hash;
    this.refusedCount[id] = 1;
    const client = (flows.clientIsA[slot] === 1) ? flows.addrA : flows.addrB;
    for (let i = 0; i < 4; i++) this.firstClient[id * 4 + i] = client[slot * 4 + i]!;
    this.firstClientPort[id] = flows.clientPort(slot);
    this.firstOrder[id] = this.ctx.packetOrder;
    if (table.size === table.capacity) this.highest = this.highestServer();
  }

  /** Fills the table's key with flow `slot`'s server: version, address words (IPv4: word 0, the rest 0), port. */
  private serverKey(slot: number): void {
    const flows = this.ctx.flows;
    const k = this.refused.key;
    const version = flows.version[slot]!;
    const from = (flows.clientIsA[slot] === 1) ? flows.addrB : flows.addrA;
    k[0] = version;
    for (let i = 0; i < 4; i++) k[1 + i] = version === 6 || i === 0 ? from[slot * 4 + i]! : 0;
    k[5] = flows.serverPort(slot);
  }

  /** The tracked server (an id; -1: the one in the table's key) as text: host:port. */
  private keyText(id: number): string {
    const table = this.refused;
    const words = new Uint32Array(4);
    for (let i = 0; i < 4; i++) words[i] = id < 0 ? table.key[1 + i]! : table.keyWord(id, 1 + i);
    const version = id < 0 ? table.key[0]! : table.keyWord(id, 0);
    return endpoint(formatAddress(version, words), id < 0 ? table.key[5]! : table.keyWord(id, 5));
  }

  /** The tracked server of the highest (hash, key). */
  private highestServer(): number {
    const table = this.refused;
    let best = -1;
    for (let id = table.oldest(); id >= 0; id = table.newer(id)) {
      const h = this.refusedHash[id]!;
      if (best < 0 || h > this.refusedHash[best]! || (h === this.refusedHash[best] && this.keyText(id) > this.keyText(best))) best = id;
    }
    return best;
  }

  private reportAbort(slot: number, dir: number, now: number, afterFin: boolean): void {
    const flows: FlowTable = this.ctx.flows;
    const side = dir === Dir.CLIENT_TO_SERVER ? 'client' : 'server';
    const packets = flows.packets[slot * 2]! + flows.packets[slot * 2 + 1]!;
    this.ctx.reportLazily('connection_reset', () => {
      const f = describeFlow(flows, slot);
      return {
        type: 'connection_reset',
        severity: afterFin ? 'info' : 'warning',
        key: connectionKey(flows, slot),
        summary: `The ${side} reset the TCP connection ${endpoint(f.client, f.clientPort)} -> ${endpoint(f.server, f.serverPort)} after data`
          + (afterFin ? ' (while closing it).' : ' (aborted).'),
        evidence: {
          side,
          phase: 'abort',
          afterFin,
          packets,
          durationSeconds: round9(Math.max(0, now - flows.firstTs[slot]!)),
        },
        flowSlot: slot,
        host: side === 'client' ? f.client : f.server,
      };
    });
  }

  finish(): void {
    const flows = this.ctx.flows;
    const now = this.ctx.clock.now;
    const zombieIdle = this.ctx.config.analyzers.resets.zombieIdle;
    let halfOpen = 0;
    let established = 0;
    let zombies = 0;
    let idlest = -1;
    let maxIdle = -1;
    let idlestKey = '';
    for (let slot = 0; slot < this.live.length; slot++) {
      if (!this.live[slot] || flows.proto[slot] !== Transport.TCP) continue;
      const s = flows.state[slot];
      if (s === FlowState.SYN_SENT || s === FlowState.SYN_RECEIVED) { halfOpen++; continue; }
      if (s !== FlowState.ESTABLISHED) continue;
      established++;
      const idle = round9(now - flows.lastTs[slot]!);
      if (idle > zombieIdle) {
        zombies++;
        if (idle > maxIdle) {
          maxIdle = idle;
          idlest = slot;
          idlestKey = '';
        } else if (idle === maxIdle) {
          // Equally idle: the first by key, whichever worker holds it.
          if (idlestKey === '') idlestKey = connectionKey(flows, idlest);
          const key = connectionKey(flows, slot);
          if (key < idlestKey) { idlest = slot; idlestKey = key; }
        }
      }
    }
    if (idlest >= 0 && idlestKey === '') idlestKey = connectionKey(flows, idlest);
    const idlestFlow = idlest >= 0 ? describeFlowWithService(flows, idlest, this.ctx.names) : null;
    this.atEnd = { halfOpen, established, zombies, maxIdle, idlestKey, idlest: idlestFlow, order: this.ctx.packetOrder };
    // A flow-sharded worker holds some of the open connections: its coordinator reports on all.
    if (this.ctx.shardRole !== 'worker') this.reportZombies(this.atEnd);
  }

  private reportZombies(end: OpenAtEnd): void {
    if (end.zombies === 0 || end.idlest === null) return;
    const zombieIdle = this.ctx.config.analyzers.resets.zombieIdle;
    const { zombies, maxIdle } = end;
    const f = end.idlest;
    this.ctx.report({
      type: 'zombie_flows',
      severity: 'warning',
      key: 'end',
      summary: `${plural(zombies, 'established TCP connection')} ${zombies === 1 ? 'was' : 'were'} idle for more than ${duration(zombieIdle)} at the end of the input`
        + ` (the idlest, ${endpoint(f.client, f.clientPort)} -> ${endpoint(f.server, f.serverPort)}, for ${duration(maxIdle)}).`,
      evidence: { zombies, maxIdleSeconds: round9(maxIdle), zombieIdle, establishedAtEnd: end.established, halfOpenAtEnd: end.halfOpen },
      flow: f,
      host: f.server,
      order: end.order,
    });
  }

  closeWindow(): Metrics {
    const table = this.refused;
    const refused: RefusedServer[] = [];
    let tracked = 0;
    for (let id = table.oldest(); id >= 0; id = table.newer(id)) {
      const version = table.keyWord(id, 0);
      const host = formatAddress(version, [table.keyWord(id, 1), table.keyWord(id, 2), table.keyWord(id, 3), table.keyWord(id, 4)]);
      const port = table.keyWord(id, 5);
      const client = formatAddress(version, this.firstClient.subarray(id * 4, id * 4 + 4));
      refused.push({
        key: endpoint(host, port), host, port, hash: this.refusedHash[id]!, count: this.refusedCount[id]!,
        firstClient: endpoint(client, this.firstClientPort[id]!), firstOrder: this.firstOrder[id]!,
      });
      tracked += this.refusedCount[id]!;
    }
    const w = this.w;
    const untracked = w.refused - tracked;
    const metrics: Metrics = {
      rst: w.rst[0]! + w.rst[1]!,
      bySide: { client: w.rst[0]!, server: w.rst[1]! },
      byPhase: { refused: w.refused, abort: w.abort, other: w.other },
      flowsReset: w.flowsReset,
    };
    if (this.ctx.shardRole === 'worker') {
      this.closedPart = { refused, atEnd: this.atEnd };
      this.endWindow(metrics, [...refused], untracked, this.atEnd, false);
    } else {
      this.endWindow(metrics, refused, untracked, this.atEnd, true);
    }
    this.w = emptyWindow();
    table.clear();
    this.highest = -1;
    this.atEnd = null;
    return metrics;
  }

  windowPart(): ResetsPart | null {
    return this.closedPart;
  }

  /**
   * RSTs add up (a flow lives in one worker); a server's refusals in several
   * workers are added up by its address and port, first refused where the
   * earliest worker saw it; the connections open at the end add up, the
   * idlest is the idlest of the workers'.
   */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly ResetsPart[];
    const sums = sumMetrics(input.metrics);
    const metrics: Metrics = { rst: sums['rst'], bySide: sums['bySide'], byPhase: sums['byPhase'], flowsReset: sums['flowsReset'] };
    const byKey = new Map<string, RefusedServer>();
    let atEnd: OpenAtEnd | null = null;
    for (const p of parts) {
      for (const r of p.refused) {
        const have = byKey.get(r.key);
        if (have === undefined) { byKey.set(r.key, { ...r }); continue; }
        have.count += r.count;
        if (r.firstOrder < have.firstOrder) { have.firstOrder = r.firstOrder; have.firstClient = r.firstClient; }
      }
      const e = p.atEnd;
      if (e === null) continue;
      if (atEnd === null) { atEnd = { ...e }; continue; }
      atEnd.halfOpen += e.halfOpen;
      atEnd.established += e.established;
      atEnd.zombies += e.zombies;
      if (e.maxIdle > atEnd.maxIdle || (e.maxIdle === atEnd.maxIdle && e.idlestKey < atEnd.idlestKey)) {
        atEnd.maxIdle = e.maxIdle;
        atEnd.idlestKey = e.idlestKey;
        atEnd.idlest = e.idlest;
      }
    }
    // The servers one pipeline tracks: the lowest (hash, key).
    const refused = [...byKey.values()].sort((a, b) => a.hash - b.hash || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, MAX_REFUSED_SERVERS);
    const untracked = (sums['byPhase'] as { refused: number }).refused - refused.reduce((n, r) => n + r.count, 0);
    if (atEnd !== null) this.reportZombies(atEnd);
    this.endWindow(metrics, refused, untracked, atEnd, true);
    return metrics;
  }

  /**
   * The window's tracked refused servers into its metrics, the most refused
   * first, each with its
   * connection_refused finding when `report`; and the figures at the end.
   */
  private endWindow(metrics: Metrics, refused: RefusedServer[], untracked: number, atEnd: OpenAtEnd | null, report: boolean): void {
    // The most refused first, then the first refused.
    refused.sort((a, b) => b.count - a.count || a.firstOrder - b.firstOrder);
    if (report) {
      for (const r of refused) {
        this.ctx.reportLazily('connection_refused', (): FindingDraft => ({
          type: 'connection_refused',
          severity: 'warning',
          key: r.key,
          summary: `${r.key} refused ${plural(r.count, 'TCP connection')} (SYN answered by RST).`,
          evidence: { refused: r.count, serverPort: r.port, firstClient: r.firstClient },
          host: r.host,
          rank: -r.count,
        }));
      }
    }
    metrics['refusedServers'] = Object.fromEntries(refused.slice(0, LISTED_REFUSED_SERVERS).map((r) => [r.key, r.count]));
    metrics['refusedServersCount'] = refused.length;
    metrics['refusedUntracked'] = untracked;
    metrics['atEnd'] = atEnd && { halfOpen: atEnd.halfOpen, established: atEnd.established, zombies: atEnd.zombies, maxIdleSeconds: atEnd.zombies ? round9(atEnd.maxIdle) : null };
  }
}

function emptyWindow(): { rst: [number, number]; refused: number; abort: number; other: number; flowsReset: number } {
  return { rst: [0, 0], refused: 0, abort: 0, other: 0, flowsReset: 0 };
}

