// For the tests only: the minimal set-up plus Better Auth's admin plugin and self-service account deletion.
// Every new user is an admin here, so a test can ban another without seeding a database; feed pages of two
// entries make the gateway follow `more`.
import { betterAuth } from "better-auth";
import { admin, jwt } from "better-auth/plugins";
import { NodeWasmDialect } from "kysely-wasm";
import sqlite from "node-sqlite3-wasm";

import { taskgateRevocations, withSessionId } from "../src/revocations.mjs";

export const auth = betterAuth({
  database: { dialect: new NodeWasmDialect({ database: new sqlite.Database(":memory:") }), type: "sqlite" },
  emailAndPassword: { enabled: true },
  user: { deleteUser: { enabled: true } },
  plugins: [
    jwt({ jwt: { definePayload: withSessionId() } }),
    admin({ defaultRole: "admin" }),
    taskgateRevocations({ secret: process.env.BA_REVOCATION_SECRET, pageSize: 2 }),
  ],
});
