"""The one function the pipeline calls to get the transform of a (mapping, writer schema)."""

from __future__ import annotations

import logging

from connector.errors import SchemaError
from connector.transform.compiled import compile_transform
from connector.transform.reference import build_reference
from connector.transform.spec import Transform, TransformSpec

__all__ = ["build_transform"]

log = logging.getLogger(__name__)


def build_transform(spec: TransformSpec) -> Transform:
    """The compiled transform of `spec`; the reference one if compiling fails.

    Raises what `build_reference` raises for a schema that cannot be used.
    """
    try:
        return compile_transform(spec)
    except SchemaError:
        raise
    except Exception:  # a bug in the compiler must cost speed, never records
        log.exception(
            "compiling the transform for %s (%s) failed; using the reference transform",
            spec.mapping.topic,
            spec.writer_label,
        )
        return build_reference(spec)
