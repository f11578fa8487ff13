# lp-gateway on Debian 12 with Node.js 20 and Debian's ffmpeg.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
EXPOSE 8935
# The gateway listens on all interfaces; the embedded local orchestrator stays inside the container.
CMD ["npx", "tsx", "src/main.ts", "-httpAddr", "0.0.0.0:8935"]
