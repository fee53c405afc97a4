// Creates the Better Auth instance over a SQLite file: node-sqlite3-wasm needs no native build,
// which keeps `npm ci` free of binary downloads.
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { bearer, jwt } from "better-auth/plugins";
import { NodeWasmDialect } from "kysely-wasm";
import sqlite from "node-sqlite3-wasm";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

import { jwtPluginOptions } from "./jwt-options.mjs";
import { taskgateRevocations } from "./revocations.mjs";

/** Opens the database, builds the auth instance and brings the schema up to date. */
export async function createAuth(config) {
  mkdirSync(dirname(config.dbPath), { recursive: true });
  const database = new sqlite.Database(config.dbPath);
  const plugins = [jwt(jwtPluginOptions(config)), bearer()];
  if (config.revocationSecrets.length > 0) plugins.push(taskgateRevocations({ secret: config.revocationSecrets }));
  const auth = betterAuth({
    baseURL: config.baseURL,
    secret: config.authSecret,
    database: { dialect: new NodeWasmDialect({ database }), type: "sqlite" },
    emailAndPassword: { enabled: true },
    plugins,
    telemetry: { enabled: false },
  });
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
  // Plugins check their set-up when the context is built; a bad one stops the issuer now, not at a request.
  await auth.$context;
  if (config.mode !== "hs256") {
    // Better Auth mints the first key lazily, from its JWKS endpoint and from its signer alike; when a
    // gateway's first fetch and the first sign-in race, two "first" keys appear and the gateway may hold
    // the wrong one. Minting it here, before listening, leaves nothing to race.
    await auth.api.getJwks();
  }
  return { auth, close: () => database.close() };
}
