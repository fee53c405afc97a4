// Builds the options of Better Auth's jwt() plugin for the two modes taskgate verifies:
// asymmetric keys published as a JWKS, or HS256 with a secret shared with the gateway.
import { SignJWT } from "jose";

import { withSessionId } from "./revocations.mjs";

/** A jwt.sign callback that signs HS256 with the shared secret; Better Auth has no built-in HS256. */
function hs256Signer(secret) {
  const key = new TextEncoder().encode(secret);
  return async (payload) => {
    const { iat, exp, nbf, iss, aud, sub, ...claims } = payload;
    const token = new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(iat ?? Math.floor(Date.now() / 1000))
      .setExpirationTime(exp)
      .setIssuer(iss)
      .setAudience(aud)
      .setSubject(sub);
    if (nbf !== undefined) token.setNotBefore(nbf);
    return token.sign(key);
  };
}

export function jwtPluginOptions(config) {
  // A number here would be taken as the absolute `exp` claim, so the lifetime goes in as a time span. Every
  // token names its session (`sid`), so a revoked session's tokens can be refused one by one.
  const jwt = {
    issuer: config.issuer,
    audience: config.audience,
    expirationTime: `${config.ttlS}s`,
    definePayload: withSessionId(),
  };
  if (config.mode === "hs256") {
    // Better Auth insists on a remoteUrl (and an alg for its metadata) whenever jwt.sign is custom;
    // the URL is never served, since an HMAC secret must not be published.
    return {
      jwt: { ...jwt, sign: hs256Signer(config.hsSecret) },
      jwks: { remoteUrl: `${config.baseURL}/api/auth/jwks`, keyPairConfig: { alg: "HS256" } },
    };
  }
  const jwks = { keyPairConfig: { alg: config.jwksAlg } };
  if (config.rotationS !== undefined) jwks.rotationInterval = config.rotationS;
  if (config.graceS !== undefined) jwks.gracePeriod = config.graceS;
  return { jwt, jwks };
}
