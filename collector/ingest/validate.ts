/**
 * What the collector accepts from a sensor. A sensor is not trusted: every
 * message is checked against its subject (the NATS server vouches only for
 * the subject, which a sensor's user may publish on) and against the schema
 * of its kind before anything is stored. A message that fails is rejected
 * with one reason of a fixed set (the `reason` label of
 * `pcap_analyzer_collector_messages_rejected_total`) and a detail for the log.
 */
import { FINDING_SEVERITIES } from '../../common/report.js';
import { rangeInputsProblem } from '../../agent/index.js';
import {
  FINDING_SCHEMA, STATUS_SCHEMA, SUBJECT_ROOT, WINDOW_SCHEMA, sensorToken,
  type FindingMessage, type MessageKind, type StatusMessage, type WindowMessage,
} from '../../common/wire.js';

/** Why a message was rejected: the fixed label set of the rejected counter. */
export const REJECT_REASONS = ['too_large', 'bad_json', 'unknown_schema', 'invalid', 'bad_subject', 'sensor_mismatch', 'id_mismatch'] as const;
export type RejectReason = typeof REJECT_REASONS[number];
/**
 * Why a stored message had a value refused and bounded (counted under the same counter, so one
 * series shows every sensor that sends what the collector will not take as is): a time later than
 * now + collector.clockSkewSeconds (counted as that bound), or a finding type or severity outside
 * the known set (stored, labelled `other` in /metrics).
 */
export const BOUND_REASONS = ['time_clamped', 'unknown_type'] as const;

export interface Rejection { reason: RejectReason; detail: string }

export type ParsedMessage =
  | { kind: 'window'; msg: WindowMessage }
  | { kind: 'finding'; msg: FindingMessage }
  | { kind: 'status'; msg: StatusMessage };

/** Longest id, sensor id, version and source name accepted (agents send far shorter ones). */
const MAX_ID = 512;
const MAX_NAME = 4096;
const MAX_TEXT = 16_384;
/**
 * Deepest nesting of objects and arrays accepted (agents send 5 levels). The
 * store writes parts of a message back out with JSON.stringify, which runs out
 * of stack near 5,000 levels: that message would fail its batch on every
 * redelivery and stop ingest for every sensor.
 */
export const MAX_DEPTH = 64;
/** Finding types are snake_case words (the known ones are FINDING_TYPES; others are stored, labelled `other`). */
const FINDING_TYPE = /^[a-z][a-z0-9_]{0,63}$/;
const SOURCE_KINDS = ['live', 'replay'];
const STATES = ['starting', 'running', 'degraded', 'stopping', 'finished'];
const KIND_OF_SCHEMA: Record<string, MessageKind> = { [WINDOW_SCHEMA]: 'window', [FINDING_SCHEMA]: 'finding', [STATUS_SCHEMA]: 'status' };
const SUBJECT_PREFIX = `${SUBJECT_ROOT}.`;
const decoder = new TextDecoder('utf-8', { fatal: true });

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isNumberOrNull = (v: unknown): boolean => v === null || (typeof v === 'number' && Number.isFinite(v));
/** Text without control characters (they would corrupt logs and terminals), at most `max` long. */
const isText = (v: unknown, max: number, allowEmpty = false): v is string =>
  typeof v === 'string' && v.length <= max && (allowEmpty || v !== '') && !/[\u0000-\u001f\u007f]/.test(v);
const isTime = (v: unknown): v is string => typeof v === 'string' && v.length <= 64 && !Number.isNaN(Date.parse(v));

/** Byte classes for nestedDeeper: most bytes are none of these, one table load each. */
const QUOTE = 1;
const OPEN = 2;
const CLOSE = 3;
const JSON_BYTE_CLASS = new Uint8Array(256);
JSON_BYTE_CLASS[0x22] = QUOTE;
JSON_BYTE_CLASS[0x7b] = OPEN;
JSON_BYTE_CLASS[0x5b] = OPEN;
JSON_BYTE_CLASS[0x7d] = CLOSE;
JSON_BYTE_CLASS[0x5d] = CLOSE;

/** Whether JSON text nests objects and arrays deeper than `max` (a scan of the bytes, strings skipped). */
export function nestedDeeper(data: Uint8Array, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < data.length; i++) {
    const kind = JSON_BYTE_CLASS[data[i]!]!;
    if (kind === 0) continue;
    if (kind === QUOTE) {
      for (i++; i < data.length; i++) {
        const c = data[i]!;
        if (c === 0x5c) i++; // backslash: the next byte is escaped
        else if (c === 0x22) break;
      }
    } else if (kind === OPEN) {
      if (++depth > max) return true;
    } else {
      depth--;
    }
  }
  return false;
}

/** A record whose values are all finite numbers >= 0 (counters by name). */
function isCounts(v: unknown, max = 10_000): boolean {
  if (!isObject(v)) return false;
  let n = 0;
  for (const key in v) {
    if (++n > max || !isCount(v[key])) return false;
  }
  return true;
}

/** Checks shape and types; returns what is wrong, or '' when the window is valid. */
function windowProblem(w: unknown): string {
  if (!isObject(w)) return 'window is not an object';
  if (!isTime(w['start']) || !isTime(w['end'])) return 'window start/end are not times';
  if (!isCount(w['packets']) || !isCount(w['bytes']) || !isCount(w['outOfOrderTimestamps'])) return 'window packets/bytes/outOfOrderTimestamps are not counts';
  const flows = w['flows'];
  if (!isObject(flows) || !isCount(flows['active']) || !isCount(flows['new']) || !isCount(flows['closed'])) return 'window flows are not counts';
  if (!isNumberOrNull(w['healthScore'])) return 'window healthScore is not a number';
  const metrics = w['metrics'];
  if (!isObject(metrics)) return 'window metrics is not an object';
  for (const id in metrics) if (!isObject(metrics[id])) return 'window metrics are not objects by analyzer';
  if (w['findingsSuppressed'] !== undefined && !isCounts(w['findingsSuppressed'])) return 'window findingsSuppressed are not counts';
  if (w['counters'] !== undefined && !isCounts(w['counters'])) return 'window counters are not counts';
  const capture = w['capture'];
  if (capture !== undefined) {
    if (!isObject(capture) || !isCount(capture['received']) || !dropsValid(capture['drops'])) return 'window capture is not counts';
    const problem = captureTotalsProblem(capture);
    if (problem) return problem;
  }
  if (w['rangeInputs'] !== undefined) {
    const problem = rangeInputsProblem(w['rangeInputs']);
    if (problem) return `window ${problem}`;
  }
  return '';
}

/** [epoch seconds, nanoseconds], as a window's first and last packet times. */
const isPacketTime = (v: unknown): boolean => Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && Number.isInteger(v[1]) && (v[1] as number) >= 0 && (v[1] as number) < 1e9;

/** The optional parts of a window's capture (agents since range reports merge them), or ''. */
function captureTotalsProblem(c: Json): string {
  if ((c['first'] === undefined) !== (c['last'] === undefined) || (c['first'] !== undefined && (!isPacketTime(c['first']) || !isPacketTime(c['last'])))) {
    return 'window capture first/last are not [seconds, nanoseconds] pairs';
  }
  for (const key of ['decodeErrors', 'undecoded']) if (c[key] !== undefined && !isCounts(c[key], 1000)) return `window capture ${key} are not counts`;
  for (const key of ['flowsEvicted', 'conversationsForgotten', 'truncatedRecords']) if (c[key] !== undefined && !isCount(c[key])) return `window capture ${key} is not a count`;
  const linkTypes = c['linkTypes'];
  if (linkTypes !== undefined && (!Array.isArray(linkTypes) || linkTypes.length > 64 || !linkTypes.every((t) => isText(t, 64)))) return 'window capture linkTypes are not names';
  return '';
}

function dropsValid(d: unknown): boolean {
  return isObject(d) && isCount(d['kernel']) && isCount(d['interface']) && isCount(d['agent']);
}

function findingProblem(f: unknown): string {
  if (!isObject(f)) return 'finding is not an object';
  if (!isText(f['id'], MAX_ID)) return 'finding id is not text';
  if (typeof f['type'] !== 'string' || !FINDING_TYPE.test(f['type'])) return 'finding type is not a snake_case word';
  if (!(FINDING_SEVERITIES as readonly unknown[]).includes(f['severity'])) return 'finding severity is not info, warning or critical';
  const w = f['window'];
  if (!isObject(w) || !isTime(w['start']) || !isTime(w['end'])) return 'finding window start/end are not times';
  if (!isText(f['summary'], MAX_TEXT, true)) return 'finding summary is not text';
  if (f['host'] !== undefined && !isText(f['host'], MAX_NAME)) return 'finding host is not text';
  const flow = f['flow'];
  if (flow !== undefined && (!isObject(flow) || !isText(flow['proto'], 32) || !isText(flow['client'], 64) || !isText(flow['server'], 64)
    || !isCount(flow['clientPort']) || !isCount(flow['serverPort']))) return 'finding flow is not a flow';
  // Issue 16's optional names: text of a DNS name's size when present.
  if (isObject(flow) && ['service', 'serverName', 'serverNameSource'].some((k) => flow[k] !== undefined && !isText(flow[k], 255))) return 'finding flow service or server name is not text';
  const evidence = f['evidence'];
  if (!isObject(evidence)) return 'finding evidence is not an object';
  for (const key in evidence) {
    const v = evidence[key];
    if (!(v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && v.length <= MAX_TEXT))) {
      return 'finding evidence values are not numbers, text, booleans or null';
    }
  }
  return '';
}

function statusProblem(s: Json): string {
  if (!isText(s['version'], 128)) return 'status version is not text';
  if (!isTime(s['time']) || !isTime(s['startedAt'])) return 'status time/startedAt are not times';
  if (!isCount(s['uptimeSeconds']) || !isCount(s['windows'])) return 'status uptimeSeconds/windows are not counts';
  if (!STATES.includes(s['state'] as string)) return 'status state is not a known state';
  // Optional (agents before them send neither).
  const interval = s['heartbeatSeconds'];
  if (interval !== undefined && !(isCount(interval) && (interval as number) > 0)) return 'status heartbeatSeconds is not a positive number';
  if (s['final'] !== undefined && typeof s['final'] !== 'boolean') return 'status final is not a boolean';
  const c = s['capture'];
  if (!isObject(c) || !isCount(c['packets']) || !isCount(c['bytes']) || !isCount(c['received']) || !dropsValid(c['drops']) || !isCounts(c['decodeErrors'])) {
    return 'status capture is not counts';
  }
  const flows = s['flows'];
  if (!isObject(flows) || !isCount(flows['active']) || !isCount(flows['evicted'])) return 'status flows are not counts';
  const p = s['publish'];
  if (!isObject(p) || typeof p['connected'] !== 'boolean' || !['published', 'publishFailures', 'inFlight', 'spoolMessages', 'spoolBytes', 'overflowMessages'].every((k) => isCount(p[k]))) {
    return 'status publish is not counts';
  }
  return '';
}

/**
 * Parses and checks one message fetched from `subject`. The subject must be
 * `pcap.v1.<token>.<kind>` with the kind of the body's schema and the token of
 * the body's `sensor`, and the id must start with that token and a dot: the
 * server allows a sensor's user to publish only on its own subjects, so a
 * sensor can neither speak for another nor take another's ids.
 */
export function parseMessage(subject: string, data: Uint8Array): ParsedMessage | Rejection {
  if (nestedDeeper(data, MAX_DEPTH)) return { reason: 'invalid', detail: `nested deeper than ${MAX_DEPTH} levels` };
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(data));
  } catch {
    return { reason: 'bad_json', detail: 'bad JSON' };
  }
  if (!isObject(body)) return { reason: 'invalid', detail: 'not a JSON object' };
  const { schema, id, sensor } = body;
  const kind = typeof schema === 'string' ? KIND_OF_SCHEMA[schema] : undefined;
  if (!kind) return { reason: 'unknown_schema', detail: `unknown schema ${typeof schema === 'string' ? JSON.stringify(schema.slice(0, 60)) : String(typeof schema)}` };
  if (!isText(id, MAX_ID) || !isText(sensor, MAX_NAME)) return { reason: 'invalid', detail: 'missing id or sensor' };

  const parts = subject.startsWith(SUBJECT_PREFIX) ? subject.slice(SUBJECT_PREFIX.length).split('.') : [];
  if (parts.length !== 2 || parts[1] !== kind) return { reason: 'bad_subject', detail: `a ${kind} message on the wrong subject` };
  const token = sensorToken(sensor);
  if (parts[0] !== token) return { reason: 'sensor_mismatch', detail: 'body sensor does not match the subject' };
  if (!id.startsWith(`${token}.`)) return { reason: 'id_mismatch', detail: 'id does not start with the sensor of the subject' };

  const source = body['source'];
  if (!isObject(source) || !SOURCE_KINDS.includes(source['kind'] as string) || !isText(source['name'], MAX_NAME, true)) {
    return { reason: 'invalid', detail: 'source is not {kind: live|replay, name}' };
  }
  const problem = kind === 'window' ? windowProblem(body['window']) : kind === 'finding' ? findingProblem(body['finding']) : statusProblem(body);
  if (problem) return { reason: 'invalid', detail: problem };
  switch (kind) {
    case 'window': return { kind, msg: body as unknown as WindowMessage };
    case 'finding': return { kind, msg: body as unknown as FindingMessage };
    default: return { kind, msg: body as unknown as StatusMessage };
  }
}
