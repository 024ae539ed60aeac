"""nanosora: a Sora-style text-to-video system that runs on a laptop CPU."""

__version__ = "0.1.0"
