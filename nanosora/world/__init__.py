"""Flatland, the built-in world (docs/world.md): scenes, renderer, captions, scorer."""
