// The fetch wrapper docs/better-auth.md ("Point your own frontend at taskgate") shows, line for line: Better
// Auth's own browser client gets the JWT, and every call to the gateway carries it. Bundled with esbuild and
// run in Chromium by tests/browser/test_own_frontend.py, behind the small page in this directory.
// own-frontend-client:start
import { createAuthClient } from "better-auth/client";
import { jwtClient } from "better-auth/client/plugins";

export const authClient = createAuthClient({ plugins: [jwtClient()] });

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    this.status = status;
    this.detail = detail;
  }
}

/** `api(method, path, body?)` calls taskgate; a 401 renews the JWT once, then sends the person to sign-in. */
export function createApi(gatewayURL, onSignedOut) {
  let jwt = null; // kept in memory only, fetched when the gateway asks for one
  const send = (method, path, body) =>
    fetch(gatewayURL + path, {
      method,
      credentials: "include",
      headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  return async (method, path, body) => {
    let response = await send(method, path, body);
    if (response.status === 401) {
      const { data } = await authClient.token(); // GET /api/auth/token with the session cookie
      jwt = data?.token ?? null;
      if (jwt) response = await send(method, path, body);
    }
    if (response.status === 401) onSignedOut();
    if (!response.ok) throw new ApiError(response.status, (await response.json()).detail);
    return response.status === 204 ? null : response.json();
  };
}
// own-frontend-client:end
