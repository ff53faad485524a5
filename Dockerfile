# syntax=docker/dockerfile:1.7
# One image per AOB app, all from this file:
#
#   docker build --build-arg APP=gateway -t aob-gateway:dev .
#
# APP is a folder of apps/ (gateway, model-gateway, metering, agent-executor, dlq-replayer).
# The image runs `node apps/$APP/dist/main.js` as uid 10001; the gateway image also carries the
# migration and stream-provisioning CLIs (libs/persistence, libs/events) the deploy Job runs.
# Pin NODE_IMAGE by digest in release builds (node:20.20-bookworm-slim@sha256:...).
ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1 \
    npm_config_fund=false \
    npm_config_audit=false \
    npm_config_update_notifier=false

# Only what `npm ci` reads: its layer below stays cached until a manifest or the lock changes,
# not on every source edit.
FROM base AS manifests
COPY . /src
RUN cd /src \
 && find . -name package.json -not -path '*/node_modules/*' -exec cp --parents {} /app/ \; \
 && cp --parents package-lock.json scripts/lib/clean-install.mjs /app/

FROM base AS deps
COPY --from=manifests /app/ ./
# clean-install.mjs is `npm ci` plus the one lockfile quirk of this repository (other platforms'
# optional native builds missing from the lock); see its header.
RUN --mount=type=cache,target=/root/.npm node scripts/lib/clean-install.mjs

FROM deps AS build
ARG APP
COPY . .
RUN if [ -z "$APP" ] || [ ! -f "apps/$APP/package.json" ]; then \
      echo "build arg APP must name a folder of apps/, e.g. --build-arg APP=gateway (got '$APP')" >&2; \
      exit 1; \
    fi
# The app and the libs it depends on, nothing else.
RUN npx turbo run build --filter="@aob/${APP}..."
# Production dependencies only; sources, tests and the other apps stay behind.
RUN npm prune --omit=dev \
 && rm -rf libs/*/src libs/*/test apps/*/src apps/*/test \
 && find . -name '*.tsbuildinfo' -not -path './node_modules/*' -delete

FROM ${NODE_IMAGE} AS runtime
ARG APP
ENV NODE_ENV=production \
    AOB_APP=${APP}
WORKDIR /app
# Owned by root and not writable by the app's user: the code cannot be changed at run time
# (Kubernetes also mounts the root filesystem read-only; /tmp is an emptyDir).
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/libs ./libs
COPY --from=build /app/apps/${APP} ./apps/${APP}
USER 10001:10001
# gateway 8080, model-gateway 8081, metering 8082, agent-executor 8083, dlq-replayer 8084
EXPOSE 8080 8081 8082 8083 8084
# exec: node becomes PID 1 and receives SIGTERM itself, so the apps' graceful drain runs.
CMD ["/bin/sh", "-c", "exec node \"apps/${AOB_APP}/dist/main.js\""]
