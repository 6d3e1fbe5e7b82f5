"""The one place the pipeline and the worker processes get their transforms from: the compiled
transform, or the reference where a schema cannot be compiled (`connector.transform.build`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from connector.transform.build import build_transform
from connector.transform.spec import Transform, TransformSpec

__all__ = ["TransformFactory", "make_transform"]

# A module-level function, so that worker processes can be handed it (pickled by reference).
TransformFactory: TypeAlias = Callable[[TransformSpec], Transform]


def make_transform(spec: TransformSpec) -> Transform:
    return build_transform(spec)
