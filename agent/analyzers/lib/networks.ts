/**
 * Which addresses are internal (`networks.internal`, CIDR blocks, default
 * RFC 1918 + ULA), and loopback. Addresses are the decoder's big-endian
 * 32-bit words (IPv4 in word 0).
 */
export { Networks, parseIPv4, parseIPv6 } from '../../../common/networks.js';

/** 127.0.0.0/8 and ::1. */
export function isLoopback(version: number, words: ArrayLike<number>): boolean {
  if (version === 4) return words[0]! >>> 24 === 127;
  return version === 6 && words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 1;
}

/**
 * Addresses no detector treats as a remote host: multicast, limited
 * broadcast, link-local, unspecified (IPv4 in word 0, as the decoder keeps them).
 */
export function isSpecialAddress(version: number, words: ArrayLike<number>): boolean {
  const w0 = words[0]! >>> 0;
  if (version === 4) {
    return w0 >>> 28 === 0xe || w0 === 0xffffffff || w0 >>> 16 === 0xa9fe || w0 === 0;
  }
  if (version !== 6) return false;
  if (w0 >>> 24 === 0xff) return true; // ff00::/8 multicast
  if (w0 >>> 22 === 0x3fa) return true; // fe80::/10 link-local
  return w0 === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0;
}
