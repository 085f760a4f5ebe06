"""Everything that talks to OpenAI's Organization APIs; nothing else in the program does."""

from __future__ import annotations

from .client import AdminClient, RetryPolicy
from .errors import (
    ENDS_SYNC,
    AdminKeyError,
    BadUpstreamResponseError,
    InvalidAdminKeyError,
    NotAdminKeyError,
    NotJsonError,
    RateLimitedError,
    RefusedDimensionError,
    RevokedAdminKeyError,
    SourceNotAvailableError,
    UpstreamError,
    UpstreamUnavailableError,
    UpstreamUnreachableError,
)
from .records import ApiKey, CostBucket, CostResult, Project, UsageBucket, UsageResult, User

__all__ = [
    "ENDS_SYNC",
    "AdminClient",
    "AdminKeyError",
    "ApiKey",
    "BadUpstreamResponseError",
    "CostBucket",
    "CostResult",
    "InvalidAdminKeyError",
    "NotAdminKeyError",
    "NotJsonError",
    "Project",
    "RateLimitedError",
    "RefusedDimensionError",
    "RetryPolicy",
    "RevokedAdminKeyError",
    "SourceNotAvailableError",
    "UpstreamError",
    "UpstreamUnavailableError",
    "UpstreamUnreachableError",
    "UsageBucket",
    "UsageResult",
    "User",
]
