/** Text forms of addresses held as big-endian 32-bit words (IPv4 in word 0). */

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

/** ISO-8601 UTC with microseconds, from whole seconds and nanoseconds. */
export function isoTime(sec: number, nsec = 0): string {
  const whole = new Date(sec * 1000).toISOString(); // 2024-01-02T03:04:05.000Z
  return `${whole.slice(0, 19)}.${String(Math.floor(nsec / 1000)).padStart(6, '0')}Z`;
}

/** ISO-8601 from seconds as a double (microsecond precision). */
export function isoFromSeconds(ts: number): string {
  let sec = Math.floor(ts);
  let usec = Math.round((ts - sec) * 1e6);
  if (usec >= 1e6) { sec += 1; usec -= 1e6; }
  return isoTime(sec, usec * 1000);
}
