// taskgateRevocations(): a self-contained Better Auth plugin that turns the end of a session into a
// revocation every taskgate gateway follows, so a signed-out JWT stops working within seconds instead of at
// its `exp`. Add it next to jwt() in any Better Auth server:
//
//   plugins: [jwt({ jwt: { definePayload: withSessionId() } }), taskgateRevocations({ secret })]
//
// It records revocations through Better Auth's own adapter (so any database Better Auth supports), from
// Better Auth's own database hooks (every session deletion, whichever endpoint or plugin caused it; user
// deletion; a ban by the admin plugin), and serves them at GET /api/auth/revocations to callers holding the
// shared secret. The feed format is documented in docs/better-auth.md ("Revocation feed").
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { getCurrentAdapter } from "better-auth";
import { APIError, createAuthEndpoint } from "better-auth/api";

const MODEL = "taskgateRevocation";
const MIN_SECRET_BYTES = 32;
// Entries per answer (option pageSize); a gateway asks again at once while `more` is true.
const PAGE_SIZE = 1000;
// An answer's closing cursor lies this far in the past, so the next answer repeats the last 5 s: a revocation
// written by a slow transaction or by an issuer replica whose clock lags is still delivered. Repeats are
// harmless: the gateway's set is a union.
const OVERLAP_MS = 5000;
// A token minted by a request that read the session just before it was deleted can carry a slightly later
// iat; revocations stay in the feed this much longer than the token lifetime.
const MARGIN_S = 60;
const PRUNE_EVERY_MS = 60_000;
const CURSOR = /^[0-9a-f]{1,32}$/;
const SEQ_DIGITS = 15;
const SESSION_CLAIM = Symbol.for("taskgate.revocations.sessionIdClaim");
// The time spans jwt()'s expirationTime is commonly given in (jose's units below a year), by first letter.
const SPAN = /^\s*(\d+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)\s*$/i;
const UNIT_S = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/**
 * A jwt() `definePayload` that adds `sid` (the Better Auth session id) to every token, wrapping your own
 * definePayload if you have one. The gateway matches a revoked session to its tokens by this claim.
 */
export function withSessionId(definePayload) {
  const payload = async (session) => ({
    ...(definePayload ? await definePayload(session) : session.user),
    sid: session.session.id,
  });
  payload[SESSION_CLAIM] = true;
  return payload;
}

/** The accepted secrets as SHA-256 digests: equal lengths let timingSafeEqual compare any presented value. */
function secretDigests(secret) {
  const list = (Array.isArray(secret) ? secret : [secret]).filter((s) => typeof s === "string" && s !== "");
  if (list.length === 0) {
    throw new Error("taskgateRevocations: a secret is required (the gateway's GATEWAY_REVOCATION_SECRET)");
  }
  for (const s of list) {
    if (Buffer.byteLength(s, "utf8") < MIN_SECRET_BYTES) {
      throw new Error(`taskgateRevocations: each secret must be at least ${MIN_SECRET_BYTES} bytes`);
    }
  }
  return list.map((s) => createHash("sha256").update(s, "utf8").digest());
}

function presentsSecret(header, digests) {
  if (typeof header !== "string" || header.slice(0, 7).toLowerCase() !== "bearer ") return false;
  const presented = createHash("sha256").update(header.slice(7).trim(), "utf8").digest();
  let match = false;
  for (const digest of digests) match = timingSafeEqual(presented, digest) || match;
  return match;
}

/** Seconds in a jwt() expirationTime such as "15m" or "900s"; undefined when it is not a plain time span. */
export function lifetimeSeconds(expirationTime) {
  const found = SPAN.exec(String(expirationTime));
  return found ? Number(found[1]) * UNIT_S[found[2][0].toLowerCase()] : undefined;
}

function tokenLifetime(options, jwtPlugin) {
  if (options.tokenLifetimeS !== undefined) {
    if (!Number.isInteger(options.tokenLifetimeS) || options.tokenLifetimeS <= 0) {
      throw new Error("taskgateRevocations: tokenLifetimeS must be a positive integer");
    }
    return options.tokenLifetimeS;
  }
  const lifetime = lifetimeSeconds(jwtPlugin.options?.jwt?.expirationTime ?? "15m");
  if (lifetime === undefined) {
    throw new Error(
      "taskgateRevocations: cannot read jwt({ jwt: { expirationTime } }) as a time span; pass tokenLifetimeS",
    );
  }
  return lifetime;
}

/** A sort key unique per revocation and ordered by time: 15 decimal digits of milliseconds, 8 hex digits. */
function sequence(ms) {
  return String(ms).padStart(SEQ_DIGITS, "0") + randomBytes(4).toString("hex");
}

function feedEntry(row) {
  const exp = Math.floor(new Date(row.expiresAt).getTime() / 1000);
  if (row.sessionId) return { sid: row.sessionId, exp };
  return { sub: row.userId, before: Math.floor(new Date(row.issuedBefore).getTime() / 1000), exp };
}

/**
 * The plugin. `secret`: the feed's bearer secret (≥ 32 bytes), or a list of them during a rotation.
 * `tokenLifetimeS`: the longest JWT lifetime, when jwt()'s expirationTime is not a plain span like "15m".
 * `pageSize`: entries per feed answer (1000).
 */
export function taskgateRevocations(options = {}) {
  const digests = secretDigests(options.secret);
  const pageSize = options.pageSize ?? PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize <= 0) {
    throw new Error("taskgateRevocations: pageSize must be a positive integer");
  }
  let authContext;
  let lifetimeS;
  let nextPruneAt = 0;
  // Sessions deleted per request and user: see recordSession.
  const deletedPerRequest = new WeakMap();

  async function adapter() {
    return getCurrentAdapter(authContext.adapter);
  }

  /** Housekeeping when the feed is read (never inside a deleting transaction), at most once a minute. */
  async function prune() {
    const now = Date.now();
    if (now < nextPruneAt) return;
    nextPruneAt = now + PRUNE_EVERY_MS;
    try {
      const where = [{ field: "expiresAt", operator: "lt", value: new Date(now) }];
      await (await adapter()).deleteMany({ model: MODEL, where });
    } catch (error) {
      authContext.logger.error("taskgateRevocations: could not delete expired revocations", error);
    }
  }

  /**
   * One revocation row. Written inside the deleting transaction when there is one, so both land or neither;
   * if it cannot be written the hook throws and the session is not deleted: a sign-out that fails visibly
   * rather than one that leaves its tokens working.
   */
  async function record({ sessionId, userId }) {
    const now = Date.now();
    // Tokens carry whole-second iat; "before" the next second covers every token minted up to now.
    const before = Math.floor(now / 1000) + 1;
    await (await adapter()).create({
      model: MODEL,
      data: {
        seq: sequence(now),
        sessionId: sessionId ?? null,
        userId,
        issuedBefore: sessionId ? null : new Date(before * 1000),
        expiresAt: new Date((before + lifetimeS + MARGIN_S) * 1000),
      },
    });
  }

  async function recordSession(session, endpointContext) {
    await record({ sessionId: session.id, userId: session.userId });
    // Better Auth hands a bulk delete's hooks only the first defaultFindManyLimit rows; when one request
    // reaches that many sessions of a user, the rest may go without hooks, so every token of the user up to
    // now is revoked too (a thief cannot outlast "sign out everywhere" by opening many sessions).
    if (!endpointContext) return;
    const perUser = deletedPerRequest.get(endpointContext) ?? new Map();
    deletedPerRequest.set(endpointContext, perUser);
    const count = (perUser.get(session.userId) ?? 0) + 1;
    perUser.set(session.userId, count);
    const cap = authContext.options.advanced?.database?.defaultFindManyLimit ?? 100;
    if (count === cap) await record({ userId: session.userId });
  }

  const feed = createAuthEndpoint(
    "/revocations",
    { method: "GET", requireHeaders: true, metadata: { noStore: true } },
    async (ctx) => {
      const header = ctx.headers?.get("authorization") ?? ctx.request?.headers.get("authorization");
      if (!presentsSecret(header, digests)) {
        throw new APIError(
          "UNAUTHORIZED",
          { message: "the revocation feed needs its bearer secret", code: "REVOCATION_FEED_UNAUTHORIZED" },
          { "WWW-Authenticate": 'Bearer realm="taskgate-revocations"' },
        );
      }
      const after = ctx.query?.after;
      if (after !== undefined && (typeof after !== "string" || !CURSOR.test(after))) {
        throw new APIError("BAD_REQUEST", {
          message: "after must be a cursor from this feed",
          code: "REVOCATION_FEED_BAD_CURSOR",
        });
      }
      const started = Date.now();
      await prune();
      const where = [{ field: "expiresAt", operator: "gt", value: new Date(started) }];
      if (after !== undefined) where.push({ field: "seq", operator: "gt", value: after });
      const rows = await (await adapter()).findMany({
        model: MODEL,
        where,
        sortBy: { field: "seq", direction: "asc" },
        limit: pageSize + 1,
      });
      const more = rows.length > pageSize;
      const page = more ? rows.slice(0, pageSize) : rows;
      const cursor = more ? page.at(-1).seq : String(Math.max(0, started - OVERLAP_MS)).padStart(SEQ_DIGITS, "0");
      return ctx.json({ cursor, more, revoked: page.map(feedEntry) });
    },
  );

  return {
    id: "taskgate-revocations",
    init(ctx) {
      authContext = ctx;
      const jwtPlugin = ctx.options.plugins?.find((plugin) => plugin.id === "jwt");
      if (!jwtPlugin) {
        throw new Error("taskgateRevocations: add Better Auth's jwt() plugin; it mints the tokens the gateway checks");
      }
      if (!jwtPlugin.options?.jwt?.definePayload?.[SESSION_CLAIM]) {
        throw new Error(
          "taskgateRevocations: jwt() must add the session id: " +
            "jwt({ jwt: { definePayload: withSessionId(yourDefinePayload) } })",
        );
      }
      if (ctx.options.secondaryStorage && !ctx.options.session?.storeSessionInDatabase) {
        // Sessions kept only in secondary storage end without any database hook: nothing would be recorded.
        throw new Error("taskgateRevocations: with secondaryStorage, set session.storeSessionInDatabase: true");
      }
      lifetimeS = tokenLifetime(options, jwtPlugin);
      return {
        options: {
          databaseHooks: {
            session: { delete: { before: recordSession } },
            user: {
              delete: { before: async (user) => record({ userId: user.id }) },
              update: { after: async (user) => (user?.banned === true ? record({ userId: user.id }) : undefined) },
            },
          },
        },
      };
    },
    endpoints: { getTaskgateRevocations: feed },
    schema: {
      [MODEL]: {
        fields: {
          seq: { type: "string", required: true, unique: true, sortable: true },
          sessionId: { type: "string", required: false },
          userId: { type: "string", required: true },
          issuedBefore: { type: "date", required: false },
          expiresAt: { type: "date", required: true, index: true },
        },
      },
    },
    // Every gateway worker of every replica polls about once a second, often from one address.
    rateLimit: [{ pathMatcher: (path) => path === "/revocations", window: 10, max: 10_000 }],
  };
}
