"""The ingest API's contract the layers above share: the nine endpoints (path, fixed event category,
the server's rate limit), the per-request record limit, and what the auth headers may carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Endpoint:
    key: str
    path: str
    # The fixed `event_category` value; None where the record has no category (customers,
    # extattributes) or where it is free text (system-events).
    category: str | None
    # Requests per second the server allows (docs/ingest-api.md); also our client-side default.
    rate_limit: float


ENDPOINTS: Final[dict[str, Endpoint]] = {
    e.key: e
    for e in (
        Endpoint("customers", "/customers", None, 50.0),
        Endpoint("account", "/events/account", "Account", 250.0),
        Endpoint("deposit", "/events/deposit", "Deposit", 250.0),
        Endpoint("withdraw", "/events/withdraw", "Withdraw", 250.0),
        Endpoint("gaming-activity", "/events/gaming-activity", "Gaming Activity", 250.0),
        Endpoint("wallet-balance", "/events/wallet-balance", "Wallet Balance", 250.0),
        Endpoint("refer-friend", "/events/refer-friend", "Refer Friend", 250.0),
        Endpoint("system-events", "/events/system-events", None, 250.0),
        Endpoint("extattributes", "/extattributes", None, 50.0),
    )
}

ENDPOINT_KEYS: Final[tuple[str, ...]] = tuple(ENDPOINTS)

# Hard limit of the API: records per request.
MAX_RECORDS_PER_REQUEST: Final[int] = 500

# The token and the ids travel as HTTP headers and feed the signing key. Many servers read header
# bytes back as Latin-1, so any other character would change what the server derives its key from
# and turn into a baffling 401: the settings and the signer refuse such values up front.
HEADER_SAFE_RULE: Final = "must be printable ASCII without surrounding whitespace"


def header_safe(value: str) -> bool:
    """Whether `value` can go into an auth header unchanged (see HEADER_SAFE_RULE); "" passes."""
    return value.isascii() and value.isprintable() and value == value.strip()
