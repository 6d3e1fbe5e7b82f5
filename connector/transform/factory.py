"""The one place the pipeline and the worker processes get their transforms from."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from connector.transform.reference import build_reference
from connector.transform.spec import Transform, TransformSpec

__all__ = ["TransformFactory", "make_transform"]

# A module-level function, so that worker processes can be handed it (pickled by reference).
TransformFactory: TypeAlias = Callable[[TransformSpec], Transform]


def make_transform(spec: TransformSpec) -> Transform:
    return build_reference(spec)
