// For the tests only: the plugin next to a jwt() whose tokens name no session, which it must refuse at start.
import { betterAuth } from "better-auth";
import { jwt } from "better-auth/plugins";
import { NodeWasmDialect } from "kysely-wasm";
import sqlite from "node-sqlite3-wasm";

import { taskgateRevocations } from "../src/revocations.mjs";

export const auth = betterAuth({
  database: { dialect: new NodeWasmDialect({ database: new sqlite.Database(":memory:") }), type: "sqlite" },
  emailAndPassword: { enabled: true },
  plugins: [jwt(), taskgateRevocations({ secret: process.env.BA_REVOCATION_SECRET })],
});
