/**
 * One configuration schema: the defaults below are the documented values in
 * config.yaml (a test keeps the two equal), `loadConfig` validates a YAML file
 * against them (unknown keys and wrong types are errors naming the key path)
 * and returns a frozen object.
 */
import { readFileSync } from 'node:fs';
import { load as loadYaml } from 'js-yaml';
import { ConfigError, closest, fsReason } from './errors.js';
import { Networks } from './networks.js';

export interface FlowTimeouts {
  /** TCP flow that has not completed its handshake (SYN seen, no answer). */
  tcpHandshake: number;
  /** TCP flow with a completed handshake, or whose handshake was not captured. */
  tcpEstablished: number;
  /** TCP flow after FIN from both sides or a RST. */
  tcpClosed: number;
  udp: number;
  icmp: number;
  other: number;
}

/** Every analyzer has `enabled`. Durations are in seconds of packet time, sizes in bytes, rates in percent. */
/**
 * What an operator vouches for (jump hosts, monitoring scanners, backup
 * services): a security detector does not track traffic that involves a
 * listed host or port (see agent/analyzers/lib/allow-list.ts).
 */
export interface DetectorAllowList {
  /** CIDR blocks or single addresses, IPv4 or IPv6. */
  allowHosts: string[];
  /** Ports (the service port of the behaviour). */
  allowPorts: number[];
}

export interface AnalyzersConfig {
  /** TCP sequence analysis (Wireshark's tcp.analysis.*). */
  tcp: {
    enabled: boolean;
    /** Segments awaiting an ACK, tracked at once over all flows (Wireshark keeps up to 10,000 per direction). */
    maxUnackedSegments: number;
    /** Retransmissions per window for an info, warning, critical finding. */
    retransmissionCount: number[];
    /** Retransmission rate (% of data segments) for an info, warning, critical finding. */
    retransmissionRate: number[];
  };
  handshake: {
    enabled: boolean;
    /** SYN to SYN/ACK delay above which the server side is slow. */
    synAckDelay: number;
    /** SYN to handshake ACK delay above which the handshake is slow. */
    totalDelay: number;
    /** A SYN retransmitted after this long means the first SYN got no answer in time. */
    synRetransmission: number;
  };
  rtt: { enabled: boolean; warning: number; critical: number };
  tcp_window: {
    enabled: boolean;
    /** Advertised window (after scaling) below this is "low". */
    lowWindow: number;
    /** A zero window lasting longer than this is reported. */
    zeroWindowPeriod: number;
  };
  resets: {
    enabled: boolean;
    /** A TCP flow idle this long at the end of input is a zombie. */
    zombieIdle: number;
  };
  dns: {
    enabled: boolean;
    /** Response times above these are warnings and critical. */
    warning: number;
    critical: number;
    /** A query unanswered this long is a timeout. */
    timeout: number;
    /** Queries awaiting an answer, at most (oldest dropped and counted past it). */
    maxPending: number;
  };
  http: {
    enabled: boolean;
    /** Bytes of one header block that spans segments, at most (one pool buffer). */
    maxHeaderBytes: number;
    /** Header buffers in the pool shared by all flows (directions waiting for the rest of a header block). */
    headerBuffers: number;
    /** Requests awaiting their response per flow (pipelining); further ones are counted, not timed. */
    maxPipelined: number;
    /** Hosts tracked at once (least recently used forgotten first, counted). */
    maxHosts: number;
    /** Hosts listed per window. */
    topHosts: number;
    /** 5xx responses from one host in a window for an http_errors finding. */
    errorBurst: number;
    /** An http_slow finding when this percentile of a host's response times (request to first response byte) is over slowThreshold seconds... */
    slowPercentile: number;
    slowThreshold: number;
    /** ...with at least this many timed responses in the window. */
    slowMinResponses: number;
  };
  icmp: { enabled: boolean };
  ip_fragments: { enabled: boolean };
  jitter: {
    enabled: boolean;
    /** A UDP flow silent this long starts a new session. */
    sessionGap: number;
    /** RFC 3550 interarrival jitter above these is a warning / critical. */
    warning: number;
    critical: number;
    /** Packets a flow needs in a window before its jitter is judged. */
    minPackets: number;
  };
  bursts: {
    enabled: boolean;
    /** Bucket size in milliseconds. */
    bucketMs: number;
    /** A bucket with this many times the window's average packets per bucket is a burst. */
    factor: number;
  };
  throughput: { enabled: boolean; /** Flows listed per window. */ topFlows: number };
  talkers: { enabled: boolean; /** Hosts and pairs listed per window. */ top: number; /** Hosts tracked per window at most. */ maxHosts: number };
  protocols: { enabled: boolean };
  asymmetry: {
    enabled: boolean;
    /** Packets a flow needs before it can be called one-way. */
    minPackets: number;
  };
  capture: {
    enabled: boolean;
    /** Silence longer than this between packets is a capture gap. */
    gapSeconds: number;
  };
  sack: { enabled: boolean };
  tls: {
    enabled: boolean;
    /** Hellos split across records or segments reassembled at once (a fixed pool; past it, counted in dropped.reassemblyDropped). */
    maxReassemblies: number;
    /** Largest hello message reassembled, in bytes (larger: counted in dropped.helloTooLarge). */
    maxHelloBytes: number;
    /** Server names and servers with findings counted per window, at most (the rest counted in dropped). */
    maxServerNames: number;
    /** Distinct JA3 / JA3S / JA4 fingerprints whose text is kept (the rest counted in dropped.fingerprints). */
    maxFingerprints: number;
  };
  /** Per-VLAN and per-interface sub-totals in every window. */
  dimensions: {
    enabled: boolean;
    /** Distinct values (VLAN ids, interfaces) kept per dimension per window; the rest go into "other", counted. */
    maxValues: number;
  };
  services: {
    enabled: boolean;
    /** Distinct server names kept for flows at once (names only ended flows hold are reclaimed, least recently released first). */
    maxNames: number;
    /** (client, answered address) pairs from DNS answers remembered at once (least recently answered evicted, counted). */
    maxAddresses: number;
    /** Seconds a DNS answer names flows to its address at most (its TTL, at least 60 s, capped by this). */
    dnsMaxAge: number;
  };
  health: { enabled: boolean };
  // Security detectors: each keeps its look-back (seconds of packet time) in bounded
  // structures (at most maxKeys tracked keys, evictions counted) and re-reports the
  // same ongoing behaviour at most once per suppressFor seconds.
  port_scan: DetectorAllowList & {
    enabled: boolean; lookback: number; suppressFor: number; maxKeys: number;
    /** Distinct ports probed on one host (vertical scan). */
    minPorts: number;
    /** Distinct hosts probed on one port (horizontal scan). */
    minHosts: number;
    /** Share of probes that failed (no answer, RST, ICMP unreachable). */
    minFailureRatio: number;
    /** Distinct ports probed on one host for a small scan (reported at low severity), with the same failure ratio; 0 turns it off. */
    minPortsSmall: number;
  };
  brute_force: DetectorAllowList & {
    enabled: boolean; lookback: number; suppressFor: number; maxKeys: number;
    /** Authentication services watched. */
    ports: number[];
    /** Connections from one source to one service within the look-back. */
    minAttempts: number;
    /** Share of those that failed or were short-lived. */
    minFailureRatio: number;
    /** A connection shorter than this (seconds) is short-lived. */
    shortLived: number;
    /** Complete login-sized sessions from one client to one service within the look-back (the sessions rule). */
    minSessions: number;
    /** Those sessions per minute at least (their density: a check every minute is 1). */
    minSessionRate: number;
    /** A complete session longer than this (seconds, SYN to end) is not login-sized (an interactive session). */
    maxSessionSeconds: number;
    /** A complete session with more frame bytes (both directions) is not login-sized (a transfer). */
    maxSessionBytes: number;
    /** Coefficient of variation of the sessions' bytes at most (guesses repeat one exchange). */
    maxSizeCv: number;
    /** Coefficient of variation of the sessions' durations at most. */
    maxDurationCv: number;
  };
  flood: DetectorAllowList & {
    enabled: boolean; lookback: number; suppressFor: number; maxKeys: number;
    /** SYNs per second to one destination, with at least halfOpenRatio never completed. */
    synRate: number;
    halfOpenRatio: number;
    /** UDP and ICMP packets per second to one destination. */
    udpRate: number;
    icmpRate: number;
  };
  beaconing: DetectorAllowList & {
    enabled: boolean; lookback: number; suppressFor: number; maxKeys: number;
    /** Connections (or packet bursts) needed to judge regularity. */
    minEvents: number;
    /** Coefficient of variation of intervals and of sizes at most this. */
    maxIntervalCv: number;
    maxSizeCv: number;
    /** Destination ports of ordinary periodic services, ignored. */
    ignorePorts: number[];
    /** Periods (seconds) of ordinary monitoring (health checks, NTP, scrapes), ignored within 5 %. */
    ignorePeriods: number[];
  };
  dns_tunneling: Pick<DetectorAllowList, 'allowHosts'> & {
    enabled: boolean; lookback: number; suppressFor: number; maxKeys: number;
    /** Queries from one client under one registered domain within the look-back. */
    minQueries: number;
    minUniqueSubdomains: number;
    /** Mean label length and Shannon entropy (bits per character) of the subdomains. */
    minLabelLength: number;
    minEntropy: number;
    /** Share of the queries with an unusual record type (TXT, NULL, CNAME, MX, ANY, private use) that is a shape signal. */
    minUnusualTypeShare: number;
    /** Per client, whatever the parent domain: a label this long at least can be an encoded one (hex, base32, base64). */
    minEncodedLabelLength: number;
    /** Per client: queries with encoded labels within the look-back, and the share of them that are distinct names. */
    minClientQueries: number;
    minDistinctRatio: number;
    /** Domains never flagged (suffix match). */
    allowSuffixes: string[];
    /** Suffixes whose NXDOMAINs are normal (Kubernetes search paths). */
    nxdomainNormalSuffixes: string[];
  };
  exfiltration: DetectorAllowList & {
    enabled: boolean; lookback: number; suppressFor: number; maxKeys: number;
    /** Bytes sent by one internal host to one external host within the look-back. */
    minBytes: number;
    /** Sent / received at least this. */
    minRatio: number;
    /** Destination ports considered ordinary; others make the finding more severe. */
    commonPorts: number[];
  };
  lateral_movement: DetectorAllowList & {
    enabled: boolean; lookback: number; suppressFor: number; maxKeys: number;
    /** Administrative ports watched. */
    ports: number[];
    /** Distinct internal hosts reached on them by one internal host. */
    minHosts: number;
  };
}

export interface NetworksConfig {
  /** CIDR blocks of the internal network (RFC 1918 and ULA by default). */
  internal: string[];
  /** Analyze traffic to and from 127.0.0.0/8 and ::1 in the security detectors. */
  includeLoopback: boolean;
}

export interface Config {
  input: {
    /** Stop with an error when a compressed capture inflates past this many bytes. */
    maxDecompressedBytes: number;
    /** Stop with an error when decompressed/compressed bytes exceeds this ratio (checked past 64 MiB). */
    maxCompressionRatio: number;
    /** Largest pcapng block accepted, in bytes; larger lengths are treated as corruption. */
    maxBlockBytes: number;
  };
  memory: {
    /**
     * What the analysis may use in all, in MB: the detectors' tables are sized
     * from it at start (`pcap-analyzer config` prints their capacities).
     */
    budgetMB: number;
  };
  flows: {
    /** Hard cap on live flows; when full, the least recently active flow is evicted and counted. */
    maxFlows: number;
    /** Idle timeouts in seconds of packet time. */
    timeouts: FlowTimeouts;
    /**
     * TCP and UDP conversations remembered after their flow ended idle or evicted (80 bytes each), so the same
     * addresses and ports resuming keep their tcp.stream / udp.stream number as in Wireshark; past it the oldest
     * are forgotten and counted (report: capture.conversationsForgotten).
     */
    endedConversations: number;
    /** Pending IP datagrams being reassembled at once (IPv4 and IPv6 fragments). */
    maxFragmentDatagrams: number;
    /** Seconds of packet time after which an incomplete datagram is dropped. */
    fragmentTimeout: number;
  };
  report: {
    /** Number of flows listed in the report (largest by bytes). */
    topFlows: number;
    /** Findings of one type listed per window; more are counted in the window's findingsSuppressed. */
    maxFindingsPerType: number;
  };
  pipeline: {
    /** Analysis threads: "auto" (cores - 1, at least 1) or a whole number 1..64 (shard/resolveWorkers). */
    workers: string;
  };
  windows: {
    /** Length of a tumbling window, in seconds of packet time. */
    seconds: number;
    /** Live capture: with no traffic, a window is closed this long after its end by wall time. */
    graceSeconds: number;
  };
  analyzers: AnalyzersConfig;
  networks: NetworksConfig;
  logging: {
    level: string;
    /** Replace IP and MAC addresses in log lines. */
    redact: boolean;
  };
  /** Where the agent keeps its spool and the collector its database (env DATA_DIR). */
  dataDir: string;
  sensor: {
    /** Names this sensor in subjects and messages; empty means the host name. */
    id: string;
  };
  capture: CaptureConfig;
  nats: NatsConfig;
  spool: SpoolConfig;
  status: {
    /** Heartbeat (status message) interval in wall-clock seconds. */
    seconds: number;
  };
  shutdown: {
    /** On SIGTERM/SIGINT, wait this long for acknowledgements before spooling the rest. */
    seconds: number;
  };
  http: {
    /** HOST:PORT of /metrics, /healthz and /readyz; empty disables it. */
    listen: string;
  };
  collector: CollectorConfig;
}

export interface CollectorConfig {
  /** HOST:PORT of the API, web pages and /metrics. */
  listen: string;
  /** Durable JetStream consumer shared by the collectors of one database. */
  consumer: string;
  /** At most this many messages are committed in one transaction. */
  batchSize: number;
  /** At most this many message bytes are committed in one transaction (and fetched ahead). */
  batchBytes: number;
  /** A message larger than this is rejected (terminated and counted) unread. */
  maxMessageBytes: number;
  /** Sensors' times (heartbeats, windows) later than now plus this are clamped to it. */
  clockSkewSeconds: number;
  /** Sensors with their own series in /metrics; more share `sensor="_other"`. */
  maxSensorSeries: number;
  /** A fetched message not acknowledged within this is redelivered (a collector died mid-batch). */
  ackWaitSeconds: number;
  /** PostgreSQL URL (env DATABASE_URL); empty means SQLite at <dataDir>/pcap_analyzer.db. */
  databaseUrl: string;
  /** Bearer token for /api/* and the pages (env API_TOKEN, or a file named by API_TOKEN_FILE); empty disables auth. */
  apiToken: string;
  apiTokenFile: string;
  /** Serve without a token on a non-loopback address (refused at start unless set; warned at every start). */
  allowAnonymous: boolean;
  /** A login session (browser cookie) ends this long after the login; logout ends it at once. */
  sessionTtlHours: number;
  /** Failed logins and bearer tokens per client per minute; more get 429 with Retry-After. */
  authFailuresPerMinute: number;
  /** Largest upload in MiB (env MAX_UPLOAD_SIZE_MB). */
  maxUploadSizeMB: number;
  /** Analyses queued or running at once; more get 503 (env MAX_QUEUE_SIZE). */
  maxQueueSize: number;
  /** Uploads and their reports are removed after this many hours (env REPORT_TTL_HOURS). */
  reportTtlHours: number;
  /** Uploads per client per minute; more get 429. */
  uploadsPerMinute: number;
  /** An upload still streaming after this long is cut off (408) and frees its queue slot. */
  uploadTimeoutSeconds: number;
  /** An upload sending nothing for this long is cut off (408). */
  uploadIdleSeconds: number;
  /** An analysis running longer than this is stopped and failed. */
  analysisTimeoutSeconds: number;
  /** Heap limit of the analysis process, in MiB. */
  analysisMemoryMB: number;
  /** Windows and findings older than this are removed (0 keeps them forever). */
  retentionHours: number;
  /** A sensor without a status message for this long is down. */
  sensorDownSeconds: number;
  /** Windows in one range report or window listing at most (413 / 400 beyond); an upload's report keeps this many. */
  maxReportWindows: number;
  /** Findings in one range report at most (413 beyond); an upload's report keeps this many. */
  maxReportFindings: number;
  /** Size of an upload's report file (JSON, and HTML) at most, in MiB; a larger JSON report fails the analysis. */
  maxReportMB: number;
}

export interface CaptureConfig {
  /** Live capture interface name, or "any". */
  interface: string;
  /** Replay this capture file, or every capture in this directory in name order. */
  replay: string;
  /** Capture filter (BPF, tcpdump syntax); live capture only. */
  bpf: string;
  snaplen: number;
  promiscuous: boolean;
  /** Kernel capture buffer, in MiB. */
  bufferMB: number;
  /** Replay pacing: "top" (as fast as possible), "realtime", or a multiple of the original pacing ("20"). */
  speed: string;
  /** Replay again and again, each pass shifted in time past the previous one. */
  loop: boolean;
}

export interface NatsConfig {
  servers: string[];
  /** JetStream stream holding subjects pcap.v1.>. */
  stream: string;
  /** Create or update the stream at start. */
  manageStream: boolean;
  /** Stream retention: messages older than this are removed by the server. */
  maxAgeHours: number;
  /** Messages with a Nats-Msg-Id seen within this window are dropped by the server as duplicates. */
  duplicateWindowSeconds: number;
  /** Publishes awaiting their acknowledgement at once. */
  maxInFlight: number;
  /** A publish not acknowledged within this is retried. */
  ackTimeoutSeconds: number;
  token: string;
  user: string;
  password: string;
  /** NATS credentials file (JWT + NKey seed). */
  credsFile: string;
  /**
   * Subject prefix of this client's reply inboxes (JetStream acks and deliveries). Empty
   * means `_INBOX.sensor.<sensor id>` for an agent and `_INBOX.collector` for a collector:
   * with per-sensor NATS users, each user may subscribe only below its own prefix, so no
   * client reads another's deliveries.
   */
  inboxPrefix: string;
  tls: { enabled: boolean; caFile: string; certFile: string; keyFile: string };
}

export interface SpoolConfig {
  /** Messages kept in memory while NATS is away or slow, before they go to disk. */
  memoryMessages: number;
  memoryBytes: number;
  /** Spool file under dataDir/spool, at most this many bytes; past it new messages are counted and dropped. */
  fileBytes: number;
}

export const DEFAULT_CONFIG: Config = {
  input: {
    maxDecompressedBytes: 20e9,
    maxCompressionRatio: 1000,
    maxBlockBytes: 16 * 1024 * 1024,
  },
  memory: { budgetMB: 200 },
  flows: {
    maxFlows: 65536,
    timeouts: {
      tcpHandshake: 60,
      tcpEstablished: 3600,
      tcpClosed: 120,
      udp: 120,
      icmp: 60,
      other: 120,
    },
    endedConversations: 16384,
    maxFragmentDatagrams: 4096,
    fragmentTimeout: 30,
  },
  report: {
    topFlows: 50,
    maxFindingsPerType: 5,
  },
  pipeline: { workers: '1' },
  windows: {
    seconds: 10,
    graceSeconds: 2,
  },
  analyzers: {
    tcp: { enabled: true, maxUnackedSegments: 262_144, retransmissionCount: [10, 50, 100], retransmissionRate: [1, 3, 5] },
    handshake: { enabled: true, synAckDelay: 0.1, totalDelay: 0.3, synRetransmission: 2 },
    rtt: { enabled: true, warning: 0.1, critical: 0.5 },
    tcp_window: { enabled: true, lowWindow: 8192, zeroWindowPeriod: 0.1 },
    resets: { enabled: true, zombieIdle: 300 },
    dns: { enabled: true, warning: 0.1, critical: 1, timeout: 5, maxPending: 100_000 },
    http: { enabled: true, maxHeaderBytes: 16384, headerBuffers: 256, maxPipelined: 8, maxHosts: 10_000, topHosts: 10, errorBurst: 10, slowPercentile: 90, slowThreshold: 1, slowMinResponses: 5 },
    icmp: { enabled: true },
    ip_fragments: { enabled: true },
    jitter: { enabled: true, sessionGap: 5, warning: 0.03, critical: 0.1, minPackets: 20 },
    bursts: { enabled: true, bucketMs: 100, factor: 5 },
    throughput: { enabled: true, topFlows: 10 },
    talkers: { enabled: true, top: 10, maxHosts: 100_000 },
    protocols: { enabled: true },
    asymmetry: { enabled: true, minPackets: 10 },
    capture: { enabled: true, gapSeconds: 1 },
    sack: { enabled: true },
    tls: { enabled: true, maxReassemblies: 256, maxHelloBytes: 16384, maxServerNames: 1000, maxFingerprints: 10_000 },
    dimensions: { enabled: true, maxValues: 32 },
    services: { enabled: true, maxNames: 65_536, maxAddresses: 16_384, dnsMaxAge: 3600 },
    health: { enabled: true },
    port_scan: { enabled: true, lookback: 60, suppressFor: 600, maxKeys: 100_000, allowHosts: [], allowPorts: [], minPorts: 100, minHosts: 50, minFailureRatio: 0.8, minPortsSmall: 10 },
    brute_force: {
      enabled: true, lookback: 60, suppressFor: 600, maxKeys: 100_000, allowHosts: [], allowPorts: [], ports: [21, 22, 23, 110, 143, 445, 465, 587, 993, 995, 1433, 1521, 3306, 3389, 5432, 5900, 5985, 5986, 6379, 27017],
      minAttempts: 20, minFailureRatio: 0.5, shortLived: 5, minSessions: 10, minSessionRate: 3, maxSessionSeconds: 30, maxSessionBytes: 65536, maxSizeCv: 0.5, maxDurationCv: 0.75,
    },
    flood: { enabled: true, lookback: 10, suppressFor: 600, maxKeys: 100_000, allowHosts: [], allowPorts: [], synRate: 500, halfOpenRatio: 0.8, udpRate: 10_000, icmpRate: 1000 },
    beaconing: { enabled: true, lookback: 1200, suppressFor: 600, maxKeys: 100_000, allowHosts: [], allowPorts: [], minEvents: 10, maxIntervalCv: 0.1, maxSizeCv: 0.25, ignorePorts: [53, 123, 161, 162, 514, 5353], ignorePeriods: [5, 10, 15, 20, 30, 60, 300] },
    dns_tunneling: {
      enabled: true, lookback: 300, suppressFor: 600, maxKeys: 100_000, minQueries: 50, minUniqueSubdomains: 30, minLabelLength: 20, minEntropy: 4.5,
      minUnusualTypeShare: 0.5, minEncodedLabelLength: 16, minClientQueries: 100, minDistinctRatio: 0.8,
      allowHosts: [],
      allowSuffixes: ['amazonaws.com', 'cloudfront.net', 'akamaiedge.net', 'akamai.net', 'googleapis.com', 'gvt1.com', 'windows.net', 'azure.com', 'cloudflare.com', 'fastly.net', 'in-addr.arpa', 'ip6.arpa', 'googlevideo.com', 'akamaized.net', 'sophosxl.net', 'spamhaus.org', 'spamhaus.net', 'surbl.org', 'uribl.com', 'spamcop.net', 'barracudacentral.org', 'avqs.mcafee.com', 'avts.mcafee.com'],
      nxdomainNormalSuffixes: ['cluster.local'],
    },
    exfiltration: { enabled: true, lookback: 600, suppressFor: 600, maxKeys: 100_000, allowHosts: [], allowPorts: [], minBytes: 100_000_000, minRatio: 10, commonPorts: [22, 80, 443, 993, 995] },
    lateral_movement: { enabled: true, lookback: 300, suppressFor: 600, maxKeys: 100_000, allowHosts: [], allowPorts: [], ports: [135, 139, 445, 3389, 5985, 5986, 22], minHosts: 10 },
  },
  networks: {
    internal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
    includeLoopback: false,
  },
  logging: {
    level: 'info',
    redact: false,
  },
  dataDir: './data',
  sensor: { id: '' },
  capture: {
    interface: '',
    replay: '',
    bpf: '',
    snaplen: 262144,
    promiscuous: true,
    bufferMB: 32,
    speed: 'top',
    loop: false,
  },
  nats: {
    servers: ['nats://127.0.0.1:4222'],
    stream: 'PCAP_ANALYZER',
    manageStream: true,
    maxAgeHours: 168,
    duplicateWindowSeconds: 900,
    maxInFlight: 256,
    ackTimeoutSeconds: 5,
    token: '',
    user: '',
    password: '',
    credsFile: '',
    inboxPrefix: '',
    tls: { enabled: false, caFile: '', certFile: '', keyFile: '' },
  },
  spool: {
    memoryMessages: 10_000,
    memoryBytes: 16 * 1024 * 1024,
    fileBytes: 256 * 1024 * 1024,
  },
  status: { seconds: 10 },
  shutdown: { seconds: 10 },
  http: { listen: '127.0.0.1:9465' },
  collector: {
    listen: '127.0.0.1:8000',
    consumer: 'collector',
    batchSize: 1000,
    batchBytes: 8 * 1024 * 1024,
    maxMessageBytes: 1024 * 1024,
    clockSkewSeconds: 300,
    maxSensorSeries: 1000,
    ackWaitSeconds: 30,
    databaseUrl: '',
    apiToken: '',
    apiTokenFile: '',
    allowAnonymous: false,
    sessionTtlHours: 12,
    authFailuresPerMinute: 10,
    maxUploadSizeMB: 500,
    maxQueueSize: 5,
    reportTtlHours: 24,
    uploadsPerMinute: 5,
    uploadTimeoutSeconds: 1800,
    uploadIdleSeconds: 60,
    analysisTimeoutSeconds: 600,
    analysisMemoryMB: 1024,
    retentionHours: 720,
    sensorDownSeconds: 60,
    maxReportWindows: 100_000,
    maxReportFindings: 100_000,
    maxReportMB: 256,
  },
};

/** Keys whose values are secrets: masked when the configuration is printed, never logged. */
export const SECRET_KEYS: readonly string[] = ['nats.token', 'nats.password', 'collector.apiToken', 'collector.databaseUrl'];

/** Numeric bounds per key path: [min, max]. Every other number must be finite and >= 0. */
const NUMBER_BOUNDS: Record<string, [number, number]> = {
  'input.maxCompressionRatio': [1, 1e9],
  'input.maxBlockBytes': [65536, 1024 * 1024 * 1024],
  'memory.budgetMB': [100, 1_000_000],
  'flows.maxFlows': [16, 50_000_000],
  'flows.endedConversations': [4, 50_000_000],
  'flows.maxFragmentDatagrams': [1, 10_000_000],
  'report.topFlows': [0, 100_000],
  'report.maxFindingsPerType': [1, 1_000_000],
  'windows.seconds': [1, 86400],
  'windows.graceSeconds': [0, 3600],
  'capture.snaplen': [64, 262144],
  'capture.bufferMB': [1, 4096],
  'nats.maxAgeHours': [0, 87600],
  'nats.duplicateWindowSeconds': [1, 86400],
  'nats.maxInFlight': [1, 100_000],
  'nats.ackTimeoutSeconds': [0.1, 600],
  'spool.memoryMessages': [1, 10_000_000],
  'status.seconds': [1, 86400],
  'shutdown.seconds': [0, 3600],
  'collector.batchSize': [1, 10_000],
  'collector.batchBytes': [65536, 1024 * 1024 * 1024],
  'collector.maxMessageBytes': [1024, 64 * 1024 * 1024],
  'collector.clockSkewSeconds': [0, 86400],
  'collector.maxSensorSeries': [1, 1_000_000],
  'collector.ackWaitSeconds': [1, 3600],
  'collector.maxUploadSizeMB': [1, 1_000_000],
  'collector.maxQueueSize': [1, 1000],
  'collector.reportTtlHours': [0.001, 87600],
  'collector.uploadsPerMinute': [1, 100_000],
  'collector.analysisTimeoutSeconds': [1, 86400],
  'collector.analysisMemoryMB': [64, 65536],
  'collector.sensorDownSeconds': [1, 86400],
  'collector.sessionTtlHours': [0.001, 8760],
  'collector.authFailuresPerMinute': [1, 100_000],
  'collector.uploadTimeoutSeconds': [1, 86400],
  'collector.uploadIdleSeconds': [1, 3600],
  'collector.maxReportWindows': [1, 10_000_000],
  'collector.maxReportFindings': [1, 10_000_000],
  'collector.maxReportMB': [1, 65536],
  'analyzers.port_scan.minPortsSmall': [0, 65536],
  'analyzers.tcp.maxUnackedSegments': [0, 100_000_000],
  'analyzers.dns.maxPending': [1, 100_000_000],
  'analyzers.tls.maxReassemblies': [0, 1_000_000],
  'analyzers.tls.maxHelloBytes': [512, 1_048_576],
  'analyzers.tls.maxServerNames': [1, 10_000_000],
  'analyzers.tls.maxFingerprints': [1, 10_000_000],
  'analyzers.http.maxHeaderBytes': [256, 1024 * 1024],
  'analyzers.http.headerBuffers': [1, 1_000_000],
  'analyzers.http.maxPipelined': [1, 64],
  'analyzers.http.maxHosts': [1, 10_000_000],
  'analyzers.http.topHosts': [0, 10_000],
  'analyzers.http.errorBurst': [1, 1e9],
  'analyzers.http.slowPercentile': [1, 100],
  'analyzers.http.slowMinResponses': [1, 1e9],
  'analyzers.talkers.maxHosts': [10, 100_000_000],
  'analyzers.dimensions.maxValues': [1, 1024],
  'analyzers.services.maxNames': [1, 10_000_000],
  'analyzers.services.maxAddresses': [1, 100_000_000],
  'analyzers.services.dnsMaxAge': [60, 604_800],
  'analyzers.bursts.bucketMs': [1, 60_000],
  'analyzers.dns_tunneling.minUnusualTypeShare': [0, 1],
  'analyzers.dns_tunneling.minEncodedLabelLength': [1, 63],
  'analyzers.dns_tunneling.minClientQueries': [1, 100_000_000],
  'analyzers.dns_tunneling.minDistinctRatio': [0, 1],
  'analyzers.brute_force.minSessions': [2, 1_000_000],
  'analyzers.brute_force.minSessionRate': [0, 1_000_000],
  'analyzers.brute_force.maxSessionSeconds': [0.001, 86400],
  'analyzers.brute_force.maxSessionBytes': [0, 1e12],
  'analyzers.brute_force.maxSizeCv': [0, 100],
  'analyzers.brute_force.maxDurationCv': [0, 100],
};
/** Numbers that must be whole (counts that size tables). */
const INTEGERS = new Set(['analyzers.dimensions.maxValues']);
/** Lists that must keep their length (one value per severity). */
const FIXED_LENGTH = new Set(['analyzers.tcp.retransmissionCount', 'analyzers.tcp.retransmissionRate']);
const STRING_CHOICES: Record<string, readonly string[]> = {
  'logging.level': ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
};

/** Strings that must match a pattern: [pattern, what it means]. */
const STRING_PATTERNS: Record<string, [RegExp, string]> = {
  'capture.speed': [/^(top|realtime|\d+(\.\d+)?)$/, 'top, realtime or a number (a multiple of the original pacing)'],
  'pipeline.workers': [/^(auto|[1-9]|[1-5]\d|6[0-4])$/, 'auto or a whole number from 1 to 64'],
  'nats.inboxPrefix': [/^$|^[^\s.*>]+(\.[^\s.*>]+)*$/, 'subject tokens without wildcards or spaces (e.g. _INBOX.sensor.web1), or empty'],
  'http.listen': [/^$|^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'HOST:PORT, or empty to disable'],
  'collector.listen': [/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'HOST:PORT'],
  'collector.databaseUrl': [/^$|^postgres(ql)?:\/\//, 'a postgres:// URL, or empty for SQLite'],
  // "*" and ">" are NATS wildcards and spaces end a subject: nothing could keep them. "." is allowed (host and
  // Kubernetes node names have dots; the DaemonSet uses the node name): subjects and ids carry it as "_".
  'sensor.id': [/^[^*>\s]*$/, 'a sensor id: any characters but "*", ">" and spaces (NATS wildcards and separators), or empty for the host name'],
};

/**
 * Thresholds that rise with severity: lists (info, warning, critical) and [lower, higher] pairs
 * of keys under one parent. Reversed, a lower severity would never be reported.
 */
const ASCENDING_LISTS: readonly string[] = ['analyzers.tcp.retransmissionCount', 'analyzers.tcp.retransmissionRate'];
const ASCENDING_PAIRS: ReadonlyArray<[string, string, string]> = [
  ['analyzers.rtt', 'warning', 'critical'],
  ['analyzers.dns', 'warning', 'critical'],
  ['analyzers.jitter', 'warning', 'critical'],
];

function lookup(document: Plain, keyPath: string): unknown {
  return keyPath.split('.').reduce<unknown>((node, part) => (isPlain(node) ? node[part] : undefined), document);
}

function checkOrder(config: Plain): void {
  for (const key of ASCENDING_LISTS) {
    const values = lookup(config, key) as number[];
    for (let i = 1; i < values.length; i++) {
      if (values[i]! < values[i - 1]!) {
        throw new ConfigError(key, `[${values.join(', ')}] must not decrease (info, warning, critical thresholds); e.g. [${[...values].sort((a, b) => a - b).join(', ')}]`);
      }
    }
  }
  for (const [parent, lower, higher] of ASCENDING_PAIRS) {
    const low = lookup(config, `${parent}.${lower}`) as number;
    const high = lookup(config, `${parent}.${higher}`) as number;
    if (high < low) throw new ConfigError(`${parent}.${higher}`, `${high} is below ${parent}.${lower} (${low}); the ${higher} threshold must be at least the ${lower} one`);
  }
}

type Plain = { [key: string]: unknown };
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

function merge(defaults: Plain, user: unknown, path: string): Plain {
  if (user === undefined || user === null) return structuredClone(defaults);
  if (!isPlain(user)) throw new ConfigError(path || '(root)', `expected a mapping, got ${describe(user)}`);
  for (const key of Object.keys(user)) {
    if (!(key in defaults)) {
      const where = path ? `${path}.${key}` : key;
      throw new ConfigError(where, `unknown key (known: ${Object.keys(defaults).join(', ')})`);
    }
  }
  const out: Plain = {};
  for (const [key, dflt] of Object.entries(defaults)) {
    const where = path ? `${path}.${key}` : key;
    const given = user[key];
    if (isPlain(dflt)) { out[key] = merge(dflt, given, where); continue; }
    if (given === undefined || given === null) { out[key] = structuredClone(dflt); continue; }
    out[key] = checkLeaf(where, dflt, given);
  }
  return out;
}

function checkLeaf(key: string, dflt: unknown, given: unknown): unknown {
  if (typeof dflt === 'number') {
    if (typeof given !== 'number' || !Number.isFinite(given)) throw new ConfigError(key, `expected a number, got ${describe(given)}`);
    const [min, max] = NUMBER_BOUNDS[key] ?? [0, Number.MAX_SAFE_INTEGER];
    if (given < min || given > max) throw new ConfigError(key, `${given} is out of range [${min}, ${max}]`);
    if (INTEGERS.has(key) && !Number.isInteger(given)) throw new ConfigError(key, `expected a whole number, got ${given}`);
    return given;
  }
  if (typeof dflt === 'boolean') {
    if (typeof given !== 'boolean') throw new ConfigError(key, `expected true or false, got ${describe(given)}`);
    return given;
  }
  if (typeof dflt === 'string') {
    // A word-or-number key (capture.speed: 2, pipeline.workers: 4) written as a YAML number.
    if (typeof given === 'number' && key in STRING_PATTERNS && Number.isFinite(given)) given = String(given);
    if (typeof given !== 'string') throw new ConfigError(key, `expected a string, got ${describe(given)}`);
    const choices = STRING_CHOICES[key];
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (choices && !choices.includes(given)) throw new ConfigError(key, `"${given}" is not one of ${choices.join(', ')}`);
    const pattern = STRING_PATTERNS[key];
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    if (pattern && !pattern[0].test(given)) throw new ConfigError(key, `"${given}" is not ${pattern[1]}`);
    return given;
  }
  if (Array.isArray(dflt)) {
    if (!Array.isArray(given)) throw new ConfigError(key, `expected a list, got ${describe(given)}`);
    const itemType = listItemType(key, dflt);
    given.forEach((item, i) => {
      if (itemType === 'port' && (typeof item !== 'number' || !Number.isInteger(item) || item < 0 || item > 65535)) throw new ConfigError(`${key}[${i}]`, `expected a port number 0-65535, got ${describe(item)}`);
      if (itemType === 'cidr' && typeof item !== 'string') throw new ConfigError(`${key}[${i}]`, `expected an address or CIDR block as a string, got ${describe(item)}`);
      if (itemType === 'number' && (typeof item !== 'number' || !Number.isFinite(item) || item < 0)) throw new ConfigError(`${key}[${i}]`, `expected a number >= 0, got ${describe(item)}`);
      if (itemType === 'string' && typeof item !== 'string') throw new ConfigError(`${key}[${i}]`, `expected a string, got ${describe(item)}`);
    });
    // Parsed as the detectors will parse them: a bad block is reported here, naming its entry.
    if (itemType === 'cidr') new Networks(given as string[], key);
    if (FIXED_LENGTH.has(key) && given.length !== dflt.length) throw new ConfigError(key, `expected ${dflt.length} numbers, got ${given.length}`);
    return given;
  }
  throw new ConfigError(key, 'unsupported value');
}

/** What a list holds: its default's item type, or for the allow-lists (empty by default) from the key. */
function listItemType(key: string, dflt: readonly unknown[]): string {
  if (key.endsWith('.allowHosts')) return 'cidr';
  if (key.endsWith('.allowPorts')) return 'port';
  return typeof dflt[0];
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  return typeof v === 'object' ? 'a mapping' : String(v);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates a parsed YAML document (or nothing) against the schema. */
export function buildConfig(document: unknown): Readonly<Config> {
  const merged = merge(DEFAULT_CONFIG as unknown as Plain, document, '');
  checkOrder(merged);
  return deepFreeze(merged as unknown as Config);
}

/** Reads and validates a YAML config file; no path means the built-in defaults. */
export function loadConfig(path?: string): Readonly<Config> {
  return buildConfig(readConfigDocument(path));
}

/** The parsed YAML of a config file (undefined for no path or an empty file). */
function readConfigDocument(path: string | undefined): unknown {
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('(file)', `cannot read ${path}: ${fsReason(err)}; check the --config path`, { cause: err });
  }
  // js-yaml 5 refuses an empty document; an empty or comment-only file means "all defaults".
  if (text.split('\n').every((line) => /^\s*(#.*)?$/.test(line))) return undefined;
  try {
    return loadYaml(text);
  } catch (err) {
    const mark = (err as { mark?: { line: number; column: number } }).mark;
    const where = mark ? ` at line ${mark.line + 1}, column ${mark.column + 1}` : '';
    throw new ConfigError('(file)', `${path} is not valid YAML${where}`, { cause: err });
  }
}

/** Where a configuration comes from, lowest precedence first: defaults, file, environment, flags. */
export interface ConfigSources {
  path?: string | undefined;
  env?: Readonly<Record<string, string | undefined>>;
  /** Values by key path (e.g. `capture.replay`), from command-line flags. */
  overrides?: Readonly<Record<string, unknown>>;
}

/** Environment variables kept from the Python PCAP Analyzer, and the keys they set. */
export const LEGACY_ENV: Readonly<Record<string, string>> = {
  DATA_DIR: 'dataDir',
  LOG_LEVEL: 'logging.level',
  MAX_UPLOAD_SIZE_MB: 'collector.maxUploadSizeMB',
  MAX_QUEUE_SIZE: 'collector.maxQueueSize',
  REPORT_TTL_HOURS: 'collector.reportTtlHours',
  API_TOKEN: 'collector.apiToken',
  API_TOKEN_FILE: 'collector.apiTokenFile',
  DATABASE_URL: 'collector.databaseUrl',
};

/** `nats.maxInFlight` -> `PCAP_ANALYZER_NATS_MAX_IN_FLIGHT`. */
export function envName(keyPath: string): string {
  return `PCAP_ANALYZER_${keyPath.split('.').map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
}

/** Every leaf key path of the schema, with its default. */
function leaves(node: Plain, prefix = ''): Array<[string, unknown]> {
  return Object.entries(node).flatMap(([key, value]): Array<[string, unknown]> => {
    const path = prefix ? `${prefix}.${key}` : key;
    return isPlain(value) ? leaves(value, path) : [[path, value]];
  });
}

/** An environment string as the type of the key's default (lists: comma-separated or JSON). */
function parseEnvValue(keyPath: string, name: string, dflt: unknown, raw: string): unknown {
  const fail = (what: string): never => { throw new ConfigError(keyPath, `${name}: expected ${what}, got "${raw}"`); };
  if (typeof dflt === 'number') {
    const n = Number(raw);
    return raw.trim() === '' || !Number.isFinite(n) ? fail('a number') : n;
  }
  if (typeof dflt === 'boolean') {
    if (/^(true|1|yes)$/i.test(raw)) return true;
    if (/^(false|0|no)$/i.test(raw)) return false;
    return fail('true or false');
  }
  if (Array.isArray(dflt)) {
    if (raw.trim().startsWith('[')) {
      try { return JSON.parse(raw) as unknown; } catch { return fail('a JSON list'); }
    }
    const items = raw.split(',').map((item) => item.trim()).filter((item) => item !== '');
    const itemType = listItemType(keyPath, dflt);
    return itemType === 'number' || itemType === 'port' ? items.map(Number) : items;
  }
  return raw;
}

function setPath(document: Plain, keyPath: string, value: unknown): void {
  const parts = keyPath.split('.');
  let node = document;
  for (const part of parts.slice(0, -1)) {
    if (!isPlain(node[part])) node[part] = {};
    node = node[part] as Plain;
  }
  node[parts[parts.length - 1]!] = value;
}

/** Environment variables of the test suite, never configuration keys (see test/helpers). */
export const RESERVED_ENV_PREFIX = 'PCAP_ANALYZER_TEST_';

/** A `PCAP_ANALYZER_*` variable that names no key is a mistake, as an unknown key in the file is. */
function checkEnvNames(env: Readonly<Record<string, string | undefined>>, known: ReadonlySet<string>): void {
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('PCAP_ANALYZER_') || known.has(name) || name.startsWith(RESERVED_ENV_PREFIX)) continue;
    const guess = closest(name, known);
    throw new ConfigError(name, `no configuration key has this variable${guess ? ` (did you mean ${guess}?)` : ''}; ` +
      'every key of config.yaml is PCAP_ANALYZER_<PATH>, e.g. PCAP_ANALYZER_FLOWS_MAX_FLOWS for flows.maxFlows');
  }
}

/** The effective configuration: defaults, then the file, then `PCAP_ANALYZER_*` (and DATA_DIR, LOG_LEVEL), then flags. */
export function resolveConfig(sources: ConfigSources = {}): Readonly<Config> {
  const fromFile = readConfigDocument(sources.path);
  if (fromFile !== undefined && !isPlain(fromFile)) return buildConfig(fromFile); // reports the error
  const document: Plain = structuredClone((fromFile ?? {}) as Plain);
  const env = sources.env ?? {};
  const defaults = new Map(leaves(DEFAULT_CONFIG as unknown as Plain));
  for (const [legacy, keyPath] of Object.entries(LEGACY_ENV)) {
    const raw = env[legacy];
    if (raw !== undefined && raw !== '') setPath(document, keyPath, parseEnvValue(keyPath, legacy, defaults.get(keyPath), raw));
  }
  const known = new Set<string>();
  for (const [keyPath, dflt] of defaults) {
    const name = envName(keyPath);
    known.add(name);
    const raw = env[name];
    if (raw !== undefined) setPath(document, keyPath, parseEnvValue(keyPath, name, dflt, raw));
  }
  checkEnvNames(env, known);
  for (const [keyPath, value] of Object.entries(sources.overrides ?? {})) {
    if (value !== undefined) setPath(document, keyPath, value);
  }
  return buildConfig(document);
}

const MASK = '********';

/**
 * A URL with the password of its user part and any `password=` parameter masked; a lone user part is
 * masked too except in a PostgreSQL URL (`nats://token@host` carries a token, `postgres://user@host` a name).
 */
export function maskUrlCredentials(text: string): string {
  return text
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/?#@]*)@/i, (whole, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':');
      if (colon >= 0) return `${scheme}${userinfo.slice(0, colon)}:${MASK}@`;
      return /^postgres(ql)?:/i.test(scheme) ? whole : `${scheme}${MASK}@`;
    })
    .replace(/([?&](?:password|pass|token)=)[^&#]*/gi, `$1${MASK}`);
}

function maskUrls(node: Plain): void {
  for (const [key, value] of Object.entries(node)) {
    if (typeof value === 'string') node[key] = maskUrlCredentials(value);
    else if (Array.isArray(value)) node[key] = value.map((item: unknown) => (typeof item === 'string' ? maskUrlCredentials(item) : item));
    else if (isPlain(value)) maskUrls(value);
  }
}

/** A copy for printing: secret keys replaced by "********" (empty ones stay empty), and credentials inside URLs. */
export function maskSecrets(config: Readonly<Config>): Config {
  const copy = structuredClone(config) as unknown as Plain;
  maskUrls(copy);
  for (const keyPath of SECRET_KEYS) {
    const parts = keyPath.split('.');
    const parent = parts.slice(0, -1).reduce<Plain>((node, part) => node[part] as Plain, copy);
    const leaf = parts[parts.length - 1]!;
    if (parent[leaf] !== '') parent[leaf] = MASK;
  }
  return copy as unknown as Config;
}
