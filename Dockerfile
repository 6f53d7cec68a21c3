# qwen-rerank server image: `docker build -t qwen-rerank .`, then
#   docker run -p 8080:8080 -v /path/to/models:/models:ro -e QWEN_RERANK_MODEL=/models/model.gguf qwen-rerank
# or give an hf: URI (downloaded once into the /models-cache volume):
#   docker run -p 8080:8080 -v qwen-cache:/models-cache -e QWEN_RERANK_MODEL=hf:ORG/REPO:Q8_0 qwen-rerank
# Any serve flag works as a QWEN_RERANK_* variable or after the image name (`... qwen-rerank serve --help`).

# Build: the TypeScript sources to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: nothing is built or downloaded at install; llama.cpp comes prebuilt in node-llama-cpp's npm packages.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Runtime: production dependencies and dist/ only, as the unprivileged `node` user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    QWEN_RERANK_HOST=0.0.0.0 \
    QWEN_RERANK_PORT=8080 \
    QWEN_RERANK_MODELS_DIR=/models-cache
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force \
 && mkdir -p /models-cache && chown node:node /models-cache
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
VOLUME ["/models-cache"]
# 503 while the model loads (up to the start period) and after an engine failure.
HEALTHCHECK --interval=10s --timeout=3s --start-period=180s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.QWEN_RERANK_PORT || 8080) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["serve"]
