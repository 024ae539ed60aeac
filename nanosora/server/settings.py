"""What one server was started with: the limits its fields are checked against and the names
it answers to. Kept on `app.state.settings`, read by every route."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# the most sampling steps a request may ask for: beyond it a job only costs more time
MAX_STEPS = 100
MAX_SIDE = 256
POLL_AFTER_MS = 250  # how long client.videos.poll() waits between asks (the SDK's default: 1 s)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    model_name: str = "nanosora-default"
    api_key: str | None = None
    queue_limit: int = 16
    max_upload_mb: float = 20.0
    max_prompt: int = 2000
    steps: int = 20  # sampling steps of a request that names none
    adapters: tuple[str, ...] = ()  # LoRA adapters loaded (serve --lora)

    @property
    def models(self) -> set[str]:
        """The model names a request may give: the served model's and Sora's."""
        return {self.model_name, "sora-2", "sora-2-pro"}

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def inputs(self) -> Path:
        """Each job's own copy of its input media."""
        return self.data_dir / "inputs"
