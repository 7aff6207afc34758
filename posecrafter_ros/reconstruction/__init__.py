"""Multi-view reconstruction stages (relay-frame poses and point maps, final multi-view pose).

Implementations import torch lazily; see `dust3r.py`.
"""
