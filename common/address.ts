/** Text forms of addresses held as big-endian 32-bit words (IPv4 in word 0), and HOST:PORT listen addresses. */
import { UsageError } from './errors.js';

export function formatIPv4(word: number): string {
  return `${word >>> 24}.${(word >>> 16) & 0xff}.${(word >>> 8) & 0xff}.${word & 0xff}`;
}

/** RFC 5952: lower-case hex, leading zeros dropped, the longest run (2+) of zero groups as `::`. */
export function formatIPv6(words: ArrayLike<number>): string {
  const groups: number[] = [];
  for (let i = 0; i < 4; i++) groups.push(words[i]! >>> 16, words[i]! & 0xffff);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  // IPv4-mapped addresses keep the dotted tail (::ffff:192.0.2.1).
  if (bestStart === 0 && bestLen === 5 && groups[5] === 0xffff) return `::ffff:${formatIPv4(words[3]!)}`;
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatAddress(version: number, words: ArrayLike<number>): string {
  return version === 6 ? formatIPv6(words) : formatIPv4(words[0]!);
}

/**
 * ISO-8601 UTC with microseconds, from whole seconds and nanoseconds. Works
 * for any year (captures carry garbage timestamps too: years past 9999 use the
 * expanded `+YYYYYY` form) where Date would throw.
 */
export function isoTime(sec: number, nsec = 0): string {
  const days = Math.floor(sec / 86400);
  const rem = sec - days * 86400;
  // Days to civil date: Howard Hinnant's algorithm, proleptic Gregorian.
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const yearText = year >= 0 && year <= 9999 ? String(year).padStart(4, '0') : `${year < 0 ? '-' : '+'}${String(Math.abs(year)).padStart(6, '0')}`;
  const two = (n: number): string => String(n).padStart(2, '0');
  const h = Math.floor(rem / 3600);
  const m = Math.floor((rem % 3600) / 60);
  const s = rem % 60;
  return `${yearText}-${two(month)}-${two(day)}T${two(h)}:${two(m)}:${two(s)}.${String(Math.floor(nsec / 1000)).padStart(6, '0')}Z`;
}

/** ISO-8601 from whole seconds `base` plus `offset` seconds as a double (microsecond precision). */
export function isoFromSeconds(base: number, offset = 0): string {
  let sec = Math.floor(offset);
  let usec = Math.round((offset - sec) * 1e6);
  if (usec >= 1e6) { sec += 1; usec -= 1e6; }
  return isoTime(base + sec, usec * 1000);
}

/** `addr:port`, with IPv6 addresses in brackets. */
export const endpoint = (addr: string, port: number): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/** Parses HOST:PORT (IPv6 hosts in brackets). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`http.listen: "${listen}" is not HOST:PORT`);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  return { host: m[1] ?? m[2]!, port };
}
