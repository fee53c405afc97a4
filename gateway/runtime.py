"""The policy as the pipeline runs it: its router, one connection pool per upstream, one key set per JWKS URL,
and the verifier for its issuers — built whole, then swapped in with one assignment.

A request reads the runtime once, when it starts, and finishes under it, so a reload never mixes two
policies in one decision. A reload keeps what did not change: the pool of an upstream whose name and URL are
the same (its connections stay open), and the key set of a JWKS URL still named (no refetch). A new
upstream gets a pool, a new key set is fetched before the swap, and a pool no longer named is closed once
its requests in flight are answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from .auth.issuers import build_verifier, key_sets_for
from .auth.jwks import JwksCache
from .auth.verifier import Revocations, TokenVerifier
from .http.upstream_pool import Upstream
from .policy.cors import allowed_methods
from .policy.match import Router
from .policy.model import Policy
from .policy.paths import BadTarget, NotRouted
from .settings import GatewaySettings

# The label of a request no route took (refused target, unknown path): metrics and logs never carry a raw path.
ROUTE_OTHER = "other"


@dataclass(frozen=True, slots=True)
class Runtime:
    policy: Policy
    router: Router
    pools: Mapping[str, Upstream]  # by upstream name
    key_sets: Mapping[str, JwksCache]  # by JWKS URL
    verifier: TokenVerifier
    methods: str  # every method a route forwards, for CORS preflights

    def label(self, raw_target: str) -> str:
        """The route template of a target for metrics and logs; `other` when no route takes it."""
        try:
            return self.router.locate(raw_target).route.template.label
        except (BadTarget, NotRouted):
            return ROUTE_OTHER

    def issuer_key_sets(self) -> dict[str, JwksCache]:
        """The key set of every issuer that has one, by issuer name (for /readyz)."""
        return {i.name: self.key_sets[i.jwks_url] for i in self.policy.issuers if i.jwks_url is not None}


async def start_runtime(
    policy: Policy,
    settings: GatewaySettings,
    session: aiohttp.ClientSession,
    *,
    revocations: Revocations | None,
    previous: Runtime | None = None,
) -> Runtime:
    """Everything `policy` needs, started: new pools opened, new key sets fetched once (a key set that cannot
    be fetched yet is kept and retried, as at start; /readyz shows it)."""
    kept_pools = previous.pools if previous is not None else {}
    pools: dict[str, Upstream] = {}
    for upstream in policy.upstreams:
        kept = kept_pools.get(upstream.name)
        if kept is not None and kept.base_url == upstream.url:
            pools[upstream.name] = kept
            continue
        pool = Upstream(
            upstream.url,
            timeout_s=settings.upstream_timeout_s,
            connect_timeout_s=settings.upstream_connect_timeout_s,
            pool_size=settings.upstream_pool_size,
        )
        await pool.start()
        pools[upstream.name] = pool
    earlier = previous.key_sets if previous is not None else {}
    key_sets = key_sets_for(policy.issuers, settings, session, earlier)
    await asyncio.gather(*(key_set.refresh() for url, key_set in key_sets.items() if url not in earlier))
    verifier = build_verifier(
        policy.issuers, key_sets, settings, revocations=revocations, cache_size=settings.token_cache_size
    )
    if previous is not None:  # the counters are monotonic across reloads (Prometheus counters)
        verifier.cache_hits, verifier.cache_misses = previous.verifier.cache_hits, previous.verifier.cache_misses
    methods = allowed_methods(method for route in policy.routes for method in route.methods)
    return Runtime(policy, Router(policy), pools, key_sets, verifier, methods)


def retired_pools(old: Runtime, new: Runtime) -> list[Upstream]:
    """The pools of `old` that `new` does not use."""
    kept = {id(pool) for pool in new.pools.values()}
    return [pool for pool in old.pools.values() if id(pool) not in kept]
