# Image of the experiments worker used by docker-compose.yml. TypeScript runs through tsx (a
# runtime dependency), so there is no build step; dev dependencies (tsc, eslint, playwright)
# stay out of the image.
FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    EXPERIMENTS_CHECKPOINT_DIR=/data/checkpoints
WORKDIR /app

# python3 runs external trainers through the `command` trainer (examples/python/train.py);
# mount your own training code and add its packages in an image built FROM this one.
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*

# Dependencies first: this layer is reused as long as the lockfile does not change.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY examples ./examples
COPY python ./python

# The checkpoint dir exists in the image, owned by `node`, so a fresh named volume mounted there
# inherits that ownership and the unprivileged worker can write to it.
RUN mkdir -p /data/checkpoints && chown -R node:node /data
USER node
VOLUME ["/data/checkpoints"]

CMD ["node", "bin/experiments.js", "worker"]
