"""From the policy's issuers to a verifier: one key set per JWKS URL, one TokenVerifier for all issuers.

The gateway and `taskgate policy explain` build their verifiers here, so both verify a token the same way. A
key set is shared by the issuers that name the same URL (they differ by `iss`, docs/policy.md) and survives a
policy reload when its URL is still named, so a reload costs no refetch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import aiohttp

from ..policy.model import Issuer
from ..settings import GatewaySettings
from .jwks import JwksCache
from .verifier import Revocations, TokenVerifier, TrustedIssuer


def key_sets_for(
    issuers: Iterable[Issuer],
    settings: GatewaySettings,
    session: aiohttp.ClientSession,
    previous: Mapping[str, JwksCache] | None = None,
) -> dict[str, JwksCache]:
    """The key set of every JWKS URL the issuers name, by URL; an earlier one is kept (not yet fetched: the
    caller refreshes the new ones). `on_change` is bound by build_verifier."""
    key_sets: dict[str, JwksCache] = {}
    for issuer in issuers:
        url = issuer.jwks_url
        if url is None or url in key_sets:
            continue
        kept = (previous or {}).get(url)
        key_sets[url] = kept or JwksCache(
            url,
            session=session,
            cache_s=settings.jwks_cache_s,
            cooldown_s=settings.jwks_refetch_cooldown_s,
            timeout_s=settings.jwks_timeout_s,
            max_bytes=settings.jwks_max_bytes,
            on_change=_nothing,
        )
    return key_sets


def build_verifier(
    issuers: Iterable[Issuer],
    key_sets: Mapping[str, JwksCache],
    settings: GatewaySettings,
    *,
    revocations: Revocations | None,
    cache_size: int,
) -> TokenVerifier:
    """One verifier for these issuers; a key set that changes drops its remembered verdicts."""
    verifier = TokenVerifier(
        issuers=tuple(
            TrustedIssuer(
                name=issuer.name,
                hmac_secrets=issuer.secrets,
                keys=key_sets[issuer.jwks_url] if issuer.jwks_url is not None else None,
                issuer=issuer.issuer,
                audience=issuer.audience,
            )
            for issuer in issuers
        ),
        leeway_s=settings.jwt_leeway_s,
        max_ttl_s=settings.jwt_max_ttl_s,
        cache_size=cache_size,
        revocations=revocations,
    )
    for key_set in key_sets.values():
        key_set.on_change = verifier.forget_all
    return verifier


def _nothing() -> None:
    """The change callback of a key set no verifier uses yet."""
