#!/usr/bin/env bash
# Records test/fixtures/sample-loopback.pcap: a small capture of real traffic on
# the loopback interface (HTTP over IPv4 and IPv6, DNS over UDP, a refused TCP
# connection, ping, and an ICMP port unreachable). Needs root (or CAP_NET_RAW)
# and tcpdump. The committed file was made with this script; re-running it
# gives different timestamps, ports and sequence numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-test/fixtures/sample-loopback.pcap}
mkdir -p "$(dirname "$out")"
tcpdump -i lo -U -s 0 -w "$out" 'port 18080 or port 53 or port 18081 or port 18099 or icmp or icmp6' 2>/dev/null &
dump=$!
sleep 1
node --input-type=module - <<'JS'
import http from 'node:http';
import dgram from 'node:dgram';
import net from 'node:net';
import { execFileSync } from 'node:child_process';

// A tiny HTTP server on IPv4 and IPv6 loopback.
const server = http.createServer((req, res) => res.end('hello from the sample capture\n'.repeat(40)));
await new Promise((r) => server.listen(18080, '::', r));
for (const host of ['127.0.0.1', '::1']) {
  await new Promise((resolve) => http.get({ host, port: 18080, path: '/' }, (res) => { res.resume(); res.on('end', resolve); }));
}
server.close();

// A DNS server answering one A query, and a query that gets NXDOMAIN.
const dns = dgram.createSocket('udp4');
await new Promise((r) => dns.bind(53, '127.0.0.1', r));
dns.on('message', (msg, rinfo) => {
  const reply = Buffer.from(msg);
  const name = msg.subarray(12, msg.length - 4).toString('latin1');
  const nx = name.includes('nonexistent');
  reply[2] = 0x81; reply[3] = nx ? 0x83 : 0x80; // response, RD, RA, rcode
  if (nx) { dns.send(reply, rinfo.port, rinfo.address); return; }
  reply[7] = 1; // one answer
  const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
  dns.send(Buffer.concat([reply, answer]), rinfo.port, rinfo.address);
});
const query = (id, name) => {
  const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
  return Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, 1, 0, 1]);
};
const client = dgram.createSocket('udp4');
for (const [id, name] of [[0x1234, 'sample.pcap-analyzer.test'], [0x2345, 'nonexistent.pcap-analyzer.test']]) {
  await new Promise((resolve) => { client.once('message', resolve); client.send(query(id, name), 53, '127.0.0.1'); });
}
// A UDP datagram to a closed port: the kernel answers ICMP port unreachable.
client.send(Buffer.from('anyone there?'), 18099, '127.0.0.1');
await new Promise((r) => setTimeout(r, 200));
client.close();
dns.close();

// A TCP connection refused: SYN answered by RST.
await new Promise((resolve) => net.connect(18081, '127.0.0.1').on('error', resolve));
// Two pings over IPv4 and IPv6.
execFileSync('ping', ['-c', '2', '-i', '0.2', '127.0.0.1'], { stdio: 'ignore' });
execFileSync('ping', ['-6', '-c', '2', '-i', '0.2', '::1'], { stdio: 'ignore' });
JS
sleep 1
kill "$dump"
wait "$dump" 2>/dev/null || true
echo "wrote $out"
