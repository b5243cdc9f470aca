/**
 * The `pcap-analyzer` command line, above both the agent and the collector
 * (it starts either; `analyze` loads neither NATS nor the collector). Exit codes: 0 success, 2 bad input or
 * usage (one line on stderr, no stack trace), 1 an internal error.
 */
import { once } from 'node:events';
import { createWriteStream, openSync, readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { dump as dumpYaml } from 'js-yaml';
import { maskSecrets, resolveConfig, type Config, type ConfigSources } from '../common/config.js';
import { UsageError, isUserError } from '../common/errors.js';
import { reportJsonChunks, type Finding, type Report, type WindowSummary } from '../common/report.js';
import { SpillList, analyzeCaptureInThread, memoryPlan, type WindowOutput } from '../agent/index.js';

const USAGE = `Usage: pcap-analyzer <command> [options]

Commands:
  analyze FILE        Analyze a capture (pcap, pcapng, optionally gzip; "-" reads stdin)
      --format F      text (default), json, csv (flows, windows, findings tables)
                      or html (one self-contained page with charts)
      --out PATH      write the report to PATH instead of stdout
      --config PATH   configuration file (YAML; see config.yaml for every key)
      --no-progress   never draw the progress bar

  agent               Run the sensor: capture or replay, analyze in windows,
                      publish windows and findings to NATS JetStream
      --config PATH   configuration file (every key also from PCAP_ANALYZER_*)
      --interface NAME  capture live from NAME (or "any"); needs CAP_NET_RAW
      --bpf EXPR      capture filter (tcpdump syntax)
      --replay PATH   replay a capture file or a directory of them
      --speed S       replay pacing: top (default), realtime or N x original
      --loop          replay again and again (each pass shifted in time)
      --sensor ID     sensor id (default: the host name)
      --nats URL      NATS server(s), comma-separated
      --listen H:P    /metrics, /healthz, /readyz (default 127.0.0.1:9465)
      --data-dir DIR  spool directory parent (default ./data, env DATA_DIR)

  collector           Ingest what agents publish, store it (SQLite or PostgreSQL),
                      serve the API, web pages, uploads and /metrics
      --config PATH   configuration file (every key also from PCAP_ANALYZER_*)
      --nats URL      NATS server(s), comma-separated
      --listen H:P    API and pages (default 127.0.0.1:8000)
      --data-dir DIR  SQLite database and uploads (default ./data, env DATA_DIR)
      --database-url URL  PostgreSQL instead of SQLite (env DATABASE_URL)

  config              Print the effective configuration (secrets masked)
      --config PATH   configuration file; flags of "agent" also apply

  --help, -h          show this help
  --version           print the version
`;

const FORMATS = ['text', 'json', 'csv', 'html'] as const;
type Format = (typeof FORMATS)[number];

/** Windows kept in memory before the JSON report's windows go to a temporary file (about half an hour of 10 s windows). */
const SPILL_AFTER = 200;

/** Inputs smaller than this finish too fast for a progress bar to help. */
const PROGRESS_MIN_BYTES = 64 * 1024 * 1024;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function parse(argv: string[]): ReturnType<typeof parseArgs> {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        format: { type: 'string' },
        out: { type: 'string' },
        config: { type: 'string' },
        'no-progress': { type: 'boolean' },
        interface: { type: 'string' },
        bpf: { type: 'string' },
        replay: { type: 'string' },
        speed: { type: 'string' },
        loop: { type: 'boolean' },
        sensor: { type: 'string' },
        nats: { type: 'string' },
        listen: { type: 'string' },
        'data-dir': { type: 'string' },
        'database-url': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
}

function progressBar(path: string): ((fraction: number) => void) | undefined {
  if (!process.stderr.isTTY || path === '-') return undefined;
  let size = 0;
  try { size = statSync(path).size; } catch { return undefined; }
  if (size < PROGRESS_MIN_BYTES) return undefined;
  let lastDraw = 0;
  return (fraction) => {
    const now = Date.now();
    if (now - lastDraw < 200 && fraction < 1) return;
    lastDraw = now;
    const width = 30;
    const filled = Math.round(fraction * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`);
  };
}

/** Colours in the text report: only on a terminal, and never when NO_COLOR is set (no-color.org: any non-empty value). */
function textColor(out: string | undefined): boolean {
  return out === undefined && process.stdout.isTTY === true && !process.env['NO_COLOR'];
}

/** Writes text pieces to stdout or a file, waiting for the stream to drain so memory stays bounded. */
async function writeOutput(pieces: Iterable<string>, out: string | undefined): Promise<void> {
  let stream: NodeJS.WritableStream = process.stdout;
  if (out !== undefined) {
    try {
      stream = createWriteStream(out, { fd: openSync(out, 'w') });
    } catch (err) {
      throw new UsageError(`cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const failed = new Promise<never>((_, reject) => {
    stream.once('error', (err: NodeJS.ErrnoException) => reject(out === undefined ? err
      : new UsageError(`cannot write ${out}: ${err.code ?? err.message}`)));
  });
  failed.catch(() => { /* raced below */ });
  const write = async (piece: string): Promise<void> => {
    if (!stream.write(piece)) await Promise.race([once(stream, 'drain'), failed]);
  };
  for (const piece of pieces) await write(piece);
  if (out !== undefined) {
    await Promise.race([new Promise<void>((resolve) => stream.end(resolve)), failed]);
  } else {
    await Promise.race([new Promise<void>((resolve) => process.stdout.write('', () => resolve())), failed]);
  }
}

async function analyzeCommand(args: ReturnType<typeof parseArgs>): Promise<number> {
  const [, file, extra] = args.positionals;
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (file === undefined) throw new UsageError('analyze needs a capture file (or - for stdin)');
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  const requested = (args.values.format ?? 'text') as string;
  if (!FORMATS.includes(requested as Format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, not "${requested}"`);
  const format = requested as Format;
  const config = resolveConfig({ path: args.values.config as string | undefined, env: process.env });
  const draw = args.values['no-progress'] ? undefined : progressBar(file);
  // JSON is written piece by piece: windows and findings past a few thousand go to a temporary
  // file, so a capture spanning days does not hold them all. CSV and HTML are built in memory.
  const windows = new SpillList<WindowSummary>(SPILL_AFTER);
  const findings = new SpillList<Finding>(SPILL_AFTER * 4);
  try {
    const onWindow = (out: WindowOutput): void => { windows.push(out.summary); for (const f of out.findings) findings.push(f); };
    const { report, warnings } = await analyzeCaptureInThread(file, config, {
      ...(draw ? { onProgress: draw } : {}),
      ...(format === 'json' ? { onWindow } : {}),
    });
    if (draw) process.stderr.write('\r\x1b[K');
    for (const w of warnings) process.stderr.write(`pcap-analyzer: warning: ${w}\n`);
    const pieces = format === 'json' ? reportJsonChunks(report, { windows, findings })
      : [await render(format, report, textColor(args.values.out as string | undefined))];
    await writeOutput(pieces, args.values.out as string | undefined);
  } finally {
    windows.dispose();
    findings.dispose();
  }
  return 0;
}

/** The report as one text, csv or html document (each renderer loaded only when asked for). */
async function render(format: Exclude<Format, 'json'>, report: Report, color: boolean): Promise<string> {
  switch (format) {
    case 'csv': return (await import('../common/report-csv.js')).renderCsv(report);
    case 'html': return (await import('../common/report-html.js')).renderHtml(report);
    case 'text': return (await import('../common/report-text.js')).renderText(report, { color });
  }
}

/** Command-line flags as config key overrides (flags win over the file and the environment). */
function flagOverrides(values: ReturnType<typeof parseArgs>['values'], command: string): Record<string, unknown> {
  const str = (name: string): string | undefined => values[name] as string | undefined;
  const nats = str('nats');
  if (command === 'collector') {
    return {
      'nats.servers': nats === undefined ? undefined : nats.split(',').map((s) => s.trim()).filter(Boolean),
      'collector.listen': str('listen'),
      'collector.databaseUrl': str('database-url'),
      dataDir: str('data-dir'),
    };
  }
  return {
    'capture.interface': str('interface'),
    'capture.bpf': str('bpf'),
    'capture.replay': str('replay'),
    'capture.speed': str('speed'),
    'capture.loop': values['loop'] ? true : undefined,
    'sensor.id': str('sensor'),
    'nats.servers': nats === undefined ? undefined : nats.split(',').map((s) => s.trim()).filter(Boolean),
    'http.listen': str('listen'),
    dataDir: str('data-dir'),
  };
}

function configSources(args: ReturnType<typeof parseArgs>): ConfigSources {
  return { path: args.values.config as string | undefined, env: process.env, overrides: flagOverrides(args.values, args.positionals[0] ?? '') };
}

async function agentCommand(args: ReturnType<typeof parseArgs>): Promise<number> {
  if (args.positionals.length > 1) throw new UsageError(`unexpected argument "${args.positionals[1]}"`);
  const { runAgent } = await import('../agent/sensor/agent.js'); // analyze never loads NATS or prom-client
  return runAgent({ sources: configSources(args), version: version() });
}

async function collectorCommand(args: ReturnType<typeof parseArgs>): Promise<number> {
  if (args.positionals.length > 1) throw new UsageError(`unexpected argument "${args.positionals[1]}"`);
  const { runCollector } = await import('../collector/main.js');
  return runCollector({ sources: configSources(args), version: version() });
}

async function configCommand(args: ReturnType<typeof parseArgs>): Promise<number> {
  if (args.positionals.length > 1) throw new UsageError(`unexpected argument "${args.positionals[1]}"`);
  const config = resolveConfig(configSources(args));
  process.stdout.write(dumpYaml(maskSecrets(config), { lineWidth: 120 }));
  process.stdout.write(await memoryPlanText(config));
  return 0;
}

/** The tables the analysis preallocates with this configuration, as YAML comments. */
async function memoryPlanText(config: Config): Promise<string> {
  const lines = await memoryPlan(config);
  const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`.padStart(10);
  const total = lines.filter((l) => !l.component.startsWith(' ')).reduce((sum, l) => sum + l.bytes, 0);
  const out = [`# Preallocated at start with this configuration (memory.budgetMB ${config.memory.budgetMB}):`];
  for (const l of lines) {
    const capacity = l.capacity ? `${l.capacity.toLocaleString('en-US')} ${l.component === 'flow table' ? 'flows' : 'keys'}` : '';
    out.push(`#   ${l.component.padEnd(44)} ${capacity.padStart(16)} ${mb(l.bytes)}`);
  }
  out.push(`#   ${'total'.padEnd(44)} ${''.padStart(16)} ${mb(total)}`);
  out.push('# Plus Node itself (heaps and code of both agent threads): about 85 MB. The agent makes the',
    '# tables resident at start, so its memory is flat from the first minute; analyze as it uses them.');
  return `${out.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (args.values.version) { process.stdout.write(`${version()}\n`); return 0; }
  const command = args.positionals[0];
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
  if (args.values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- an index, key or regex group can be undefined at run time; the type says it cannot (noUncheckedIndexedAccess is off)
    return command === undefined && !args.values.help ? 2 : 0;
  }
  switch (command) {
    case 'analyze': return analyzeCommand(args);
    case 'agent': return agentCommand(args);
    case 'collector': return collectorCommand(args);
    case 'config': return configCommand(args);
    default: throw new UsageError(`unknown command "${command}" (try --help)`);
  }
}

export function run(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0); // reader went away (| head): not an error
  });
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      if (isUserError(err)) {
        process.stderr.write(`pcap-analyzer: ${err.message}\n`);
        process.exitCode = 2;
      } else {
        process.stderr.write(`pcap-analyzer: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
        process.exitCode = 1;
      }
    },
  );
}
