/**
 * Live capture from a network interface through libpcap, using node_pcap's
 * native binding directly: its `pcap.js` wrapper allocates an object per
 * packet; here one FrameRecord, one packet buffer and one header buffer are
 * reused for every packet.
 *
 * Polling is a timer that calls the binding's non-blocking `dispatch()`, NOT
 * the binding's `start_polling()`: that starts a uv_poll handle which the
 * binding never uv_close()s (not even once the session is finalized), and
 * Node aborts the whole process ("uv_loop_close() while having open handles")
 * when a worker thread that owns one exits. The timer also lets the event
 * loop end after close(); the binding's handle would hold it until the next
 * packet arrived.
 *
 * The binding is not context-aware: it may be loaded in one thread per
 * process only, so it is loaded on first `LiveCapture.open`, never on import.
 */
import { createRequire } from 'node:module';
import { InputError } from '../../common/errors.js';
import { FrameRecord } from './frame-record.js';
import { LinkType, linkTypeName } from './link-types.js';

export interface LiveCaptureOptions {
  /** Interface name as libpcap knows it (`eth0`, `any`, ...). */
  interface: string;
  /** BPF capture filter (pcap-filter(7)); '' captures everything. */
  bpf: string;
  /** Bytes kept of each packet, 1..262144. */
  snaplen: number;
  promiscuous: boolean;
  /** Kernel ring buffer size in MiB, 1..2047. */
  bufferMB: number;
}

/** libpcap's pcap_stats (ps_recv, ps_drop, ps_ifdrop); 32-bit counters that wrap. */
export interface LiveCaptureStats {
  /** Packets that passed the filter, including those then dropped (Linux: tp_packets). */
  received: number;
  /** Packets that passed the filter but found the ring buffer full. */
  dropped: number;
  /** Packets the interface dropped (Linux: rx_dropped delta since open). */
  ifDropped: number;
}

/** The part of node_pcap's native PcapSession this module uses (see pcap_session.cc). */
interface NativeSession {
  open_live(device: string, filter: string, bufferSize: number, snapLength: number, outfile: string,
    packetReady: () => void, isMonitor: boolean, bufferTimeout: number, warning: (msg: string) => void,
    promiscuous: boolean): string;
  /** Delivers every packet ready now; returns the last pcap_dispatch result (0, -1 error, -2 closed). */
  dispatch(buf: Buffer, header: Buffer): number;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
  /** Only pcap_breakloop: the handle is freed by the next dispatch() that sees a packet (it returns -2). */
  close(): void;
}

interface NativeBinding {
  PcapSession: new () => NativeSession;
  findalldevs(): { name: string }[];
}

let binding: NativeBinding | undefined;

/** What to do when the optional `pcap` module is not installed (npm skips it where libpcap-dev or a compiler is missing). */
export const PCAP_MISSING_MESSAGE = 'live capture needs the pcap module, which is not installed: apt-get install libpcap-dev python3 make g++ && npm install pcap (reading capture files needs neither)';

function loadBinding(): NativeBinding {
  // Lazy so importing agent/capture never loads the native module (one thread per process may),
  // and so analyze and replay work without it: `pcap` is an optional dependency.
  if (binding) return binding;
  try {
    binding = createRequire(import.meta.url)('pcap/build/Release/pcap_binding.node') as NativeBinding;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND') throw new InputError('PCAP_MISSING', PCAP_MISSING_MESSAGE, undefined, { cause: err });
    throw err;
  }
  return binding;
}

/** libpcap's "maximum" snapshot length; larger requests are clamped to it by libpcap. */
const MAX_SNAPLEN = 262144;
/**
 * pcap_set_timeout: with TPACKET_V3 the kernel hands a ring block over when it
 * is full or this old, so a quiet link still delivers within about 100 ms.
 */
const BUFFER_TIMEOUT_MS = 100;
/** How often the ring is checked; each check drains everything ready. */
const POLL_MS = 10;
/** Check rate for a closed session waiting for a packet that lets the binding free its handle. */
const RETIRE_POLL_MS = 1000;

/** Link types the binding reports that the decoder can decode. */
const LINK_TYPES: Record<string, number> = {
  LINKTYPE_ETHERNET: LinkType.ETHERNET,
  LINKTYPE_LINUX_SLL: LinkType.LINUX_SLL,
  // The binding names DLT_RAW (12 on Linux) this; LINKTYPE_RAW (101) is the same format.
  LINKTYPE_RAW: LinkType.RAW,
  LINKTYPE_NULL: LinkType.NULL,
};

const PERMISSION = /operation not permitted|permission|EPERM|EACCES/i;
const NO_DEVICE = /no such device|SIOCGIFINDEX|doesn't exist/i;

/** A native session plus the buffers dispatch() fills, and whether the binding has freed it. */
class Handle {
  /** dispatch() returned -2: the binding pcap_close()d the handle; calling it again would crash. */
  private freed = false;
  private retiring = false;

  constructor(readonly session: NativeSession, private readonly buf: Buffer, private readonly header: Buffer) {}

  dispatch(): number {
    if (this.freed) return -2;
    const r = this.session.dispatch(this.buf, this.header);
    if (r === -2) this.freed = true;
    return r;
  }

  /**
   * The binding's close() cannot free the pcap handle by itself: the handle
   * (socket and ring) is released only when a later dispatch() finds a packet
   * and returns -2. Keep checking, on an unref'd timer so a quiet link does not
   * hold the process open; the timer keeps the session referenced until then.
   */
  retire(): void {
    if (this.retiring || this.freed) return;
    this.retiring = true;
    this.session.close();
    const timer = setInterval(() => {
      // -2: freed; -1: a read error that will not go away. Either way, stop.
      if (this.dispatch() !== 0) clearInterval(timer);
    }, RETIRE_POLL_MS);
    timer.unref();
  }
}

function validate(options: LiveCaptureOptions): void {
  const bad = (what: string): never => {
    throw new InputError('capture_options', `live capture: ${what}`);
  };
  if (typeof options.interface !== 'string' || options.interface === '') bad('no interface given');
  if (!Number.isInteger(options.snaplen) || options.snaplen < 1 || options.snaplen > MAX_SNAPLEN) {
    bad(`snaplen ${options.snaplen} is not an integer in 1..${MAX_SNAPLEN}`);
  }
  // buffer_size is an int32 in bytes.
  if (!Number.isInteger(options.bufferMB) || options.bufferMB < 1 || options.bufferMB > 2047) {
    bad(`bufferMB ${options.bufferMB} is not an integer in 1..2047`);
  }
}

function interfaceList(b: NativeBinding): string {
  try {
    const names = b.findalldevs().map((d) => d.name);
    if (names.length === 0) return '';
    return ` (interfaces here: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', ...' : ''})`;
  } catch {
    return '';
  }
}

function permissionMessage(options: LiveCaptureOptions, libpcap: string): string {
  return `cannot capture on interface "${options.interface}" (${libpcap}): live capture needs CAP_NET_RAW` +
    `${options.promiscuous ? ' (and CAP_NET_ADMIN for promiscuous mode)' : ''}; run as root, grant them to node with` +
    ' `setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which node))`,' +
    ' or start the container with --cap-add NET_RAW --cap-add NET_ADMIN';
}

export class LiveCapture {
  readonly interfaceName: string;
  readonly linkType: number;
  /** Filled in place for each packet; valid only during the onPacket call. */
  readonly record = new FrameRecord();
  /** libpcap warnings from opening (e.g. no IPv4 address, so `ip broadcast` filters cannot work). */
  readonly warnings: readonly string[];

  private readonly handle: Handle;
  /** tv_sec, tv_usec, caplen, len in native byte order, as the binding writes them. */
  private readonly header32: Uint32Array;
  private onPacket: ((rec: FrameRecord) => void) | undefined;
  private onError: ((err: Error) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Set when onPacket threw inside dispatch(); the error is handled once dispatch() has returned. */
  private failed = false;
  private failure: unknown = undefined;
  private lastStats: LiveCaptureStats = { received: 0, dropped: 0, ifDropped: 0 };

  private constructor(handle: Handle, interfaceName: string, linkType: number, buf: Buffer, header: Buffer,
    warnings: string[]) {
    this.handle = handle;
    this.interfaceName = interfaceName;
    this.linkType = linkType;
    this.header32 = new Uint32Array(header.buffer, header.byteOffset, 4);
    this.warnings = warnings;
    const rec = this.record;
    rec.data = buf;
    rec.offset = 0;
    rec.linkType = linkType;
    rec.interfaceId = 0;
    rec.fileOffset = 0; // no file: live packets have no byte offset
  }

  /** Opens and activates the interface; packets queue in the kernel ring until start(). */
  static open(options: LiveCaptureOptions): LiveCapture {
    validate(options);
    const b = loadBinding();
    // Buffer.alloc (not allocUnsafe) gives each its own ArrayBuffer at offset 0, so the
    // header's Uint32Array view is aligned.
    const buf = Buffer.alloc(MAX_SNAPLEN);
    const header = Buffer.alloc(16);
    const warnings: string[] = [];
    let capture: LiveCapture | undefined;
    const onReady = (): void => capture?.deliver();
    const openLive = (session: NativeSession, filter: string, bufferMB = options.bufferMB): string =>
      session.open_live(options.interface, filter, bufferMB * 1024 * 1024, options.snaplen, '', onReady, false, BUFFER_TIMEOUT_MS,
      (msg) => warnings.push(msg), options.promiscuous);

    const session = new b.PcapSession();
    const handle = new Handle(session, buf, header);
    let linkName: string;
    try {
      linkName = openLive(session, options.bpf);
    } catch (err) {
      throw LiveCapture.openError(options, err, () => {
        // The binding compiles the filter after activating the interface and reports both
        // kinds of failure alike; opening without the filter tells them apart.
        const retry = new b.PcapSession();
        openLive(retry, '', 1);
        new Handle(retry, buf, header).retire();
        // Activated, so it holds a socket and ring that need freeing too.
        handle.retire();
      }, b);
    }
    const linkType = LINK_TYPES[linkName];
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (linkType === undefined) {
      handle.retire();
      // 'Unknown linktype N' (N is the DLT_ value) or a name the decoder cannot use.
      const n = /(\d+)$/.exec(linkName);
      const what = n ? `link type ${n[1]}${linkTypeName(Number(n[1])).startsWith('LINKTYPE_') ? '' : ` (${linkTypeName(Number(n[1]))})`}`
        : `link type ${linkName.replace(/^LINKTYPE_/, '')}`;
      throw new InputError('capture_link_type',
        `cannot capture on interface "${options.interface}": its ${what} is not supported` +
        ' (supported: Ethernet, Linux cooked (SLL), raw IP, BSD loopback)');
    }
    capture = new LiveCapture(handle, options.interface, linkType, buf, header, warnings);
    return capture;
  }

  /**
   * Turns the binding's plain Error into a one-line user error that says what to do.
   * `openWithoutFilter` throws when the interface cannot be opened even without the filter.
   */
  private static openError(options: LiveCaptureOptions, err: unknown, openWithoutFilter: () => void,
    b: NativeBinding): InputError {
    const msg = err instanceof Error ? err.message : String(err);
    if (PERMISSION.test(msg)) return new InputError('capture_permission', permissionMessage(options, msg), undefined, { cause: err });
    if (NO_DEVICE.test(msg)) {
      return new InputError('capture_device',
        `cannot capture on interface "${options.interface}": ${msg}${interfaceList(b)}`, undefined, { cause: err });
    }
    if (options.bpf !== '') {
      try {
        openWithoutFilter();
        return new InputError('capture_filter', `invalid capture filter "${options.bpf}": ${msg}`, undefined, { cause: err });
      } catch {
        // Fails without the filter too: the interface is the problem.
      }
    }
    return new InputError('capture_open', `cannot capture on interface "${options.interface}": ${msg}`, undefined, { cause: err });
  }

  /**
   * Starts delivering packets to `onPacket` (with `record` filled in place) from a timer.
   * A libpcap read error (e.g. the interface went away) or an exception from onPacket stops
   * the capture and goes to `onError`; without one it is thrown from the timer callback.
   */
  start(onPacket: (rec: FrameRecord) => void, onError?: (err: Error) => void): void {
    if (this.closed) throw new Error('LiveCapture.start after close');
    if (this.onPacket) throw new Error('LiveCapture.start called twice');
    this.onPacket = onPacket;
    this.onError = onError;
    this.timer = setInterval(this.poll, POLL_MS);
    // Kick off at once: packets may already wait in the ring since open().
    setImmediate(this.poll);
  }

  private readonly poll = (): void => {
    if (this.closed) return;
    const r = this.handle.dispatch();
    // onPacket may have called close(): then -2 only means the binding freed the handle.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another callback while this code waits; the narrowed type does not see it
    if (this.closed && !this.failed) return;
    if (this.failed) {
      const err = this.failure instanceof Error ? this.failure : new Error(String(this.failure));
      this.fail(err);
    } else if (r < 0) {
      // The binding drops pcap_geterr's text for dispatch errors.
      this.fail(new Error(`live capture on interface "${this.interfaceName}" failed: ` +
        `pcap_dispatch returned ${r} (interface down or removed?)`));
    }
  };

  private fail(err: Error): void {
    const onError = this.onError;
    this.close();
    if (onError) onError(err);
    else throw err;
  }

  /** Called by the binding once per packet, within dispatch(); must not allocate. */
  private deliver(): void {
    const onPacket = this.onPacket;
    if (this.closed || onPacket === undefined || this.failed) return;
    const h = this.header32;
    const rec = this.record;
    rec.tsSec = h[0];
    rec.tsNsec = h[1] * 1000;
    const cap = h[2];
    // The binding copies at most buf.length bytes (MAX_SNAPLEN >= any libpcap snaplen).
    rec.capLen = cap < MAX_SNAPLEN ? cap : MAX_SNAPLEN;
    rec.wireLen = h[3];
    rec.number++;
    try {
      onPacket(rec);
    } catch (err) {
      // Thrown inside the native dispatch it would be a fatal exception; defer it to poll().
      this.failed = true;
      this.failure = err;
    }
  }

  /**
   * Resolves once every packet the kernel had received when it was called has
   * been delivered: with TPACKET_V3 a partly filled ring block reaches libpcap
   * only when it is BUFFER_TIMEOUT_MS old, so this waits that long (and two
   * polls) while the poll timer keeps delivering. At once when closed.
   */
  async drain(): Promise<void> {
    if (this.closed || this.onPacket === undefined) return;
    await new Promise<void>((resolve) => { setTimeout(resolve, BUFFER_TIMEOUT_MS + 2 * POLL_MS); });
  }

  stats(): LiveCaptureStats {
    if (!this.closed) {
      const s = this.handle.session.stats();
      this.lastStats = { received: s.ps_recv, dropped: s.ps_drop, ifDropped: s.ps_ifdrop };
    }
    return { ...this.lastStats };
  }

  /** Stops delivery at once; stats() then returns the figures as of close. Idempotent. */
  close(): void {
    if (this.closed) return;
    try {
      this.stats();
    } catch {
      // Keep the last figures.
    }
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.handle.retire();
  }
}
