"""Rate limiting: the per-IP rule middleware and the distributed sliding-window limiter.

Written here rather than taken from a library because no maintained library offers an exact
sliding window that is atomic across SQL databases (SQLite, PostgreSQL, MySQL) and Redis.

Public API, as the README's "Python API" documents it (importable before the app registry is
ready; nothing connects at import): from `cloudops.ratelimit.limiter`, `get_rate_limiter`,
`get_rate_limiter_sync`, `RateLimiter` and its public methods, the presets
`webhook_rate_limiter` and `s3_rate_limiter`, and `BackendUnavailable` and `Decision` (what
`hit` raises and returns); from `cloudops.ratelimit.middleware`, `RateLimitMiddleware`.
Everything else is the package's own and may change.
"""
