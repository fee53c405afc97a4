// The smallest Better Auth server whose JWTs taskgate can revoke: the set-up docs/better-auth.md shows, run
// for real by tests/interop/test_revocation_plugin.py. Better Auth reads BETTER_AUTH_URL and
// BETTER_AUTH_SECRET from the environment; the database is whatever yours is (here SQLite in memory, its
// tables created by Better Auth's migrations as `npx @better-auth/cli migrate` would).
import { betterAuth } from "better-auth";
import { jwt } from "better-auth/plugins";
import { NodeWasmDialect } from "kysely-wasm";
import sqlite from "node-sqlite3-wasm";

import { taskgateRevocations, withSessionId } from "../src/revocations.mjs";

const database = { dialect: new NodeWasmDialect({ database: new sqlite.Database(":memory:") }), type: "sqlite" };

// revocation-setup:start
export const auth = betterAuth({
  database,
  emailAndPassword: { enabled: true },
  plugins: [
    jwt({ jwt: { definePayload: withSessionId() } }),
    taskgateRevocations({ secret: process.env.BA_REVOCATION_SECRET }),
  ],
});
// revocation-setup:end
