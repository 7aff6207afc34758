"""Strict profile sections: a key nobody reads is a typo, reported with the keys that exist."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

Config = TypeVar("Config")


def check_keys(section: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise ValueError naming `section` and its valid keys when `given` has any other key."""
    valid = sorted(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {section}; valid keys: {valid}")


def strict_config(cls: type[Config], section: str, values: Mapping[str, Any] | None) -> Config:
    """The dataclass `cls` from a profile section: its fields' defaults overridden by `values`.

    A `type` key (the registry's choice of adapter) is not a field and is dropped; any other
    key that is not a field of `cls` raises ValueError naming `section` and the valid keys.
    """
    values = {k: v for k, v in (values or {}).items() if k != "type"}
    check_keys(section, values, (f.name for f in dataclasses.fields(cls)))
    return cls(**values)
