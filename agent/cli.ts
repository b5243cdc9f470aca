/**
 * The `pcap-analyzer` command line. Exit codes: 0 success, 2 bad input or
 * usage (one line on stderr, no stack trace), 1 an internal error.
 */
import { readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from '../common/config.js';
import { UsageError, isUserError } from '../common/errors.js';
import { renderText, type Report } from '../common/report.js';
import { analyzeCapture } from './analyze/index.js';

const USAGE = `Usage: pcap-analyzer <command> [options]

Commands:
  analyze FILE        Analyze a capture (pcap, pcapng, optionally gzip; "-" reads stdin)
      --format F      text (default) or json
      --out PATH      write the report to PATH instead of stdout
      --config PATH   configuration file (YAML; see config.yaml for every key)
      --no-progress   never draw the progress bar

  --help, -h          show this help
  --version           print the version
`;

const FORMATS = ['text', 'json'] as const;
type Format = (typeof FORMATS)[number];

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

async function writeOutput(text: string, out: string | undefined): Promise<void> {
  if (out === undefined) {
    await new Promise<void>((resolve, reject) => {
      process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
    });
    return;
  }
  try {
    await writeFile(out, text);
  } catch (err) {
    throw new UsageError(`cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

async function analyzeCommand(args: ReturnType<typeof parseArgs>): Promise<number> {
  const [, file, extra] = args.positionals;
  if (file === undefined) throw new UsageError('analyze needs a capture file (or - for stdin)');
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  const format = (args.values.format ?? 'text') as string;
  if (!FORMATS.includes(format as Format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, not "${format}"`);
  const config = loadConfig(args.values.config as string | undefined);
  const draw = args.values['no-progress'] ? undefined : progressBar(file);
  const { report, warnings } = await analyzeCapture(file, config, draw ? { onProgress: draw } : {});
  if (draw) process.stderr.write('\r\x1b[K');
  for (const w of warnings) process.stderr.write(`pcap-analyzer: warning: ${w}\n`);
  const text = format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderText(report as Report);
  await writeOutput(text, args.values.out as string | undefined);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (args.values.version) { process.stdout.write(`${version()}\n`); return 0; }
  const command = args.positionals[0];
  if (args.values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined && !args.values.help ? 2 : 0;
  }
  switch (command) {
    case 'analyze': return analyzeCommand(args);
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
