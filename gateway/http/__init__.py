"""The HTTP layer: client connections (llhttp), wire encoding, the upstream connections and their pools.

Nothing here knows about tokens, routes or policy: it turns bytes into `messages.Request` and
`messages.Reply` into bytes, on both legs.
"""
