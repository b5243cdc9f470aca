/**
 * Per-client limits: the client key (IPv4 address, IPv6 /64) and a bounded
 * sliding-window counter, shared by uploads (uploads per minute) and
 * authentication (failed logins and bearer tokens per minute).
 */

/** IPv4 per address; IPv6 per /64 (one client easily owns a whole /64). */
export function clientKey(ip: string): string {
  if (!ip.includes(':')) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  const [left = '', right = ''] = ip.split('%')[0]!.split('::');
  const l = left ? left.split(':') : [];
  const r = ip.includes('::') ? (right ? right.split(':') : []) : [];
  const groups = ip.includes('::') ? [...l, ...Array<string>(Math.max(0, 8 - l.length - r.length)).fill('0'), ...r] : l;
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}

/**
 * Sliding-window log per client: at most `limit` hits in `windowMs`. The map is
 * bounded (least recently seen clients dropped first), so a flood of addresses
 * costs memory only up to `maxClients` × `limit` timestamps.
 */
export class RateLimiter {
  private readonly hits = new Map<string, number[]>();
  constructor(private readonly limit: number, private readonly windowMs: number, private readonly maxClients: number) {}

  /** Seconds until this client may have its next hit (0: now), without recording one. */
  retryAfter(key: string, now: number): number {
    if (!(this.limit > 0)) return 0;
    const stamps = (this.hits.get(key) ?? []).filter((t) => t > now - this.windowMs);
    return stamps.length >= this.limit ? Math.max(1, Math.ceil((stamps[0]! + this.windowMs - now) / 1000)) : 0;
  }

  /** Records a hit; 0 when allowed, else the seconds until the next one would be. */
  hit(key: string, now: number): number {
    if (!(this.limit > 0)) return 0; // 0 or unset: no limit
    const stamps = (this.hits.get(key) ?? []).filter((t) => t > now - this.windowMs);
    this.hits.delete(key); // re-inserted last: Map order is recency order
    if (stamps.length >= this.limit) {
      this.hits.set(key, stamps);
      return Math.max(1, Math.ceil((stamps[0]! + this.windowMs - now) / 1000));
    }
    stamps.push(now);
    this.hits.set(key, stamps);
    while (this.hits.size > this.maxClients) this.hits.delete(this.hits.keys().next().value!);
    return 0;
  }
}
