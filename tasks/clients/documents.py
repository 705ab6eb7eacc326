"""GraphQL documents aftercart sends, kept as files next to this module.

A document may use fragments defined in any other file here (`...OrderSnapshot`); `document()`
appends exactly the fragments it needs, so the text sent is a complete operation.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from graphql import FragmentDefinitionNode, parse, print_ast

DIR = Path(__file__).parent / "graphql"


@lru_cache(maxsize=1)
def _files() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(DIR.glob("*.graphql"))}


@lru_cache(maxsize=1)
def _fragments() -> dict[str, str]:
    out: dict[str, str] = {}
    for text in _files().values():
        for d in parse(text).definitions:
            if isinstance(d, FragmentDefinitionNode):
                out[d.name.value] = print_ast(d)
    return out


def names() -> list[str]:
    """Every operation document (files starting with `_` hold shared fragments only)."""
    return [n for n in _files() if not n.startswith("_")]


@lru_cache(maxsize=None)
def document(name: str) -> str:
    text = _files()[name]
    own = {d.name.value for d in parse(text).definitions if isinstance(d, FragmentDefinitionNode)}
    needed: list[str] = []
    todo = re.findall(r"\.\.\.\s*([A-Za-z_]\w*)", text)
    while todo:
        f = todo.pop()
        if f in own or f in needed or f == "on":
            continue
        needed.append(f)
        todo += re.findall(r"\.\.\.\s*([A-Za-z_]\w*)", _fragments()[f])
    return text + "".join("\n" + _fragments()[f] for f in needed)
