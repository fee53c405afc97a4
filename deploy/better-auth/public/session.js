// Talks to Better Auth on this page's own origin (the session lives in its HttpOnly cookie) and
// keeps a short-lived JWT for the gateway, renewed a minute before it expires.
import { CallError, detailOf } from "./errors.js";

const RENEW_BEFORE_S = 60;

async function authCall(method, path, body) {
  let response;
  try {
    response = await fetch(`/api/auth${path}`, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new CallError("Better Auth", 0, "cannot reach the sign-in service");
  }
  if (!response.ok) throw new CallError("Better Auth", response.status, await detailOf(response));
  return response;
}

function claimsOf(jwt) {
  const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
}

export class Session {
  constructor(onExpired) {
    this.onExpired = onExpired;
    this.jwt = null;
    this.claims = null;
    this.pending = null;
    this.timer = null;
  }

  get userId() {
    return this.claims?.sub ?? null;
  }

  get email() {
    return this.claims?.email ?? "";
  }

  /** Fetches a fresh JWT with the session cookie; false when there is no session. */
  async renew() {
    this.pending ??= (async () => {
      try {
        const response = await fetch("/api/auth/token", { credentials: "same-origin" });
        if (response.status === 401) {
          this.clear();
          return false;
        }
        if (!response.ok) throw new CallError("Better Auth", response.status, await detailOf(response));
        this.jwt = (await response.json()).token;
        this.claims = claimsOf(this.jwt);
        this.schedule();
        return true;
      } finally {
        this.pending = null;
      }
    })();
    return this.pending;
  }

  schedule() {
    clearTimeout(this.timer);
    const delayMs = Math.max(0, (this.claims.exp - RENEW_BEFORE_S) * 1000 - Date.now());
    this.timer = setTimeout(async () => {
      try {
        if (!(await this.renew())) throw new CallError("Better Auth", 401, "your session has ended; sign in again");
      } catch (err) {
        this.onExpired(err);
      }
    }, delayMs);
  }

  /** The JWT to send to the gateway, renewed first when it is within a minute of expiring. */
  async bearer() {
    if (!this.jwt || this.claims.exp - RENEW_BEFORE_S <= Date.now() / 1000) {
      if (!(await this.renew())) throw new CallError("Better Auth", 401, "your session has ended; sign in again");
    }
    return this.jwt;
  }

  async signUp(name, email, password) {
    await authCall("POST", "/sign-up/email", { name, email, password });
    return this.renew();
  }

  async signIn(email, password) {
    await authCall("POST", "/sign-in/email", { email, password });
    return this.renew();
  }

  async signOut() {
    try {
      await authCall("POST", "/sign-out", {});
    } finally {
      this.clear();
    }
  }

  clear() {
    clearTimeout(this.timer);
    this.jwt = null;
    this.claims = null;
  }
}
