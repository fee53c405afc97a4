// Serves the Better Auth instance exported as `auth` by the module named on the command line, its schema
// migrated first: for the tests, an example configuration run as a real HTTP server on BA_HOST:BA_PORT.
import { createServer } from "node:http";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";

const { auth } = await import(pathToFileURL(resolve(process.argv[2])).href);
await auth.$context; // a plugin's set-up error stops the process here, not at the first request
await (await getMigrations(auth.options)).runMigrations(); // what `npx @better-auth/cli migrate` does
const handler = toNodeHandler(auth);
const server = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end('{"status":"ok"}');
  }
  return handler(req, res);
});
server.listen(Number(process.env.BA_PORT), process.env.BA_HOST ?? "127.0.0.1");
const stop = () => server.close(() => process.exit(0)) && server.closeAllConnections();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
