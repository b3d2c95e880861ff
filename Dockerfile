# Image of the experiments worker used by docker-compose.yml. A build stage compiles src/ to lib/
# (tsc is a dev dependency); the image itself holds lib/ and the production dependencies only, so
# no TypeScript compiler runs in it.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` builds lib/, and the sources are not copied yet.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.js ./scripts/
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    EXPERIMENTS_CHECKPOINT_DIR=/data/checkpoints
WORKDIR /app

# python3 runs external trainers through the `command` trainer (examples/python/train.py);
# mount your own training code and add its packages in an image built FROM this one.
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*

# Dependencies first: this layer is reused as long as the lockfile does not change.
# --ignore-scripts: `prepare` would build lib/ with tsc, which --omit=dev leaves out.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY bin ./bin
COPY --from=build /app/lib ./lib
COPY examples ./examples
COPY python ./python

# The checkpoint dir exists in the image, owned by `node`, so a fresh named volume mounted there
# inherits that ownership and the unprivileged worker can write to it.
RUN mkdir -p /data/checkpoints && chown -R node:node /data
USER node
VOLUME ["/data/checkpoints"]

CMD ["node", "bin/experiments.js", "worker"]
