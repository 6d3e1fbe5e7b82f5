"""Two replicas' ingest clients share one account's rate limit on the sandbox (its rate limiter
on): each is configured with the whole limit, the 429s make both back off, and every record is
still accepted exactly once, none rejected."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from pydantic import SecretStr

from connector.config.settings import BatchingSettings, DestinationSettings, RetrySettings
from connector.devtools.sandbox.server import (
    DEMO_ACCOUNT_ID,
    DEMO_TOKEN,
    DEMO_WORKSPACE_ID,
    SandboxOptions,
    SandboxServer,
)
from connector.endpoints import ENDPOINTS
from connector.ingest.client import IngestClient, UploadResult
from connector.runtime.metrics import Metrics
from tests.support.http import preserved_structlog, valid_record

pytestmark = pytest.mark.integration

SCALE = 0.08  # the sandbox allows deposit 250 x 0.08 = 20 requests/s for the account
PER_CLIENT = 30  # one record per request: 60 requests, three seconds of the whole limit


def test_two_clients_at_the_full_limit_back_off_and_lose_nothing() -> None:
    limit = ENDPOINTS["deposit"].rate_limit * SCALE
    with preserved_structlog(), SandboxServer(SandboxOptions(port=0, rate_limit_scale=SCALE, seed=3)) as api:
        metrics = [Metrics(), Metrics()]
        clients = [
            IngestClient(
                DestinationSettings(
                    base_url=api.base_url,
                    account_id=DEMO_ACCOUNT_ID,
                    workspace_id=DEMO_WORKSPACE_ID,
                    auth_token=SecretStr(DEMO_TOKEN),
                    rate_limits={"deposit": limit},  # what each pod gets without the chart's split
                ),
                RetrySettings(initial_backoff_ms=100, max_backoff_ms=1000),
                BatchingSettings(max_records=1),
                metrics=m,
            )
            for m in metrics
        ]
        results: list[UploadResult] = []
        start = threading.Barrier(2)

        def send(index: int) -> None:
            records = [
                {
                    **valid_record("deposit", index * 1000 + i),
                    "account_id": DEMO_ACCOUNT_ID,
                    "workspace_id": DEMO_WORKSPACE_ID,
                    "event_category": "Deposit",
                }
                for i in range(PER_CLIENT)
            ]
            start.wait()
            results.append(clients[index].upload("deposit", records))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for c in clients:
            c.close()
        accepted = Counter(record["event_id"] for endpoint, record in api.entries() if endpoint == "deposit")

    assert len(results) == 2
    assert [r.accepted for r in results] == [PER_CLIENT, PER_CLIENT]
    assert all(r.rejected == [] for r in results)
    assert len(accepted) == 2 * PER_CLIENT and set(accepted.values()) == {1}
    throttled = sum(
        m.registry.get_sample_value("optikpi_ingest_requests_total", {"endpoint": "deposit", "status": "429"})
        or 0
        for m in metrics
    )
    rates = [
        m.registry.get_sample_value(
            "optikpi_ingest_rate_limit", {"destination": "optikpi", "endpoint": "deposit"}
        )
        for m in metrics
    ]
    # Together they asked for twice the limit: the API said so, and at least one client slowed down.
    assert throttled > 0
    assert any(rate is not None and rate < limit for rate in rates), rates
