/**
 * The analyzers that see every packet of the input (Analyzer.onInputPacket),
 * and the input's clock they read: on the coordinator, fed by the reader, or
 * on worker 1 where every worker reads the file itself.
 */
import type { FrameRecord } from '../capture/frame-record.js';
import { PacketClock } from '../core/packet-clock.js';
import type { Analyzer } from '../analyzers/analyzer.js';
import { CLOCK_AHEAD, CLOCK_CONFIRMED_JUMP } from './shard-pipeline.js';

/** A feed's clock after a packet (ShardFeed): the input's time base, the clock, and its flags. */
export interface FeedClock {
  readonly timeBase: number;
  readonly now: number;
  readonly flags: number;
}

export class InputHooks {
  private readonly hooks: Array<NonNullable<Analyzer['onInputPacket']>>;
  private readonly clock = new PacketClock();

  constructor(analyzers: readonly Analyzer[]) {
    this.hooks = analyzers.flatMap((a) => (a.onInputPacket ? [a.onInputPacket.bind(a)] : []));
  }

  packet(rec: FrameRecord, feed: FeedClock): void {
    const hooks = this.hooks;
    if (hooks.length === 0) return;
    const clock = this.clock;
    clock.base = feed.timeBase;
    clock.follow(feed.now, (feed.flags & CLOCK_AHEAD) !== 0, (feed.flags & CLOCK_CONFIRMED_JUMP) !== 0);
    for (let i = 0; i < hooks.length; i++) hooks[i]!(rec, clock);
  }
}
