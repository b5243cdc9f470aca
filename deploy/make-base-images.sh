#!/usr/bin/env bash
# Makes, from Debian's packages and this machine's own Node.js, the base images the Dockerfile and
# docker-compose.yml name, for a Docker engine that cannot pull from a registry:
#
#   debian:bookworm-minbase   `debootstrap --variant=minbase bookworm`, trimmed like Debian's slim
#                             images (no docs, man pages or locales; apt lists emptied), `docker import`ed
#   node:20-bookworm-slim     (the Dockerfile's NODE_IMAGE) that image plus this machine's `node`
#                             (must be 20.x) in /usr/local/bin and its npm in /usr/local/lib/node_modules
#                             (npm and npx linked in /usr/local/bin), as the official image lays them
#                             out; plus node-gyp's header cache (/root/.cache/node-gyp/<version>, the
#                             linux-x86_64 headers only) filled from this machine's headers, as a first
#                             `node-gyp` run would have downloaded them (no download is possible here)
#   NATS_IMAGE                (default pcap-analyzer-test/nats:debian) Debian's nats-server and wget
#                             (compose's health check uses wget), for docker-compose.yml's `nats` service
#
# Usage: deploy/make-base-images.sh [--node-image NAME] [--nats-image NAME] [--mirror URL]
# Environment: DOCKER (the docker command, default `docker`; DOCKER_HOST chooses the engine).
# Needs: root, debootstrap (apt-get install debootstrap), a Docker engine, and Debian's archive
# (the image builds run with --network host). Idempotent: an image that exists is kept.
set -euo pipefail

node_image=node:20-bookworm-slim
nats_image=pcap-analyzer-test/nats:debian
debian_image=debian:bookworm-minbase
mirror=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
  case "$1" in
    --node-image) node_image=$2; shift 2 ;;
    --nats-image) nats_image=$2; shift 2 ;;
    --debian-image) debian_image=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    *) echo "usage: $0 [--node-image NAME] [--nats-image NAME] [--debian-image NAME] [--mirror URL]" >&2; exit 2 ;;
  esac
done
docker=${DOCKER:-docker}
have() { $docker image inspect "$1" >/dev/null 2>&1; }

work=$(mktemp -d /tmp/pcap-base-images.XXXXXX)
cleanup() {
  # debootstrap mounts /proc and /sys in the rootfs while it runs; it unmounts them, but be sure.
  for m in $(awk -v root="$work/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r); do umount -l "$m" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if ! have "$debian_image"; then
  command -v debootstrap >/dev/null || { echo "make-base-images: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
  start=$(date +%s)
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  root=$work/rootfs
  # As Debian's slim images: dpkg leaves out docs, man pages and locales from now on.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
  echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' "$mirror" "$mirror" >"$root/etc/apt/sources.list"
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/debootstrap
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  : >"$root/etc/hostname"
  : >"$root/etc/resolv.conf"
  tar --numeric-owner -C "$root" -c . | $docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$debian_image" >/dev/null
  rm -rf "$root"
  echo "make-base-images: $debian_image from debootstrap in $(( $(date +%s) - start )) s"
fi

if ! have "$node_image"; then
  node_bin=$(command -v node)
  version=$("$node_bin" -p 'process.versions.node')
  case "$version" in 20.*) ;; *) echo "make-base-images: this machine's node is $version, not 20.x" >&2; exit 1 ;; esac
  prefix=$("$node_bin" -p 'require("path").resolve(process.execPath, "..", "..")')
  npm_dir=$prefix/lib/node_modules/npm
  [ -f "$npm_dir/package.json" ] || npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  [ -f "$npm_dir/package.json" ] || { echo "make-base-images: npm not found beside $node_bin" >&2; exit 1; }
  headers=$prefix/include/node
  [ -f "$headers/node_version.h" ] || { echo "make-base-images: no Node headers in $headers (Debian/NodeSource nodejs ships them)" >&2; exit 1; }
  ctx=$work/node
  mkdir -p "$ctx/gyp/include"
  cp "$node_bin" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  # node-gyp's cache as its first download leaves it: include/node and installVersion. Only this
  # architecture's OpenSSL configuration is kept (the others are 50 MB).
  cp -a "$headers" "$ctx/gyp/include/node"
  find "$ctx/gyp/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name linux-x86_64 -exec rm -rf {} +
  gyp_version=$(node -p "require('$npm_dir/node_modules/node-gyp/package.json').installVersion")
  echo "$gyp_version" >"$ctx/gyp/installVersion"
  cat >"$ctx/Dockerfile" <<EOF
FROM $debian_image
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY gyp /root/.cache/node-gyp/$version
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
ENV NODE_VERSION=$version
CMD ["node"]
EOF
  $docker build -q -t "$node_image" "$ctx" >/dev/null
  echo "make-base-images: $node_image with node $version and npm $("$node_bin" "$npm_dir/bin/npm-cli.js" --version)"
fi

if ! have "$nats_image"; then
  ctx=$work/nats
  mkdir -p "$ctx"
  cat >"$ctx/Dockerfile" <<EOF
FROM $debian_image
RUN apt-get update && apt-get install -y --no-install-recommends nats-server wget && rm -rf /var/lib/apt/lists/* \\
 && ln -s /usr/sbin/nats-server /usr/local/bin/nats-server && nats-server --version
EXPOSE 4222 8222
CMD ["nats-server"]
EOF
  $docker build -q --network host -t "$nats_image" "$ctx" >/dev/null
  echo "make-base-images: $nats_image with $($docker run --rm "$nats_image" nats-server --version)"
fi
