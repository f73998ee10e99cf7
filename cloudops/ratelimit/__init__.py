"""Rate limiting: the per-IP rule middleware and the distributed sliding-window limiter.

Written here rather than taken from a library because no maintained library offers an exact
sliding window that is atomic across SQL databases (SQLite, PostgreSQL, MySQL) and Redis.

Public API (importable before the app registry is ready; nothing connects at import):
`get_rate_limiter`, `RateLimiter`, `webhook_rate_limiter`, `s3_rate_limiter` from
`cloudops.ratelimit.limiter`, and `RateLimitMiddleware` from `cloudops.ratelimit.middleware`.
"""
