// The reference Better Auth issuer for taskgate: Better Auth's HTTP API under /api/auth/, the demo
// page at /, and /config.json telling the page where the gateway is (and, as a testing aid, the files of
// BA_EXTRA_STATIC_DIR under /app/: a frontend of one's own on Better Auth's origin).
import { createServer } from "node:http";
import { join } from "node:path";
import { toNodeHandler } from "better-auth/node";

import { createAuth } from "./src/auth.mjs";
import { ConfigError, loadConfig } from "./src/config.mjs";
import { loadStaticFiles, pageSecurityHeaders } from "./src/static.mjs";

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  res.end(JSON.stringify(body));
}

function buildHandler(config, auth) {
  const authHandler = toNodeHandler(auth);
  const files = loadStaticFiles(join(config.appDir, "public"));
  if (config.extraStaticDir) loadStaticFiles(config.extraStaticDir, "/app", files);
  const pageHeaders = pageSecurityHeaders(config.gatewayURL);
  const pageConfig = { gatewayURL: config.gatewayURL };
  return (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (path.startsWith("/api/auth/")) return authHandler(req, res);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendJson(res, 405, { detail: "method not allowed" }, { Allow: "GET, HEAD" });
    }
    if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (path === "/config.json") return sendJson(res, 200, pageConfig);
    const file = files.get(path);
    if (!file) return sendJson(res, 404, { detail: "not found" });
    res.writeHead(200, { "Content-Type": file.type, ...pageHeaders });
    return res.end(req.method === "HEAD" ? undefined : file.body);
  };
}

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`better-auth issuer: ${err.message}`);
    process.exit(2);
  }
  const { auth, close } = await createAuth(config);
  const server = createServer(buildHandler(config, auth));
  server.listen(config.port, config.host, () => {
    const alg = config.mode === "hs256" ? "HS256" : config.jwksAlg;
    console.log(`better-auth issuer (${alg}) listening on ${config.baseURL}; gateway ${config.gatewayURL}`);
  });
  const stop = () => {
    server.close(() => {
      close();
      process.exit(0);
    });
    server.closeAllConnections();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

await main();
