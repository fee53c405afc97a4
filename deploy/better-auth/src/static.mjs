// Serves the demo page from a fixed set of files read at start, so no request path ever reaches
// the file system (no traversal to guard against).
import { readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** Maps "prefix/name" to {body, type} for every servable file in dir, into files; "prefix/" is index.html. */
export function loadStaticFiles(dir, prefix = "", files = new Map()) {
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) files.set(`${prefix}/${name}`, { body: readFileSync(join(dir, name)), type });
  }
  if (files.has(`${prefix}/index.html`)) files.set(`${prefix}/`, files.get(`${prefix}/index.html`));
  return files;
}

/** Headers that keep the page to its own scripts and lets it talk only to itself and the gateway. */
export function pageSecurityHeaders(gatewayURL) {
  return {
    "Content-Security-Policy":
      `default-src 'self'; connect-src 'self' ${gatewayURL}; img-src 'self' data:; ` +
      "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
  };
}
