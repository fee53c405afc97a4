// Reads the issuer's settings from the environment once, and refuses to start on a bad value:
// a misconfigured issuer must fail loudly rather than sign tokens the gateway will reject.
import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const APP_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const JWKS_ALGS = ["EdDSA", "ES256", "RS256", "PS256"];
const MODES = ["eddsa", "hs256"];
const MIN_SECRET_BYTES = 32;

export class ConfigError extends Error {}

/** A secret from VAR or from the file named by VAR_FILE (trailing newline dropped). */
function secretFromEnv(env, name) {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct && file) throw new ConfigError(`set only one of ${name} and ${name}_FILE`);
  if (file) return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  return direct ?? "";
}

function requireSecret(value, name) {
  if (Buffer.byteLength(value, "utf8") < MIN_SECRET_BYTES) {
    throw new ConfigError(`${name} must be set and at least ${MIN_SECRET_BYTES} bytes long`);
  }
  return value;
}

/** A comma list of secrets (a rotation accepts each); empty when the variable is unset. */
function secretList(env, name) {
  const items = secretFromEnv(env, name).split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) requireSecret(item, name);
  return items;
}

function positiveInt(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) <= 0) throw new ConfigError(`${name} must be a positive integer`);
  return Number(raw);
}

function oneOf(env, name, allowed, fallback) {
  const value = env[name] || fallback;
  if (!allowed.includes(value)) throw new ConfigError(`${name} must be one of ${allowed.join(", ")}`);
  return value;
}

function originOf(env, name, fallback) {
  const raw = env[name] || fallback;
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an absolute http(s) URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${name} must be an http(s) URL`);
  }
  return url.origin;
}

/** An existing directory, or undefined when the variable is unset. */
function directoryOf(env, name) {
  const raw = env[name];
  if (!raw) return undefined;
  if (!statSync(raw, { throwIfNoEntry: false })?.isDirectory()) throw new ConfigError(`${name} must be a directory`);
  return resolve(raw);
}

function listOrSingle(raw) {
  const items = raw.split(",").map((s) => s.trim()).filter(Boolean);
  return items.length > 1 ? items : items[0];
}

/** Parses and validates the environment; throws ConfigError with a message naming the variable. */
export function loadConfig(env = process.env) {
  const host = env.BA_HOST || "127.0.0.1";
  const port = positiveInt(env, "BA_PORT", 3000);
  const baseURL = originOf(env, "BA_BASE_URL", `http://${host}:${port}`);
  const mode = oneOf(env, "JWT_MODE", MODES, "eddsa");
  const config = {
    appDir: APP_DIR,
    host,
    port,
    baseURL,
    dbPath: resolve(env.BA_DB_PATH || join(APP_DIR, "data", "auth.db")),
    authSecret: requireSecret(secretFromEnv(env, "BETTER_AUTH_SECRET"), "BETTER_AUTH_SECRET"),
    mode,
    jwksAlg: oneOf(env, "JWKS_ALG", JWKS_ALGS, "EdDSA"),
    rotationS: env.JWKS_ROTATION_S ? positiveInt(env, "JWKS_ROTATION_S", undefined) : undefined,
    graceS: env.JWKS_GRACE_S ? positiveInt(env, "JWKS_GRACE_S", undefined) : undefined,
    issuer: env.BA_JWT_ISSUER || baseURL,
    audience: listOrSingle(env.BA_JWT_AUDIENCE || baseURL),
    ttlS: positiveInt(env, "BA_JWT_TTL_S", 900),
    gatewayURL: originOf(env, "GATEWAY_URL", "http://127.0.0.1:8080"),
    hsSecret: undefined,
    // The revocation feed (GET /api/auth/revocations) exists only when its bearer secret is configured.
    revocationSecrets: secretList(env, "BA_REVOCATION_SECRET"),
    // A testing aid: a frontend's built files served under /app/, on Better Auth's origin as in a Next.js app.
    extraStaticDir: directoryOf(env, "BA_EXTRA_STATIC_DIR"),
  };
  if (mode === "hs256") {
    // Same variable and rotation rule as the gateway: a comma list whose first entry is current.
    const current = secretFromEnv(env, "GATEWAY_JWT_SECRET").split(",")[0].trim();
    config.hsSecret = requireSecret(current, "GATEWAY_JWT_SECRET (JWT_MODE=hs256)");
    if (config.hsSecret === config.authSecret) {
      throw new ConfigError("GATEWAY_JWT_SECRET must differ from BETTER_AUTH_SECRET");
    }
  }
  const others = [config.authSecret, config.hsSecret];
  if (config.revocationSecrets.some((secret) => others.includes(secret))) {
    throw new ConfigError("BA_REVOCATION_SECRET must differ from BETTER_AUTH_SECRET and GATEWAY_JWT_SECRET");
  }
  return config;
}
