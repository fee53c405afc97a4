#!/usr/bin/env bash
# Installs the distribution packages the test suite needs when they are missing: a PostgreSQL server
# (tests start their own throw-away cluster), Chromium (the demo-page browser test), HAProxy (checks the compose
# load balancer's configuration) and Node.js >= 20
# (the Better Auth reference issuer). Idempotent; does nothing when everything is present.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  need+=(nodejs npm)
fi
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
