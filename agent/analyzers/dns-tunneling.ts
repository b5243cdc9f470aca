/**
 * DNS tunneling (finding type `dns_tunneling`): a client that sends many
 * queries carrying many distinct, long or random-looking subdomains of one
 * registered domain, or asks mostly for TXT / NULL records, within the
 * look-back. Tunnels (iodine, dnscat2, dns2tcp, DNS exfiltration) encode data
 * in the query names, so their names are unique, long (labels of up to 63
 * bytes) and high in entropy (base32/64, hex or raw bytes), and their answers
 * come in TXT or NULL records.
 *
 * The key is (client address, registered domain). The registered domain is
 * approximated as the last two labels, or three when the last two are a
 * common public-suffix second level (co.uk, com.au, ...); the labels before it
 * are the subdomain. Per key, over `lookback` seconds of packet time kept in
 * BUCKETS time buckets:
 *   - queries, and the TXT (16) / NULL (10) among them;
 *   - unique subdomains: a hash set (at most MAX_UNIQUE names, each with the
 *     bucket it was last seen in, so names older than the look-back drop out);
 *   - the shape of the subdomains new to the set: characters and labels (mean
 *     label length), and a character histogram (Shannon entropy in bits per
 *     character, lower-cased; bytes other than letters, digits, `-` and `_`
 *     fall in 26 shared classes). The histogram is allocated only once a key
 *     has HOT_UNIQUE distinct subdomains, so the many ordinary keys stay small.
 *
 * A key is judged at the close of each window in which it was queried with
 * at least minQueries queries in its look-back: it fires when the volume
 * (>= minQueries queries and >= minUniqueSubdomains unique subdomains) and
 * the shape (mean label length >= minLabelLength, or entropy >= minEntropy,
 * or a TXT/NULL share >= TXT_NULL_SHARE) agree. Severity: critical when at
 * least two shape signals agree and the volume is at least twice both
 * thresholds, else warning; the evidence's score (0-100) gives 25 per shape
 * signal and up to 25 for the volume (25 at four times the thresholds).
 *
 * Never counted: names under `allowSuffixes` (suffix match on label
 * boundaries; CDN and cloud names are many and random-looking), names without
 * a subdomain, mDNS / LLMNR, loopback traffic (unless
 * `networks.includeLoopback`), retransmitted TCP segments. Names under
 * `nxdomainNormalSuffixes` (Kubernetes search-path lookups of
 * `name.ns.svc.cluster.local`) count only when a response other than NXDOMAIN
 * is seen for them: their NXDOMAIN answers are normal.
 *
 * Bounded: a key's first query waits in a fixed first-sight table
 * (FIRST_SIGHT entries of typed arrays, direct-mapped, a collision overwrites
 * and is counted as `firstSightDropped`); its second query within the
 * look-back gives it a state, which starts with that first query. Most
 * (client, domain) pairs are queried once or twice, so they never cost an
 * object. States live in a BoundedMap of `maxKeys` (least recently queried
 * evicted, counted in the metrics as `evictedKeys`); keys idle for the
 * look-back are dropped at window close. A finding for the same key is
 * re-emitted at most once per `suppressFor` with updated evidence.
 *
 * The per-packet path parses the question name from the packet bytes (no
 * strings). A key is one small object and one Int32Array (the set grows by
 * doubling); its client and domain texts are made once it has minQueries
 * queries, its histogram once it has HOT_UNIQUE names, and up to MAX_SAMPLES
 * sample names per report once it is hot.
 */
import { formatAddress } from '../../common/address.js';
import { readDnsName } from '../decode/dns.js';
import type { PacketView } from '../decode/packet-view.js';
import type { Analyzer, AnalyzerContext, Metrics, WindowSpan } from './analyzer.js';
import { BoundedMap } from './lib/bounded-map.js';
import { isLoopback } from './lib/networks.js';
import { Suppressor } from './lib/suppressor.js';
import { round2 } from './lib/format.js';

/** Time buckets per look-back. */
const BUCKETS = 6;
/** Distinct subdomains remembered per key (the count saturates there). */
export const MAX_UNIQUE = 4096;
/** Distinct subdomains a key needs before its character histogram is kept. */
const HOT_UNIQUE = 8;
/** Share of TXT and NULL queries that makes the shape suspicious on its own. */
export const TXT_NULL_SHARE = 0.5;
/** Sample names per finding, and their length at most. */
const MAX_SAMPLES = 3;
const MAX_SAMPLE_CHARS = 100;
/** Labels per name at most (255 bytes make at most 127 labels). */
const MAX_LABELS = 128;
/** Character classes of the entropy histogram. */
const CLASSES = 64;
const QTYPE_NULL = 10;
const QTYPE_TXT = 16;
const RCODE_NXDOMAIN = 3;

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
const FIELDS = 4;
const COUNTS = BUCKETS * FIELDS;
/** Entries of the first-sight table (a power of 2), and its fields. */
const FIRST_SIGHT = 32768;
const FS_K1 = 0;
const FS_K2 = 1;
const FS_BUCKET = 2;
const FS_NAME = 3;
/** Bit 0: in use; bit 1: TXT or NULL. */
const FS_FLAGS = 4;
const FS_CHARS = 5;
const FS_LABELS = 6;
const FS = 7;
/** Slots of a new key's subdomain set (it doubles as names come). */
const INITIAL_SLOTS = 4;

/** Character class of a byte for the entropy histogram (lower-cased). */
const CLASS_OF = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  const c = b >= 0x41 && b <= 0x5a ? b + 32 : b;
  CLASS_OF[b] = c >= 0x61 && c <= 0x7a ? c - 0x61
    : c >= 0x30 && c <= 0x39 ? 26 + c - 0x30
      : c === 0x2d ? 36 : c === 0x5f ? 37 : 38 + (c % 26);
}

const isTxtNull = (qtype: number): boolean => qtype === QTYPE_TXT || qtype === QTYPE_NULL;
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

/**
 * One (client, registered domain): its look-back in time buckets, and its
 * distinct subdomains, in one Int32Array (few objects per key: most keys see
 * one or two queries): COUNTS per-bucket counts, then an open-addressing set
 * of (subdomain hash, bucket index it was last seen in) pairs, hash 0 = empty.
 * Its client and domain texts are made only once it is busy.
 */
class KeyState {
  /** Bucket index of the newest bucket (buckets older than the look-back are cleared on advance). */
  cur = -Infinity;
  data = new Int32Array(COUNTS + 2 * INITIAL_SLOTS);
  /** Slots of the set, and names in it (live or not). */
  slots = INITIAL_SLOTS;
  used = 0;
  /** Bucket index in which the set was last found full (MAX_UNIQUE live names). */
  fullAt = -Infinity;
  /** Character classes of the new subdomains per bucket, once hot. */
  hist: Int32Array | null = null;
  firstTs: number;
  lastTs: number;
  /** Window (sequence number) in which it was put on the list to judge (DnsTunnelingAnalyzer.dirty). */
  window = -1;
  alive = true;
  client = '';
  domain = '';
  samples: string[] | null = null;

  constructor(now: number) {
    this.firstTs = this.lastTs = now;
  }

  /** Moves to bucket `index`, clearing the buckets passed over. */
  advance(index: number): void {
    if (index <= this.cur) return;
    const c = this.data;
    const h = this.hist;
    if (index - this.cur >= BUCKETS) {
      c.fill(0, 0, COUNTS);
      h?.fill(0);
    } else {
      for (let i = this.cur + 1; i <= index; i++) {
        const b = i % BUCKETS;
        c.fill(0, b * FIELDS, b * FIELDS + FIELDS);
        h?.fill(0, b * CLASSES, b * CLASSES + CLASSES);
      }
    }
    this.cur = index;
  }

  sum(field: number): number {
    let s = 0;
    for (let b = 0; b < BUCKETS; b++) s += this.data[b * FIELDS + field]!;
    return s;
  }

  /**
   * Records subdomain `hash` (non-zero) as seen in bucket `index`; 1 when it
   * is new within the look-back, 0 when not, 2 when new but the set is full
   * (MAX_UNIQUE live names: counted as new, not remembered).
   */
  see(hash: number, index: number): number {
    const oldest = index - BUCKETS; // seen at or before it: outside the look-back
    let d = this.data;
    let mask = this.slots - 1;
    let i = Math.imul(hash, 0x9e3779b1) >>> 0 & mask;
    for (; d[COUNTS + 2 * i] !== 0; i = (i + 1) & mask) {
      if (d[COUNTS + 2 * i] === hash) {
        const fresh = d[COUNTS + 2 * i + 1]! <= oldest;
        d[COUNTS + 2 * i + 1] = index;
        return fresh ? 1 : 0;
      }
    }
    if ((this.used + 1) * 2 > this.slots) {
      // Full: names can only go stale when the bucket moves, so a full set is rebuilt at most once per bucket.
      if (index === this.fullAt) return 2;
      this.rebuild(oldest);
      if ((this.used + 1) * 2 > this.slots) { this.fullAt = index; return 2; }
      d = this.data;
      mask = this.slots - 1;
      i = Math.imul(hash, 0x9e3779b1) >>> 0 & mask;
      while (d[COUNTS + 2 * i] !== 0) i = (i + 1) & mask;
    }
    d[COUNTS + 2 * i] = hash;
    d[COUNTS + 2 * i + 1] = index;
    this.used++;
    return 1;
  }

  /** Drops names outside the look-back; doubles the set (up to 2 * MAX_UNIQUE slots) when still over half full. */
  private rebuild(oldest: number): void {
    const old = this.data;
    const oldSlots = this.slots;
    let live = 0;
    for (let i = 0; i < oldSlots; i++) if (old[COUNTS + 2 * i] !== 0 && old[COUNTS + 2 * i + 1]! > oldest) live++;
    let slots = oldSlots;
    while ((live + 1) * 2 > slots && slots < MAX_UNIQUE * 2) slots *= 2;
    if (live === this.used && slots === oldSlots) return; // nothing stale, no room to grow
    const d = new Int32Array(COUNTS + 2 * slots);
    d.set(old.subarray(0, COUNTS));
    const mask = slots - 1;
    for (let k = 0; k < oldSlots; k++) {
      const h = old[COUNTS + 2 * k]!;
      if (h === 0 || old[COUNTS + 2 * k + 1]! <= oldest) continue;
      let i = Math.imul(h, 0x9e3779b1) >>> 0 & mask;
      while (d[COUNTS + 2 * i] !== 0) i = (i + 1) & mask;
      d[COUNTS + 2 * i] = h;
      d[COUNTS + 2 * i + 1] = old[COUNTS + 2 * k + 1]!;
    }
    this.data = d;
    this.slots = slots;
    this.used = live;
  }

  /** Distinct subdomains seen within the look-back ending in bucket `index` (at most MAX_UNIQUE). */
  unique(index: number): number {
    const oldest = index - BUCKETS;
    const d = this.data;
    let n = 0;
    for (let i = 0; i < this.slots; i++) if (d[COUNTS + 2 * i] !== 0 && d[COUNTS + 2 * i + 1]! > oldest) n++;
    return n;
  }
}

export function createDnsTunnelingAnalyzer(ctx: AnalyzerContext): Analyzer {
  return new DnsTunnelingAnalyzer(ctx);
}

class DnsTunnelingAnalyzer implements Analyzer {
  readonly id = 'dns_tunneling';
  /** Read on use, so SIGHUP's new thresholds apply at once. */
  private get cfg(): AnalyzerContext['config']['analyzers']['dns_tunneling'] { return this.ctx.config.analyzers.dns_tunneling; }
  private readonly bucketSeconds: number;
  private readonly keys: BoundedMap<number, KeyState>;
  private readonly suppressor: Suppressor;
  private readonly allow: Set<number>;
  private readonly nxdomainNormal: Set<number>;
  private readonly secondLevels: Set<number>;
  private readonly includeLoopback: boolean;
  /** Keys queried in the current window with at least minQueries in their look-back, judged at its close. */
  private dirty: KeyState[] = [];
  /** Windows closed so far (marks the keys already in `dirty`). */
  private windowSeq = 0;
  /** Distinct subdomains a key needs before its character histogram is kept. */
  private readonly hotUnique: number;
  // Scratch of the name being parsed: offset of each label's length byte, its length, and the hashes of the suffix starting at it.
  private readonly labelOff = new Int32Array(MAX_LABELS);
  private readonly labelLen = new Int32Array(MAX_LABELS);
  private readonly suf1 = new Int32Array(MAX_LABELS);
  private readonly suf2 = new Int32Array(MAX_LABELS);
  // Window metrics.
  private counted = 0;
  private allowListed = 0;
  private normalNxdomain = 0;
  private suppressedFindings = 0;
  private notRemembered = 0;
  /** Waiting first queries overwritten by another key's (their key, if queried again, misses that query). */
  private firstSightDropped = 0;
  /**
   * First-sight table: the first query of a key not yet tracked, FS numbers per
   * entry (direct-mapped by key hash, overwritten on collision), and its time.
   */
  private readonly first = new Int32Array(FIRST_SIGHT * FS);
  private readonly firstTs = new Float64Array(FIRST_SIGHT);
  /** The current query's subdomain: hash and characters. */
  private subHash = 0;
  private subChars = 0;

  constructor(private readonly ctx: AnalyzerContext) {
    const c = ctx.config.analyzers.dns_tunneling;
    this.bucketSeconds = Math.max(c.lookback, 1e-3) / BUCKETS;
    this.keys = new BoundedMap<number, KeyState>(Math.max(1, c.maxKeys), (_k, s) => { s.alive = false; });
    this.suppressor = new Suppressor(c.suppressFor, Math.max(1, c.maxKeys));
    this.allow = new Set(c.allowSuffixes.map(suffixHash));
    this.nxdomainNormal = new Set(c.nxdomainNormalSuffixes.map(suffixHash));
    this.secondLevels = new Set(PUBLIC_SECOND_LEVELS.map(suffixHash));
    this.includeLoopback = ctx.config.networks.includeLoopback;
    this.hotUnique = Math.max(1, Math.min(HOT_UNIQUE, c.minUniqueSubdomains));
  }

  onDnsMessage(v: PacketView): void {
    if (v.dnsQnameOff < 0) return;
    if (!this.includeLoopback && (isLoopback(v.ipVersion, v.src) || isLoopback(v.ipVersion, v.dst))) return;
    const response = v.dnsIsResponse;
    const d = v.l4Data;
    const end = Math.min(v.dnsOff + v.dnsLen, v.payloadOff + v.payloadCapLen, d.length);
    const n = this.parseName(d, v.dnsOff, v.dnsQnameOff, end);
    if (n < 2) return;
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
    if (r <= 0) return;
    const ver = v.ipVersion;
    const addr = response ? v.dst : v.src;
    let k1 = this.suf1[r]!;
    let k2 = this.suf2[r]!;
    for (let i = 0; i < (ver === 6 ? 4 : 1); i++) {
      k1 = Math.imul(k1 ^ addr[i]!, 16777619);
      k2 = Math.imul(k2 ^ addr[i]!, 0x5bd1e995) ^ (k2 >>> 15);
    }
    k1 = Math.imul(k1 ^ ver, 16777619);
    const key = combine(k1, k2);
    const now = v.ts;
    this.counted++;
    this.subdomain(d, r);
    let s = this.keys.get(key);
    if (s === undefined) {
      const index = Math.floor(now / this.bucketSeconds);
      const f = this.first;
      const o = (((k1 ^ Math.imul(k2, 0x9e3779b1)) >>> 0) & (FIRST_SIGHT - 1)) * FS;
      const live = f[o + FS_FLAGS] !== 0 && f[o + FS_BUCKET]! > index - BUCKETS;
      if (this.cfg.minQueries > 1 && !(live && f[o + FS_K1] === k1 && f[o + FS_K2] === k2)) {
        // A key's first query waits in the first-sight table (no object for the many one-query keys).
        if (live) this.firstSightDropped++;
        f[o + FS_K1] = k1; f[o + FS_K2] = k2; f[o + FS_BUCKET] = index; f[o + FS_NAME] = this.subHash;
        f[o + FS_FLAGS] = 1 | (isTxtNull(v.dnsQtype) ? 2 : 0); f[o + FS_CHARS] = this.subChars; f[o + FS_LABELS] = r;
        this.firstTs[o / FS] = now;
        return;
      }
      if (this.keys.size >= this.keys.maxKeys) this.expireIdle(now);
      if (live) {
        // Its second query: the key gets its state, starting with the first query.
        s = new KeyState(this.firstTs[o / FS]!);
        const b = f[o + FS_BUCKET]!;
        s.advance(b);
        const base = (b % BUCKETS + BUCKETS) % BUCKETS * FIELDS;
        s.data[base + F_QUERIES] = 1;
        s.data[base + F_TXT_NULL] = f[o + FS_FLAGS]! & 2 ? 1 : 0;
        s.data[base + F_CHARS] = f[o + FS_CHARS]!;
        s.data[base + F_LABELS] = f[o + FS_LABELS]!;
        s.see(f[o + FS_NAME]!, b);
        f[o + FS_FLAGS] = 0;
      } else {
        s = new KeyState(now);
      }
      this.keys.set(key, s);
    }
    this.count(s, v, d, r, now, end);
    // Judged at the window's close once it has the volume (so the list holds only busy keys); named then.
    if (s.window !== this.windowSeq && s.sum(F_QUERIES) >= this.cfg.minQueries) {
      s.window = this.windowSeq;
      this.dirty.push(s);
      if (s.domain === '') {
        s.client = formatAddress(ver, addr);
        s.domain = readDnsName(d, v.dnsOff, this.labelOff[r]!, end) ?? '?';
      }
    }
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

  /** Adds one query to its key (its subdomain in subHash and subChars). */
  private count(s: KeyState, v: PacketView, d: Uint8Array, r: number, now: number, end: number): void {
    if (now > s.lastTs) s.lastTs = now;
    const index = Math.floor(now / this.bucketSeconds);
    s.advance(index);
    // A packet stamped earlier than the key's newest bucket counts in it.
    const b = (Math.max(index, s.cur) % BUCKETS + BUCKETS) % BUCKETS;
    const base = b * FIELDS;
    s.data[base + F_QUERIES]!++;
    if (isTxtNull(v.dnsQtype)) s.data[base + F_TXT_NULL]!++;
    // The subdomain's shape, when new.
    const seen = s.see(this.subHash, Math.max(index, s.cur));
    if (seen === 0) return;
    if (seen === 2) this.notRemembered++;
    const c = s.data; // after `see`, which may have replaced it
    c[base + F_CHARS]! += this.subChars;
    c[base + F_LABELS]! += r;
    if (s.hist === null && (s.used >= this.hotUnique || seen === 2)) s.hist = new Int32Array(BUCKETS * CLASSES);
    const hist = s.hist;
    if (hist !== null) {
      const hb = b * CLASSES;
      for (let i = 0; i < r; i++) {
        const off = this.labelOff[i]! + 1;
        const len = this.labelLen[i]!;
        for (let p = off; p < off + len; p++) hist[hb + CLASS_OF[d[p]!]!]!++;
      }
      if (s.samples === null || s.samples.length < MAX_SAMPLES) {
        const name = readDnsName(d, v.dnsOff, v.dnsQnameOff, end);
        if (name !== null) (s.samples ??= []).push(name.length > MAX_SAMPLE_CHARS ? `${name.slice(0, MAX_SAMPLE_CHARS)}...` : name);
      }
    }
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
    for (const [k, s] of this.keys.entries()) {
      if (now - s.lastTs < this.cfg.lookback) break;
      s.alive = false;
      this.keys.delete(k);
    }
  }

  closeWindow(span: WindowSpan): Metrics {
    const c = this.cfg;
    // The look-back ends with the window (the packet that closes it may be much later), its buckets at the
    // window's last instant, so that a window ending on a bucket boundary does not start an empty bucket.
    const now = Math.max(Math.min(this.ctx.clock.now, span.relEnd), span.relStart);
    const index = Math.floor(Math.max(Math.min(now, span.relEnd - 1e-6), span.relStart) / this.bucketSeconds);
    let judged = 0;
    let reported = 0;
    for (const s of this.dirty) {
      if (!s.alive) continue;
      s.advance(index);
      const queries = s.sum(F_QUERIES);
      if (queries < c.minQueries || queries === 0) continue;
      judged++;
      const unique = s.unique(index);
      if (unique < c.minUniqueSubdomains) continue;
      const labels = s.sum(F_LABELS);
      const meanLength = labels > 0 ? s.sum(F_CHARS) / labels : 0;
      let bits = 0;
      if (s.hist !== null) {
        const total = new Float64Array(CLASSES);
        for (let b = 0; b < BUCKETS; b++) for (let k = 0; k < CLASSES; k++) total[k]! += s.hist[b * CLASSES + k]!;
        bits = entropy(total, CLASSES);
      }
      const txtNull = s.sum(F_TXT_NULL);
      const share = txtNull / queries;
      const longLabels = meanLength >= c.minLabelLength;
      const random = s.hist !== null && bits >= c.minEntropy;
      const records = share >= TXT_NULL_SHARE;
      if (!longLabels && !random && !records) continue;
      const key = `${s.client}|${s.domain}`;
      if (!this.suppressor.allow(key, now)) { this.suppressedFindings++; continue; }
      const signals = (longLabels ? 1 : 0) + (random ? 1 : 0) + (records ? 1 : 0);
      const volume = Math.min(queries / Math.max(1, c.minQueries), unique / Math.max(1, c.minUniqueSubdomains));
      const score = Math.round(100 * Math.min(1, 0.25 * signals + 0.25 * Math.min(1, Math.log2(Math.max(1, volume)) / 2)));
      const severity = signals >= 2 && volume >= 2 ? 'critical' : 'warning';
      const seconds = Math.min(c.lookback, Math.max(now - s.firstTs, this.bucketSeconds / 10, 1e-3));
      const rate = queries / seconds;
      const shape = [longLabels ? `mean label length ${meanLength.toFixed(1)}` : '', random ? `entropy ${bits.toFixed(2)} bits/char` : '', records ? `${Math.round(share * 100)} % TXT/NULL` : '']
        .filter((x) => x).join(', ');
      this.ctx.report({
        type: 'dns_tunneling',
        severity,
        key,
        host: s.client,
        summary: `Possible DNS tunnel: ${s.client} sent ${queries} queries with ${unique} unique subdomains of ${s.domain} (${shape}).`,
        evidence: {
          client: s.client,
          domain: s.domain,
          queries,
          uniqueSubdomains: unique,
          meanLabelLength: round2(meanLength),
          entropy: round2(bits),
          txtNullShare: round2(share),
          queriesPerSecond: round2(rate),
          lookback: c.lookback,
          score,
          sampleNames: (s.samples ?? []).join(' '),
        },
      });
      // Fresh samples for the next report of this key.
      s.samples = null;
      reported++;
    }
    this.dirty.length = 0;
    this.windowSeq++;
    this.expireIdle(now);
    const metrics: Metrics = {
      queries: this.counted,
      allowListed: this.allowListed,
      normalNxdomain: this.normalNxdomain,
      keys: this.keys.size,
      evictedKeys: this.keys.evicted,
      judged,
      findings: reported,
      suppressed: this.suppressedFindings,
      namesNotRemembered: this.notRemembered,
      firstSightDropped: this.firstSightDropped,
      suppressorEvicted: this.suppressor.evicted,
    };
    this.counted = this.allowListed = this.normalNxdomain = this.suppressedFindings = this.notRemembered = this.firstSightDropped = 0;
    return metrics;
  }
}

