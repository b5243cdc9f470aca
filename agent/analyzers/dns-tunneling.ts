/**
 * DNS tunneling (finding type `dns_tunneling`): a client that sends many
 * queries carrying many distinct, long or random-looking subdomains of one
 * registered domain, or asks mostly for unusual record types, within the
 * look-back; or, whatever the parent domain, a client whose queries carry
 * many distinct encoded (hex, base32, base64-ish) labels. Tunnels (iodine,
 * dnscat2, dns2tcp, DNS exfiltration) encode data in the query names, so their
 * names are unique, long (labels of up to 63 bytes) and high in entropy
 * (base32/64, hex or raw bytes), and their answers come in TXT, NULL, CNAME or
 * MX records. dnscat2's direct mode sends `dnscat.<hex>...` straight to the
 * attacker's server as resolver: the tool tag comes first, so every name looks
 * like a new registered domain and only the per-client aggregate sees it.
 *
 * Per parent domain. The key is (client, registered domain). The registered
 * domain is approximated as the last two labels, or three when the last two
 * are a common public-suffix second level (co.uk, com.au, ...); the labels
 * before it are the subdomain. Per key, over `lookback` seconds of packet
 * time kept in BUCKETS time buckets:
 *   - queries, the TXT (16) / NULL (10) among them, and the unusual types
 *     (isUnusualType: TXT, NULL, CNAME, MX, ANY, private use 65280-65534; the
 *     decoder gives the first question's 16-bit qtype);
 *   - unique subdomains: a set of subdomain hashes, each with the bucket it
 *     was last seen in, so names older than the look-back drop out;
 *   - the shape of the subdomains new to the set: characters and labels (mean
 *     label length), and a character histogram (Shannon entropy in bits per
 *     character, lower-cased; bytes other than letters, digits, `-` and `_`
 *     fall in 26 shared classes), kept once the key is hot (below).
 * A key is judged at the close of each window in which it was queried with
 * at least minQueries queries in its look-back: it fires when the volume
 * (>= minQueries queries and >= minUniqueSubdomains unique subdomains) and
 * the shape (mean label length >= minLabelLength, or entropy >= minEntropy,
 * or an unusual-type share >= minUnusualTypeShare) agree. Score (0-100): 25
 * per shape signal and up to 25 for the volume (25 at four times the
 * thresholds).
 *
 * Per client. Each query's labels of at least minEncodedLabelLength
 * characters are classified (classifyName): hex, base32 or base64-ish, and
 * random-looking (few vowels, many distinct characters), so words, dashed
 * names, GUIDs and numbers are not encoded, nor names with a protocol label
 * (`_domainkey`, `_tcp`, `_email`: a mail server's DKIM lookups of random
 * tokens, hash blocklists). A client gets state with its
 * first encoded name; from then on, per bucket: its queries, encoded names,
 * distinct encoded names (not among its last RING), their unusual types,
 * labels and characters, hex / base32 / base64 counts and the character
 * histogram of the encoded labels. A client that sent an encoded name in the
 * window is judged at its close: it fires when its encoded names within the
 * look-back reach minClientQueries and their distinct ratio minDistinctRatio.
 * Many distinct domains are never enough: a browser or a resolver resolving
 * thousands of ordinary names has no encoded ones. Shape signals: mean
 * encoded-label length >= minLabelLength; entropy >= minEntropy (HEX_ENTROPY
 * when most names are hex, whose 16 symbols carry 4 bits at most); unusual
 * types >= minUnusualTypeShare of the encoded names; encoded names >=
 * ENCODED_SHARE of the client's queries. Score: 20 per signal and up to 20
 * for the volume. The client-level finding shares the suppression entry
 * (client, no domain) that a per-domain finding of the client also sets: a
 * tunnel under a parent domain is reported once, per domain.
 *
 * Severity (both): critical when at least three shape signals agree, or two
 * with the volume at least twice its thresholds, else warning. The evidence's
 * `thresholds` names each threshold crossed with the measured value.
 *
 * Never counted: queries from `allowHosts` (the querying client: an internal
 * resolver, a mail server's DNSBL lookups; its responses neither; counted as
 * `allowed`; the server is not matched, so listing a resolver's address does
 * not hide what its clients send to it), names under `allowSuffixes` (suffix
 * match on label boundaries; CDN and cloud names are many and random-looking),
 * per domain names without a subdomain, mDNS / LLMNR, loopback traffic
 * (unless `networks.includeLoopback`), retransmitted TCP segments. Names under
 * `nxdomainNormalSuffixes` (Kubernetes search-path lookups of
 * `name.ns.svc.cluster.local`) count only when a response other than NXDOMAIN
 * is seen for them (per domain; never per client): their NXDOMAIN answers are
 * normal. The suffix lists are read at start (a SIGHUP changes thresholds
 * and allowHosts, not the suffixes).
 *
 * State, all typed arrays sized once at construction (memory.budgetMB, capped
 * by `maxKeys`); nothing is allocated per packet:
 *   - admission: a key's first query waits in a FirstSight table
 *     (FIRST_SIGHT slots, with the query's counts and subdomain hash in
 *     columns by slot; a collision overwrites and is counted as
 *     `firstSightDropped`); its second query within the look-back gives it
 *     state, which starts with that first query. Most (client, domain) pairs
 *     are queried once or twice, so they never cost a key;
 *   - keys: a KeyTable of (client host id and generation from a HostTable,
 *     64-bit domain hash), least recently queried evicted (`evictedKeys`),
 *     keys idle for the look-back dropped at window close. Columns per key:
 *     bucket counts, times, and a small set of up to hotUnique - 1 subdomain
 *     hashes (hotUnique = min(HOT_UNIQUE, minUniqueSubdomains));
 *   - hot keys: a key is hot from its hotUnique-th distinct subdomain on. It
 *     then takes a slot of the hot pool (one per KEYS_PER_HOT keys, a
 *     KeyTable of key ids in LRU order): an exact set of up to MAX_UNIQUE
 *     subdomains (the count saturates there; further names are counted as
 *     new, `namesNotRemembered`), the character histogram, the registered
 *     domain and up to MAX_SAMPLES sample names per report as wire-format
 *     bytes (texts are made when a finding is reported). When the pool is
 *     full the least recently queried hot key loses its slot
 *     (`hotKeysEvicted`) and starts over with an empty small set: a tunnel,
 *     queried often, keeps its slot. Only a hot key can fire (a key that is
 *     not hot has fewer than hotUnique <= minUniqueSubdomains names);
 *   - clients: a KeyTable of (IP version, address), one per KEYS_PER_CLIENT
 *     keys (MIN_CLIENTS at least), least recently queried evicted
 *     (`clientsEvicted`), idle for the look-back dropped; columns per client:
 *     bucket counts and histogram, a ring of RING name hashes, one sample name;
 *   - re-reports: a SuppressionTable on (client address, domain hash; 0 for
 *     the client-level finding): a finding for the same key is re-emitted at
 *     most once per `suppressFor` with updated evidence.
 *
 * Flow-sharded workers (issue 13). A client's queries to one resolver are in
 * one worker, but a client asking several resolvers spans workers, and the
 * state above depends on the order of its queries across them (first-sight
 * admission and its collisions, the ring of recent names, the first samples,
 * the least-recently-used tables): per-key sums cannot rebuild it. So a
 * worker keeps none of it: it filters, parses and classifies each query (the
 * per-packet work) and logs what the state needs (DnsTunnelingPart: 17 words,
 * its order and time, and the name); at each window close the coordinator
 * replays every worker's queries in input order into this state and judges
 * and reports there, as one pipeline would. Workers report nothing. A
 * worker's log of a window is bounded by the detector's part of
 * memory.budgetMB (lib/replay-log.ts: about 23,000 queries and 1.4 MB of
 * names at the default 200 per worker): past it the window's oldest queries
 * are not replayed, counted in the metric `notReplayed` (present only then),
 * and the state can differ from one pipeline's.
 */
import { formatAddress } from '../../common/address.js';
import { readDnsName } from '../decode/dns.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowMergeInput, WindowSpan } from './analyzer.js';
import { ConfiguredAllowList, thresholdsCrossed, type Crossing } from './lib/allow-list.js';
import { FirstSight } from './lib/first-sight.js';
import { HostTable } from './lib/host-table.js';
import { KeyTable } from './lib/key-table.js';
import { isLoopback } from './lib/networks.js';
import { SuppressionTable } from './lib/suppression.js';
import { plural, round2 } from './lib/format.js';
import { LOG_SHARE, ReplayLog, endReplay, replayInOrder, type ReplayLogPart } from './lib/replay-log.js';

/** Time buckets per look-back. */
const BUCKETS = 6;
/** Distinct subdomains remembered per hot key (the count saturates there). */
export const MAX_UNIQUE = 1024;
/** Slots of a hot key's subdomain set (load at most one half: short probes). */
const BIG_SLOTS = 2 * MAX_UNIQUE;
/** Distinct subdomains a key needs before it is hot (at most: minUniqueSubdomains when lower). */
const HOT_UNIQUE = 8;
/** Subdomains a key holds before it is hot. */
const SMALL = HOT_UNIQUE - 1;
/** Share of a client's queries that are encoded names above which its DNS is mostly tunnel (a client-level shape signal). */
export const ENCODED_SHARE = 0.5;
/** Entropy (bits per character) of hex-encoded labels at least: random hex has nearly 4, words in hex letters much less. */
const HEX_ENTROPY = 3.5;
/** Recent encoded names per client remembered to tell repeats from distinct names. */
const RING = 64;
/** Keys per client slot, and client slots at least. */
const KEYS_PER_CLIENT = 16;
const MIN_CLIENTS = 64;
/** Sample names per finding, and their length at most. */
const MAX_SAMPLES = 3;
const MAX_SAMPLE_CHARS = 100;
/** Labels per name at most (255 bytes make at most 127 labels). */
const MAX_LABELS = 128;
/** A name in wire format without compression pointers: at most 255 bytes and the root label. */
const NAME_BYTES = 256;
/** Longest name text readDnsName gives (decode/dns.ts); longer names have no text. */
const MAX_NAME_TEXT = 255;
/** Character classes of the entropy histogram. */
const CLASSES = 64;
const QTYPE_CNAME = 5;
const QTYPE_NULL = 10;
const QTYPE_MX = 15;
const QTYPE_TXT = 16;
const QTYPE_ANY = 255;
/** RFC 6895's private-use query types (iodine can use one). */
const QTYPE_PRIVATE_FIRST = 65280;
const QTYPE_PRIVATE_LAST = 65534;
const RCODE_NXDOMAIN = 3;
/** Slots of the first-sight table. */
const FIRST_SIGHT = 32768;
/** Keys per hot slot, and hot slots at least. */
const KEYS_PER_HOT = 64;
const MIN_HOT = 16;
/** Keys per suppression entry (findings are rare; entries live suppressFor). */
const KEYS_PER_SUPPRESSION = 16;
/** Suppression key: IP version, four address words, two domain hash words. */
const SUPPRESSION_WIDTH = 7;

/** Second levels under which registrations happen (a small part of the Public Suffix List). */
export const PUBLIC_SECOND_LEVELS: readonly string[] = [
  'co.uk', 'org.uk', 'ac.uk', 'gov.uk', 'me.uk', 'net.uk', 'ltd.uk', 'plc.uk', 'nhs.uk',
  'com.au', 'net.au', 'org.au', 'edu.au', 'gov.au', 'co.nz', 'net.nz', 'org.nz', 'govt.nz',
  'co.jp', 'ne.jp', 'or.jp', 'ac.jp', 'go.jp', 'co.kr', 'or.kr', 'go.kr', 'co.in', 'net.in', 'org.in', 'gov.in',
  'co.za', 'org.za', 'gov.za', 'com.br', 'net.br', 'org.br', 'gov.br', 'com.cn', 'net.cn', 'org.cn', 'gov.cn', 'edu.cn',
  'com.mx', 'com.ar', 'com.tr', 'com.tw', 'com.hk', 'com.sg', 'com.my', 'com.ph', 'com.vn', 'com.pk', 'com.eg', 'com.sa',
  'com.ua', 'com.pl', 'co.id', 'co.il', 'co.th', 'ac.il', 'ac.in', 'edu.tr',
];

// Field offsets of the per-bucket counts.
const F_QUERIES = 0;
const F_TXT_NULL = 1;
const F_CHARS = 2;
const F_LABELS = 3;
const F_UNUSUAL = 4;
const FIELDS = 5;
const COUNTS = BUCKETS * FIELDS;
const HIST = BUCKETS * CLASSES;

// Field offsets of a client's per-bucket counts (encoded: names with an encoded label, see encodedKind).
const C_QUERIES = 0;
const C_ENCODED = 1;
const C_DISTINCT = 2;
const C_UNUSUAL = 3;
const C_CHARS = 4;
const C_LABELS = 5;
const C_HEX = 6;
const C_BASE32 = 7;
const C_BASE64 = 8;
const C_FIELDS = 9;
const C_COUNTS = BUCKETS * C_FIELDS;

// Encodings of a label (encodedKind).
const ENC_NONE = 0;
const ENC_HEX = 1;
/** Base32 and other one-case letters-and-digits alphabets (base36 tokens). */
const ENC_BASE32 = 2;
/** Base64-ish: mixed case with digits, '+', '/', '=', or 8-bit bytes (iodine's base128, raw labels). */
const ENC_BASE64 = 3;

// Words of a flow-sharded worker's query record (ReplayLog; see DnsTunnelingPart).
const Q_VERSION = 0;
/** Four address words (IPv4: the first). */
const Q_ADDR = 1;
const Q_TYPE = 5;
/** Bit 0: a response; bits 1-2: the name's encoding (ENC_*). */
const Q_FLAGS = 6;
const Q_LABELS = 7;
const Q_DOMAIN_LABEL = 8;
const Q_ENC_LABELS = 9;
const Q_ENC_CHARS = 10;
const Q_NAME_HASH = 11;
const Q_DOM1 = 12;
const Q_DOM2 = 13;
const Q_SUB_HASH = 14;
const Q_SUB_CHARS = 15;
/** Offset of the name (wire format, labels 0 .. n-1 and the root) in the part's bytes. */
const Q_NAME = 16;
const Q_WORDS = 17;
/** Bytes of a query record: its words, order and time; and the name bytes budgeted per record (a name takes 2 to NAME_BYTES). */
const Q_BYTES = Q_WORDS * 4 + 16;
const Q_NAME_BYTES = 64;

/**
 * A flow-sharded worker's part of a window (windowPart). A key (client,
 * domain) or a client spans workers when the client asks several resolvers,
 * and its state is order-dependent (first-sight admission and its collisions,
 * the ring of recent names, first samples, least-recently-used tables): so a
 * worker keeps no state, it parses and classifies each query (the per-packet
 * work) and logs what the state needs, and the coordinator replays every
 * worker's queries in input order into one state and judges it there, as one
 * pipeline would. Counts of queries dropped before that add up.
 */
interface DnsTunnelingPart {
  /** The input's clock when the window closed (every worker's is the input's). */
  now: number;
  allowListed: number;
  allowed: number;
  normalNxdomain: number;
  /** Queries per registered domain logged (the metric `queries`: whole when the log dropped some). */
  counted: number;
  queries: ReplayLogPart;
}

/** Bytes per key: its KeyTable entry, its share of the HostTable, its columns, and its shares of the hot pool and suppression table. */
const KEY_BYTES = KeyTable.bytesPerEntry(4) + HostTable.bytesPerEntry + COUNTS * 4 + 3 * 8 + 4 * 4 + SMALL * 8 + 1;
const HOT_BYTES = KeyTable.bytesPerEntry(1) + BIG_SLOTS * 8 + 4 + 8 + HIST * 4 + NAME_BYTES * (1 + MAX_SAMPLES) + 1;
const CLIENT_BYTES = KeyTable.bytesPerEntry(5) + C_COUNTS * 4 + HIST * 4 + 4 * 8 + 4 + RING * 4 + 2 + NAME_BYTES + 1;
const BYTES_PER_KEY = KEY_BYTES + Math.ceil(HOT_BYTES / KEYS_PER_HOT) + Math.ceil(SuppressionTable.bytesPerEntry(SUPPRESSION_WIDTH) / KEYS_PER_SUPPRESSION)
  + Math.ceil(CLIENT_BYTES / KEYS_PER_CLIENT);

/** Character class of a byte for the entropy histogram (lower-cased). */
const CLASS_OF = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const c = b >= 0x41 && b <= 0x5a ? b + 32 : b;
  CLASS_OF[b] = c >= 0x61 && c <= 0x7a ? c - 0x61
    : c >= 0x30 && c <= 0x39 ? 26 + c - 0x30
      : c === 0x2d ? 36 : c === 0x5f ? 37 : 38 + (c % 26);
}

const isTxtNull = (qtype: number): boolean => qtype === QTYPE_TXT || qtype === QTYPE_NULL;
/** Query types ordinary clients seldom ask for and tunnels use for their larger answers. */
const isUnusualType = (qtype: number): boolean => qtype === QTYPE_TXT || qtype === QTYPE_NULL || qtype === QTYPE_CNAME || qtype === QTYPE_MX
  || qtype === QTYPE_ANY || (qtype >= QTYPE_PRIVATE_FIRST && qtype <= QTYPE_PRIVATE_LAST);
/** Vowels (lower case): about 40 % of the letters of words, 19 % of random base32 or base64 letters. */
const IS_VOWEL = new Uint8Array(256);
for (const c of 'aeiou') IS_VOWEL[c.charCodeAt(0)] = 1;
const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c + 32 : c);
/** Two independent 32-bit hashes folded into one 53-bit number (exact as a double). */
const combine = (h1: number, h2: number): number => (h1 >>> 0) * 2097152 + (h2 >>> 11);

/** Hashes of a dotted suffix in the order the packet path computes them: labels right to left, each label's bytes forward, a dot between. */
export function suffixHash(text: string): number {
  const labels = text.toLowerCase().replace(/^\*?\./, '').replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  let h1 = 0x811c9dc5 | 0;
  let h2 = 0x1b873593 | 0;
  for (let i = labels.length - 1; i >= 0; i--) {
    if (i < labels.length - 1) { h1 = Math.imul(h1 ^ 0x2e, 16777619); h2 = Math.imul(h2 ^ 0x2e, 0x5bd1e995) ^ (h2 >>> 15); }
    const b = Buffer.from(labels[i]!, 'latin1');
    for (const c of b) { h1 = Math.imul(h1 ^ lower(c), 16777619); h2 = Math.imul(h2 ^ lower(c), 0x5bd1e995) ^ (h2 >>> 15); }
  }
  return combine(h1, h2);
}

/** Shannon entropy, in bits, of the counts `h[off .. off + n)`. */
function entropy(h: ArrayLike<number>, n: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += h[i]!;
  if (total === 0) return 0;
  let e = 0;
  for (let i = 0; i < n; i++) {
    const x = h[i]!;
    if (x > 0) { const p = x / total; e -= p * Math.log2(p); }
  }
  return e;
}

/** Suffix hashes (suffixHash) of a configured list, sorted for a binary search. */
class SuffixSet {
  private readonly sorted: Float64Array;
  constructor(texts: readonly string[]) { this.sorted = Float64Array.from(texts.map(suffixHash)).sort(); }
  has(h: number): boolean {
    const s = this.sorted;
    let lo = 0;
    let hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const x = s[mid]!;
      if (x === h) return true;
      if (x < h) lo = mid + 1; else hi = mid - 1;
    }
    return false;
  }
}

const mod = (i: number): number => ((i % BUCKETS) + BUCKETS) % BUCKETS;

export function createDnsTunnelingAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new DnsTunnelingAnalyzer(ctx);
}

class DnsTunnelingAnalyzer implements Analyzer {
  readonly id = 'dns_tunneling';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['dns_tunneling'] { return this.ctx.config.analyzers.dns_tunneling; }
  private readonly bucketSeconds: number;
  private readonly allow: SuffixSet;
  private readonly nxdomainNormal: SuffixSet;
  private readonly secondLevels: SuffixSet;
  private readonly includeLoopback: boolean;
  /** Distinct subdomains a key needs before it is hot. */
  private readonly hotUnique: number;

  // Keys: (client host id, its generation, domain hash) -> id, and columns by id.
  private readonly hosts: HostTable;
  private readonly keys: KeyTable;
  /** [id][bucket][field] */
  private readonly counts: Int32Array;
  /** Bucket index of the key's newest bucket (buckets older than the look-back are cleared on advance). */
  private readonly cur: Float64Array;
  private readonly firstTs: Float64Array;
  private readonly lastTs: Float64Array;
  /** `forget`, bound once (expiry can run per query when the table is full). */
  private readonly forgetKey = (id: number): void => { this.forget(id); };
  /** Window (sequence number) in which the key was put on the list to judge, -1 none. */
  private readonly windowOf: Int32Array;
  /** Position of the key in `dirty` while windowOf is the current window. */
  private readonly dirtyPos: Int32Array;
  /** Hot slot of the key, -1 while not hot. */
  private readonly hotOf: Int32Array;
  /** [id][SMALL][subdomain hash, bucket last seen]: the names of a key not yet hot. */
  private readonly small: Int32Array;
  private readonly smallUsed: Uint8Array;

  /** Keys queried in the current window with at least minQueries in their look-back, judged at its close (-1: forgotten since). */
  private readonly dirty: Int32Array;
  private dirtyLen = 0;
  /** Windows closed so far. */
  private windowSeq = 0;

  // Hot pool: key id -> slot, least recently queried evicted; columns by slot.
  private readonly hot: KeyTable;
  /** [slot][BIG_SLOTS][subdomain hash (0 = empty), bucket last seen]. */
  private readonly bigSet: Int32Array;
  /** Names in the set (live or not). */
  private readonly bigUsed: Int32Array;
  /** Bucket index in which the set was last found full (MAX_UNIQUE live names). */
  private readonly fullAt: Float64Array;
  /** [slot][bucket][class]: character classes of the new subdomains. */
  private readonly hist: Int32Array;
  /** [slot]: the registered domain, and [slot][sample]: sample names, in wire format. */
  private readonly domainName: Uint8Array;
  private readonly sampleNames: Uint8Array;
  private readonly sampleCount: Uint8Array;
  /** Character classes of a key's look-back, at window close. */
  private readonly classTotals = new Float64Array(CLASSES);
  /** Live names of a full set while it is rebuilt. */
  private readonly scratch = new Int32Array(2 * BIG_SLOTS);
  /** Address words of a client being named. */
  private readonly scratchWords = new Uint32Array(4);

  // First sight of a key not yet tracked: FirstSight (key hash, time) and the query's details by slot.
  private readonly first: FirstSight;
  /** The key's second hash word (FirstSight compares 32 bits). */
  private readonly fsCheck: Int32Array;
  private readonly fsBucket: Float64Array;
  private readonly fsName: Int32Array;
  private readonly fsChars: Int32Array;
  private readonly fsLabels: Uint8Array;
  /** Bit 0: TXT or NULL; bit 1: an unusual type (isUnusualType). */
  private readonly fsTypes: Uint8Array;

  private readonly suppression: SuppressionTable;
  private readonly allowList = new ConfiguredAllowList(() => this.ctx.config.analyzers.dns_tunneling, 'analyzers.dns_tunneling');

  // Clients: (IP version, address) -> id, created by a query with an encoded name; columns by id.
  private readonly clients: KeyTable;
  /** [id][bucket][C_* field] */
  private readonly cCounts: Int32Array;
  /** [id][bucket][class]: character classes of the encoded labels. */
  private readonly cHist: Int32Array;
  private readonly cCur: Float64Array;
  private readonly cFirstTs: Float64Array;
  private readonly cLastTs: Float64Array;
  /** Window (sequence number) in which the client last sent an encoded name: judged at its close. */
  private readonly cWindow: Int32Array;
  /** [id][RING]: hashes of the client's last RING encoded names, and the next position / names held. */
  private readonly cRing: Int32Array;
  private readonly cRingPos: Uint8Array;
  private readonly cRingUsed: Uint8Array;
  /** [id]: one sample encoded name in wire format, and whether it is set. */
  private readonly cSample: Uint8Array;
  private readonly cSampleSet: Uint8Array;
  /** Address words of the current query's client (the clients key). */
  private readonly clientKey: Uint32Array;

  // Scratch of the label classifier: distinct characters by stamp.
  private readonly charStamp = new Uint32Array(256);
  private stamp = 0;
  /** The current name's encoded labels: count and characters. */
  private encLabels = 0;
  private encChars = 0;

  // Scratch of the name being parsed: offset of each label's length byte, its length, and the hashes of the suffix starting at it.
  private readonly labelOff = new Int32Array(MAX_LABELS);
  private readonly labelLen = new Int32Array(MAX_LABELS);
  private readonly suf1 = new Int32Array(MAX_LABELS);
  private readonly suf2 = new Int32Array(MAX_LABELS);
  /**
   * The current query, parsed (onDnsMessage) or replayed (replay): its bytes
   * (labelOff and labelLen index them), labels, registered domain's first
   * label (<= 0: none) and hash, subdomain hash and characters, the client
   * (the querier: a response's destination), query type, time, whether it is
   * a response, the name's encoding (ENC_*, queries only) and hash.
   */
  private pkt: Uint8Array = new Uint8Array(0);
  private labels = 0;
  private domainLabel = 0;
  private dom1 = 0;
  private dom2 = 0;
  private subHash = 0;
  private subChars = 0;
  private qVersion = 0;
  private qAddr: Uint32Array = new Uint32Array(4);
  private qType = 0;
  /** [0]: the query's time (a typed array: a double field or argument may be boxed per packet). */
  private readonly qTime = new Float64Array(1);
  private qResponse = false;
  private qEncoding = ENC_NONE;
  private nameHash = 0;
  /** Address words of a replayed query. */
  private readonly replayAddr = new Uint32Array(4);

  // Flow-sharded analysis (ctx.shardRole): a worker logs its queries and keeps no state; the coordinator replays them (DnsTunnelingPart).
  private readonly worker: boolean;
  private readonly log: ReplayLog | null;
  private part: DnsTunnelingPart | undefined;

  // Window metrics.
  private counted = 0;
  private allowListed = 0;
  private normalNxdomain = 0;
  private suppressedFindings = 0;
  private notRemembered = 0;
  private allowedQueries = 0;
  private clientFindings = 0;
  /** FirstSight.overwritten at the last window close. */
  private overwrittenBefore = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    const c = ctx.config.analyzers.dns_tunneling;
    this.bucketSeconds = Math.max(c.lookback, 1e-3) / BUCKETS;
    this.allow = new SuffixSet(c.allowSuffixes);
    this.nxdomainNormal = new SuffixSet(c.nxdomainNormalSuffixes);
    this.secondLevels = new SuffixSet(PUBLIC_SECOND_LEVELS);
    this.includeLoopback = ctx.config.networks.includeLoopback;
    this.hotUnique = Math.max(1, Math.min(HOT_UNIQUE, c.minUniqueSubdomains));

    this.worker = ctx.shardRole === 'worker';
    // Sized from the detector's part of the budget, which a worker's (empty) tables leave unused.
    const logRecords = this.worker ? ctx.memory.keys('dns_tunneling.log', Q_BYTES + Q_NAME_BYTES, Infinity, LOG_SHARE) : 0;
    this.log = this.worker
      ? new ReplayLog({ width: Q_WORDS, maxRecords: logRecords, maxBytes: Math.max(logRecords * Q_NAME_BYTES, NAME_BYTES), offsetWord: Q_NAME })
      : null;
    // A worker's tables stay empty (its queries are replayed by the coordinator): it takes no memory for them.
    const n = this.worker ? 1 : ctx.memory.keys('dns_tunneling.keys', BYTES_PER_KEY, Math.max(1, c.maxKeys));
    // One more host than keys: a host is touched with each query of its keys, so the least recently used host has no live key.
    this.hosts = new HostTable(n + 1, ctx.networks, this.includeLoopback);
    this.keys = new KeyTable(n, 4, (id) => this.forget(id));
    this.counts = new Int32Array(n * COUNTS);
    this.cur = new Float64Array(n);
    this.firstTs = new Float64Array(n);
    this.lastTs = new Float64Array(n);
    this.windowOf = new Int32Array(n);
    this.dirtyPos = new Int32Array(n);
    this.hotOf = new Int32Array(n);
    this.small = new Int32Array(n * SMALL * 2);
    this.smallUsed = new Uint8Array(n);
    this.dirty = new Int32Array(n);

    const h = Math.min(n, Math.max(MIN_HOT, Math.ceil(n / KEYS_PER_HOT)));
    this.hot = new KeyTable(h, 1, (slot) => this.demote(slot));
    this.bigSet = new Int32Array(h * BIG_SLOTS * 2);
    this.bigUsed = new Int32Array(h);
    this.fullAt = new Float64Array(h);
    this.hist = new Int32Array(h * HIST);
    this.domainName = new Uint8Array(h * NAME_BYTES);
    this.sampleNames = new Uint8Array(h * MAX_SAMPLES * NAME_BYTES);
    this.sampleCount = new Uint8Array(h);

    const fsSlots = this.worker ? 1 : FIRST_SIGHT;
    this.first = new FirstSight(fsSlots, c.lookback);
    this.fsCheck = new Int32Array(fsSlots);
    this.fsBucket = new Float64Array(fsSlots);
    this.fsName = new Int32Array(fsSlots);
    this.fsChars = new Int32Array(fsSlots);
    this.fsLabels = new Uint8Array(fsSlots);
    this.fsTypes = new Uint8Array(fsSlots);

    this.suppression = new SuppressionTable(c.suppressFor, Math.max(MIN_HOT, Math.ceil(n / KEYS_PER_SUPPRESSION)), SUPPRESSION_WIDTH);

    const nc = Math.min(n, Math.max(MIN_CLIENTS, Math.ceil(n / KEYS_PER_CLIENT)));
    this.clients = new KeyTable(nc, 5);
    this.clientKey = this.clients.key;
    this.cCounts = new Int32Array(nc * C_COUNTS);
    this.cHist = new Int32Array(nc * HIST);
    this.cCur = new Float64Array(nc);
    this.cFirstTs = new Float64Array(nc);
    this.cLastTs = new Float64Array(nc);
    this.cWindow = new Int32Array(nc);
    this.cRing = new Int32Array(nc * RING);
    this.cRingPos = new Uint8Array(nc);
    this.cRingUsed = new Uint8Array(nc);
    this.cSample = new Uint8Array(nc * NAME_BYTES);
    this.cSampleSet = new Uint8Array(nc);
  }

  onDnsMessage(v: PacketView): void {
    if (v.dnsQnameOff < 0) return;
    if (!this.includeLoopback && (isLoopback(v.ipVersion, v.src) || isLoopback(v.ipVersion, v.dst))) return;
    const response = v.dnsIsResponse;
    const ver = v.ipVersion;
    const addr = response ? v.dst : v.src;
    // allowHosts names querying clients (an internal resolver, a mail server doing DNSBL lookups): checked per DNS message, not per packet.
    const allowList = this.allowList.get();
    if (allowList.active && allowList.host(ver, addr)) { if (!response) this.allowedQueries++; return; }
    const d = v.l4Data;
    const end = Math.min(v.dnsOff + v.dnsLen, v.payloadOff + v.payloadCapLen, d.length);
    const n = this.parseName(d, v.dnsOff, v.dnsQnameOff, end);
    if (n < 1) return;
    // Suffixes, longest last: allow-listed and NXDOMAIN-normal ones.
    let normalNx = false;
    for (let i = n - 1; i >= 0; i--) {
      const h = combine(this.suf1[i]!, this.suf2[i]!);
      if (this.allow.has(h)) { if (!response) this.allowListed++; return; }
      if (this.nxdomainNormal.has(h)) normalNx = true;
    }
    if (response) {
      // Only names whose NXDOMAIN is normal are counted from their response, and only when it is not NXDOMAIN.
      if (!normalNx) return;
      if (v.dnsRcode === RCODE_NXDOMAIN) { this.normalNxdomain++; return; }
    } else if (normalNx) {
      return;
    }
    // The registered domain starts at label r; the subdomain is labels 0 .. r-1.
    let r = n - 2;
    if (n >= 3 && this.secondLevels.has(combine(this.suf1[n - 2]!, this.suf2[n - 2]!))) r = n - 3;
    // A response counts only per domain.
    if (response && r <= 0) return;
    this.pkt = d;
    this.labels = n;
    this.domainLabel = r;
    if (r > 0) {
      this.dom1 = this.suf1[r]!;
      this.dom2 = this.suf2[r]!;
      this.subdomain(d, r);
    }
    this.qVersion = ver;
    this.qAddr = addr;
    this.qType = v.dnsQtype;
    this.qTime[0] = v.ts;
    this.qResponse = response;
    this.qEncoding = response ? ENC_NONE : this.classifyName(n);
    this.nameHash = this.suf1[0]! === 0 ? 1 : this.suf1[0]!;
    if (this.log !== null) this.logQuery(); else this.countQuery();
  }

  /** The current query into the state: per client (queries), then per (client, registered domain). */
  private countQuery(): void {
    const now = this.qTime[0]!;
    const index = Math.floor(now / this.bucketSeconds);
    // Per client, whatever the parent domain: names without a fixed one (dnscat2's direct mode) accumulate here.
    if (!this.qResponse) this.countClient(index);
    const r = this.domainLabel;
    if (r <= 0) return;
    const dom1 = this.dom1;
    const dom2 = this.dom2;
    const ver = this.qVersion;
    const addr = this.qAddr;
    this.counted++;
    let id = -1;
    const host = this.hosts.find(ver, addr);
    if (host >= 0) {
      this.fillKey(host, dom1, dom2);
      id = this.keys.find();
    }
    if (id >= 0) {
      this.hosts.touch(host);
      this.keys.touch(id);
    } else {
      let fs = -1;
      if (this.cfg.minQueries > 1) {
        // A key's first query waits in the first-sight table (no key for the many one-query pairs).
        let k1 = dom1;
        let k2 = dom2;
        for (let i = 0; i < (ver === 6 ? 4 : 1); i++) {
          k1 = Math.imul(k1 ^ addr[i]!, 16777619);
          k2 = Math.imul(k2 ^ addr[i]!, 0x5bd1e995) ^ (k2 >>> 15);
        }
        k1 = Math.imul(k1 ^ ver, 16777619);
        const first = this.first;
        let admitted = first.admit(k1, now);
        // Also the key's other 32 bits, and the first query's bucket still in the look-back; else this query is the first sight.
        if (admitted && (this.fsCheck[first.slot] !== k2 || this.fsBucket[first.slot]! <= index - BUCKETS)) admitted = first.admit(k1, now);
        fs = first.slot;
        if (!admitted) {
          this.fsCheck[fs] = k2;
          this.fsBucket[fs] = index;
          this.fsName[fs] = this.subHash;
          this.fsChars[fs] = this.subChars;
          this.fsLabels[fs] = r;
          this.fsTypes[fs] = (isTxtNull(this.qType) ? 1 : 0) | (isUnusualType(this.qType) ? 2 : 0);
          return;
        }
      }
      if (this.keys.size === this.keys.capacity) this.expireIdle(now);
      this.fillKey(this.hosts.intern(ver, addr), dom1, dom2);
      id = this.keys.findOrInsert();
      this.start(id, fs >= 0 ? this.first.firstSeen : now);
      if (fs >= 0) {
        // Its second query: the key starts with the first query.
        const b = this.fsBucket[fs]!;
        this.advance(id, b);
        const base = id * COUNTS + mod(b) * FIELDS;
        const c = this.counts;
        c[base + F_QUERIES] = 1;
        c[base + F_TXT_NULL] = this.fsTypes[fs]! & 1;
        c[base + F_UNUSUAL] = this.fsTypes[fs]! >> 1;
        c[base + F_CHARS] = this.fsChars[fs]!;
        c[base + F_LABELS] = this.fsLabels[fs]!;
        this.see(id, this.fsName[fs]!, b);
      }
    }
    this.count(id, index, r);
    // Judged at the window's close once it has the volume (so the list holds only busy keys).
    if (this.windowOf[id] !== this.windowSeq && this.sum(id, F_QUERIES) >= this.cfg.minQueries) this.markDirty(id);
  }

  /** A worker: the current query, as countQuery needs it, into the log (the name in wire format, without pointers). */
  private logQuery(): void {
    const log = this.log!;
    // As countQuery counts it: the coordinator takes the workers' count (its replay may miss dropped queries).
    if (this.domainLabel > 0) this.counted++;
    let bytes = 1;
    for (let i = 0; i < this.labels; i++) bytes += this.labelLen[i]! + 1;
    const w = log.add(this.ctx.packetOrder, this.qTime[0]!, bytes);
    const q = log.ints;
    const addr = this.qAddr;
    q[w + Q_VERSION] = this.qVersion;
    for (let i = 0; i < 4; i++) q[w + Q_ADDR + i] = addr[i]!;
    q[w + Q_TYPE] = this.qType;
    q[w + Q_FLAGS] = (this.qResponse ? 1 : 0) | (this.qEncoding << 1);
    q[w + Q_LABELS] = this.labels;
    q[w + Q_DOMAIN_LABEL] = this.domainLabel;
    q[w + Q_ENC_LABELS] = this.encLabels;
    q[w + Q_ENC_CHARS] = this.encChars;
    q[w + Q_NAME_HASH] = this.nameHash;
    q[w + Q_DOM1] = this.dom1;
    q[w + Q_DOM2] = this.dom2;
    q[w + Q_SUB_HASH] = this.subHash;
    q[w + Q_SUB_CHARS] = this.subChars;
    // The log keeps the name's offset in Q_NAME.
    let o = log.byteOffset;
    const out = log.bytes;
    const d = this.pkt;
    for (let i = 0; i < this.labels; i++) {
      const off = this.labelOff[i]!;
      const stop = off + this.labelLen[i]! + 1;
      for (let p = off; p < stop; p++) out[o++] = d[p]!;
    }
    out[o] = 0;
  }

  /** The coordinator: record `i` of a worker's log as the current query, counted as onDnsMessage would have. */
  private replay(log: ReplayLogPart, i: number): void {
    const q = log.ints;
    const w = i * Q_WORDS;
    const addr = this.replayAddr;
    for (let k = 0; k < 4; k++) addr[k] = q[w + Q_ADDR + k]!;
    this.qVersion = q[w + Q_VERSION]!;
    this.qAddr = addr;
    this.qType = q[w + Q_TYPE]!;
    this.qTime[0] = log.times[2 * i + 1]!;
    this.qResponse = (q[w + Q_FLAGS]! & 1) !== 0;
    this.qEncoding = q[w + Q_FLAGS]! >> 1;
    const n = this.labels = q[w + Q_LABELS]!;
    this.domainLabel = q[w + Q_DOMAIN_LABEL]!;
    this.encLabels = q[w + Q_ENC_LABELS]!;
    this.encChars = q[w + Q_ENC_CHARS]!;
    this.nameHash = q[w + Q_NAME_HASH]!;
    this.dom1 = q[w + Q_DOM1]!;
    this.dom2 = q[w + Q_DOM2]!;
    this.subHash = q[w + Q_SUB_HASH]!;
    this.subChars = q[w + Q_SUB_CHARS]!;
    const d = this.pkt = log.bytes;
    for (let k = 0, p = q[w + Q_NAME]!; k < n; k++) {
      this.labelOff[k] = p;
      this.labelLen[k] = d[p]!;
      p += d[p]! + 1;
    }
    this.countQuery();
  }

  /**
   * Counts the current query in its client's aggregate (its labels, encoding
   * and hash in the current-query fields). A client gets state with its first
   * encoded name; until then its queries cost one lookup and no state, so
   * browsers and resolvers with ordinary names take no client slot.
   */
  private countClient(index: number): void {
    const enc = this.qEncoding;
    const n = this.labels;
    const k = this.clientKey;
    const addr = this.qAddr;
    const ver = this.qVersion;
    k[0] = ver;
    k[1] = addr[0]!;
    if (ver === 6) { k[2] = addr[1]!; k[3] = addr[2]!; k[4] = addr[3]!; } else { k[2] = 0; k[3] = 0; k[4] = 0; }
    const clients = this.clients;
    const now = this.qTime[0]!;
    let id: number;
    if (enc === ENC_NONE) {
      id = clients.find();
      if (id < 0) return;
      clients.touch(id);
    } else {
      if (clients.size === clients.capacity) this.expireIdleClients(now);
      id = clients.findOrInsert();
      if (clients.inserted) {
        this.cCounts.fill(0, id * C_COUNTS, id * C_COUNTS + C_COUNTS);
        this.cHist.fill(0, id * HIST, id * HIST + HIST);
        this.cCur[id] = -Infinity;
        this.cFirstTs[id] = this.cLastTs[id] = now;
        this.cWindow[id] = -1;
        this.cRingPos[id] = 0;
        this.cRingUsed[id] = 0;
        this.cSampleSet[id] = 0;
      }
    }
    if (now > this.cLastTs[id]!) this.cLastTs[id] = now;
    this.advanceClient(id, index);
    const bucket = Math.max(index, this.cCur[id]!);
    const b = mod(bucket);
    const c = this.cCounts;
    const base = id * C_COUNTS + b * C_FIELDS;
    c[base + C_QUERIES]!++;
    if (enc === ENC_NONE) return;
    this.cWindow[id] = this.windowSeq;
    c[base + C_ENCODED]!++;
    c[base + C_CHARS]! += this.encChars;
    c[base + C_LABELS]! += this.encLabels;
    c[base + (enc === ENC_HEX ? C_HEX : enc === ENC_BASE32 ? C_BASE32 : C_BASE64)]!++;
    if (isUnusualType(this.qType)) c[base + C_UNUSUAL]!++;
    // Distinct: not among the client's last RING encoded names (a tunnel's names carry sequence numbers; retries repeat).
    const hash = this.nameHash;
    const ring = this.cRing;
    const ro = id * RING;
    const used = this.cRingUsed[id]!;
    let repeat = false;
    for (let i = 0; i < used; i++) if (ring[ro + i] === hash) { repeat = true; break; }
    if (!repeat) {
      c[base + C_DISTINCT]!++;
      const pos = this.cRingPos[id]!;
      ring[ro + pos] = hash;
      this.cRingPos[id] = (pos + 1) % RING;
      if (used < RING) this.cRingUsed[id] = used + 1;
    }
    const hist = this.cHist;
    const hb = id * HIST + b * CLASSES;
    const d = this.pkt;
    const minLen = this.cfg.minEncodedLabelLength;
    for (let i = 0; i < n; i++) {
      const len = this.labelLen[i]!;
      if (len < minLen) continue;
      const off = this.labelOff[i]! + 1;
      for (let p = off; p < off + len; p++) hist[hb + CLASS_OF[d[p]!]!]!++;
    }
    if (this.cSampleSet[id] === 0 && this.copyName(0, this.cSample, id * NAME_BYTES)) this.cSampleSet[id] = 1;
  }

  /**
   * Whether the name (labels 0 .. n-1 of this.pkt) carries encoded data: a
   * label of at least minEncodedLabelLength characters that is hex (one case,
   * 0-9a-f, at least 2 digits, 2 letters and 8 distinct characters), base32
   * (one case, letters and at least 2 digits: base32, base36 tokens) or base64-ish (mixed case with
   * digits, or '+', '/', '=', or a quarter of 8-bit / other bytes); base32 and
   * base64 also need few vowels (under 30 %, words have about 40 %) and
   * distinct characters at least min(length / 2, 16). A name with a label
   * starting with '_' is never encoded. Fills encLabels and
   * encChars; returns the longest encoded label's encoding (ENC_NONE: none).
   */
  private classifyName(n: number): number {
    const d = this.pkt;
    const minLen = this.cfg.minEncodedLabelLength;
    const seen = this.charStamp;
    let labels = 0;
    let chars = 0;
    let kind = ENC_NONE;
    let longest = 0;
    // A protocol label (_domainkey, _dmarc, _tcp, _email...) names a lookup of signing keys, services or hashes (DKIM
    // tokens, hash blocklists), not a tunnel's data: such names are not encoded, however random their other labels.
    for (let i = 0; i < n; i++) if (d[this.labelOff[i]! + 1] === 0x5f) { this.encLabels = 0; this.encChars = 0; return ENC_NONE; }
    for (let i = 0; i < n; i++) {
      const len = this.labelLen[i]!;
      if (len < minLen) continue;
      const off = this.labelOff[i]! + 1;
      let digits = 0;
      let lowers = 0;
      let uppers = 0;
      let beyondHex = 0;
      let dashes = 0;
      let other = 0;
      let vowels = 0;
      let distinct = 0;
      const stamp = ++this.stamp;
      for (let p = off; p < off + len; p++) {
        const c = d[p]!;
        const l = lower(c);
        if (seen[l] !== stamp) { seen[l] = stamp; distinct++; }
        if (c >= 0x30 && c <= 0x39) {
          digits++;
        } else if (l >= 0x61 && l <= 0x7a) {
          if (c === l) lowers++; else uppers++;
          if (l > 0x66) beyondHex++;
          vowels += IS_VOWEL[l]!;
        } else if (c === 0x2d || c === 0x5f) {
          dashes++;
        } else {
          other++;
        }
      }
      const letters = lowers + uppers;
      const oneCase = lowers === 0 || uppers === 0;
      const wordy = vowels * 10 >= letters * 3 || distinct * 2 < Math.min(len, 32);
      let k = ENC_NONE;
      if (other * 4 >= len) k = ENC_BASE64;
      else if (dashes === 0 && other === 0 && oneCase && beyondHex === 0 && digits >= 2 && letters >= 2 && distinct >= 8) k = ENC_HEX;
      else if (wordy) k = ENC_NONE;
      else if (dashes === 0 && other === 0 && oneCase && digits >= 2) k = ENC_BASE32;
      else if ((!oneCase && digits > 0) || other > 0) k = ENC_BASE64;
      if (k === ENC_NONE) continue;
      labels++;
      chars += len;
      if (len > longest) { longest = len; kind = k; }
    }
    this.encLabels = labels;
    this.encChars = chars;
    return kind;
  }

  /** Moves client `id` to bucket `index`, clearing the buckets passed over. */
  private advanceClient(id: number, index: number): void {
    const cur = this.cCur[id]!;
    if (index <= cur) return;
    const c = this.cCounts;
    const o = id * C_COUNTS;
    const h = this.cHist;
    const ho = id * HIST;
    if (index - cur >= BUCKETS) {
      c.fill(0, o, o + C_COUNTS);
      h.fill(0, ho, ho + HIST);
    } else {
      for (let i = cur + 1; i <= index; i++) {
        const b = mod(i);
        c.fill(0, o + b * C_FIELDS, o + b * C_FIELDS + C_FIELDS);
        h.fill(0, ho + b * CLASSES, ho + b * CLASSES + CLASSES);
      }
    }
    this.cCur[id] = index;
  }

  private clientSum(id: number, field: number): number {
    const c = this.cCounts;
    let s = 0;
    for (let b = 0, o = id * C_COUNTS + field; b < BUCKETS; b++, o += C_FIELDS) s += c[o]!;
    return s;
  }

  /** Drops the clients idle for the look-back (least recently queried first). */
  private expireIdleClients(now: number): void {
    this.expireIdleIn(this.clients, this.cLastTs, now);
  }

  private fillKey(host: number, dom1: number, dom2: number): void {
    const k = this.keys.key;
    k[0] = host;
    k[1] = this.hosts.generation[host]!;
    k[2] = dom1;
    k[3] = dom2;
  }

  /** Columns of a new key. */
  private start(id: number, firstTs: number): void {
    this.counts.fill(0, id * COUNTS, id * COUNTS + COUNTS);
    this.cur[id] = -Infinity;
    this.firstTs[id] = this.lastTs[id] = firstTs;
    this.windowOf[id] = -1;
    this.hotOf[id] = -1;
    this.smallUsed[id] = 0;
  }

  /** A key evicted or expired: its hot slot and its place on the list to judge go. */
  private forget(id: number): void {
    const slot = this.hotOf[id]!;
    if (slot >= 0) { this.hot.remove(slot); this.hotOf[id] = -1; }
    if (this.windowOf[id] === this.windowSeq) this.dirty[this.dirtyPos[id]!] = -1;
    this.windowOf[id] = -1;
  }

  /** The hot pool was full: the least recently queried hot key gives its slot up and starts over with no names. */
  private demote(slot: number): void {
    const id = this.hot.keyWord(slot, 0);
    this.hotOf[id] = -1;
    this.smallUsed[id] = 0;
  }

  private markDirty(id: number): void {
    if (this.dirtyLen === this.dirty.length) {
      // Full of keys forgotten since they were listed (each live key is listed at most once).
      let k = 0;
      for (let i = 0; i < this.dirtyLen; i++) {
        const x = this.dirty[i]!;
        if (x < 0) continue;
        this.dirtyPos[x] = k;
        this.dirty[k++] = x;
      }
      this.dirtyLen = k;
    }
    this.windowOf[id] = this.windowSeq;
    this.dirtyPos[id] = this.dirtyLen;
    this.dirty[this.dirtyLen++] = id;
  }

  /** Hash (non-zero) and characters of the subdomain (labels 0 .. r-1), lower-cased, into subHash and subChars. */
  private subdomain(d: Uint8Array, r: number): void {
    let h = 0x811c9dc5 | 0;
    let chars = 0;
    for (let i = 0; i < r; i++) {
      if (i > 0) h = Math.imul(h ^ 0x2e, 16777619);
      const off = this.labelOff[i]! + 1;
      const len = this.labelLen[i]!;
      chars += len;
      for (let p = off; p < off + len; p++) h = Math.imul(h ^ lower(d[p]!), 16777619);
    }
    this.subHash = h === 0 ? 1 : h;
    this.subChars = chars;
  }

  /** Adds one query to key `id` (its subdomain in subHash and subChars). */
  private count(id: number, index: number, r: number): void {
    const now = this.qTime[0]!;
    if (now > this.lastTs[id]!) this.lastTs[id] = now;
    if (this.hotOf[id]! >= 0) this.hot.touch(this.hotOf[id]!);
    this.advance(id, index);
    // A packet stamped earlier than the key's newest bucket counts in it.
    const bucket = Math.max(index, this.cur[id]!);
    const b = mod(bucket);
    const base = id * COUNTS + b * FIELDS;
    const c = this.counts;
    c[base + F_QUERIES]!++;
    if (isTxtNull(this.qType)) c[base + F_TXT_NULL]!++;
    if (isUnusualType(this.qType)) c[base + F_UNUSUAL]!++;
    // The subdomain's shape, when new.
    const seen = this.see(id, this.subHash, bucket);
    if (seen === 0) return;
    if (seen === 2) this.notRemembered++;
    c[base + F_CHARS]! += this.subChars;
    c[base + F_LABELS]! += r;
    const slot = this.hotOf[id]!;
    if (slot < 0) return;
    const hist = this.hist;
    const d = this.pkt;
    const hb = slot * HIST + b * CLASSES;
    for (let i = 0; i < r; i++) {
      const off = this.labelOff[i]! + 1;
      const len = this.labelLen[i]!;
      for (let p = off; p < off + len; p++) hist[hb + CLASS_OF[d[p]!]!]!++;
    }
    const k = this.sampleCount[slot]!;
    if (k < MAX_SAMPLES && this.copyName(0, this.sampleNames, (slot * MAX_SAMPLES + k) * NAME_BYTES)) this.sampleCount[slot] = k + 1;
  }

  /**
   * Copies the current name's labels from `from` on, in wire format without
   * pointers, to `out` at `o`. False (nothing to keep) when its text would be
   * longer than readDnsName gives, as the name could not be read then.
   */
  private copyName(from: number, out: Uint8Array, o: number): boolean {
    const d = this.pkt;
    let text = -1;
    for (let i = from; i < this.labels; i++) {
      const off = this.labelOff[i]! + 1;
      const len = this.labelLen[i]!;
      text++;
      for (let p = off; p < off + len; p++) {
        const c = d[p]!;
        text += (c >= 0x41 && c <= 0x5a) || (c > 0x20 && c < 0x7f && c !== 0x2e) ? 1 : 4;
      }
    }
    if (text > MAX_NAME_TEXT) return false;
    for (let i = from; i < this.labels; i++) {
      const off = this.labelOff[i]!;
      const stop = off + this.labelLen[i]! + 1;
      for (let p = off; p < stop; p++) out[o++] = d[p]!;
    }
    out[o] = 0;
    return true;
  }

  /** Moves key `id` to bucket `index`, clearing the buckets passed over. */
  private advance(id: number, index: number): void {
    const cur = this.cur[id]!;
    if (index <= cur) return;
    const c = this.counts;
    const o = id * COUNTS;
    const slot = this.hotOf[id]!;
    const h = this.hist;
    const ho = slot * HIST;
    if (index - cur >= BUCKETS) {
      c.fill(0, o, o + COUNTS);
      if (slot >= 0) h.fill(0, ho, ho + HIST);
    } else {
      for (let i = cur + 1; i <= index; i++) {
        const b = mod(i);
        c.fill(0, o + b * FIELDS, o + b * FIELDS + FIELDS);
        if (slot >= 0) h.fill(0, ho + b * CLASSES, ho + b * CLASSES + CLASSES);
      }
    }
    this.cur[id] = index;
  }

  private sum(id: number, field: number): number {
    const c = this.counts;
    let s = 0;
    for (let b = 0, o = id * COUNTS + field; b < BUCKETS; b++, o += FIELDS) s += c[o]!;
    return s;
  }

  /**
   * Records subdomain `hash` (non-zero) as seen by key `id` in bucket
   * `index`; 1 when it is new within the look-back, 0 when not, 2 when new
   * but the hot set is full (MAX_UNIQUE live names: counted as new, not
   * remembered). The key's hotUnique-th live name makes it hot.
   */
  private see(id: number, hash: number, index: number): number {
    const slot = this.hotOf[id]!;
    if (slot >= 0) return this.seeHot(slot, hash, index);
    const oldest = index - BUCKETS; // seen at or before it: outside the look-back
    const s = this.small;
    const o = id * SMALL * 2;
    const n = this.smallUsed[id]!;
    for (let i = 0; i < n; i++) {
      if (s[o + 2 * i] === hash) {
        const fresh = s[o + 2 * i + 1]! <= oldest;
        s[o + 2 * i + 1] = index;
        return fresh ? 1 : 0;
      }
    }
    // New: names outside the look-back go; then it is kept, or the key becomes hot.
    let live = 0;
    for (let i = 0; i < n; i++) {
      if (s[o + 2 * i + 1]! <= oldest) continue;
      s[o + 2 * live] = s[o + 2 * i]!;
      s[o + 2 * live + 1] = s[o + 2 * i + 1]!;
      live++;
    }
    this.smallUsed[id] = live;
    if (live + 1 >= this.hotUnique) return this.promote(id, hash, index);
    s[o + 2 * live] = hash;
    s[o + 2 * live + 1] = index;
    this.smallUsed[id] = live + 1;
    return 1;
  }

  /** Key `id` becomes hot with the new name `hash`: a hot slot (the least recently queried hot key's when the pool is full), its names moved there. */
  private promote(id: number, hash: number, index: number): number {
    const hot = this.hot;
    hot.key[0] = id;
    const slot = hot.findOrInsert();
    this.hotOf[id] = slot;
    this.bigSet.fill(0, slot * BIG_SLOTS * 2, (slot + 1) * BIG_SLOTS * 2);
    this.bigUsed[slot] = 0;
    this.fullAt[slot] = -Infinity;
    this.hist.fill(0, slot * HIST, slot * HIST + HIST);
    this.sampleCount[slot] = 0;
    this.copyName(this.domainLabel, this.domainName, slot * NAME_BYTES);
    const s = this.small;
    const o = id * SMALL * 2;
    for (let i = 0; i < this.smallUsed[id]!; i++) this.place(slot, s[o + 2 * i]!, s[o + 2 * i + 1]!);
    this.smallUsed[id] = 0;
    return this.seeHot(slot, hash, index);
  }

  private seeHot(slot: number, hash: number, index: number): number {
    const oldest = index - BUCKETS;
    const d = this.bigSet;
    const base = slot * BIG_SLOTS * 2;
    const mask = BIG_SLOTS - 1;
    for (let i = Math.imul(hash, 0x9e3779b1) >>> 0 & mask; d[base + 2 * i] !== 0; i = (i + 1) & mask) {
      if (d[base + 2 * i] === hash) {
        const fresh = d[base + 2 * i + 1]! <= oldest;
        d[base + 2 * i + 1] = index;
        return fresh ? 1 : 0;
      }
    }
    if ((this.bigUsed[slot]! + 1) * 2 > BIG_SLOTS) {
      // Full: names can only go stale when the bucket moves, so a full set is rebuilt at most once per bucket.
      if (index === this.fullAt[slot]) return 2;
      this.rebuild(slot, oldest);
      if ((this.bigUsed[slot]! + 1) * 2 > BIG_SLOTS) { this.fullAt[slot] = index; return 2; }
    }
    this.place(slot, hash, index);
    return 1;
  }

  /** Puts a name known to be absent into the set of hot slot `slot`. */
  private place(slot: number, hash: number, index: number): void {
    const d = this.bigSet;
    const base = slot * BIG_SLOTS * 2;
    const mask = BIG_SLOTS - 1;
    let i = Math.imul(hash, 0x9e3779b1) >>> 0 & mask;
    while (d[base + 2 * i] !== 0) i = (i + 1) & mask;
    d[base + 2 * i] = hash;
    d[base + 2 * i + 1] = index;
    this.bigUsed[slot]!++;
  }

  /** Drops the names outside the look-back from a full set. */
  private rebuild(slot: number, oldest: number): void {
    const d = this.bigSet;
    const base = slot * BIG_SLOTS * 2;
    const live = this.scratch;
    let n = 0;
    for (let i = 0; i < BIG_SLOTS; i++) {
      if (d[base + 2 * i] === 0 || d[base + 2 * i + 1]! <= oldest) continue;
      live[2 * n] = d[base + 2 * i]!;
      live[2 * n + 1] = d[base + 2 * i + 1]!;
      n++;
    }
    if (n === this.bigUsed[slot]) return; // nothing stale
    d.fill(0, base, base + BIG_SLOTS * 2);
    this.bigUsed[slot] = 0;
    for (let k = 0; k < n; k++) this.place(slot, live[2 * k]!, live[2 * k + 1]!);
  }

  /** Distinct subdomains of key `id` seen within the look-back ending in bucket `index`. */
  private unique(id: number, index: number): number {
    const oldest = index - BUCKETS;
    const slot = this.hotOf[id]!;
    let n = 0;
    if (slot >= 0) {
      const d = this.bigSet;
      const base = slot * BIG_SLOTS * 2;
      for (let i = 0; i < BIG_SLOTS; i++) if (d[base + 2 * i] !== 0 && d[base + 2 * i + 1]! > oldest) n++;
    } else {
      const o = id * SMALL * 2;
      for (let i = 0; i < this.smallUsed[id]!; i++) if (this.small[o + 2 * i + 1]! > oldest) n++;
    }
    return n;
  }

  /**
   * Walks the name at `pos` (message at `msg`, following compression
   * pointers), filling the label scratch arrays and the suffix hashes. Returns
   * the number of labels, or -1 when malformed.
   */
  private parseName(d: Uint8Array, msg: number, pos: number, end: number): number {
    const offs = this.labelOff;
    const lens = this.labelLen;
    let n = 0;
    let p = pos;
    for (let pointers = 0, total = 0; ;) {
      if (p >= end) return -1;
      const b = d[p]!;
      if (b === 0) break;
      if ((b & 0xc0) === 0xc0) {
        if (p + 1 >= end || ++pointers > 32) return -1;
        const target = msg + (((b & 0x3f) << 8) | d[p + 1]!);
        if (target >= p) return -1;
        p = target;
        continue;
      }
      if (b & 0xc0 || p + 1 + b > end || n >= MAX_LABELS) return -1;
      total += b + 1;
      if (total > 255) return -1;
      offs[n] = p;
      lens[n] = b;
      n++;
      p += b + 1;
    }
    let h1 = 0x811c9dc5 | 0;
    let h2 = 0x1b873593 | 0;
    for (let i = n - 1; i >= 0; i--) {
      if (i < n - 1) { h1 = Math.imul(h1 ^ 0x2e, 16777619); h2 = Math.imul(h2 ^ 0x2e, 0x5bd1e995) ^ (h2 >>> 15); }
      const off = offs[i]! + 1;
      const stop = off + lens[i]!;
      for (let q = off; q < stop; q++) {
        const c = lower(d[q]!);
        h1 = Math.imul(h1 ^ c, 16777619);
        h2 = Math.imul(h2 ^ c, 0x5bd1e995) ^ (h2 >>> 15);
      }
      this.suf1[i] = h1;
      this.suf2[i] = h2;
    }
    return n;
  }

  /** Drops the keys idle for the look-back (least recently queried first): they hold nothing any more. */
  private expireIdle(now: number): void {
    this.expireIdleIn(this.keys, this.lastTs, now, this.forgetKey);
  }

  /** Removes the ids of `table` last queried (`lastTs`) a look-back or more before `now`, oldest first, each after `forget`. */
  private expireIdleIn(table: KeyTable, lastTs: Float64Array, now: number, forget?: (id: number) => void): void {
    const lookback = this.cfg.lookback;
    for (let id = table.oldest(); id >= 0;) {
      if (now - lastTs[id]! < lookback) break;
      const next = table.newer(id);
      forget?.(id);
      table.remove(id);
      id = next;
    }
  }

  /**
   * Judges client `id` (it sent encoded names in the window closing): it fires
   * when its encoded names within the look-back reach minClientQueries and
   * their distinct ratio minDistinctRatio. Reports and returns true unless
   * suppressed (per client, shared with its per-domain findings).
   */
  private judgeClient(id: number, index: number, now: number): boolean {
    const c = this.cfg;
    this.advanceClient(id, index);
    const encoded = this.clientSum(id, C_ENCODED);
    if (encoded < Math.max(1, c.minClientQueries)) return false;
    const distinctRatio = this.clientSum(id, C_DISTINCT) / encoded;
    if (distinctRatio < c.minDistinctRatio) return false;
    const queries = this.clientSum(id, C_QUERIES);
    const labels = this.clientSum(id, C_LABELS);
    const meanLength = labels > 0 ? this.clientSum(id, C_CHARS) / labels : 0;
    const total = this.classTotals.fill(0);
    for (let b = 0; b < BUCKETS; b++) for (let k = 0; k < CLASSES; k++) total[k]! += this.cHist[id * HIST + b * CLASSES + k]!;
    const bits = entropy(total, CLASSES);
    const hexShare = this.clientSum(id, C_HEX) / encoded;
    const unusualShare = this.clientSum(id, C_UNUSUAL) / encoded;
    const encodedShare = encoded / queries;
    const longLabels = meanLength >= c.minLabelLength;
    // Hex carries 4 bits a character at most, under minEntropy: mostly-hex names are random from HEX_ENTROPY on.
    const entropyLimit = hexShare >= 0.5 ? Math.min(HEX_ENTROPY, c.minEntropy) : c.minEntropy;
    const random = bits >= entropyLimit;
    const records = unusualShare >= c.minUnusualTypeShare;
    const mostly = encodedShare >= ENCODED_SHARE;
    const sk = this.suppression.key;
    for (let i = 0; i < 5; i++) sk[i] = this.clients.keyWord(id, i);
    sk[5] = 0;
    sk[6] = 0;
    if (!this.suppression.allow(now)) { this.suppressedFindings++; return false; }
    const w = this.scratchWords;
    for (let i = 0; i < 4; i++) w[i] = this.clients.keyWord(id, 1 + i);
    const client = formatAddress(this.clients.keyWord(id, 0), w);
    const o = id * NAME_BYTES;
    const name = this.cSampleSet[id] === 1 ? readDnsName(this.cSample, o, o, o + NAME_BYTES) : null;
    const sample = name === null ? '' : name.length > MAX_SAMPLE_CHARS ? `${name.slice(0, MAX_SAMPLE_CHARS)}...` : name;
    const signals = (longLabels ? 1 : 0) + (random ? 1 : 0) + (records ? 1 : 0) + (mostly ? 1 : 0);
    const volume = encoded / Math.max(1, c.minClientQueries);
    const score = Math.round(100 * Math.min(1, 0.2 * signals + 0.2 * Math.min(1, Math.log2(Math.max(1, volume)) / 2)));
    const severity = signals >= 3 || (signals >= 2 && volume >= 2) ? 'critical' : 'warning';
    const seconds = Math.min(c.lookback, Math.max(now - this.cFirstTs[id]!, this.bucketSeconds / 10, 1e-3));
    const hex = Math.round(hexShare * 100);
    const base32Share = this.clientSum(id, C_BASE32) / encoded;
    const base64Share = this.clientSum(id, C_BASE64) / encoded;
    const crossed: Crossing[] = [
      { measured: 'encodedQueries', value: encoded, setting: 'minClientQueries', limit: c.minClientQueries },
      { measured: 'distinctRatio', value: distinctRatio, setting: 'minDistinctRatio', limit: c.minDistinctRatio },
    ];
    if (longLabels) crossed.push({ measured: 'meanLabelLength', value: meanLength, setting: 'minLabelLength', limit: c.minLabelLength });
    if (random) crossed.push({ measured: 'entropy', value: bits, setting: entropyLimit === c.minEntropy ? 'minEntropy' : 'hexEntropy', limit: entropyLimit });
    if (records) crossed.push({ measured: 'unusualTypeShare', value: unusualShare, setting: 'minUnusualTypeShare', limit: c.minUnusualTypeShare });
    if (mostly) crossed.push({ measured: 'encodedShare', value: encodedShare, setting: 'encodedShare', limit: ENCODED_SHARE });
    this.ctx.report({
      type: 'dns_tunneling',
      severity,
      key: `${client}|*`,
      host: client,
      summary: `Possible DNS tunnel without a fixed parent domain: ${client} sent ${plural(encoded, 'query', 'queries')} with encoded labels (hex ${hex} %, base32 ${Math.round(base32Share * 100)} %, base64 ${Math.round(base64Share * 100)} %;`
        + ` mean length ${meanLength.toFixed(1)}, ${Math.round(distinctRatio * 100)} % distinct, ${Math.round(unusualShare * 100)} % unusual record types).`,
      evidence: {
        scope: 'client',
        client,
        domain: '*',
        queries,
        encodedQueries: encoded,
        encodedShare: round2(encodedShare),
        distinctRatio: round2(distinctRatio),
        meanLabelLength: round2(meanLength),
        entropy: round2(bits),
        hexShare: round2(hexShare),
        base32Share: round2(base32Share),
        base64Share: round2(base64Share),
        unusualTypeShare: round2(unusualShare),
        queriesPerSecond: round2(encoded / seconds),
        lookback: c.lookback,
        score,
        thresholds: thresholdsCrossed(crossed),
        sampleNames: sample,
      },
    });
    this.cSampleSet[id] = 0;
    this.clientFindings++;
    return true;
  }

  closeWindow(span: WindowSpan): Metrics {
    if (this.worker) {
      // Its queries go to the coordinator; its own state stays empty, so it judges (and reports) nothing below.
      this.part = {
        now: this.ctx.clock.now,
        allowListed: this.allowListed,
        allowed: this.allowedQueries,
        normalNxdomain: this.normalNxdomain,
        counted: this.counted,
        queries: this.log!.take(),
      };
    }
    return this.judge(span, this.ctx.clock.now);
  }

  windowPart(): unknown {
    const part = this.part;
    this.part = undefined;
    return part;
  }

  /** The coordinator: every worker's queries of the window replayed in input order, then judged as one pipeline's window. */
  mergeWindow(input: WindowMergeInput): Metrics {
    const parts = input.parts as readonly DnsTunnelingPart[];
    for (const p of parts) {
      this.allowListed += p.allowListed;
      this.allowedQueries += p.allowed;
      this.normalNxdomain += p.normalNxdomain;
    }
    const logs = parts.map((p) => p.queries);
    replayInOrder(logs, (worker, record) => { this.replay(logs[worker]!, record); });
    // The workers' count, not the replay's: whole when a log dropped queries.
    this.counted = 0;
    for (const p of parts) this.counted += p.counted;
    return endReplay(logs, this.judge(input.span, parts[0]!.now));
  }

  /** Judges the keys and clients of the window `span` closing with the clock at `clockNow`; its metrics. */
  private judge(span: WindowSpan, clockNow: number): Metrics {
    const c = this.cfg;
    // The look-back ends with the window (the packet that closes it may be much later), its buckets at the
    // window's last instant, so that a window ending on a bucket boundary does not start an empty bucket.
    const now = Math.max(Math.min(clockNow, span.relEnd), span.relStart);
    const index = Math.floor(Math.max(Math.min(now, span.relEnd - 1e-6), span.relStart) / this.bucketSeconds);
    let judged = 0;
    let reported = 0;
    for (let i = 0; i < this.dirtyLen; i++) {
      const id = this.dirty[i]!;
      if (id < 0) continue;
      this.advance(id, index);
      const queries = this.sum(id, F_QUERIES);
      if (queries < c.minQueries || queries === 0) continue;
      judged++;
      const slot = this.hotOf[id]!;
      if (slot < 0) continue;
      const unique = this.unique(id, index);
      if (unique < c.minUniqueSubdomains) continue;
      const labels = this.sum(id, F_LABELS);
      const meanLength = labels > 0 ? this.sum(id, F_CHARS) / labels : 0;
      const total = this.classTotals.fill(0);
      for (let b = 0; b < BUCKETS; b++) for (let k = 0; k < CLASSES; k++) total[k]! += this.hist[slot * HIST + b * CLASSES + k]!;
      const bits = entropy(total, CLASSES);
      const txtNull = this.sum(id, F_TXT_NULL);
      const unusual = this.sum(id, F_UNUSUAL);
      const share = txtNull / queries;
      const unusualShare = unusual / queries;
      const longLabels = meanLength >= c.minLabelLength;
      const random = bits >= c.minEntropy;
      const records = unusualShare >= c.minUnusualTypeShare;
      if (!longLabels && !random && !records) continue;
      const host = this.keys.keyWord(id, 0);
      // Cannot happen (the host table has a host more than keys, see the constructor); a reused host id would name another client.
      if (this.keys.keyWord(id, 1) !== this.hosts.generation[host]) continue;
      const sk = this.suppression.key;
      this.hosts.writeHost(host, sk, 0);
      sk[5] = this.keys.keyWord(id, 2);
      sk[6] = this.keys.keyWord(id, 3);
      if (!this.suppression.allow(now)) { this.suppressedFindings++; continue; }
      // The client's own (client-level) finding would name the same tunnel: it waits suppressFor.
      sk[5] = 0;
      sk[6] = 0;
      this.suppression.allow(now);
      const client = this.hosts.name(host);
      const domain = readDnsName(this.domainName, slot * NAME_BYTES, slot * NAME_BYTES, (slot + 1) * NAME_BYTES) ?? '?';
      const samples: string[] = [];
      for (let k = 0; k < this.sampleCount[slot]!; k++) {
        const o = (slot * MAX_SAMPLES + k) * NAME_BYTES;
        const name = readDnsName(this.sampleNames, o, o, o + NAME_BYTES);
        if (name !== null) samples.push(name.length > MAX_SAMPLE_CHARS ? `${name.slice(0, MAX_SAMPLE_CHARS)}...` : name);
      }
      const signals = (longLabels ? 1 : 0) + (random ? 1 : 0) + (records ? 1 : 0);
      const volume = Math.min(queries / Math.max(1, c.minQueries), unique / Math.max(1, c.minUniqueSubdomains));
      const score = Math.round(100 * Math.min(1, 0.25 * signals + 0.25 * Math.min(1, Math.log2(Math.max(1, volume)) / 2)));
      const severity = signals >= 3 || (signals >= 2 && volume >= 2) ? 'critical' : 'warning';
      const seconds = Math.min(c.lookback, Math.max(now - this.firstTs[id]!, this.bucketSeconds / 10, 1e-3));
      const rate = queries / seconds;
      const recordsText = unusual === txtNull ? `${Math.round(share * 100)} % TXT/NULL` : `${Math.round(unusualShare * 100)} % unusual record types`;
      const shape = [longLabels ? `mean label length ${meanLength.toFixed(1)}` : '', random ? `entropy ${bits.toFixed(2)} bits/char` : '', records ? recordsText : '']
        .filter((x) => x).join(', ');
      const crossed: Crossing[] = [
        { measured: 'queries', value: queries, setting: 'minQueries', limit: c.minQueries },
        { measured: 'uniqueSubdomains', value: unique, setting: 'minUniqueSubdomains', limit: c.minUniqueSubdomains },
      ];
      if (longLabels) crossed.push({ measured: 'meanLabelLength', value: meanLength, setting: 'minLabelLength', limit: c.minLabelLength });
      if (random) crossed.push({ measured: 'entropy', value: bits, setting: 'minEntropy', limit: c.minEntropy });
      if (records) crossed.push({ measured: 'unusualTypeShare', value: unusualShare, setting: 'minUnusualTypeShare', limit: c.minUnusualTypeShare });
      this.ctx.report({
        type: 'dns_tunneling',
        severity,
        key: `${client}|${domain}`,
        host: client,
        summary: `Possible DNS tunnel: ${client} sent ${plural(queries, 'query', 'queries')} with ${plural(unique, 'unique subdomain')} of ${domain} (${shape}).`,
        evidence: {
          scope: 'domain',
          client,
          domain,
          queries,
          uniqueSubdomains: unique,
          meanLabelLength: round2(meanLength),
          entropy: round2(bits),
          txtNullShare: round2(share),
          unusualTypeShare: round2(unusualShare),
          distinctRatio: round2(unique / queries),
          queriesPerSecond: round2(rate),
          lookback: c.lookback,
          score,
          thresholds: thresholdsCrossed(crossed),
          sampleNames: samples.join(' '),
        },
      });
      // Fresh samples for the next report of this key.
      this.sampleCount[slot] = 0;
      reported++;
    }
    this.dirtyLen = 0;
    let clientsJudged = 0;
    for (let id = this.clients.oldest(); id >= 0; id = this.clients.newer(id)) {
      if (this.cWindow[id] !== this.windowSeq) continue;
      clientsJudged++;
      if (this.judgeClient(id, index, now)) reported++;
    }
    this.windowSeq++;
    this.expireIdle(now);
    this.expireIdleClients(now);
    const metrics: Metrics = {
      queries: this.counted,
      allowListed: this.allowListed,
      normalNxdomain: this.normalNxdomain,
      keys: this.keys.size,
      evictedKeys: this.keys.evicted,
      hotKeys: this.hot.size,
      hotKeysEvicted: this.hot.evicted,
      judged,
      findings: reported,
      suppressed: this.suppressedFindings,
      namesNotRemembered: this.notRemembered,
      firstSightDropped: this.first.overwritten - this.overwrittenBefore,
      suppressorEvicted: this.suppression.evicted,
      allowed: this.allowedQueries,
      clients: this.clients.size,
      clientsEvicted: this.clients.evicted,
      clientsJudged,
      clientFindings: this.clientFindings,
    };
    this.overwrittenBefore = this.first.overwritten;
    this.counted = this.allowListed = this.normalNxdomain = this.suppressedFindings = this.notRemembered = this.allowedQueries = this.clientFindings = 0;
    return metrics;
  }
}
