"""Reading the YAML and JSON documents a user hands in (configs, search spaces), with limits: a size cap,
a nesting cap, aliases whose expansion stays small, and duplicate keys refused, so that no file can hang
or crash `hpoqueue` and a mistake is one line naming the file and the line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from hpoqueue.errors import ConfigError, read_text

#: The largest config or search space file read; a config is a page, a large space a few hundred KiB.
MAX_BYTES = 2 * 1024 * 1024
#: How deep mappings and lists may nest (a nested choice takes about four levels).
MAX_DEPTH = 100
#: How many values a document may hold once its aliases are expanded (an alias bomb holds billions).
MAX_NODES = 1_000_000


def read_document(path: Path, error: type[ConfigError], what: str, hint: str) -> str:
    """The UTF-8 text of a file the user named, refused (as `error`) when larger than MAX_BYTES."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # read_text says why it cannot be read
    if size > MAX_BYTES:
        raise error(f"the {what} is {size / 2**20:.1f} MiB, more than the {MAX_BYTES // 2**20} MiB accepted",
                    source=str(path), hint="a config is a few lines; keep large data out of it")
    return read_text(path, error, what, hint)


class Loader(yaml.SafeLoader):
    """SafeLoader with hpoqueue's rules: ``1e-4`` is a float (YAML 1.2, as in JSON), duplicate keys are an
    error, and nesting and alias expansion are bounded."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: construct_mapping names it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep)


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?\.?\d+[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _check_expansion(root: Any) -> None:
    """Refuse a document whose aliases expand to more than MAX_NODES values, or refer to themselves.
    Sizes are counted once per node (aliases share nodes), so this is linear in the file's size."""
    if root is None:
        return
    size: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"its aliases expand to more than {MAX_NODES:,} values", node.start_mark)
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise yaml.composer.ComposerError(None, None, "an alias refers to the node that contains it",
                                              node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def parse_yaml(text: str, *, source: str | None, error: type[ConfigError] = ConfigError) -> Any:
    """Parse YAML (JSON too) with Loader; any problem becomes `error` naming the line."""
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"invalid YAML{where}: {problem}", source=source, hint=_hint(problem)) from None
    except RecursionError:  # defensive: compose_node bounds the depth first
        raise error(f"invalid YAML: nested more than {MAX_DEPTH} levels deep", source=source,
                    hint="flatten the structure") from None


def parse_json(text: str, *, source: str | None, error: type[ConfigError] = ConfigError) -> Any:
    """Parse JSON with the same rules as parse_yaml: no duplicate keys, bounded nesting."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=source) from None
    except ValueError as exc:
        raise error(f"invalid JSON: {exc}", source=source, hint=_hint(str(exc))) from None
    except RecursionError:
        raise error(f"invalid JSON: nested more than {MAX_DEPTH} levels deep", source=source,
                    hint="flatten the structure") from None
    if _depth(value) > MAX_DEPTH:
        raise error(f"invalid JSON: nested more than {MAX_DEPTH} levels deep", source=source,
                    hint="flatten the structure")
    return value


def _hint(problem: str) -> str:
    """How to fix a document that broke one of the rules above, or a plain syntax error."""
    if problem.startswith("duplicate key"):
        return "keep one of them: the last one would silently win"
    if problem.startswith("nested more than"):
        return "flatten the structure"
    if "aliases expand" in problem or "alias refers" in problem:
        return "write the values out instead of repeating aliases of aliases"
    return "check the indentation and quoting around that line"


def _depth(value: Any) -> int:
    """How deep dicts and lists nest in `value` (iteratively: the value may be deeper than Python's stack)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest
