"""Safe YAML in, with the line of every key kept, so an error can name the key *and* its line.

The text is parsed twice with PyYAML's ``SafeLoader``: ``compose`` gives the node tree (each
node knows its line; nothing is constructed), ``safe_load`` the plain data. No tag can build a
Python object, and a key given twice in one mapping is refused instead of silently overwritten.

Example:
    >>> from torchslim.recipe.yamlio import load_yaml
    >>> data, lines = load_yaml("model:\\n  zoo: lenet5-mnist\\nstages:\\n  - type: int8_static\\n")
    >>> data["stages"][0]["type"], lines[("stages", 0, "type")]
    ('int8_static', 4)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from torchslim.core.errors import ConfigError

Path_ = tuple[str | int, ...]  # a key path: ("stages", 1, "sparsity")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a recipe: where (key path and line, if known) and what."""

    path: Path_
    message: str
    line: int | None = None

    def text(self, source: str) -> str:
        """``recipe.yaml:12: stages[1].sparsity: must be in [0, 1)``."""
        where = f"{source}:{self.line}" if self.line else source
        key = dotted(self.path)
        return f"{where}: {key + ': ' if key else ''}{self.message}"


class RecipeError(ConfigError):
    """A recipe is invalid; ``problems`` lists every key at fault with its line.

    Example:
        >>> e = RecipeError("r.yaml", [Problem(("budget", "max_accuracy_drop"), "must be >= 0", 7)])
        >>> str(e)
        'invalid recipe r.yaml:\\n  r.yaml:7: budget.max_accuracy_drop: must be >= 0'
    """

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        body = "\n".join(f"  {p.text(source)}" for p in self.problems)
        super().__init__(f"invalid recipe {source}:\n{body}")


def dotted(path: Path_) -> str:
    """``("stages", 1, "sparsity")`` -> ``stages[1].sparsity``.

    Example:
        >>> dotted(("stages", 0, "type"))
        'stages[0].type'
    """
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[Problem]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(Problem((*path, key), f"given twice (first on line {seen[key]})", line))
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines, problems)


def load_yaml(text: str, source: str = "recipe") -> tuple[Any, dict[Path_, int]]:
    """``(data, lines)``: the safely loaded data and the 1-based line of every key path.

    Raises :class:`RecipeError` for text that is not YAML, uses a tag (``!!python/...``), or
    repeats a key.

    Example:
        >>> load_yaml("a: !!python/object:os.system ls")
        Traceback (most recent call last):
        ...
        torchslim.recipe.yamlio.RecipeError: invalid recipe recipe:
          recipe:1: not plain YAML (tags that build Python objects are refused): could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RecipeError(source, [Problem((), f"not plain YAML (tags that build Python objects are refused): {e.problem}", line)]) from None
    except yaml.YAMLError as e:
        raise RecipeError(source, [Problem((), f"not valid YAML: {e}")]) from None
    lines: dict[Path_, int] = {}
    problems: list[Problem] = []
    if root is not None:
        _walk(root, (), lines, problems)
    if problems:
        raise RecipeError(source, problems)
    return data, lines


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of ``path``, or of its nearest parent that has one (a missing key's mapping).

    Example:
        >>> line_of({("a",): 1, ("a", "b"): 2}, ("a", "c"))
        1
    """
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None
