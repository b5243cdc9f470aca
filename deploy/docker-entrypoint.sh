#!/bin/sh
# The image's entry point (run by tini, PID 1): `docker-entrypoint.sh <command> [options]`
# runs `pcap-analyzer <command> [options]` as the user the container runs as (pcap).
#
# Capabilities for live capture. A non-root process loses every capability at exec, so the
# container's cap_add alone does not reach node. File capabilities bring them back, but not
# on node itself: a binary with `setcap ...+eip` refuses to start (EPERM) whenever one of its
# file capabilities is missing from the container's bounding set, so a node with
# cap_net_raw,cap_net_admin+eip would not even start under `cap_drop: [ALL]` +
# `cap_add: [NET_RAW]`, nor in the collector's container (Docker's default set has no
# NET_ADMIN). Instead the image carries libexec/capture-caps, a copy of util-linux's setpriv
# with cap_net_raw,cap_net_admin+p (permitted, not effective: it starts under any bounding
# set, and the kernel gives it only the capabilities the container was granted). For the
# `agent` command this script asks it for the granted ones among NET_RAW and NET_ADMIN, as
# inheritable and ambient capabilities, and it execs node with them. Other commands (the
# collector above all), and containers granted neither, run node with no capability at all
# and under no_new_privs (`setpriv --no-new-privs`): neither node nor any child of it (an
# upload's analysis parses hostile captures) can gain the helper's capabilities by running
# it, even when the image is shared and the container's bounding set still has NET_RAW
# (Docker's default).
set -eu

app=$(cd "$(dirname "$0")/.." && pwd)
helper="$app/libexec/capture-caps"
cli="$app/bin/pcap-analyzer.js"

caps=""
if [ "${1:-}" = agent ] && [ "$(id -u)" != 0 ]; then
  status=/proc/self/status
  bounding=$(sed -n 's/^CapBnd:[[:space:]]*//p' "$status")
  nnp=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' "$status")
  # CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13.
  if [ -n "$bounding" ] && [ $(( (0x$bounding >> 13) & 1 )) -eq 1 ]; then caps="+net_raw"; fi
  if [ -n "$bounding" ] && [ $(( (0x$bounding >> 12) & 1 )) -eq 1 ]; then caps="${caps:+$caps,}+net_admin"; fi
  if [ -n "$caps" ] && [ "${nnp:-0}" = 1 ]; then
    echo "docker-entrypoint: no-new-privileges is set, so file capabilities cannot apply: live capture will fail (replay is fine); drop no-new-privileges for the agent" >&2
    caps=""
  elif [ -n "$caps" ] && [ ! -x "$helper" ]; then
    echo "docker-entrypoint: $helper is missing or not executable by uid $(id -u): live capture will fail (replay is fine)" >&2
    caps=""
  elif [ -n "$caps" ] && ! "$helper" --inh-caps="$caps" --ambient-caps="$caps" -- true; then
    echo "docker-entrypoint: $helper could not raise $caps (file capabilities lost, e.g. an image rebuilt without them): live capture will fail (replay is fine)" >&2
    caps=""
  fi
fi

if [ -n "$caps" ]; then
  exec "$helper" --inh-caps="$caps" --ambient-caps="$caps" -- node "$cli" "$@"
fi
if command -v setpriv >/dev/null 2>&1; then
  exec setpriv --no-new-privs -- node "$cli" "$@"
fi
exec node "$cli" "$@"
