"""Everything that talks to OpenAI's Organization APIs; nothing else in the program does."""

from __future__ import annotations

from .client import AdminClient, RetryPolicy
from .errors import (
    AdminKeyError,
    BadUpstreamResponseError,
    InvalidAdminKeyError,
    NotAdminKeyError,
    RateLimitedError,
    RevokedAdminKeyError,
    UpstreamError,
    UpstreamUnavailableError,
)
from .records import ApiKey, CostBucket, CostResult, Project, UsageBucket, UsageResult, User

__all__ = [
    "AdminClient",
    "AdminKeyError",
    "ApiKey",
    "BadUpstreamResponseError",
    "CostBucket",
    "CostResult",
    "InvalidAdminKeyError",
    "NotAdminKeyError",
    "Project",
    "RateLimitedError",
    "RetryPolicy",
    "RevokedAdminKeyError",
    "UpstreamError",
    "UpstreamUnavailableError",
    "UsageBucket",
    "UsageResult",
    "User",
]
