/** Number and text formatting shared by the analyzers' metrics, summaries and evidence. */
import { formatIPv4 } from '../../../common/address.js';

export { endpoint } from '../../../common/address.js';
export { duration, noun, plural } from '../../../common/wording.js';

/** Rounds to a fixed number of decimals, so JSON stays stable and free of float noise. */
const rounder = (digits: number): ((x: number) => number) => {
  const scale = 10 ** digits;
  return (x) => Math.round(x * scale) / scale;
};
export const round1 = rounder(1);
export const round2 = rounder(2);
export const round3 = rounder(3);
export const round4 = rounder(4);
export const round6 = rounder(6);
export const round9 = rounder(9);

/** Detectors key IPv4 hosts by their 32-bit word and others by text. */
export const addrName = (a: number | string): string => (typeof a === 'number' ? formatIPv4(a) : a);
