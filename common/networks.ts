/**
 * CIDR blocks (`networks.internal`, detector allow-lists): parsed once into
 * big-endian 32-bit words (IPv4 in word 0, as the decoder keeps addresses),
 * matched with a few integer compares. Here, below the agent, so the config
 * can check a block when it is loaded.
 */
import { ConfigError } from './errors.js';

interface Block { version: 4 | 6; words: Uint32Array; prefix: number }

export class Networks {
  private readonly blocks: Block[];

  /** `key` names the config entry in errors. */
  constructor(cidrs: readonly string[], key = 'networks.internal') {
    this.blocks = cidrs.map((cidr, i) => parseCidr(cidr, `${key}[${i}]`));
  }

  /** The address (IPv4 in word 0) is in one of the blocks. */
  contains(version: number, words: ArrayLike<number>): boolean {
    for (const b of this.blocks) if (b.version === version && matches(b, words)) return true;
    return false;
  }

  /** `contains`, for `networks.internal`. */
  isInternal(version: number, words: ArrayLike<number>): boolean {
    return this.contains(version, words);
  }
}

function matches(b: Block, words: ArrayLike<number>): boolean {
  let bits = b.prefix;
  for (let i = 0; i < 4 && bits > 0; i++, bits -= 32) {
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((words[i]! & mask) >>> 0) !== ((b.words[i]! & mask) >>> 0)) return false;
  }
  return true;
}

function parseCidr(text: string, key: string): Block {
  const [address, prefixText, extra] = text.split('/');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (address === undefined || extra !== undefined) throw new ConfigError(key, `"${text}" is not an address/prefix`);
  const v6 = address.includes(':');
  const max = v6 ? 128 : 32;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new ConfigError(key, `"${text}": the prefix must be 0..${max}`);
  const words = v6 ? parseIPv6(address) : parseIPv4(address);
  if (words === null) throw new ConfigError(key, `"${text}": "${address}" is not an IPv${v6 ? 6 : 4} address`);
  return { version: v6 ? 6 : 4, words, prefix };
}

export function parseIPv4(text: string): Uint32Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let w = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    w = w * 256 + Number(p);
  }
  return Uint32Array.of(w, 0, 0, 0);
}

export function parseIPv6(text: string): Uint32Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const group = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = group(halves[0]!);
  const tail = halves.length === 2 ? group(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || fill < 0) return null;
  const g = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const words = new Uint32Array(4);
  for (let i = 0; i < 4; i++) words[i] = ((g[i * 2]! << 16) | g[i * 2 + 1]!) >>> 0;
  return words;
}
