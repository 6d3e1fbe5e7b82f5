"""The nine ingest endpoints: path, fixed event category and the server's rate limit."""

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
    # Requests per second the server allows (ingest-api.md); also our client-side default.
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
