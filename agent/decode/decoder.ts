/**
 * Decodes one frame into the reused PacketView, from the link layer up.
 * Never throws on packet bytes: malformed layers are counted by name and the
 * packet keeps the layers that were valid.
 */
import { LinkType } from '../capture/link-types.js';
import type { FrameRecord } from '../capture/frame-record.js';
import { AnomalyCounters } from './anomaly.js';
import { EtherType } from './constants.js';
import type { DecodeContext } from './context.js';
import { decodeIPv4, decodeIPv6 } from './ip.js';
import { decodeEthernet, decodeNull, decodeRaw, decodeSll, decodeSll2, type LinkResult } from './link.js';
import { PacketView } from './packet-view.js';
import { Reassembler } from './reassembly.js';
import { addressPairHash } from './shard-hash.js';

export interface DecoderOptions {
  maxFragmentDatagrams: number;
  fragmentTimeout: number;
}

export class Decoder {
  readonly view = new PacketView();
  readonly anomalies = new AnomalyCounters();
  /** Frames whose link type the decoder does not know, by link type. */
  readonly undecodedLinkTypes = new Map<number, number>();
  readonly reassembler: Reassembler;
  private readonly ctx: DecodeContext;
  private readonly link: LinkResult = { etherType: 0 };
  /**
   * Whole seconds subtracted from every timestamp to give `view.ts` (set from
   * the first frame, a multiple of 10^6): small numbers keep nanosecond
   * differences exact in a double, where epoch seconds would round them to 0.2 µs.
   */
  timeBase = NaN;

  constructor(options: DecoderOptions) {
    this.reassembler = new Reassembler(options.maxFragmentDatagrams, options.fragmentTimeout, this.anomalies, addressPairHash);
    this.ctx = { view: this.view, anomalies: this.anomalies, depth: 0 };
  }

  decode(rec: FrameRecord): PacketView {
    const view = this.view;
    view.data = rec.data;
    view.frameOff = rec.offset;
    view.capLen = rec.capLen;
    view.wireLen = rec.wireLen;
    view.tsSec = rec.tsSec;
    view.tsNsec = rec.tsNsec;
    if (Number.isNaN(this.timeBase)) this.timeBase = timeBaseOf(rec.tsSec);
    view.ts = (rec.tsSec - this.timeBase) + rec.tsNsec / 1e9;
    view.linkType = rec.linkType;
    view.interfaceId = rec.interfaceId;
    view.number = rec.number;
    view.reset();
    this.ctx.depth = 0;
    const d = rec.data;
    const off = rec.offset;
    const end = off + rec.capLen;
    const link = this.link;
    let l3: number;
    switch (rec.linkType) {
      case LinkType.ETHERNET: l3 = decodeEthernet(this.ctx, d, off, end, link); break;
      case LinkType.LINUX_SLL: l3 = decodeSll(this.ctx, d, off, end, link); break;
      case LinkType.LINUX_SLL2: l3 = decodeSll2(this.ctx, d, off, end, link); break;
      case LinkType.RAW: case LinkType.RAW_BSD: case LinkType.RAW_OPENBSD: l3 = decodeRaw(d, off, end, link); break;
      case LinkType.IPV4: l3 = off; link.etherType = EtherType.IPV4; break;
      case LinkType.IPV6: l3 = off; link.etherType = EtherType.IPV6; break;
      case LinkType.NULL: l3 = decodeNull(this.ctx, d, off, end, false, link); break;
      case LinkType.LOOP: l3 = decodeNull(this.ctx, d, off, end, true, link); break;
      default:
        this.undecodedLinkTypes.set(rec.linkType, (this.undecodedLinkTypes.get(rec.linkType) ?? 0) + 1);
        return view;
    }
    if (link.etherType === EtherType.IPV4) decodeIPv4(this.ctx, this.reassembler, d, l3, end);
    else if (link.etherType === EtherType.IPV6) decodeIPv6(this.ctx, this.reassembler, d, l3, end);
    return view;
  }
}

/**
 * The time base packet times count from, given the first packet's seconds: a
 * round million seconds below it, so relative times stay exact to the
 * nanosecond in a double for years.
 */
export function timeBaseOf(firstSec: number): number {
  return Math.floor(firstSec / 1e6) * 1e6;
}
