"""Realistic sample records, one maker per bundled schema (`schemas/<kind>.avsc`).

Players, markets, games and amounts are drawn from the `random.Random` passed in, so a seed gives
the same records every time. `connector.devtools.samples` turns them into Kafka messages.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

__all__ = ["SAMPLE_BASE_TIME", "SAMPLE_KINDS", "player_id_of", "sample_record"]

SAMPLE_KINDS: Final = ("bet", "deposit", "withdrawal", "account_event", "wallet_balance", "customer_profile")
SAMPLE_BASE_TIME: Final = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

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
