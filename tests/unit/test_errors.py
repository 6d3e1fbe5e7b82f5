"""connector.errors: one tree, and every per-record failure has exactly one dead-letter stage."""

from __future__ import annotations

import inspect

import pytest

from connector import errors
from connector.errors import (
    ConnectorError,
    DecodeError,
    MappingError,
    NonFiniteNumberError,
    RecordError,
    Stage,
    UnknownSchemaError,
)

pytestmark = pytest.mark.unit

EXCEPTIONS = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
]


def test_every_error_of_the_connector_is_in_the_one_tree_and_drawn_in_its_docstring() -> None:
    assert len(EXCEPTIONS) > 15
    doc = errors.__doc__ or ""
    for exc in EXCEPTIONS:
        assert issubclass(exc, ConnectorError), exc
        assert exc.__name__ in doc, f"{exc.__name__} is missing from the tree in the docstring"


@pytest.mark.parametrize(
    ("error", "stage"),
    [
        (DecodeError("bad bytes"), Stage.DECODE),
        (UnknownSchemaError(7), Stage.DECODE),
        (MappingError("amount", "not a number"), Stage.MAP),
        (NonFiniteNumberError("NaN"), Stage.MAP),
    ],
)
def test_each_record_error_names_its_dead_letter_stage(error: RecordError, stage: Stage) -> None:
    assert error.stage is stage


def test_only_record_errors_carry_a_stage() -> None:
    for exc in EXCEPTIONS:
        concrete_record_error = issubclass(exc, RecordError) and exc is not RecordError
        assert hasattr(exc, "stage") == concrete_record_error, exc
        if issubclass(exc, RecordError) and concrete_record_error:
            assert exc.stage in Stage


def test_no_module_of_the_package_defines_its_own_exception_class() -> None:
    import importlib
    import pkgutil

    import connector

    defined_elsewhere = []
    for info in pkgutil.walk_packages(connector.__path__, "connector."):
        if info.name == "connector.__main__":
            continue  # importing it runs the CLI
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Exception)
                and obj.__module__ == info.name
                and info.name != "connector.errors"
                and not name.startswith("_")
            ):
                defined_elsewhere.append(f"{info.name}.{name}")
    assert defined_elsewhere == []
