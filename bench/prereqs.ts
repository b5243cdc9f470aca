/**
 * What the benchmark needs from Debian, installed when missing and running as
 * root (as .ci/run does); otherwise each missing tool is reported and the rows
 * that need it are skipped with the reason.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { commandExists } from './measure.js';

interface Need {
  /** A command name on PATH, or an absolute path. */
  check: string;
  pkg: string;
  why: string;
}

const NEEDS: readonly Need[] = [
  { check: '/usr/bin/time', pkg: 'time', why: 'CPU seconds and peak RSS of every measured command' },
  { check: 'tcpdump', pkg: 'tcpdump', why: 'the libpcap reference rows and the reference live capturer' },
  { check: 'tshark', pkg: 'tshark', why: 'the Wireshark expert-analysis row' },
  { check: 'tcpreplay', pkg: 'tcpreplay', why: 'live capture rows (replay into a veth)' },
  { check: 'ip', pkg: 'iproute2', why: 'network namespaces for the live capture rows' },
  { check: '/usr/sbin/nats-server', pkg: 'nats-server', why: 'live capture and ingest rows' },
];

const present = (check: string): boolean => (check.startsWith('/') ? existsSync(check) : commandExists(check));

export interface PrereqReport {
  /** Packages installed by this run. */
  installed: string[];
  /** Missing tools by check name, with why they matter. */
  missing: Map<string, string>;
  log: string[];
}

function apt(args: string[], log: string[]): boolean {
  const r = spawnSync('apt-get', args, { encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 900_000 });
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- spawnSync gives null output when the process could not start
  if (r.status !== 0) log.push(`apt-get ${args.join(' ')} failed: ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' ')}`);
  return r.status === 0;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Checks every tool; as root, installs what is missing in one apt-get run. */
export function ensurePrerequisites(): PrereqReport {
  const log: string[] = [];
  const installed: string[] = [];
  let missing = NEEDS.filter((n) => !present(n.check));
  if (missing.length && isRoot()) {
    const pkgs = [...new Set(missing.map((n) => n.pkg))];
    log.push(`installing ${pkgs.join(' ')} (apt-get)`);
    if (apt(['update', '-qq'], log) && apt(['install', '-y', '-qq', ...pkgs], log)) installed.push(...pkgs);
    missing = NEEDS.filter((n) => !present(n.check));
  }
  const report: PrereqReport = { installed, missing: new Map(missing.map((n) => [n.check, `${n.check} is not installed (Debian package ${n.pkg}${isRoot() ? '; apt-get failed' : '; run as root to install it'}): needed for ${n.why}`])), log };
  return report;
}

/**
 * PostgreSQL for the ingest rows: when nothing answers on 127.0.0.1:5432 and we are
 * root, the same steps as .ci/run (install, trust local TCP connections, start the
 * cluster). Returns a reason when it is still not there.
 */
export function ensurePostgres(log: string[]): string | false {
  const ready = (): boolean => spawnSync('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432'], { stdio: 'ignore' }).status === 0;
  if (commandExists('pg_isready') && ready()) return false;
  if (!isRoot()) return 'no PostgreSQL server answers on 127.0.0.1:5432 (run `bash .ci/run` as root once, or set PCAP_ANALYZER_TEST_PG_ADMIN)';
  const hasCluster = (): boolean => existsSync('/etc/postgresql') && readdirSync('/etc/postgresql').length > 0;
  if (!hasCluster()) {
    log.push('installing postgresql (apt-get)');
    if (!apt(['update', '-qq'], log) || !apt(['install', '-y', '-qq', 'postgresql'], log)) return 'PostgreSQL could not be installed with apt-get';
  }
  if (!hasCluster()) return 'no PostgreSQL cluster under /etc/postgresql';
  const version = readdirSync('/etc/postgresql').sort((a, b) => Number(a) - Number(b)).pop()!;
  const hba = `/etc/postgresql/${version}/main/pg_hba.conf`;
  const line = 'host all all 127.0.0.1/32 trust';
  try {
    const text = readFileSync(hba, 'utf8');
    if (!text.split('\n').includes(line)) writeFileSync(hba, `${line}\n${text}`);
  } catch (err) {
    return `cannot update ${hba}: ${String(err)}`;
  }
  const ctl = (action: string): boolean => spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', action], { stdio: 'ignore' }).status === 0;
  if (!ctl('start')) ctl('reload');
  for (let i = 0; i < 30 && !ready(); i++) spawnSync('sleep', ['1']);
  log.push(`started PostgreSQL ${version} (local TCP trusted, as .ci/run does)`);
  return ready() ? false : 'PostgreSQL did not start on 127.0.0.1:5432';
}
