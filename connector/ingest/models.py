"""The nine ingest record models (docs/ingest-api.md, "Record models"), as data.

Each model is an ordered table of `FieldSpec`s (the order is the documented one). Checking a
record against its model is connector.ingest.validation's job; the mapping and its static check
read the tables here to know the fields, their kinds and which are required.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from connector.endpoints import ENDPOINTS

__all__ = [
    "MODELS",
    "FieldKind",
    "FieldSpec",
    "Model",
]


class FieldKind(enum.Enum):
    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    # An object, or a string holding a JSON object (the server accepts both).
    OBJECT = "object"
    DATETIME = "datetime"
    DATE = "date"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: FieldKind
    required: bool = False
    choices: frozenset[str] | None = None


@dataclass(frozen=True)
class Model:
    endpoint: str
    fields: Mapping[str, FieldSpec]
    category: str | None

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields.values() if spec.required)


# --------------------------------------------------------------------------------------------
# The models, as listed in docs/ingest-api.md (order matters: it is the documented order).

_S, _N, _I, _B, _O, _T, _D = (
    FieldKind.STRING,
    FieldKind.NUMBER,
    FieldKind.INTEGER,
    FieldKind.BOOLEAN,
    FieldKind.OBJECT,
    FieldKind.DATETIME,
    FieldKind.DATE,
)


def _req(kind: FieldKind, *names: str) -> list[FieldSpec]:
    return [FieldSpec(name, kind, required=True) for name in names]


def _opt(kind: FieldKind, *names: str) -> list[FieldSpec]:
    return [FieldSpec(name, kind) for name in names]


_COMMON_EVENT: Final = [
    *_req(_S, "account_id", "workspace_id", "user_id", "event_category", "event_name", "event_id"),
    *_req(_T, "event_time"),
]

_CUSTOMER_OPTIONAL_STRINGS: Final = (
    *_opt(_S, "username", "full_name", "first_name", "last_name"),
    FieldSpec("date_of_birth", _D),
    *_opt(_S, "email", "phone_number", "gender", "country", "city", "language", "currency"),
    *_opt(_S, "phone_verification", "email_verification", "bank_verification", "iddoc_verification"),
    *_opt(_S, "marketing_email_preference", "notifications_preference"),
    FieldSpec("subscription", _S, choices=frozenset({"Subscribed", "Unsubscribed"})),
    *_opt(_S, "privacy_settings", "reality_checks_notification", "vip_status", "loyalty_program_tiers"),
    *_opt(_S, "account_status", "bonus_abuser", "acquisition_source", "partner_id", "referral_link_code"),
    *_opt(_S, "referral_limit_reached", "risk_score_level", "marketing_sms_preference", "self_exclusion_by"),
    *_opt(_S, "self_exclusion_by_type", "real_money_enabled", "push_token", "android_push_token"),
    *_opt(_S, "ios_push_token", "windows_push_token", "mac_dmg_push_token"),
)

_FIELD_TABLES: Final[dict[str, list[FieldSpec]]] = {
    "customers": [
        *_req(_S, "account_id", "workspace_id", "user_id"),
        *_req(_T, "creation_timestamp"),
        *_CUSTOMER_OPTIONAL_STRINGS,
        *_opt(_N, "deposit_limits", "loss_limits", "wagering_limits", "session_time_limits"),
        *_opt(_N, "financial_risk_level"),
        *_opt(_T, "cooling_off_expiry_date", "self_exclusion_expiry_date", "self_exclusion_check_time"),
        *_opt(_T, "self_exclusion_created_time", "closed_time"),
        *_opt(_O, "custom_data"),
    ],
    "account": [
        *_COMMON_EVENT,
        *_opt(_S, "affiliate_id", "partner_id", "device", "campaign_code", "status", "reason"),
    ],
    "deposit": [
        *_COMMON_EVENT,
        *_req(_N, "amount"),
        *_opt(_S, "payment_method", "transaction_id", "payment_provider_id", "payment_provider_name"),
        *_opt(_S, "failure_reason"),
    ],
    "withdraw": [
        *_COMMON_EVENT,
        *_req(_N, "amount"),
        *_opt(_S, "payment_method", "transaction_id", "failure_reason"),
    ],
    "gaming-activity": [
        *_COMMON_EVENT,
        *_opt(_N, "wager_amount", "win_amount", "loss_amount", "jackpot_amount", "bet_value_per_spin", "rtp"),
        *_opt(_N, "winning_bet_amount", "min_bet", "max_bet", "buy_in_amount", "rake_contribution", "odds"),
        *_opt(_N, "bonus_amount"),
        *_opt(_I, "num_spins_played", "remaining_spins", "number_of_reels", "number_of_paylines"),
        *_opt(_I, "number_of_players", "game_duration", "hand_volume", "num_spins_awarded"),
        *_opt(_B, "wagering_requirements_met", "live_dealer_availability", "side_bets_availability"),
        *_opt(_B, "multiplayer_option", "auto_play", "multi_tabling_indicator", "live_betting_availability"),
        *_opt(_T, "free_spin_expiry_date", "game_release_date", "free_spin_start_date"),
        *_opt(_S, "game_id", "game_title", "provider", "bonus_id", "free_spin_id", "game_theme"),
        *_opt(_S, "campaign_id", "campaign_name", "game_category", "jackpot_type", "volatility"),
        *_opt(_S, "feature_types", "poker_variant", "tournament_name", "table_type", "stakes_level"),
        *_opt(_S, "player_position", "final_hand", "session_result", "vip_status", "blind_level"),
        *_opt(_S, "rebuy_and_addon_info", "sport_type", "betting_market", "result", "bet_status"),
        *_opt(_S, "betting_channel", "bonus_type", "bonus_code", "parent_game_category", "currency"),
        *_opt(_S, "money_type", "transaction_type"),
    ],
    "wallet-balance": [
        *_COMMON_EVENT,
        *_opt(_S, "wallet_type", "currency"),
        *_opt(_N, "current_cash_balance", "current_bonus_balance", "current_total_balance", "blocked_amount"),
    ],
    "refer-friend": [
        *_COMMON_EVENT,
        *_opt(_S, "referral_code_used", "reward_type", "reward_claimed_status", "referee_user_id"),
        *_opt(_B, "successful_referral_confirmation"),
        *_opt(_T, "referee_registration_date"),
        *_opt(_N, "referee_first_deposit"),
    ],
    "system-events": [
        *_req(_S, "account_id", "workspace_id", "event_category", "event_name", "event_id"),
        *_req(_T, "event_time"),
        *_req(_O, "event_data"),
    ],
    "extattributes": [
        *_req(_S, "account_id", "workspace_id", "user_id", "list_name"),
        *_req(_O, "ext_data"),
    ],
}


def _build_model(endpoint: str, specs: Iterable[FieldSpec]) -> Model:
    fields: dict[str, FieldSpec] = {}
    for spec in specs:
        if spec.name in fields:
            # A silent overwrite would hide a typo in the tables above.
            raise ValueError(f"duplicate field {spec.name!r} in model {endpoint!r}")
        fields[spec.name] = spec
    return Model(endpoint, MappingProxyType(fields), ENDPOINTS[endpoint].category)


MODELS: Final[Mapping[str, Model]] = MappingProxyType(
    {key: _build_model(key, _FIELD_TABLES[key]) for key in ENDPOINTS}
)
