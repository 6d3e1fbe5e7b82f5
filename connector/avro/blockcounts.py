"""Array block counts fastavro would follow without end: checked before it reads the payload.

Avro writes an array as blocks, each a count followed by that many items. fastavro trusts the
count, which costs nothing for most item types: reading an item consumes input, so a count larger
than the payload ends in an EOFError within as many steps as the payload has bytes. Two cases
have no such end:

- Items that take no bytes (null, a fixed of size 0, a record of such fields). A 3-byte payload
  can claim 2**62 of them, and fastavro reads them one loop turn at a time.
- Fixed-width items (boolean, float, double, fixed, records of those) of a field that the reader
  schema drops. fastavro skips each such item by moving its position, which it never checks
  against the payload's end, so a huge count spins too; the EOFError only comes after the loop.

Either would hold the record's partition forever, inline or in a transform worker. For schemas
that have such an array, `BlockCountCheck` walks the payload first, without building values:
fixed-width items are measured against what is left of the payload (an EOFError, as fastavro
would eventually raise), and zero-byte items may add up to `MAX_FREE_ITEMS` per record (more is
a ValueError). Every step of the walk consumes input except those it only counts, so the walk
ends within the payload's length. Anything else wrong with the payload is left to fastavro,
which names it itself. Schemas without such arrays pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["MAX_FREE_ITEMS", "BlockCountCheck"]

# Reading this many nulls costs fastavro about 3 ms and a list of 800 KB.
MAX_FREE_ITEMS: Final = 100_000
# A 64-bit varint takes at most 10 bytes; what fastavro makes of a longer one depends on how its
# C code wraps the shift, so the walk treats it as a count beyond any bound.
_MAX_VARINT_BYTES: Final = 10
_ENDLESS: Final = 1 << 64

_WIDTH: Final = {"null": 0, "boolean": 1, "float": 4, "double": 8}


class _Stop(Exception):
    """The payload is malformed in a way fastavro will name itself."""


class BlockCountCheck:
    """The walk for one parsed writer schema; `needed` says whether the schema wants one."""

    __slots__ = ("_item_widths", "_named", "_root", "_skipping")

    def __init__(self, parsed_writer: Any, skipping: bool) -> None:
        self._root = parsed_writer
        # Whether fastavro may skip fields (a reader schema is given): then every fixed width
        # matters, otherwise only width 0.
        self._skipping = skipping
        self._named: Mapping[str, Any] = (
            parsed_writer.get("__named_schemas", {}) if isinstance(parsed_writer, dict) else {}
        )
        # Each array's item width, by the array node's id: worked out on first sight, not per record.
        self._item_widths: dict[int, int | None] = {}

    @classmethod
    def needed(cls, parsed_writer: Any, skipping: bool) -> BlockCountCheck | None:
        """The check for `parsed_writer` read with (`skipping`) or without a reader schema, or
        None when none of its arrays can make fastavro spin."""
        check = cls(parsed_writer, skipping)
        return check if check._has_risky_array(parsed_writer, set()) else None

    def check(self, value: bytes, offset: int) -> None:
        """Raise ValueError or EOFError for a payload at `value[offset:]` fastavro would spin on.

        A RecursionError propagates too: the caller gives it the decoder's own reason for a value
        nested too deeply, since fastavro could not be trusted to get through it either."""
        try:
            self._walk(self._root, _Cursor(value, offset))
        except _Stop:
            return

    # ----------------------------------------------------------------------------------------
    # The schema

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, str) and node in self._named:
            return self._named[node]
        if isinstance(node, dict) and isinstance(node.get("type"), str) and node["type"] in self._named:
            return self._named[node["type"]]
        return node

    @staticmethod
    def _kind(node: Any) -> str:
        if isinstance(node, list):
            return "union"
        if isinstance(node, str):
            return node
        kind = node.get("type")
        return kind if isinstance(kind, str) else "union"

    def _width(self, node: Any, seen: frozenset[int] = frozenset()) -> int | None:
        """The encoded size every value of `node` has, or None when values differ in size."""
        node = self._resolve(node)
        kind = self._kind(node)
        if kind in _WIDTH:
            return _WIDTH[kind]
        if kind == "fixed":
            size = node.get("size")
            return size if isinstance(size, int) else None
        if kind in ("record", "error") and id(node) not in seen:
            widths = [self._width(f["type"], seen | {id(node)}) for f in node.get("fields", ())]
            return None if None in widths else sum(w for w in widths if w is not None)
        return None

    def _risky_items(self, items: Any) -> bool:
        width = self._width(items)
        return width == 0 or (width is not None and self._skipping)

    def _has_risky_array(self, node: Any, seen: set[int]) -> bool:
        node = self._resolve(node)
        if id(node) in seen:
            return False
        seen.add(id(node))
        kind = self._kind(node)
        if kind == "union":
            branches = node if isinstance(node, list) else node["type"]
            return any(self._has_risky_array(b, seen) for b in branches)
        if kind == "array":
            return self._risky_items(node["items"]) or self._has_risky_array(node["items"], seen)
        if kind == "map":
            return self._has_risky_array(node["values"], seen)
        if kind in ("record", "error"):
            return any(self._has_risky_array(f["type"], seen) for f in node.get("fields", ()))
        return False

    # ----------------------------------------------------------------------------------------
    # The payload

    def _walk(self, node: Any, cursor: _Cursor) -> None:
        node = self._resolve(node)
        kind = self._kind(node)
        width = _WIDTH.get(kind)
        if width is not None:
            cursor.skip(width)
        elif kind in ("int", "long", "enum"):
            cursor.varint()
        elif kind in ("bytes", "string"):
            cursor.skip(cursor.varint())
        elif kind == "fixed":
            cursor.skip(node["size"])
        elif kind in ("record", "error"):
            for field in node["fields"]:
                self._walk(field["type"], cursor)
        elif kind == "union":
            branches = node if isinstance(node, list) else node["type"]
            index = cursor.varint()
            if not 0 <= index < len(branches):
                raise _Stop
            self._walk(branches[index], cursor)
        elif kind == "array":
            items = node["items"]
            if id(node) not in self._item_widths:
                self._item_widths[id(node)] = self._width(items)
            item_width = self._item_widths[id(node)]
            if item_width is not None:
                self._blocks(cursor, lambda count: cursor.items(count, item_width))
            else:
                self._blocks(cursor, lambda count: self._each(count, items, cursor))
        elif kind == "map":
            values = node["values"]
            self._blocks(cursor, lambda count: self._each(count, values, cursor, keyed=True))
        else:
            raise _Stop  # a type this walk does not know: fastavro decides

    def _each(self, count: int, node: Any, cursor: _Cursor, keyed: bool = False) -> None:
        # Each item consumes at least one byte, so a huge count ends at the payload's end (_Stop).
        for _ in range(count):
            if keyed:
                cursor.skip(cursor.varint())
            self._walk(node, cursor)

    @staticmethod
    def _blocks(cursor: _Cursor, items: Callable[[int], None]) -> None:
        """Avro blocks: a count, then (for a negative count) the block's size, then the items."""
        while True:
            count = cursor.varint()
            if count == 0:
                return
            if count < 0:
                count = -count
                cursor.varint()
            items(count)


class _Cursor:
    __slots__ = ("free", "position", "value")

    def __init__(self, value: bytes, offset: int) -> None:
        self.value = value
        self.position = offset
        self.free = 0

    def skip(self, size: int) -> None:
        if size < 0 or self.position + size > len(self.value):
            raise _Stop
        self.position += size

    def varint(self) -> int:
        """A zigzag varint; _Stop at the payload's end."""
        value, shift, start = 0, 0, self.position
        while True:
            if self.position >= len(self.value):
                raise _Stop
            byte = self.value[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1)
            if self.position - start >= _MAX_VARINT_BYTES:
                return _ENDLESS

    def items(self, count: int, width: int) -> None:
        """`count` items of `width` bytes each."""
        if width:
            if self.position + count * width > len(self.value):
                # What fastavro raises once it has looped through the count.
                raise EOFError("an array claims more items than the payload holds")
            self.position += count * width
            return
        self.free += count
        if self.free > MAX_FREE_ITEMS:
            claimed = "an endless number" if count >= _ENDLESS >> 1 else f"{self.free:,}"
            # A ValueError, so the decoder gives it the same form as fastavro's own errors.
            raise ValueError(
                f"arrays of items that take no bytes (null or empty) claim {claimed} of them; "
                f"at most {MAX_FREE_ITEMS:,} are read"
            )
