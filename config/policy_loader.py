"""Load a policy file: TOML -> merged overrides -> strict validation, with readable errors."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from domain.policy import Policy

DEFAULT_POLICY_PATH = Path(__file__).parent / "policies" / "default.toml"


@dataclass(frozen=True)
class PolicyProblem:
    path: str  # dotted key path, e.g. "order_edit.tiers.low[2]"
    reason: str

    def __str__(self) -> str:
        return f"{self.path or '(top level)'}: {self.reason}"


class PolicyError(Exception):
    def __init__(self, source: str, problems: list[PolicyProblem]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(map(str, problems)))


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union", "literal[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _reason(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    if err["type"] not in ("extra_forbidden", "missing") and "input" in err and not isinstance(err["input"], dict):
        msg += f" (got {err['input']!r})"
    return msg


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` onto `base`: tables merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def validate_policy(data: dict[str, Any], source: str = "<policy>") -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = [PolicyProblem(_key_path(e["loc"]), _reason(e)) for e in exc.errors()]
        raise PolicyError(source, problems) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(str(path), [PolicyProblem("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), [PolicyProblem("", f"cannot read file: {exc}")]) from None


def _parse(text: str, path: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(path, [PolicyProblem("", f"not valid TOML: {exc}")]) from None


def read_toml(path: Path) -> dict[str, Any]:
    return _parse(_read_text(path), str(path))


def _merged(files: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The (path, text) files parsed and merged in order."""
    data: dict[str, Any] = {}
    for path, text in files:
        data = merge(data, _parse(text, path))
    return data


@lru_cache(maxsize=16)
def _validated(files: tuple[tuple[str, str], ...], source: str) -> Policy:
    return validate_policy(_merged(files), source)


def load_policy(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Policy:
    """Load `path` (default: the shipped default policy), merge `overrides`, validate.

    A merchant's file is complete on its own or a partial file: it is merged onto the default
    policy, so a file holding only `[order_edit] window_minutes = 30` is a valid policy.

    Every flow run loads the policy. The files are read each time, but the same texts give the
    same validated (frozen) policy without parsing and validating again, so an edited file takes
    effect on the next run.
    """
    files = [(str(DEFAULT_POLICY_PATH), _read_text(DEFAULT_POLICY_PATH))]
    source = str(DEFAULT_POLICY_PATH)
    if path is not None and Path(path).resolve() != DEFAULT_POLICY_PATH.resolve():
        files.append((str(path), _read_text(Path(path))))
        source = str(path)
    if not overrides:
        return _validated(tuple(files), source)
    return validate_policy(merge(_merged(tuple(files)), overrides), source)
