/**
 * The wire contract between agents and collectors: NATS subjects and the JSON
 * messages on them. Every message names its `schema` (versioned like the
 * report); a breaking change gets a new version, and the collector refuses
 * schemas it does not know. Message ids are deterministic, so a retry or a
 * restart re-sends the same id and JetStream (and the collector) drop it.
 */
import { createHash } from 'node:crypto';
import type { CaptureDrops, Finding, WindowSummary } from './report.js';

export const SUBJECT_ROOT = 'pcap.v1';
/** Every subject an agent publishes on (the JetStream stream's subject filter). */
export const SUBJECT_FILTER = `${SUBJECT_ROOT}.>`;

export const WINDOW_SCHEMA = 'pcap-analyzer/window@1';
export const FINDING_SCHEMA = 'pcap-analyzer/finding@1';
export const STATUS_SCHEMA = 'pcap-analyzer/status@1';

export type MessageKind = 'window' | 'finding' | 'status';

/** A sensor id as one NATS subject token: no dots, wildcards or spaces. */
export function sensorToken(sensor: string): string {
  return sensor.replace(/[.*>\s]/g, '_') || '_';
}

export function subjectFor(sensor: string, kind: MessageKind): string {
  return `${SUBJECT_ROOT}.${sensorToken(sensor)}.${kind}`;
}

export interface SourceInfo {
  kind: 'live' | 'replay';
  /** Interface name, or the replayed path. */
  name: string;
}

export interface WindowMessage {
  schema: typeof WINDOW_SCHEMA;
  id: string;
  sensor: string;
  source: SourceInfo;
  window: WindowSummary;
}

export interface FindingMessage {
  schema: typeof FINDING_SCHEMA;
  id: string;
  sensor: string;
  source: SourceInfo;
  finding: Finding;
}

export interface CaptureStatus {
  /** Packets and bytes analyzed. */
  packets: number;
  bytes: number;
  /** pcap_stats ps_recv (live) or packets read (replay). */
  received: number;
  drops: CaptureDrops;
  decodeErrors: Record<string, number>;
}

export interface PublishStatus {
  connected: boolean;
  published: number;
  publishFailures: number;
  inFlight: number;
  spoolMessages: number;
  spoolBytes: number;
  overflowMessages: number;
}

export interface StatusMessage {
  schema: typeof STATUS_SCHEMA;
  id: string;
  sensor: string;
  version: string;
  source: SourceInfo;
  /** ISO time of the agent's start (wall clock). */
  startedAt: string;
  /**
   * ISO time the agent made this heartbeat, by its wall clock: never packet time, which is a
   * replayed capture's own time and lags a live link by a window. The collector judges
   * liveness by it (clamped to when the message arrived), so a backlog read late shows
   * sensors as they were then, not as up.
   */
  time: string;
  uptimeSeconds: number;
  /** `finished`: a replay (without --loop) read its whole input and the agent is exiting: its last status. */
  state: 'starting' | 'running' | 'degraded' | 'stopping' | 'finished';
  /** The agent's heartbeat interval (status.seconds): the collector allows a few of them before calling it down. Absent from agents before it existed. */
  heartbeatSeconds?: number;
  /** True on the last heartbeat of an orderly stop or of a finished replay: the sensor is stopped, not down. Absent otherwise. */
  final?: boolean;
  capture: CaptureStatus;
  /** conversationsForgotten: flows.endedConversations overwritten before resuming (absent from agents before it existed). */
  flows: { active: number; evicted: number; conversationsForgotten?: number };
  windows: number;
  publish: PublishStatus;
}

export type AgentMessage = WindowMessage | FindingMessage | StatusMessage;

/** Short stable tag of a source, so two sources of one sensor never share ids. */
export function sourceTag(source: SourceInfo): string {
  return createHash('sha256').update(`${source.kind}\u0000${source.name}`).digest('hex').slice(0, 8);
}

export function windowMessageId(sensor: string, source: SourceInfo, window: WindowSummary): string {
  return `${sensorToken(sensor)}.${sourceTag(source)}.w.${window.start}`;
}

export function findingMessageId(sensor: string, source: SourceInfo, finding: Finding): string {
  return `${sensorToken(sensor)}.${sourceTag(source)}.f.${finding.id}`;
}

/** A heartbeat's id: unique per agent start and message, and (like every id) led by the sensor's subject token. */
export function statusMessageId(sensor: string, startedAt: Date, seq: number): string {
  return `${sensorToken(sensor)}.s.${startedAt.getTime()}.${seq}`;
}
