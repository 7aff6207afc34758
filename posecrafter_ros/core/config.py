"""Strict profile sections: a key nobody reads is a typo, reported with the keys that exist."""

from __future__ import annotations

from collections.abc import Iterable


def check_keys(section: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise ValueError naming `section` and its valid keys when `given` has any other key."""
    valid = sorted(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {section}; valid keys: {valid}")
