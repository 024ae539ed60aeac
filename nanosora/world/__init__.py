"""Flatland, the built-in world (shared/world-spec.md): scenes, renderer, captions, scorer."""
