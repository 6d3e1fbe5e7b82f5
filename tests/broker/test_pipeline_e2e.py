"""The whole connector against a real Kafka-protocol broker (Tansu), the registry stub and the sandbox.

Each test proves invariants of the design end to end: exact mapping (1), poison never blocks (4),
no loss and bounded duplicates across kill -9 (1, 2), order per partition (3), two members sharing a
group (7), graceful stop (8), credentials are not data problems (5). Numbers worth reading (kills,
windows, duplicates, drain time) are printed; run with `-s` to see them.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connector import __version__
from connector.devtools.embedded_broker import EmbeddedBroker
from connector.devtools.registry_stub import RegistryStub
from connector.devtools.sandbox.server import DEMO_ACCOUNT_ID, DEMO_WORKSPACE_ID, SandboxServer
from connector.kafka.ports import Record, TopicPartition
from connector.pipeline.deadletter import (
    ADDED_HEADERS,
    H_CLASS,
    H_ENDPOINT,
    H_FAILED_AT,
    H_HTTP_RESPONSE,
    H_HTTP_STATUS,
    H_MESSAGE,
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    H_TOPIC,
    H_TRACE_ID,
    H_VALUE_OMITTED,
    H_VERSION,
)
from connector.runtime.health import Reason
from tests.support.brokers import UniqueNames
from tests.support.e2e import (
    ENDPOINT,
    ConnectorProcess,
    Ledger,
    Outcome,
    Produced,
    accepted_count,
    accepted_ids,
    bet_mapping,
    bet_topic_with_records,
    committed_offsets,
    connector_doc,
    create_topics,
    dlq_origin,
    encode_bet,
    free_port,
    header,
    in_process,
    make_bet,
    produce_bets,
    read_topic,
    register_bet_schema,
    run_kill_loop,
    settings_of,
    wait_for_quiet_sandbox,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.broker

# Safety nets only (a join takes ~3 s on Tansu, a rebalance after a vanished member ~10 s).
SETTLE_S = 90.0
FAILED_AT = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def processes() -> Iterator[list[ConnectorProcess]]:
    """Connector processes a test starts; any left running (a failed test) are killed afterwards."""
    started: list[ConnectorProcess] = []
    yield started
    for proc in started:
        proc.stop_quietly()


def first_acceptance_order_holds(sandbox: SandboxServer, ledger: Ledger) -> dict[TopicPartition, list[int]]:
    """Offsets per partition in the order the API first accepted them (invariant 3: increasing)."""
    by_id = ledger.by_event_id()
    seen: set[str] = set()
    order: dict[TopicPartition, list[int]] = defaultdict(list)
    for record in sandbox.records(ENDPOINT):
        event_id = str(record["event_id"])
        if event_id in by_id and event_id not in seen:
            seen.add(event_id)
            order[by_id[event_id].tp].append(by_id[event_id].offset)
    return order


def assert_offset_order(sandbox: SandboxServer, ledger: Ledger) -> None:
    for tp, offsets in first_acceptance_order_holds(sandbox, ledger).items():
        assert offsets == sorted(offsets), f"{tp} reached the API out of offset order"


# ---------------------------------------------------------------------------------------------------- 1


def test_one_bet_reaches_the_api_exactly_as_the_mapping_says(
    broker: EmbeddedBroker, registry: RegistryStub, sandbox: SandboxServer, names: UniqueNames, tmp_path: Path
) -> None:
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: 1, dlq: 1})
    bet = {
        "bet_id": "b-00000042-settled",
        "event_type": "BET_SETTLED",
        "player": {"id": "P0000042", "brand": "royalspin.co.uk", "country": "GB"},
        "game": {"id": "sb-football", "title": "Premier League", "provider": "Kambi", "category": "SPORTS"},
        "sport": "Football",
        "market": "Match Result",
        "stake": Decimal("20.00"),
        "win_amount": Decimal("50.50"),
        "odds": 2.525,
        "currency": "GBP",
        "money_type": "BONUS",
        "placed_at": datetime(2024, 6, 1, 12, 0, 1, 234000, tzinfo=UTC),
        "settled_at": datetime(2024, 6, 1, 14, 5, tzinfo=UTC),
        "channel": "IOS_APP",
        "status": "WON",
        "session_id": "s-000000abcdef",
        "metadata": {"client_version": "5.12.3", "ip_country": "GB"},
    }
    ledger = Ledger(broker.bootstrap_servers)
    ledger.produce(topic, 0, encode_bet(register_bet_schema(registry, topic), bet), key=b"P0000042")
    ledger.flush()
    ledger.close()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
    )
    with in_process(settings_of(doc, tmp_path / "connector.yaml")) as runner:
        wait_until(lambda: runner.pipeline.stats["accepted"] == 1, SETTLE_S, "the bet to be accepted")
        assert runner.stop() == 0

    # Model field order; timestamp-millis → ...sssZ; decimal → number (integral → integer); enum → symbol.
    expected = {
        "account_id": DEMO_ACCOUNT_ID,
        "workspace_id": DEMO_WORKSPACE_ID,
        "user_id": "P0000042",
        "event_category": "Gaming Activity",
        "event_name": "BET_SETTLED",
        "event_id": "b-00000042-settled",
        "event_time": "2024-06-01T12:00:01.234Z",
        "wager_amount": 20,
        "win_amount": 50.5,
        "odds": 2.525,
        "game_id": "sb-football",
        "game_title": "Premier League",
        "provider": "Kambi",
        "game_category": "SPORTS",
        "sport_type": "Football",
        "betting_market": "Match Result",
        "bet_status": "WON",
        "betting_channel": "IOS_APP",
        "currency": "GBP",
        "money_type": "BONUS",
    }
    received = sandbox.records(ENDPOINT)
    assert received == [expected]
    assert list(received[0]) == list(expected), "fields out of the model's order"
    assert type(received[0]["wager_amount"]) is int and type(received[0]["win_amount"]) is float
    assert committed_offsets(broker.bootstrap_servers, group, [TopicPartition(topic, 0)]) == {
        TopicPartition(topic, 0): 1
    }


# ---------------------------------------------------------------------------------------------------- 2

# (case, stage the record must end in, or None for a good record); the same script on each partition,
# rotated on the second so the poison sits at different offsets.
MAIN_SCRIPT: list[tuple[str, str | None]] = [
    ("good", None),
    ("decode-garbage", "DECODE"),
    ("good", None),
    ("map-nan-odds", "MAP"),
    ("good", None),
    ("decode-unknown-schema", "DECODE"),
    ("good", None),
    ("validate-empty-player", "VALIDATE"),
    ("good", None),
    ("good", None),
    ("decode-empty-value", "DECODE"),
    ("good", None),
    ("validate-empty-bet-id", "VALIDATE"),
    ("good", None),
]
# Second topic: account_id comes from player.brand, so the sandbox (not the local model) refuses the
# records whose brand is not the sandbox's account: a 400 the client must narrow down to them.
UPLOAD_SCRIPT: list[tuple[str, str | None]] = [
    ("good", None),
    ("upload-foreign-account", "UPLOAD"),
    ("good", None),
    ("good", None),
    ("upload-foreign-account", "UPLOAD"),
    ("good", None),
]
EXPECTED_CLASS = {
    "decode-garbage": "DecodeError",
    "decode-unknown-schema": "UnknownSchemaError",
    "decode-empty-value": "DecodeError",
    "map-nan-odds": "MappingError",
    "validate-empty-player": "ValidationError",
    "validate-empty-bet-id": "ValidationError",
    "upload-foreign-account": "IngestRejected",
}
EXPECTED_REASON = {  # a word the human-readable reason must contain
    "decode-garbage": "Avro",
    "decode-unknown-schema": "999999",
    "decode-empty-value": "empty",
    "map-nan-odds": "odds",
    "validate-empty-player": "user_id",
    "validate-empty-bet-id": "event_id",
    "upload-foreign-account": "account_id",
}


def scripted_value(case: str, schema_id: int, rng: random.Random, index: int) -> tuple[bytes, str | None]:
    """The Kafka value for one scripted case, and the event id the API would see."""
    bet = make_bet(rng, index)
    if case == "decode-garbage":
        return encode_bet(schema_id, bet)[:5] + b"\x80\x80\x80\x80\x10not avro at all", None
    if case == "decode-unknown-schema":
        return encode_bet(999_999, bet), None
    if case == "decode-empty-value":
        return b"", None
    if case == "map-nan-odds":
        bet["odds"] = float("nan")
    elif case == "validate-empty-player":
        bet["player"] = {**bet["player"], "id": ""}
    elif case == "validate-empty-bet-id":
        bet["bet_id"] = ""
    elif case == "upload-foreign-account":
        bet["player"] = {**bet["player"], "brand": "someone-else"}
    elif case == "good-upload-topic":
        bet["player"] = {**bet["player"], "brand": DEMO_ACCOUNT_ID}
    return encode_bet(schema_id, bet), str(bet["bet_id"])


def test_poison_of_every_stage_is_dead_lettered_byte_for_byte_while_good_records_flow(
    broker: EmbeddedBroker, registry: RegistryStub, sandbox: SandboxServer, names: UniqueNames, tmp_path: Path
) -> None:
    main, uploads, dlq, group = names.topic("main"), names.topic("upload"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {main: 2, uploads: 1, dlq: 1})
    rng = random.Random(4)
    ledger = Ledger(broker.bootstrap_servers)
    scripts = {
        (main, 0): MAIN_SCRIPT,
        (main, 1): MAIN_SCRIPT[5:] + MAIN_SCRIPT[:5],
        (uploads, 0): UPLOAD_SCRIPT,
    }
    index = 0
    for (topic, partition), script in scripts.items():
        schema_id = register_bet_schema(registry, topic)
        for case, stage in script:
            index += 1
            kind = "good-upload-topic" if topic == uploads and case == "good" else case
            value, event_id = scripted_value(kind, schema_id, rng, index)
            headers = (("e2e.case", case.encode()), ("trace", b"\x00\xffbinary"), ("nothing", None))
            ledger.produce(
                topic,
                partition,
                value,
                key=f"key-{index}".encode(),
                headers=headers,
                event_id=event_id if stage is None else None,
                poison=stage,
            )
    ledger.flush()
    ledger.close()
    total = len(ledger.records)
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(main), bet_mapping(uploads, fields={"account_id": "player.brand"})],
    )
    with in_process(settings_of(doc, tmp_path / "connector.yaml")) as runner:
        stats = runner.pipeline.stats
        wait_until(
            lambda: (
                stats["accepted"] + stats["dead_lettered"] == total and runner.pipeline.in_flight_records == 0
            ),
            SETTLE_S,
            f"all {total} records to be accepted or dead-lettered",
        )
        assert runner.stop() == 0
        by_stage = dict(runner.pipeline.dead_lettered_by_stage)

    poison = {r.position: r for r in ledger.poison()}
    dead = read_topic(broker.bootstrap_servers, dlq)
    assert sorted(dlq_origin(r) for r in dead) == sorted(poison), (
        "the DLQ holds exactly the poison, once each"
    )
    assert by_stage == {"DECODE": 6, "MAP": 2, "VALIDATE": 4, "UPLOAD": 2}
    for record in dead:
        check_dead_letter(record, poison[dlq_origin(record)])
    # One producer, one DLQ partition: pre-upload poison of each partition arrives in offset order.
    for tp in ((main, 0), (main, 1)):
        offsets = [dlq_origin(r)[2] for r in dead if dlq_origin(r)[:2] == tp]
        assert offsets == sorted(offsets)

    good = ledger.good()
    assert accepted_ids(sandbox) == Counter(r.event_id for r in good), "every good record accepted once"
    assert_offset_order(sandbox, ledger)
    assert sandbox.stats()["requests"][ENDPOINT].get("400", 0) >= 2, "the 400s were narrowed down"
    end = ledger.end_offsets()
    assert committed_offsets(broker.bootstrap_servers, group, end) == end


def check_dead_letter(record: Record, source: Produced) -> None:
    case = dict(source.headers)["e2e.case"]
    assert case is not None
    name = case.decode()
    assert (record.key, record.value) == (source.key, source.value), name
    assert record.headers[: len(source.headers)] == source.headers, f"{name}: original headers changed"
    added = dict(record.headers[len(source.headers) :])
    # These records carry no traceparent: only an UPLOAD dead letter has a trace id (its upload's).
    # None is too large for the dead-letter topic, so every copy keeps its value.
    expected_names = (
        ADDED_HEADERS
        - {H_VALUE_OMITTED}
        - ({H_HTTP_STATUS, H_HTTP_RESPONSE, H_TRACE_ID} if source.poison != "UPLOAD" else set())
    )
    assert set(added) == expected_names, name
    if source.poison == "UPLOAD":
        assert re.fullmatch(rb"[0-9a-f]{32}", added[H_TRACE_ID] or b""), name
    assert added[H_TOPIC] == source.topic.encode()
    assert added[H_PARTITION] == str(source.partition).encode()
    assert added[H_OFFSET] == str(source.offset).encode()
    assert added[H_STAGE] == str(source.poison).encode(), name
    assert added[H_CLASS] == EXPECTED_CLASS[name].encode(), (name, added[H_CLASS])
    message = header(record, H_MESSAGE)
    assert message is not None and EXPECTED_REASON[name].encode() in message, (name, message)
    assert added[H_ENDPOINT] == ENDPOINT.encode()
    assert added[H_VERSION] == __version__.encode()
    failed_at = added[H_FAILED_AT]
    assert failed_at is not None and FAILED_AT.match(failed_at), failed_at
    if source.poison == "UPLOAD":
        assert added[H_HTTP_STATUS] == b"400"
        response = added[H_HTTP_RESPONSE]
        assert response is not None and b"account_id" in response and len(response) <= 1024


# ---------------------------------------------------------------------------------------------------- 3


def test_kill_9_twice_mid_stream_loses_nothing_and_duplicates_stay_within_the_uncommitted_window(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
) -> None:
    # Latency keeps uploads in flight, so each kill lands with work consumed but not committed.
    sandbox = sandbox_factory(latency_ms=20)
    report = run_kill_loop(
        bootstrap=broker.bootstrap_servers,
        registry=registry,
        sandbox=sandbox,
        workdir=tmp_path,
        topic=names.topic("bets"),
        dlq_topic=names.topic("dlq"),
        group=names.group(),
        records=3000,
        partitions=3,
        interruptions=2,
        seed=20261122,
        progress=(0.2, 0.5),
    )
    print(f"\nkill -9 loop: {report.summary()}")
    report.assert_sound(kills=2)


# ---------------------------------------------------------------------------------------------------- 4


def test_two_members_share_the_partitions_and_the_survivor_takes_over_after_sigterm(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox: SandboxServer,
    names: UniqueNames,
    tmp_path: Path,
    processes: list[ConnectorProcess],
) -> None:
    topic, dlq, group = names.topic("bets"), names.topic("dlq"), names.group()
    create_topics(broker.bootstrap_servers, {topic: 4, dlq: 1})
    schema_id = register_bet_schema(registry, topic)
    rng = random.Random(44)
    ledger = Ledger(broker.bootstrap_servers)
    configs = {}
    for member in ("a", "b"):
        # A constant the API keeps tells which member uploaded each record.
        doc = connector_doc(
            bootstrap=broker.bootstrap_servers,
            registry_url=registry.url,
            api_url=sandbox.base_url,
            group=group,
            dlq_topic=dlq,
            mappings=[bet_mapping(topic, constants={"campaign_name": f"member-{member}"})],
        )
        configs[member] = write_config(tmp_path, doc, f"member-{member}.yaml")
    all_partitions = {f"{topic}[{p}]" for p in range(4)}

    phase1 = produce_bets(ledger, topic, schema_id, 400, 4, rng)
    a = ConnectorProcess(configs["a"], tmp_path / "member-a.log")
    processes.append(a)
    a.wait_for(lambda p: p.assignment() == all_partitions, SETTLE_S, "member a to own all partitions")
    b = ConnectorProcess(configs["b"], tmp_path / "member-b.log")
    processes.append(b)
    b.wait_for(lambda p: bool(p.assignment()), SETTLE_S, "member b to get partitions")
    a.wait_for(
        lambda p: p.assignment() == all_partitions - b.assignment(),
        SETTLE_S,
        "member a to give partitions up",
    )
    owned_by_b = b.assignment()
    assert owned_by_b and owned_by_b != all_partitions

    phase2 = produce_bets(ledger, topic, schema_id, 800, 4, rng, first_index=400)
    wait_until(
        lambda: {r.event_id for r in phase1 + phase2} <= set(accepted_ids(sandbox)),
        SETTLE_S,
        "phases 1 and 2 to be accepted",
        poll_s=0.2,
    )
    origin = {str(r["event_id"]): r.get("campaign_name") for r in sandbox.records(ENDPOINT)}
    for record in phase2:  # produced after the rebalance: each went to its partition's owner only
        owner = "member-b" if f"{topic}[{record.partition}]" in owned_by_b else "member-a"
        assert origin[str(record.event_id)] == owner, record

    code, drain_s = b.terminate(60.0)
    assert code == 0
    a.wait_for(lambda p: p.assignment() == all_partitions, SETTLE_S, "member a to take b's partitions over")
    phase3 = produce_bets(ledger, topic, schema_id, 400, 4, rng, first_index=1200)
    wait_until(
        lambda: {r.event_id for r in phase3} <= set(accepted_ids(sandbox)),
        SETTLE_S,
        "phase 3 to be accepted by the survivor",
        poll_s=0.2,
    )
    code, _ = a.terminate(60.0)
    assert code == 0
    ledger.close()

    outcome = Outcome(accepted_ids(sandbox), Counter())
    assert outcome.lost(ledger) == []
    assert {
        r.get("campaign_name")
        for r in sandbox.records(ENDPOINT)
        if r["event_id"] in {p.event_id for p in phase3}
    } == {"member-a"}
    # Duplicates can only come from partitions that changed owner (each rebalance's window).
    moved = {int(tp.rsplit("[", 1)[1].rstrip("]")) for tp in owned_by_b}
    by_id = ledger.by_event_id()
    duplicated = [by_id[e] for e, n in outcome.accepted.items() if n > 1]
    assert all(r.partition in moved for r in duplicated), duplicated[:5]
    print(
        f"\ntwo members: b owned {sorted(owned_by_b)}; {len(ledger.records)} records, "
        f"{outcome.api_duplicates} duplicates, b drained in {drain_s:.2f} s"
    )
    assert_offset_order(sandbox, ledger)
    end = ledger.end_offsets()
    assert committed_offsets(broker.bootstrap_servers, group, end) == end


# ---------------------------------------------------------------------------------------------------- 5


def test_sigterm_drains_in_flight_work_commits_exactly_what_is_done_and_a_restart_finishes(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
    processes: list[ConnectorProcess],
) -> None:
    sandbox = sandbox_factory(latency_ms=200)
    bets = bet_topic_with_records(
        broker.bootstrap_servers,
        registry,
        names,
        partitions=3,
        count=1500,
        rng=random.Random(5),
        poison_every=50,
    )
    topic, dlq, group, ledger = bets.topic, bets.dlq, bets.group, bets.ledger
    shutdown_timeout_s = 20.0
    metrics_port = free_port()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=sandbox.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
        max_in_flight_records=300,
        shutdown_timeout_s=shutdown_timeout_s,
        server_port=metrics_port,
    )
    config = write_config(tmp_path, doc)
    first = ConnectorProcess(config, tmp_path / "first.log")
    processes.append(first)
    first.wait_for(
        lambda p: (
            accepted_count(sandbox) > 0 and (p.metric(metrics_port, "optikpi_in_flight_records") or 0) > 0
        ),
        SETTLE_S,
        "uploads under way with records in flight",
    )
    in_flight = first.metric(metrics_port, "optikpi_in_flight_records")
    code, drain_s = first.terminate(shutdown_timeout_s + 30.0)  # the bound is a safety net, with margin
    assert code == 0
    stopped = first.named("connector stopped")
    assert stopped and stopped[-1]["uncommitted"] == 0, stopped
    assert not first.named("drain deadline passed; unfinished records stay uncommitted")
    wait_for_quiet_sandbox(sandbox)

    # Committed = exactly what is done: every record below the position accepted or dead-lettered,
    # nothing at or above it (the drain finished the consumed records; nothing more was fetched).
    end = ledger.end_offsets()
    committed = {tp: c or 0 for tp, c in committed_offsets(broker.bootstrap_servers, group, end).items()}
    mid = Outcome.collect(sandbox, broker.bootstrap_servers, dlq)
    settled: dict[TopicPartition, set[int]] = defaultdict(set)
    for r in ledger.records:
        if (r.poison is None and r.event_id in mid.accepted) or r.position in mid.dead:
            settled[r.tp].add(r.offset)
    for tp in end:
        assert settled[tp] == set(range(committed[tp])), f"{tp}: committed {committed[tp]}"
    assert 0 < sum(committed.values()) < len(ledger.records), "the SIGTERM came mid-stream"
    print(
        f"\nSIGTERM drain: {in_flight:.0f} records in flight, exit {code} after {drain_s:.2f} s "
        f"(drain_s logged {stopped[-1]['drain_s']}), "
        f"committed {sum(committed.values())} of {len(ledger.records)}"
    )

    second = ConnectorProcess(config, tmp_path / "second.log")
    processes.append(second)
    second.wait_for(
        lambda _p: set(ledger.by_event_id()) <= set(accepted_ids(sandbox)),
        SETTLE_S,
        "the restart to finish the rest",
        poll_s=0.2,
    )
    code, _ = second.terminate(shutdown_timeout_s + 30.0)
    assert code == 0
    outcome = Outcome.collect(sandbox, broker.bootstrap_servers, dlq)
    assert outcome.lost(ledger) == []
    assert outcome.api_duplicates == 0 and outcome.dlq_duplicates == 0, "a clean stop re-sends nothing"
    assert_offset_order(sandbox, ledger)
    assert committed_offsets(broker.bootstrap_servers, group, end) == end


# ---------------------------------------------------------------------------------------------------- 6


def test_refused_credentials_pause_without_dead_letters_or_commits_and_recover_when_the_api_accepts(
    broker: EmbeddedBroker,
    registry: RegistryStub,
    sandbox_factory: Callable[..., SandboxServer],
    names: UniqueNames,
    tmp_path: Path,
) -> None:
    port = free_port()
    refusing = sandbox_factory(port=port, token="a-token-the-connector-does-not-have")
    bets = bet_topic_with_records(
        broker.bootstrap_servers, registry, names, partitions=2, count=200, rng=random.Random(6)
    )
    topic, dlq, group, ledger = bets.topic, bets.dlq, bets.group, bets.ledger
    end = ledger.end_offsets()
    doc = connector_doc(
        bootstrap=broker.bootstrap_servers,
        registry_url=registry.url,
        api_url=refusing.base_url,
        group=group,
        dlq_topic=dlq,
        mappings=[bet_mapping(topic)],
    )
    with in_process(settings_of(doc, tmp_path / "connector.yaml")) as runner:
        health = runner.connector.health
        wait_until(
            lambda: health.has(Reason.CREDENTIALS), SETTLE_S, "the connector to report bad credentials"
        )
        assert not health.ready
        assert "401" in health.reasons()[Reason.CREDENTIALS]
        assert refusing.stats()["requests"][ENDPOINT].get("401", 0) >= 1
        # Long enough for the periodic commit (every second) to have had its chances to go wrong.
        time.sleep(2.0)
        assert runner.pipeline.stats["dead_lettered"] == 0 and runner.pipeline.stats["accepted"] == 0
        # Nothing done: no position at all, or the very first offset (the tracker may store that).
        committed = committed_offsets(broker.bootstrap_servers, group, end)
        assert set(committed.values()) <= {None, 0}, committed
        assert read_topic(broker.bootstrap_servers, dlq) == []

        # The operator fixes the credentials on the API side: same address, the token we send.
        refusing.stop()
        accepting = sandbox_factory(port=port)
        wanted = set(ledger.by_event_id())
        wait_until(lambda: wanted <= set(accepted_ids(accepting)), SETTLE_S, "everything to be accepted")
        wait_until(lambda: health.ready, SETTLE_S, "readiness to come back")
        assert runner.stop() == 0

    assert accepted_ids(accepting) == Counter(wanted)
    assert read_topic(broker.bootstrap_servers, dlq) == []
    assert committed_offsets(broker.bootstrap_servers, group, end) == end
