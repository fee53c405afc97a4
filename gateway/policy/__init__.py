"""The gateway's policy as data: which paths are forwarded, to which upstream, for which tokens.

One job per module: `templates` (path templates → compiled matchers), `claims` (claim references and the
rules that compare them), `model` (the frozen policy objects), `file` (YAML → validated Policy), `default`
(the built-in policy that reproduces the task API), `match` (per-request routing and authorisation
outcomes), `explain` (the operator's view of one request); and what the pipeline applies per request:
`paths` (the strict target checks every route relies on), `headers` (what crosses the gateway), `cors`,
`ratelimit`, `assertion` (the proof an upstream receives). Format and semantics: docs/policy.md.
"""
