"""The bridge's stages, one module per slot (placeholder; filled by the next commit)."""
