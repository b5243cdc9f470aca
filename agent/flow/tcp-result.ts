/** Wireshark's TCP analysis flags (packet-tcp.h bit values), as found on one packet. */
export const TcpAnalysisFlag = {
  RETRANSMISSION: 0x0001,
  LOST_PACKET: 0x0002,
  ACK_LOST_PACKET: 0x0004,
  KEEP_ALIVE: 0x0008,
  DUPLICATE_ACK: 0x0010,
  ZERO_WINDOW: 0x0020,
  ZERO_WINDOW_PROBE: 0x0040,
  ZERO_WINDOW_PROBE_ACK: 0x0080,
  KEEP_ALIVE_ACK: 0x0100,
  OUT_OF_ORDER: 0x0200,
  FAST_RETRANSMISSION: 0x0400,
  WINDOW_UPDATE: 0x0800,
  WINDOW_FULL: 0x1000,
  REUSED_PORTS: 0x2000,
  SPURIOUS_RETRANSMISSION: 0x4000,
} as const;

/** Any of the three retransmission kinds (what the filter tcp.analysis.retransmission matches). */
export const ANY_RETRANSMISSION = TcpAnalysisFlag.RETRANSMISSION | TcpAnalysisFlag.FAST_RETRANSMISSION | TcpAnalysisFlag.SPURIOUS_RETRANSMISSION;

/** The TCP analysis of the current packet, reused for every packet. */
export class TcpPacketResult {
  /** True when the packet went through sequence analysis (outer TCP, not a fragment). */
  analyzed = false;
  flags = 0;
  /** TCP payload length (tcp.len). */
  seglen = 0;
  /** True when this packet acks a segment exactly: it carries tcp.analysis.ack_rtt. */
  hasAckRtt = false;
  /** tcp.analysis.ack_rtt in seconds (negative when timestamps go backwards), or -1 when `hasAckRtt` is false. */
  ackRtt = -1;
  /** The same RTT when Karn's rule allows it (the acked segment was sent once), else -1. */
  karnRtt = -1;
  /** The receiver's advertised window in bytes after scaling (tcp.window_size), -1 when unknown. */
  windowBytes = -1;

  /**
   * Wireshark hands no retransmitted (except fast-retransmitted) or out-of-order
   * segment's payload to the application dissectors: DNS never sees it again.
   */
  get payloadRepeated(): boolean {
    return (this.flags & (TcpAnalysisFlag.RETRANSMISSION | TcpAnalysisFlag.SPURIOUS_RETRANSMISSION | TcpAnalysisFlag.OUT_OF_ORDER)) !== 0;
  }

  reset(): void {
    this.analyzed = false;
    this.flags = 0;
    this.seglen = 0;
    this.hasAckRtt = false;
    this.ackRtt = -1;
    this.karnRtt = -1;
    this.windowBytes = -1;
  }
}
