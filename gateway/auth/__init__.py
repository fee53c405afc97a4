"""Authentication: the bearer credential, its verification by the issuer that may verify it, and the caches
and checks (key sets, verdicts, revocations) that verification owns."""
