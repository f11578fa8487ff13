# lp-gateway on Debian 12 with Node.js 20 and Debian's ffmpeg (docs/scale-out.md#docker).
# Stage 1 installs the production npm dependencies; stage 2 is the runtime: no compilers, no
# npm cache, no dev dependencies, run as the unprivileged `node` user.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

FROM node:20-bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY proto ./proto
COPY public ./public
COPY config ./config
USER node
EXPOSE 8935
# `npm start` without its dependency check (the image has them): the same program, the same flags.
ENTRYPOINT ["node", "bin/lp-gateway.js", "start"]
# The gateway listens on all interfaces; the embedded local orchestrator stays inside the container.
CMD ["-httpAddr", "0.0.0.0:8935"]
