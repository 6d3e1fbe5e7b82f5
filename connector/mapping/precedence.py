"""Where an output field's value comes from: the mapping's precedence rule (README.md, "Mapping rules").

For each field of the endpoint's model, the first of these that applies decides:
1. `fields`: a source path (even when the record turns out not to have it);
2. `constants`: a fixed value; a null constant leaves the field out and stops the rest;
3. the values the connector derives: the destination's account_id and workspace_id, and the
   endpoint's fixed event_category. They win over copy_matching: a source `account_id` is most
   likely the producer's own account, not the OptiKPI one;
4. `copy_matching`: the source field of the same name.

The compiled mapping, the static check and `send` (where the record's own fields are the
explicit ones) all ask `field_source`, so they cannot disagree.
"""

from __future__ import annotations

import enum
from collections.abc import Container, Mapping
from typing import Any, Final

from connector.config.settings import DestinationSettings
from connector.ingest.models import Model

__all__ = ["DESTINATION_FIELDS", "Source", "derived_fields", "derived_values", "field_source"]

DESTINATION_FIELDS: Final = ("account_id", "workspace_id")


class Source(enum.Enum):
    """The rule that gives a field its value, in precedence order."""

    FIELD = "fields"
    CONSTANT = "constants"
    LEFT_OUT = "null constant"
    DERIVED = "derived"
    COPY = "copy_matching"
    NONE = "none"


def derived_fields(model: Model) -> tuple[str, ...]:
    """The fields the connector fills itself for `model`'s endpoint."""
    category = ("event_category",) if model.category is not None and "event_category" in model.fields else ()
    return DESTINATION_FIELDS + category


def derived_values(model: Model, destination: DestinationSettings) -> dict[str, str]:
    """The derived fields of `model` with their values for `destination`."""
    values = {"account_id": destination.account_id, "workspace_id": destination.workspace_id}
    if model.category is not None:
        values["event_category"] = model.category
    return {name: values[name] for name in derived_fields(model)}


def field_source(
    name: str,
    *,
    fields: Container[str],
    constants: Mapping[str, Any],
    derived: Container[str],
    copy_matching: bool,
) -> Source:
    """Which rule gives field `name` its value; Source.NONE when nothing does."""
    if name in fields:
        return Source.FIELD
    if name in constants:
        return Source.LEFT_OUT if constants[name] is None else Source.CONSTANT
    if name in derived:
        return Source.DERIVED
    if copy_matching:
        return Source.COPY
    return Source.NONE
