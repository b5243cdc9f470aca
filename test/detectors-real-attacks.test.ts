/**
 * The security detectors on captures of real attack tools (nmap, hydra,
 * hping3, iodine) run between two network namespaces, and of ordinary use of
 * the same services (ssh, scp, FTP, DNS lookups), all with the default
 * configuration. test/fixtures/attacks/make.sh made them; its MANIFEST.tsv
 * names the command behind each. The attacker is 10.77.0.1 (198.51.100.7 when
 * it plays an outside host), the victim 10.77.0.2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeCapture } from '../agent/index.js';
import { loadConfig } from '../common/config.js';
import type { Finding } from '../common/report.js';
import { REPO_ROOT, readTsv } from './helpers/paths.js';

const DIR = join(REPO_ROOT, 'test', 'fixtures', 'attacks');
const DETECTORS = new Set(['port_scan', 'brute_force', 'flood', 'beaconing', 'dns_tunneling', 'exfiltration', 'lateral_movement']);

interface Expected {
  type: string;
  host: string;
  severity: Finding['severity'];
  /** Evidence fields that must match exactly (probeKinds for nmap's stealth scans, the scan kind). */
  evidence?: Record<string, string | number>;
}

/** Each attack capture and the findings it must give (other security findings above info are an error). */
const ATTACKS: Record<string, Expected[]> = {
  // nmap -sS, default top 1000 ports: open ports answer SYN/ACK and nmap resets them (abandoned), the rest refuse.
  'nmap-sS-top1000.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'critical', evidence: { kind: 'vertical', ports: 1000, probeKinds: 'syn 1000' } }],
  // The scanner's side only: nothing comes back, every SYN is unanswered.
  'nmap-sS-top1000-onesided.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'critical', evidence: { kind: 'vertical', ports: 1000 } }],
  'nmap-sS-outside.pcap': [{ type: 'port_scan', host: '198.51.100.7', severity: 'critical', evidence: { kind: 'vertical', ports: 1000 } }],
  // -sT -F: 100 ports, connect() completes on the open ones (6), so 94 fail: under minPorts, a small scan inside.
  'nmap-sT-F.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'small', ports: 94 } }],
  // Stealth scans of ports 1-50: nmap retransmits a probe an open (silent) port did not answer.
  'nmap-sF.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'small', ports: 50, probeKinds: 'fin 52' } }],
  'nmap-sN.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'small', ports: 50, probeKinds: 'null 52' } }],
  'nmap-sX.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'small', ports: 50, probeKinds: 'xmas 52' } }],
  // -sA: every port RSTs an ACK (unfiltered); -sM: Linux RSTs every FIN+ACK.
  'nmap-sA.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'small', ports: 50, probeKinds: 'ack 50' } }],
  'nmap-sM.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'small', ports: 50, probeKinds: 'maimon 50' } }],
  // -sU -F against Linux: about one ICMP port unreachable a second, the other datagrams go unanswered.
  'nmap-sU-F.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'vertical', ports: 100 } }],
  // --top-ports 20: a small scan, warning inside, info from outside (the Internet's background probing).
  'nmap-top20.pcap': [{ type: 'port_scan', host: '10.77.0.1', severity: 'warning', evidence: { kind: 'small', ports: 20 } }],
  'nmap-top20-outside.pcap': [{ type: 'port_scan', host: '198.51.100.7', severity: 'info', evidence: { kind: 'small', ports: 20 } }],
  // Port 22 across a /28 (14 hosts): under port_scan's minHosts (50), but internal hosts tried on an admin port.
  'nmap-horizontal-22.pcap': [{ type: 'lateral_movement', host: '10.77.0.1', severity: 'warning', evidence: { hosts: 14 } }],
  // hydra with a 120-password list (-t 4): every connection completes the handshake, fails a few passwords, ends.
  'hydra-ssh-wordlist.pcap': [{ type: 'brute_force', host: '10.77.0.1', severity: 'warning' }],
  'hydra-ftp-wordlist.pcap': [{ type: 'brute_force', host: '10.77.0.1', severity: 'warning' }],
  // hping3 --flood: the first packets of a 2 s flood, more than a look-back's threshold worth.
  'hping3-syn-flood.pcap.gz': [{ type: 'flood', host: '10.77.0.2', severity: 'warning', evidence: { kind: 'syn' } }],
  'hping3-syn-flood-spoofed.pcap.gz': [{ type: 'flood', host: '10.77.0.2', severity: 'critical', evidence: { kind: 'syn' } }],
  'hping3-udp-flood.pcap.gz': [{ type: 'flood', host: '10.77.0.2', severity: 'warning', evidence: { kind: 'udp' } }],
  // iodine (Base128 upstream, NULL queries) from the client's start, a few KB through the tunnel.
  'iodine-tunnel.pcap': [{ type: 'dns_tunneling', host: '10.77.0.1', severity: 'critical' }],
};

/**
 * Captures with no finding above info: ordinary use, and hydra's "dozen tries". sshd takes up to six
 * passwords a connection and vsftpd three, so a dozen guesses are three or four connections: without
 * decoding the login exchange that is indistinguishable from a user's few logins (a blind spot by design;
 * a real guesser's wordlist, above, is caught).
 */
const SILENT = [
  'benign-ssh-session.pcap', 'benign-scp-1mb.pcap', 'benign-ftp-session.pcap', 'benign-dig.pcap',
  'hydra-ssh-t1.pcap', 'hydra-ssh-t4.pcap', 'hydra-ftp.pcap',
];

function security(findings: readonly Finding[]): Finding[] {
  return findings.filter((f) => DETECTORS.has(f.type));
}

const describe = (f: Finding): string => `${f.type} ${f.severity} ${f.host ?? ''}: ${f.summary}`;

test('every fixture is listed in MANIFEST.tsv and checked here', () => {
  const files = readdirSync(DIR).filter((f) => /\.pcap(\.gz)?$/.test(f)).sort();
  const manifest = readTsv(readFileSync(join(DIR, 'MANIFEST.tsv'), 'utf8')).map((r) => r['file']).sort();
  assert.deepEqual(files, manifest);
  assert.deepEqual(files, [...Object.keys(ATTACKS), ...SILENT].sort());
});

for (const [file, expected] of Object.entries(ATTACKS)) {
  test(`${file}: ${expected.map((e) => `${e.type} ${e.severity}`).join(', ')}`, async () => {
    const { report } = await analyzeCapture(join(DIR, file), loadConfig());
    const found = security(report.findings);
    for (const e of expected) {
      const hits = found.filter((f) => f.type === e.type && f.host === e.host);
      assert.ok(hits.length >= 1, `${e.type} for ${e.host}; got ${JSON.stringify(found.map(describe))}`);
      const f = hits[0]!;
      assert.equal(f.severity, e.severity, describe(f));
      for (const [k, v] of Object.entries(e.evidence ?? {})) assert.equal(f.evidence[k], v, `${k}: ${describe(f)}`);
      assert.match(String(f.evidence['thresholds']), />=/);
    }
    const others = found.filter((f) => f.severity !== 'info' && !expected.some((e) => e.type === f.type && e.host === f.host));
    assert.deepEqual(others.map(describe), [], 'no other security finding above info');
  });
}

for (const file of SILENT) {
  test(`${file}: no security finding above info`, async () => {
    const { report } = await analyzeCapture(join(DIR, file), loadConfig());
    assert.deepEqual(security(report.findings).filter((f) => f.severity !== 'info').map(describe), []);
  });
}
