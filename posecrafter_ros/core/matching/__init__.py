"""Feature matchers behind one interface, chosen by name from a conf dict (hloc style).

    matcher = get_matcher({"name": "xfeat_lighterglue", "top_k": 1024})
    pts_a, pts_b = matcher.match_images(image_a, image_b)

Each backend module defines one `Matcher` subclass with its `default_conf`; `MATCHERS` maps
the public names to them. Learned backends load local weights only (never download).
"""

from __future__ import annotations

import importlib
import json
import threading
from typing import Any

from .base import Features, Matcher

# name -> "module:class"; modules are imported on first use so ORB never imports torch.
MATCHERS: dict[str, str] = {
    "orb": "orb:OrbMatcher",
    "sift": "sift:SiftMatcher",
    "aliked_lightglue": "aliked:AlikedLightGlueMatcher",
    "disk_lightglue": "disk:DiskLightGlueMatcher",
    "xfeat_lighterglue": "xfeat:XFeatLighterGlueMatcher",
    "superpoint_lightglue": "superpoint:SuperPointLightGlueMatcher",
}

_cache: dict[str, Matcher] = {}
_cache_lock = threading.Lock()


def matcher_class(name: str) -> type[Matcher]:
    if name not in MATCHERS:
        raise ValueError(f"unknown matcher '{name}'; choose one of {sorted(MATCHERS)}")
    module, cls = MATCHERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_matcher(conf: dict[str, Any] | str) -> Matcher:
    """A new matcher from {"name": ..., **backend conf} (or just a name)."""
    conf = {"name": conf} if isinstance(conf, str) else dict(conf)
    name = conf.pop("name", "orb")
    return matcher_class(name)(conf)


def get_matcher(conf: dict[str, Any] | str) -> Matcher:
    """A shared matcher for this conf, built once (learned models take seconds to load)."""
    key = json.dumps({"name": conf} if isinstance(conf, str) else conf, sort_keys=True, default=str)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = build_matcher(conf)
        return _cache[key]


__all__ = ["Features", "Matcher", "MATCHERS", "build_matcher", "get_matcher", "matcher_class"]
