"""`endpoints [NAME] [--markdown]`: the record model of each endpoint, as the connector validates it.

The terminal listing and docs/endpoints.md come from the same rows (`model_rows`), read from the
tables the validator uses, so the reference cannot drift from what `run` and `send` enforce.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from connector.endpoints import ENDPOINT_KEYS, ENDPOINTS
from connector.errors import ExitCode
from connector.ingest.models import MODELS, FieldSpec, Model
from connector.mapping.precedence import DESTINATION_FIELDS, derived_fields
from connector.runtime.tables import render_table

__all__ = ["HEADER", "endpoints_markdown", "model_rows", "run_endpoints"]

HEADER = ("FIELD", "TYPE", "REQUIRED", "FILLED BY THE CONNECTOR")
REGENERATE = "optikpi-connector endpoints --markdown > docs/endpoints.md"


def _type(spec: FieldSpec) -> str:
    if spec.choices:
        return f"{spec.kind.value}: {' | '.join(sorted(spec.choices))}"
    return spec.kind.value


def _filled(model: Model, name: str) -> str:
    if name not in derived_fields(model):
        return ""
    if name in DESTINATION_FIELDS:
        return f"optikpi.{name}"
    return f"{model.category} (fixed)"


def model_rows(model: Model) -> list[tuple[str, str, str, str]]:
    """One row per field, in the documented order, with the columns of HEADER."""
    return [
        (spec.name, _type(spec), "yes" if spec.required else "", _filled(model, spec.name))
        for spec in model.fields.values()
    ]


def _summary(model: Model) -> str:
    endpoint = ENDPOINTS[model.endpoint]
    if model.category is not None:
        category = f"event_category is always {model.category!r}"
    elif "event_category" in model.fields:
        category = "event_category is free text"
    else:
        category = "no event_category"
    return f"POST {endpoint.path}; {category}; server limit {endpoint.rate_limit:g} requests/s"


def endpoints_markdown(models: Sequence[Model] = tuple(MODELS.values())) -> str:
    """docs/endpoints.md (all the models), or the same page for some of them."""
    lines = [
        "# Endpoint reference",
        "",
        f"Generated from the connector's record models by `{REGENERATE}`; do not edit by hand.",
        "",
        "Each endpoint takes a JSON array of records of one model. `REQUIRED` fields must be present;",
        "`FILLED BY THE CONNECTOR` fields are filled by `run` and `send` when the record (or the",
        "mapping) does not set them. `datetime` is ISO 8601 with a time; `object` is a JSON object or",
        "a string holding one.",
    ]
    for model in models:
        lines += ["", f"## {model.endpoint}", "", _summary(model) + ".", ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "---|" * len(HEADER))
        for row in model_rows(model):
            cells = [f"`{row[0]}`", *(cell.replace("|", "\\|") for cell in row[1:])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _text(models: Sequence[Model]) -> list[str]:
    lines: list[str] = []
    for model in models:
        if lines:
            lines.append("")
        lines.append(f"{model.endpoint}: {_summary(model)}")
        lines += render_table(HEADER, model_rows(model))
    return lines


def run_endpoints(name: str | None, markdown: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if name is not None and name not in MODELS:
        print(f"error: unknown endpoint {name!r}; valid names: {', '.join(ENDPOINT_KEYS)}", file=sys.stderr)
        return ExitCode.USAGE
    models = [MODELS[name]] if name is not None else list(MODELS.values())
    if markdown:
        out.write(endpoints_markdown(models))
        return ExitCode.OK
    out.write("\n".join(_text(models)) + "\n")
    return ExitCode.OK
