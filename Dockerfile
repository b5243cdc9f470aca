# PCAP Analyzer: one image, the command chooses `agent` or `collector`.
#
#   docker build -t pcap-analyzer .
#   docker run --rm pcap-analyzer --help
#   docker run -d -p 8000:8000 -v pcap-data:/data -v "$PWD/deploy/secrets/api_token:/run/secrets/api_token:ro" \
#     -e API_TOKEN_FILE=/run/secrets/api_token pcap-analyzer collector
#   docker run -d --network host --cap-drop ALL --cap-add NET_RAW pcap-analyzer agent --interface eth0
#
# Size target: under 250 MB uncompressed (about 85 MB compressed), of which about 200 MB is
# the node:20-bookworm-slim base (Node itself is half of it). What this file adds:
#   - runtime packages: libpcap0.8 (+ libdbus-1-3) and tini, about 2 MB; libcap2-bin is
#     installed, used for setcap and purged in the same RUN, so no layer keeps it;
#   - production node_modules, about 30 MB: dev dependencies pruned, and the native modules'
#     build leftovers removed (better-sqlite3's SQLite sources, object files and static
#     library: 27 MB of its 28 MB);
#   - dist, about 2 MB (tsconfig.build.json leaves the tests and benchmarks out).
# Layers, from the least to the most often changed: OS packages and the user; node_modules
# (rebuilt only when package.json or package-lock.json change, because `npm ci` runs before
# the sources are copied); then the compiled code, bin and the two deploy scripts. No
# compiler, Python, headers, npm cache or test code reaches the runtime stage.
#
# Capabilities: the runtime user is `pcap` (uid 10001). See deploy/docker-entrypoint.sh for
# why the file capabilities sit on libexec/capture-caps (a copy of setpriv, cap_net_raw and
# cap_net_admin, permitted only) and not on node: with `cap_drop: [ALL]` + `cap_add: [NET_RAW]`
# the container's bounding set limits what it can raise to NET_RAW, which is what the agent
# needs; the collector needs and gets none: the entrypoint runs every other command under
# no_new_privs, so the collector (and its upload analyses) cannot raise the helper's
# capabilities even where the bounding set would allow them.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- deps: build tools and every dependency, native modules compiled against libpcap ---
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libpcap-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# build-ca.crt, if the build context has one (the glob matches nothing otherwise): a CA bundle
# npm must trust behind a TLS-inspecting proxy (`npm run test:docker` puts the machine's there).
# It stays in this stage and the two built on it; the runtime stage copies only node_modules
# and dist from the builder, so it never reaches the image.
COPY package.json package-lock.json build-ca.cr[t] ./
# --ignore-scripts: `prepare` (tsc) needs sources that are not copied yet; the two native
# modules are then built explicitly (node-gyp with python3, make, g++ and libpcap-dev).
RUN if [ -f build-ca.crt ]; then export NODE_EXTRA_CA_CERTS=/app/build-ca.crt; fi \
 && npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 pcap \
 && npm cache clean --force \
 && rm -f build-ca.crt

# --- dev: what docker-compose.dev.yml runs, sources mounted over these copies ---
FROM deps AS dev
COPY tsconfig.json tsconfig.build.json config.yaml ./
COPY bin ./bin
COPY cli ./cli
COPY agent ./agent
COPY collector ./collector
COPY common ./common
COPY deploy/docker-entrypoint.sh deploy/healthcheck.mjs deploy/make-secrets.mjs ./deploy/
RUN npx tsc -p tsconfig.build.json
ENV DATA_DIR=/data \
    PCAP_ANALYZER_HTTP_LISTEN=0.0.0.0:9465 \
    PCAP_ANALYZER_COLLECTOR_LISTEN=0.0.0.0:8000

# --- builder: compile, then keep production dependencies only ---
FROM dev AS builder
RUN npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/better-sqlite3/deps node_modules/better-sqlite3/src \
 && find node_modules -path '*/build/Release/*' \( -name 'obj*' -o -name '.deps' -o -name '*.a' -o -name 'test_extension.node' \) -prune -exec rm -rf {} + \
 && node -e "new (require('better-sqlite3'))(':memory:').close(); require('pcap/build/Release/pcap_binding.node')"

# --- runtime: the image ---
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpcap0.8 tini libcap2-bin \
 && groupadd --gid 10001 pcap \
 && useradd --uid 10001 --gid pcap --home-dir /data --no-create-home --shell /usr/sbin/nologin pcap \
 && install -d -o pcap -g pcap -m 0750 /data \
 && install -d -o root -g root -m 0755 /app /app/libexec \
 && install -o root -g pcap -m 0750 /usr/bin/setpriv /app/libexec/capture-caps \
 && setcap cap_net_raw,cap_net_admin+p /app/libexec/capture-caps \
 && getcap /app/libexec/capture-caps | grep -q 'cap_net_admin,cap_net_raw=p' \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=builder /app/node_modules ./node_modules
COPY --from=builder /app/dist ./dist
COPY package.json config.yaml ./
COPY bin ./bin
COPY deploy/docker-entrypoint.sh deploy/healthcheck.mjs deploy/make-secrets.mjs ./deploy/
# Inside a container both servers listen on every interface (the collector then refuses to
# start without an API token, unless collector.allowAnonymous is set); DATA_DIR is the SQLite
# database, uploads and the agent's spool.
ENV DATA_DIR=/data \
    PCAP_ANALYZER_HTTP_LISTEN=0.0.0.0:9465 \
    PCAP_ANALYZER_COLLECTOR_LISTEN=0.0.0.0:8000
USER pcap
EXPOSE 8000 9465
# The agent asks /healthz on http.listen, the collector /api/health on collector.listen:
# deploy/healthcheck.mjs reads the running command, flags and environment to know which.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/deploy/healthcheck.mjs"]
# tini is PID 1: it forwards SIGTERM to node (which spools and exits 0) and reaps the
# collector's analysis children.
ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/docker-entrypoint.sh"]
CMD ["collector"]
