"""Realistic sample events for `produce-sample` and the demo, with poison messages on demand.

One kind per bundled schema (`schemas/<kind>.avsc`). `the demo mappings` is the mapping that goes
with each kind; the poison labels promise where a message fails *under that mapping*:
DECODE (not valid Avro for its schema), MAP (a NaN where the mapping expects a number) or
VALIDATE (valid Avro that breaks the ingest model). Everything is drawn from the `random.Random`
passed in, so a seed gives the same messages every time.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml

__all__ = [
    "MAP_POISON_FIELDS",
    "SAMPLE_BASE_TIME",
    "SAMPLE_KINDS",
    "PoisonStage",
    "SampleMessage",
    "make_messages",
    "player_id_of",
    "sample_mappings",
    "sample_record",
]

SAMPLE_KINDS: Final = ("bet", "deposit", "withdrawal", "account_event", "wallet_balance", "customer_profile")
SAMPLE_BASE_TIME: Final = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SOURCE_HEADER: Final = ("source", b"sample-generator")
POISON_HEADER: Final = "sample.poison"

PoisonStage = Literal["DECODE", "MAP", "VALIDATE"]


@dataclass(frozen=True)
class SampleMessage:
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    # None, or the stage the message must fail at under the demo mappings.
    poison: str | None


DEMO_MAPPINGS_FILE: Final = Path(__file__).with_name("demo_mappings.yaml")


def sample_mappings() -> dict[str, dict[str, Any]]:
    """Sample kind → its `mappings:` entry in connector/devtools/demo_mappings.yaml, the one place the
    example mappings are written down (the poison promises below are made under them)."""
    doc = yaml.safe_load(DEMO_MAPPINGS_FILE.read_text(encoding="utf-8"))
    return {Path(entry["schema"]).stem: entry for entry in doc["mappings"]}


# The double field of each kind that the demo mappings sends to a number field: a NaN there cannot
# become JSON. Kinds without one get no MAP poison.
MAP_POISON_FIELDS: Final[Mapping[str, str]] = MappingProxyType(
    {"bet": "odds", "wallet_balance": "cash_balance", "customer_profile": "deposit_limit"}
)

# --------------------------------------------------------------------------------------------
# Reference data

_MARKETS: Final = (  # (country, currency, brand, language)
    ("GB", "GBP", "royalspin.co.uk", "en-GB"),
    ("IE", "EUR", "royalspin.ie", "en-IE"),
    ("SE", "SEK", "nordicbet.se", "sv-SE"),
    ("DE", "EUR", "spielwelt.de", "de-DE"),
    ("MT", "EUR", "royalspin.com", "en-MT"),
    ("FI", "EUR", "nordicbet.fi", "fi-FI"),
    ("US", "USD", "jerseyplay.com", "en-US"),
)
_PLAYERS: Final = 250
_GIVEN: Final = (
    "Emma",
    "Oliver",
    "Maja",
    "Lukas",
    "Aoife",
    "Liam",
    "Elsa",
    "Noah",
    "Mia",
    "Jack",
    "Sofia",
    "Leo",
)
_FAMILY: Final = ("Smith", "Murphy", "Andersson", "Müller", "Borg", "Virtanen", "Walsh", "Johansson", "Brown")
_CITIES: Final = {
    "GB": ("London", "Manchester", "Leeds"),
    "IE": ("Dublin", "Cork"),
    "SE": ("Stockholm", "Göteborg", "Malmö"),
    "DE": ("Berlin", "Hamburg", "München"),
    "MT": ("Valletta", "Sliema"),
    "FI": ("Helsinki", "Tampere"),
    "US": ("Newark", "Jersey City", "Atlantic City"),
}
_CASINO_GAMES: Final = (  # (id, title, provider, category, min stake cents, max stake cents)
    ("netent-starburst", "Starburst", "NetEnt", "SLOTS", 10, 1000),
    ("playngo-book-of-dead", "Book of Dead", "Play'n GO", "SLOTS", 10, 2000),
    ("pragmatic-gates-of-olympus", "Gates of Olympus", "Pragmatic Play", "SLOTS", 20, 2500),
    ("evolution-lightning-roulette", "Lightning Roulette", "Evolution", "LIVE_CASINO", 100, 50000),
    ("evolution-blackjack-vip", "Blackjack VIP", "Evolution", "LIVE_CASINO", 500, 100000),
    ("playtech-european-roulette", "European Roulette", "Playtech", "TABLE_GAMES", 100, 20000),
    ("pokerstars-holdem", "Texas Hold'em Cash", "PokerStars", "POKER", 200, 10000),
)
_SPORTS: Final = (  # (sport, market, event title)
    ("Football", "Match Result", "Arsenal v Chelsea"),
    ("Football", "Both Teams To Score", "Bayern München v Borussia Dortmund"),
    ("Tennis", "Match Winner", "Alcaraz v Sinner"),
    ("Ice Hockey", "Puck Line", "Frölunda HC v Färjestad BK"),
    ("Basketball", "Point Spread", "Celtics v Knicks"),
    ("Horse Racing", "Win", "Cheltenham 14:30"),
)
_DEVICES: Final = (
    "iPhone / iOS 17.5",
    "Pixel 8 / Android 14",
    "Windows 11 / Chrome 125",
    "macOS 14 / Safari 17",
)
_DEPOSIT_PROVIDERS: Final = {
    "CARD": "Adyen",
    "BANK_TRANSFER": "Nuvei",
    "E_WALLET": "Skrill",
    "PAYPAL": "PayPal",
    "TRUSTLY": "Trustly",
    "APPLE_PAY": "Adyen",
    "PAYSAFECARD": "Paysafe",
    "CRYPTO": "CoinsPaid",
}
_FAILURES: Final = (
    "Insufficient funds",
    "3-D Secure authentication failed",
    "Card expired",
    "Limit exceeded",
)
_CENT: Final = Decimal("0.01")


def _money(rng: random.Random, low_cents: int, high_cents: int) -> Decimal:
    return (Decimal(rng.randint(low_cents, high_cents)) / 100).quantize(_CENT)


def _player(rng: random.Random) -> tuple[str, tuple[str, str, str, str]]:
    number = rng.randrange(1, _PLAYERS + 1)
    # A player's market follows from the number, so one player keeps one currency everywhere.
    return f"P{number:07d}", _MARKETS[number % len(_MARKETS)]


def _at(base: datetime, index: int, rng: random.Random) -> datetime:
    # Millisecond precision: that is what timestamp-millis keeps, so values round-trip exactly.
    return base + timedelta(seconds=index * 2, milliseconds=rng.randrange(0, 2000))


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# --------------------------------------------------------------------------------------------
# Records


def _bet(rng: random.Random, index: int, base: datetime) -> dict[str, Any]:
    player_id, (country, currency, brand, _) = _player(rng)
    placed_at = _at(base, index, rng)
    settled = rng.random() < 0.6
    odds: float | None = None
    sport = market = None
    if rng.random() < 0.35:
        sport, market, title = rng.choice(_SPORTS)
        game = {
            "id": f"sb-{sport.lower().replace(' ', '-')}",
            "title": title,
            "provider": "Kambi",
            "category": "SPORTS",
        }
        stake = _money(rng, 200, 20000)
        odds = round(rng.uniform(1.15, 8.0), 2)
    else:
        game_id, title, provider, category, low, high = rng.choice(_CASINO_GAMES)
        game = {"id": game_id, "title": title, "provider": provider, "category": category}
        stake = _money(rng, low, high)
    status, win_amount, settled_at = "OPEN", None, None
    if settled:
        status = rng.choices(("WON", "LOST", "VOID", "CASHED_OUT"), weights=(40, 52, 3, 5))[0]
        multiplier = Decimal(str(odds)) if odds is not None else Decimal(rng.choice((2, 3, 5, 10, 50)))
        win_amount = {
            "WON": (stake * multiplier).quantize(_CENT),
            "LOST": Decimal("0.00"),
            "VOID": stake,
            "CASHED_OUT": (stake * Decimal("0.8")).quantize(_CENT),
        }[status]
        delay = timedelta(minutes=rng.randint(60, 180)) if sport else timedelta(seconds=rng.randint(2, 40))
        settled_at = placed_at + delay
    bet_id = f"b-{index:08d}-{rng.getrandbits(32):08x}"
    return {
        "bet_id": f"{bet_id}-settled" if settled else bet_id,
        "event_type": "BET_SETTLED" if settled else "BET_PLACED",
        "player": {"id": player_id, "brand": brand, "country": country},
        "game": game,
        "sport": sport,
        "market": market,
        "stake": stake,
        "win_amount": win_amount,
        "odds": odds,
        "currency": currency,
        "money_type": rng.choices(("REAL", "BONUS", "MIXED"), weights=(85, 10, 5))[0],
        "placed_at": placed_at,
        "settled_at": settled_at,
        "channel": rng.choice(("WEB", "MOBILE_WEB", "IOS_APP", "ANDROID_APP")),
        "status": status,
        "session_id": f"s-{rng.getrandbits(48):012x}",
        "metadata": {"client_version": f"5.{rng.randint(10, 14)}.{rng.randint(0, 9)}", "ip_country": country},
    }


def _deposit(rng: random.Random, index: int, base: datetime) -> dict[str, Any]:
    player_id, (_country, currency, brand, _) = _player(rng)
    method = rng.choice(tuple(_DEPOSIT_PROVIDERS))
    status = rng.choices(("APPROVED", "DECLINED", "PENDING", "FAILED"), weights=(82, 8, 6, 4))[0]
    failed = status in ("DECLINED", "FAILED")
    return {
        "deposit_id": f"d-{index:08d}-{rng.getrandbits(32):08x}",
        "player_id": player_id,
        "brand": brand,
        "amount": _money(rng, 1000, 100000),
        "currency": currency,
        "method": method,
        "provider": _DEPOSIT_PROVIDERS[method],
        "provider_reference": f"psp_{rng.getrandbits(64):016x}",
        "status": status,
        "first_deposit": rng.random() < 0.1,
        "created_at": _at(base, index, rng),
        "failure_reason": rng.choice(_FAILURES) if failed else None,
    }


def _withdrawal(rng: random.Random, index: int, base: datetime) -> dict[str, Any]:
    player_id, (_country, currency, brand, _) = _player(rng)
    requested_at = _at(base, index, rng)
    status = rng.choices(("REQUESTED", "APPROVED", "PROCESSED", "REJECTED"), weights=(30, 20, 45, 5))[0]
    processed = status in ("PROCESSED", "REJECTED")
    return {
        "withdrawal_id": f"w-{index:08d}-{rng.getrandbits(32):08x}",
        "player_id": player_id,
        "brand": brand,
        "amount": _money(rng, 2000, 500000),
        "currency": currency,
        "payment_method": rng.choice(("CARD", "BANK_TRANSFER", "E_WALLET", "PAYPAL", "TRUSTLY")),
        "status": status,
        "requested_at": requested_at,
        "processed_at": requested_at + timedelta(hours=rng.randint(1, 48)) if processed else None,
        "transaction_ref": f"wd_{rng.getrandbits(64):016x}" if processed else None,
        "failure_reason": "KYC documents pending" if status == "REJECTED" else None,
    }


def _account_event(rng: random.Random, index: int, base: datetime) -> dict[str, Any]:
    player_id, (_country, _currency, brand, _) = _player(rng)
    kind = rng.choices(
        ("LOGIN", "LOGOUT", "REGISTRATION", "PASSWORD_CHANGE", "EMAIL_VERIFIED", "SELF_EXCLUSION"),
        weights=(55, 30, 6, 4, 4, 1),
    )[0]
    # timestamp-micros keeps microseconds: use them.
    occurred_at = _at(base, index, rng) + timedelta(microseconds=rng.randrange(1000))
    return {
        "event_id": _uuid(rng),
        "player_id": player_id,
        "brand": brand,
        "type": kind,
        "occurred_at": occurred_at,
        "device": rng.choice(_DEVICES),
        "ip_address": f"203.0.113.{rng.randint(1, 254)}",
        "affiliate_id": f"aff-{rng.randint(100, 999)}" if kind == "REGISTRATION" else None,
        "campaign_code": rng.choice(("SUMMER24", "WELCOME100", None)) if kind == "REGISTRATION" else None,
        "reason": "Taking a break" if kind == "SELF_EXCLUSION" else None,
        "successful": rng.random() > 0.03 or kind != "LOGIN",
    }


def _wallet_balance(rng: random.Random, index: int, base: datetime) -> dict[str, Any]:
    player_id, (_country, currency, brand, _) = _player(rng)
    cash = float(_money(rng, 0, 500000))
    bonus = float(_money(rng, 0, 20000)) if rng.random() < 0.4 else 0.0
    return {
        "snapshot_id": f"wb-{index:08d}-{rng.getrandbits(32):08x}",
        "player_id": player_id,
        "brand": brand,
        "wallet_type": rng.choices(("MAIN", "CASINO", "SPORTSBOOK", "POKER"), weights=(70, 15, 10, 5))[0],
        "currency": currency,
        "cash_balance": cash,
        "bonus_balance": bonus,
        "total_balance": round(cash + bonus, 2),
        "locked_amount": _money(rng, 1000, 50000) if rng.random() < 0.1 else None,
        "trigger": rng.choices(("TRANSACTION", "END_OF_DAY", "MANUAL"), weights=(85, 14, 1))[0],
        "snapshot_at": _at(base, index, rng),
    }


def _customer_profile(rng: random.Random, index: int, base: datetime) -> dict[str, Any]:
    player_id, (country, currency, brand, language) = _player(rng)
    given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
    consent = ("OPTED_IN", "OPTED_OUT", "UNKNOWN")
    username = f"{given.lower()}{family[:3].lower()}{rng.randint(10, 99)}"
    return {
        "player_id": player_id,
        "brand": brand,
        "username": username,
        "given_name": given,
        "family_name": family,
        "email": f"{username}@example.com",
        "mobile": f"+{rng.randint(30, 49)}7{rng.randint(10_000_000, 99_999_999)}"
        if rng.random() < 0.8
        else None,
        "date_of_birth": date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55)),
        "gender": rng.choice(("female", "male", None)),
        "country": country,
        "city": rng.choice(_CITIES[country]),
        "preferred_language": language,
        "currency": currency,
        "registered_at": base - timedelta(days=rng.randint(1, 2000), milliseconds=rng.randrange(86_400_000)),
        "vip_status": rng.choices(
            ("NONE", "BRONZE", "SILVER", "GOLD", "PLATINUM"), weights=(70, 15, 9, 5, 1)
        )[0],
        "account_status": rng.choices(("ACTIVE", "SUSPENDED", "SELF_EXCLUDED"), weights=(95, 3, 2))[0],
        "marketing": {"email": rng.choice(consent), "sms": rng.choice(consent), "push": rng.choice(consent)},
        "deposit_limit": float(rng.choice((100, 250, 500, 1000))) if rng.random() < 0.3 else None,
        "acquisition_source": rng.choice(("affiliate", "organic", "paid_search", "tv", None)),
        "custom_attributes": {"favourite_game": rng.choice(_CASINO_GAMES)[1], "segment": rng.choice("ABC")},
        "updated_at": _at(base, index, rng),
    }


_RECORD_MAKERS: Final[Mapping[str, Callable[[random.Random, int, datetime], dict[str, Any]]]] = {
    "bet": _bet,
    "deposit": _deposit,
    "withdrawal": _withdrawal,
    "account_event": _account_event,
    "wallet_balance": _wallet_balance,
    "customer_profile": _customer_profile,
}
assert tuple(_RECORD_MAKERS) == SAMPLE_KINDS


def sample_record(
    kind: str, rng: random.Random, index: int, *, base_time: datetime = SAMPLE_BASE_TIME
) -> dict[str, Any]:
    """A valid Avro datum for `schemas/<kind>.avsc`; event times advance ~2 s per index."""
    maker = _RECORD_MAKERS.get(kind)
    if maker is None:
        raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(SAMPLE_KINDS)}")
    return maker(rng, index, base_time)


def player_id_of(kind: str, record: Mapping[str, Any]) -> str:
    return str(record["player"]["id"] if kind == "bet" else record["player_id"])


# --------------------------------------------------------------------------------------------
# Poison


def _poison_map(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    return {**record, MAP_POISON_FIELDS[kind]: math.nan}


def _poison_validate(kind: str, record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    if kind in ("deposit", "withdrawal") and rng.random() < 0.5:
        return {**record, "amount": rng.choice((Decimal("0.00"), Decimal("-25.00")))}
    if kind == "bet":
        return {**record, "player": {**record["player"], "id": ""}}
    return {**record, "player_id": ""}


def _varint(n: int) -> bytes:
    zigzag = (n << 1) ^ (n >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _garbage(rng: random.Random) -> bytes:
    # Every sample schema starts with a string: announce one far longer than the bytes that
    # follow, so the garbage fails to decode whatever the random tail holds.
    tail = bytes(rng.getrandbits(8) for _ in range(rng.randint(4, 40)))
    return _varint(rng.randint(10_000, 1_000_000)) + tail


def _poison_decode(
    kind: str,
    record: dict[str, Any],
    encoded: bytes,
    rng: random.Random,
    wire_format: str,
    unknown_schema_id_encode: Callable[[Mapping[str, Any]], bytes] | None,
) -> bytes:
    variants = ["truncated", "garbage"]
    if wire_format == "confluent-avro":
        variants.append("json")
        if unknown_schema_id_encode is not None:
            variants.append("unknown-schema")
    else:
        variants.append("trailing")
    variant = rng.choice(variants)
    if variant == "truncated":
        return encoded[: rng.randint(1, len(encoded) - 1)]
    if variant == "garbage":
        header = encoded[:5] if wire_format == "confluent-avro" else b""
        return header + _garbage(rng)
    if variant == "json":
        # The classic: a producer without the Schema Registry serializer writes plain JSON.
        return json.dumps(record, default=str).encode()
    if variant == "unknown-schema":
        assert unknown_schema_id_encode is not None
        return unknown_schema_id_encode(record)
    return encoded + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))


def _stages_for(kind: str) -> tuple[PoisonStage, ...]:
    return ("DECODE", "MAP", "VALIDATE") if kind in MAP_POISON_FIELDS else ("DECODE", "VALIDATE")


def make_messages(
    kind: str,
    count: int,
    encode: Callable[[Mapping[str, Any]], bytes],
    rng: random.Random,
    poison_rate: float = 0.0,
    unknown_schema_id_encode: Callable[[Mapping[str, Any]], bytes] | None = None,
    *,
    wire_format: Literal["confluent-avro", "avro"] = "confluent-avro",
    base_time: datetime = SAMPLE_BASE_TIME,
) -> list[SampleMessage]:
    """`count` messages of `kind`, each poisoned with probability `poison_rate`.

    `encode` turns a datum into the Kafka value (e.g. `partial(encode_confluent, id, parsed)`);
    `wire_format` says which framing it produces, so DECODE poison breaks the right thing.
    Keys are player ids (one player's events share a partition); poisoned messages carry a
    `sample.poison` header naming the stage they must fail at.
    """
    if kind not in _RECORD_MAKERS:
        raise ValueError(f"unknown sample kind {kind!r}; known: {', '.join(SAMPLE_KINDS)}")
    if not 0.0 <= poison_rate <= 1.0:
        raise ValueError("poison_rate must be between 0 and 1")
    if count < 0:
        raise ValueError("count must not be negative")
    messages = []
    for index in range(count):
        record = sample_record(kind, rng, index, base_time=base_time)
        stage: PoisonStage | None = None
        if poison_rate and rng.random() < poison_rate:
            stage = rng.choice(_stages_for(kind))
        if stage == "MAP":
            record = _poison_map(kind, record)
        elif stage == "VALIDATE":
            record = _poison_validate(kind, record, rng)
        value = encode(record)
        if stage == "DECODE":
            value = _poison_decode(kind, record, value, rng, wire_format, unknown_schema_id_encode)
        player_id = player_id_of(kind, record)
        headers: tuple[tuple[str, bytes], ...] = (SOURCE_HEADER, ("sample.kind", kind.encode()))
        if stage is not None:
            headers += ((POISON_HEADER, stage.encode()),)
        messages.append(SampleMessage(player_id.encode() or None, value, headers, stage))
    return messages
