/**
 * The `pcap-analyzer` command line, above both the agent and the collector
 * (it starts either; `analyze` loads neither NATS nor the collector). Exit codes: 0 success, 2 bad input or
 * usage (one line on stderr, no stack trace), 1 an internal error.
 */
import { once } from 'node:events';
import { createWriteStream, openSync, readFileSync, statSync } from 'node:fs';
import { dump as dumpYaml } from 'js-yaml';
import { maskSecrets, resolveConfig, type Config, type ConfigSources } from '../common/config.js';
import { UsageError, closest, fsReason, isUserError } from '../common/errors.js';
import { reportJsonChunks, type Finding, type Report, type WindowSummary } from '../common/report.js';
import { SpillList, analyzeCaptureInThread, memoryPlan, resolveWorkers, type WindowOutput } from '../agent/index.js';

const USAGE = `Usage: pcap-analyzer <command> [options]

Commands:
  analyze FILE        Analyze a capture (pcap, pcapng, optionally gzip; "-" reads stdin)
      --format F      text, json, csv (flows, windows, findings tables)
                      or html (one self-contained page with charts); default:
                      from the --out extension (.json, .csv, .html, .htm), else text
      --out PATH      write the report to PATH instead of stdout
      --config PATH   configuration file (YAML; see config.yaml for every key)
      --no-progress   never draw the progress bar
      --workers N     analysis threads: 1..64 (default 1) or auto (cores - 1) (pipeline.workers)

  agent               Run the sensor: capture or replay, analyze in windows,
                      publish windows and findings to NATS JetStream
      --config PATH   configuration file (every key also from PCAP_ANALYZER_*)
      --interface NAME  capture live from NAME (or "any"); needs CAP_NET_RAW
      --bpf EXPR      capture filter (tcpdump syntax); live capture only
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

  config [agent|collector]
                      Print the effective configuration (secrets masked) that
                      command would run with, given the same flags
      --config PATH   configuration file; the command's flags also apply
                      (without a command, both's: --listen then needs one)

  --help, -h          show this help
  --version, -v       print the version

Exit status: 0 success, 2 a problem with the command line, input, configuration
or environment (one line on stderr says what to do), 1 an internal error (a bug).
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

/** Every option of every command; `type: 'string'` ones take a value (deploy/healthcheck.mjs keeps the same list). */
const OPTIONS = {
  format: { type: 'string' },
  out: { type: 'string' },
  config: { type: 'string' },
  'no-progress': { type: 'boolean' },
  workers: { type: 'string' },
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
  help: { type: 'boolean' },
  version: { type: 'boolean' },
} as const satisfies Record<string, { type: 'string' | 'boolean' }>;

type OptionName = keyof typeof OPTIONS;
type Command = 'analyze' | 'agent' | 'collector' | 'config';

/** The options each command takes (--help and --version go with any). */
const COMMAND_OPTIONS: Readonly<Record<Command, readonly OptionName[]>> = {
  analyze: ['format', 'out', 'config', 'no-progress', 'workers'],
  agent: ['config', 'interface', 'bpf', 'replay', 'speed', 'loop', 'sensor', 'nats', 'listen', 'data-dir'],
  collector: ['config', 'nats', 'listen', 'data-dir', 'database-url'],
  // `config agent` / `config collector` take that command's; plain `config` takes both (--listen says which).
  config: ['config', 'interface', 'bpf', 'replay', 'speed', 'loop', 'sensor', 'nats', 'listen', 'data-dir', 'database-url'],
};

const HELP_HINT = 'see pcap-analyzer --help';

/** A command-line mistake: the message, then where the options are listed. */
function usage(message: string): UsageError {
  return new UsageError(`${message}; ${HELP_HINT}`);
}

export interface ParsedArgs {
  positionals: string[];
  values: Partial<Record<OptionName, string | boolean>>;
}

/**
 * The command line as positionals and options. Our own parser rather than node's parseArgs, whose
 * messages are not ours to word: a string option takes the next argument whatever it looks like
 * (`--speed -2` is then judged as a speed), unless it is another `--option`.
 */
export function parse(argv: readonly string[]): ParsedArgs {
  const parsed: ParsedArgs = { positionals: [], values: {} };
  const isOption = (name: string): name is OptionName => Object.hasOwn(OPTIONS, name);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { parsed.positionals.push(...argv.slice(i + 1)); break; }
    if (arg === '-h') { parsed.values.help = true; continue; }
    if (arg === '-v') { parsed.values.version = true; continue; }
    if (!arg.startsWith('-') || arg === '-') { parsed.positionals.push(arg); continue; }
    if (!arg.startsWith('--')) throw usage(`${arg}: unknown option (options are spelled --name, e.g. --format)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (!isOption(name)) {
      const guess = closest(name, Object.keys(OPTIONS));
      throw usage(`--${name}: unknown option${guess ? ` (did you mean --${guess}?)` : ''}`);
    }
    if (OPTIONS[name].type === 'boolean') {
      if (eq >= 0) throw usage(`--${name}: takes no value (got "${arg.slice(eq + 1)}")`);
      parsed.values[name] = true;
      continue;
    }
    if (eq >= 0) { parsed.values[name] = arg.slice(eq + 1); continue; }
    const value = argv.at(i + 1);
    if (value === undefined || value.startsWith('--')) throw usage(`--${name}: needs a value`);
    parsed.values[name] = value;
    i++;
  }
  return parsed;
}

/** Refuses options the command does not take, naming the commands that do. */
function checkOptions(args: ParsedArgs, command: Command): void {
  for (const name of Object.keys(args.values) as OptionName[]) {
    if (name === 'help' || name === 'version' || COMMAND_OPTIONS[command].includes(name)) continue;
    if (name === 'bpf' && command === 'analyze') {
      throw new UsageError('--bpf: a capture filter applies to live capture only (libpcap runs it on the interface); ' +
        "to analyze part of a capture, filter it first: tcpdump -r FILE -w - 'EXPR' | pcap-analyzer analyze -");
    }
    const owners = (Object.keys(COMMAND_OPTIONS) as Command[]).filter((c) => c !== 'config' && COMMAND_OPTIONS[c].includes(name));
    throw usage(`--${name}: not an option of ${command}${owners.length ? ` (it is one of ${owners.join(' and ')})` : ''}`);
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
  const cannotWrite = (err: unknown): UsageError => new UsageError(`--out ${out}: cannot write it: ${fsReason(err)}; give --out a file in a writable directory`);
  if (out !== undefined) {
    try {
      stream = createWriteStream(out, { fd: openSync(out, 'w') });
    } catch (err) {
      throw cannotWrite(err);
    }
  }
  const failed = new Promise<never>((_, reject) => {
    stream.once('error', (err: NodeJS.ErrnoException) => reject(out === undefined ? err : cannotWrite(err)));
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

/** The report format: --format, else what --out's extension says (.json, .csv, .html/.htm), else text. */
export function reportFormat(format: string | undefined, out: string | undefined): Format {
  if (format !== undefined) {
    if (!FORMATS.includes(format as Format)) throw usage(`--format: must be one of ${FORMATS.join(', ')}, not "${format}"`);
    return format as Format;
  }
  const extension = /\.([a-z]+)$/i.exec(out ?? '')?.[1]?.toLowerCase();
  switch (extension) {
    case 'json': return 'json';
    case 'csv': return 'csv';
    case 'html': case 'htm': return 'html';
    default: return 'text';
  }
}

const stringValue = (args: ParsedArgs, name: OptionName): string | undefined => {
  const value = args.values[name];
  return typeof value === 'string' ? value : undefined;
};

async function analyzeCommand(args: ParsedArgs): Promise<number> {
  const file = args.positionals.at(1);
  const extra = args.positionals.at(2);
  if (file === undefined) throw usage('analyze: needs a capture file (or - for standard input)');
  if (extra !== undefined) throw usage(`analyze: unexpected argument "${extra}" (one capture file at a time)`);
  const out = stringValue(args, 'out');
  const format = reportFormat(stringValue(args, 'format'), out);
  const workersFlag = stringValue(args, 'workers');
  const config = resolveConfig({ path: stringValue(args, 'config'), env: process.env, overrides: workersFlag === undefined ? {} : { 'pipeline.workers': workersFlag } });
  const { workers, note } = await resolveWorkers(config);
  if (note) process.stderr.write(`pcap-analyzer: note: ${note}\n`);
  const draw = args.values['no-progress'] ? undefined : progressBar(file);
  // JSON is written piece by piece: windows and findings past a few thousand go to a temporary
  // file, so a capture spanning days does not hold them all. CSV and HTML are built in memory.
  const windows = new SpillList<WindowSummary>(SPILL_AFTER);
  const findings = new SpillList<Finding>(SPILL_AFTER * 4);
  try {
    const onWindow = (w: WindowOutput): void => { windows.push(w.summary); for (const f of w.findings) findings.push(f); };
    const { report, warnings } = await analyzeCaptureInThread(file, config, {
      workers,
      ...(draw ? { onProgress: draw } : {}),
      ...(format === 'json' ? { onWindow } : {}),
    });
    if (draw) process.stderr.write('\r\x1b[K');
    for (const w of warnings) process.stderr.write(`pcap-analyzer: warning: ${w}\n`);
    const pieces = format === 'json' ? reportJsonChunks(report, { windows, findings })
      : [await render(format, report, textColor(out))];
    await writeOutput(pieces, out);
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

/** Which configuration key each flag sets, per command. */
const FLAG_KEYS: Readonly<Record<'agent' | 'collector', Partial<Record<OptionName, string>>>> = {
  agent: {
    interface: 'capture.interface', bpf: 'capture.bpf', replay: 'capture.replay', speed: 'capture.speed', loop: 'capture.loop',
    sensor: 'sensor.id', nats: 'nats.servers', listen: 'http.listen', 'data-dir': 'dataDir',
  },
  collector: { nats: 'nats.servers', listen: 'collector.listen', 'database-url': 'collector.databaseUrl', 'data-dir': 'dataDir' },
};

/** Command-line flags as config key overrides (flags win over the file and the environment). */
function flagOverrides(args: ParsedArgs, commands: ReadonlyArray<'agent' | 'collector'>): Record<string, unknown> {
  const overrides: Record<string, unknown> = {};
  for (const command of commands) {
    for (const [flag, key] of Object.entries(FLAG_KEYS[command]) as Array<[OptionName, string]>) {
      const value = args.values[flag];
      if (value === undefined) continue;
      overrides[key] = flag === 'nats' ? String(value).split(',').map((s) => s.trim()).filter(Boolean) : value;
    }
  }
  return overrides;
}

function configSources(args: ParsedArgs, commands: ReadonlyArray<'agent' | 'collector'>): ConfigSources {
  return { path: stringValue(args, 'config'), env: process.env, overrides: flagOverrides(args, commands) };
}

function noMoreArguments(args: ParsedArgs, command: string, from: number): void {
  const extra = args.positionals.at(from);
  if (extra !== undefined) throw usage(`${command}: unexpected argument "${extra}"`);
}

async function agentCommand(args: ParsedArgs): Promise<number> {
  noMoreArguments(args, 'agent', 1);
  const { runAgent } = await import('../agent/sensor/agent.js'); // analyze never loads NATS or prom-client
  return runAgent({ sources: configSources(args, ['agent']), version: version() });
}

async function collectorCommand(args: ParsedArgs): Promise<number> {
  noMoreArguments(args, 'collector', 1);
  const { runCollector } = await import('../collector/main.js');
  return runCollector({ sources: configSources(args, ['collector']), version: version() });
}

/** `config [agent|collector]`: the configuration that command would run with, given the same flags. */
async function configCommand(args: ParsedArgs): Promise<number> {
  const which = args.positionals.at(1);
  noMoreArguments(args, 'config', 2);
  if (which !== undefined && which !== 'agent' && which !== 'collector') throw usage(`config: "${which}" is not agent or collector`);
  if (which !== undefined) checkOptions(args, which);
  else if (args.values.listen !== undefined) {
    throw usage('config: --listen sets http.listen for agent and collector.listen for collector; say which: pcap-analyzer config agent --listen H:P, or config collector --listen H:P');
  }
  const config = resolveConfig(configSources(args, which === undefined ? ['agent', 'collector'] : [which]));
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
    const capacity = l.capacity ? `${l.capacity.toLocaleString('en-US')} ${l.entries}` : '';
    out.push(`#   ${l.component.padEnd(44)} ${capacity.padStart(20)} ${mb(l.bytes)}`);
  }
  out.push(`#   ${'total'.padEnd(44)} ${''.padStart(20)} ${mb(total)}`);
  out.push('# Plus Node itself (heaps and code of both agent threads): about 85 MB. The agent makes the',
    '# tables resident at start, so its memory is flat from the first minute; analyze as it uses them.');
  return `${out.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (args.values.version) { process.stdout.write(`${version()}\n`); return 0; }
  const command = args.positionals.at(0);
  if (args.values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined && !args.values.help ? 2 : 0;
  }
  if (!Object.hasOwn(COMMAND_OPTIONS, command)) {
    const guess = closest(command, Object.keys(COMMAND_OPTIONS));
    throw usage(`${command}: unknown command${guess ? ` (did you mean ${guess}?)` : ''}`);
  }
  checkOptions(args, command as Command);
  switch (command as Command) {
    case 'analyze': return analyzeCommand(args);
    case 'agent': return agentCommand(args);
    case 'collector': return collectorCommand(args);
    case 'config': return configCommand(args);
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
