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
 * MAX_REFUSED_SERVERS per window, further ones only counted); aborts one
 * 'connection_reset' finding per flow (its first RST), a warning unless a FIN
 * was seen before (a close by RST). The window engine lists
 * report.maxFindingsPerType findings of a type and counts the rest.
 *
 * At the end of the input (finish): live TCP flows still half-open (SYN sent,
 * never established), still established (no FIN, no RST), and among those the
 * zombies: idle for more than zombieIdle seconds before the last packet. One
 * 'zombie_flows' finding names the idlest.
 *
 * State: what each flow has shown (one byte per flow slot), and per window
 * the refused servers in a KeyTable of (server host id, port) with their
 * count and first client (host id, port) in typed columns, hosts interned in
 * a HostTable of 2 * MAX_REFUSED_SERVERS (a window interns at most that many,
 * so the hosts it refers to are never the least recently used); addresses
 * become text when the window closes. Refusals are classified per RST, not
 * taken from the connection-attempt tracker's REFUSED: a client that retries
 * its SYN in the same flow after a RST is refused again (each RST is one),
 * where the tracker ends the attempt at the first.
 */
import type { PacketView } from '../decode/packet-view.js';
import { TcpFlag, Transport } from '../decode/constants.js';
import { Dir, FlowState, connectionKey, describeFlow, type FlowTable } from '../flow/index.js';
import type { Analyzer, AnalyzerContext, Metrics } from './analyzer.js';
import { round9, endpoint, duration, plural } from './lib/format.js';
import { HostTable } from './lib/host-table.js';
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
/** Servers named in the window metrics (the most refused). */
const LISTED_REFUSED_SERVERS = 10;

export function createResetsAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new ResetsAnalyzer(ctx);
}

class ResetsAnalyzer implements Analyzer {
  readonly id = 'resets';
  private readonly seen: Uint8Array;
  private readonly live: Uint8Array;

  // per window
  private w = emptyWindow();
  /** (server host id, server port) -> id, and by id: refusals, first refused client (host id, port). */
  private readonly refused = new KeyTable(MAX_REFUSED_SERVERS, 2);
  private readonly refusedCount = new Int32Array(MAX_REFUSED_SERVERS);
  private readonly firstClient = new Int32Array(MAX_REFUSED_SERVERS);
  private readonly firstClientPort = new Int32Array(MAX_REFUSED_SERVERS);
  private readonly hosts: HostTable;
  private readonly words = new Uint32Array(4);
  private refusedUntracked = 0;
  private atEnd: { halfOpen: number; established: number; zombies: number; maxIdleSeconds: number | null } | null = null;

  constructor(private readonly ctx: AnalyzerContext) {
    const n = ctx.flows.capacity;
    this.seen = new Uint8Array(n);
    this.live = new Uint8Array(n);
    this.hosts = new HostTable(2 * MAX_REFUSED_SERVERS, ctx.networks, true);
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
    const flows = this.ctx.flows;
    const version = flows.version[slot]!;
    const port = flows.serverPort(slot);
    const table = this.refused;
    const server = this.hosts.find(version, this.address(slot, true));
    if (server >= 0) {
      table.key[0] = server;
      table.key[1] = port;
      const id = table.find();
      if (id >= 0) { this.refusedCount[id]++; return; }
    }
    if (table.size === table.capacity) { this.refusedUntracked++; return; }
    const s = this.hosts.intern(version, this.address(slot, true));
    const c = this.hosts.intern(version, this.address(slot, false));
    table.key[0] = s;
    table.key[1] = port;
    const id = table.findOrInsert();
    this.refusedCount[id] = 1;
    this.firstClient[id] = c;
    this.firstClientPort[id] = flows.clientPort(slot);
  }

  /** The server's (or client's) address words of flow `slot`, in a scratch array. */
  private address(slot: number, server: boolean): Uint32Array {
    const flows = this.ctx.flows;
    const from = (flows.clientIsA[slot] === 1) !== server ? flows.addrA : flows.addrB;
    for (let i = 0; i < 4; i++) this.words[i] = from[slot * 4 + i]!;
    return this.words;
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
    for (let slot = 0; slot < this.live.length; slot++) {
      if (!this.live[slot] || flows.proto[slot] !== Transport.TCP) continue;
      const s = flows.state[slot];
      if (s === FlowState.SYN_SENT || s === FlowState.SYN_RECEIVED) { halfOpen++; continue; }
      if (s !== FlowState.ESTABLISHED) continue;
      established++;
      const idle = round9(now - flows.lastTs[slot]!);
      if (idle > zombieIdle) {
        zombies++;
        if (idle > maxIdle) { maxIdle = idle; idlest = slot; }
      }
    }
    this.atEnd = { halfOpen, established, zombies, maxIdleSeconds: zombies ? round9(maxIdle) : null };
    if (zombies > 0) {
      const f = describeFlow(flows, idlest);
      this.ctx.report({
        type: 'zombie_flows',
        severity: 'warning',
        key: 'end',
        summary: `${plural(zombies, 'established TCP connection')} ${zombies === 1 ? 'was' : 'were'} idle for more than ${duration(zombieIdle)} at the end of the input`
          + ` (the idlest, ${endpoint(f.client, f.clientPort)} -> ${endpoint(f.server, f.serverPort)}, for ${duration(maxIdle)}).`,
        evidence: { zombies, maxIdleSeconds: round9(maxIdle), zombieIdle, establishedAtEnd: established, halfOpenAtEnd: halfOpen },
        flowSlot: idlest,
        host: f.server,
      });
    }
  }

  closeWindow(): Metrics {
    // Insertion order (no entry is touched or removed within a window), then the most refused first (a stable sort).
    const table = this.refused;
    const ids: number[] = [];
    for (let id = table.oldest(); id >= 0; id = table.newer(id)) ids.push(id);
    ids.sort((a, b) => this.refusedCount[b]! - this.refusedCount[a]!);
    const refused = ids.map((id) => {
      const server = table.keyWord(id, 0);
      const port = table.keyWord(id, 1);
      const host = this.hosts.name(server);
      return { key: endpoint(host, port), host, port, count: this.refusedCount[id]!, firstClient: endpoint(this.hosts.name(this.firstClient[id]!), this.firstClientPort[id]!) };
    });
    for (const r of refused) {
      this.ctx.reportLazily('connection_refused', () => ({
        type: 'connection_refused',
        severity: 'warning',
        key: r.key,
        summary: `${r.key} refused ${plural(r.count, 'TCP connection')} (SYN answered by RST).`,
        evidence: { refused: r.count, serverPort: r.port, firstClient: r.firstClient },
        host: r.host,
        rank: -r.count,
      }));
    }
    const w = this.w;
    const metrics: Metrics = {
      rst: w.rst[0]! + w.rst[1]!,
      bySide: { client: w.rst[0]!, server: w.rst[1]! },
      byPhase: { refused: w.refused, abort: w.abort, other: w.other },
      flowsReset: w.flowsReset,
      refusedServers: Object.fromEntries(refused.slice(0, LISTED_REFUSED_SERVERS).map((r) => [r.key, r.count])),
      refusedServersCount: refused.length,
      refusedUntracked: this.refusedUntracked,
      atEnd: this.atEnd,
    };
    this.w = emptyWindow();
    table.clear();
    this.refusedUntracked = 0;
    this.atEnd = null;
    return metrics;
  }
}

function emptyWindow(): { rst: [number, number]; refused: number; abort: number; other: number; flowsReset: number } {
  return { rst: [0, 0], refused: 0, abort: 0, other: 0, flowsReset: 0 };
}

