"""nanosora: a Sora-style text-to-video system that runs on a laptop CPU."""

__version__ = "0.1.0"


def load(path=None):
    """Load a model directory (None: the shipped default model); see nanosora.model.Model."""
    from nanosora.model import load as _load

    return _load(path)
