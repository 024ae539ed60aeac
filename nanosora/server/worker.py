"""The worker pool: threads that take the oldest queued job, restore its request as stored
and make it with Model.run (the same call as the CLI's), and write its files atomically."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

from nanosora.generation.request import GenerationRequest
from nanosora.server.store import Store

log = logging.getLogger("nanosora.server")


class Workers:
    def __init__(self, store: Store, get_model: Callable, n: int = 1):
        self.store, self.get_model = store, get_model
        self._wake, self._stop = threading.Event(), threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"worker-{i}", daemon=True) for i in range(n)
        ]
        self.busy = 0

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def notify(self) -> None:
        self._wake.set()

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            if t.is_alive():
                t.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim()
            if job is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self.busy += 1
            try:
                self.run(job)
            finally:
                self.busy -= 1

    def run(self, job: dict) -> None:
        from nanosora import credentials
        from nanosora import video as vio

        vid = job["id"]
        try:
            model = self.get_model()

            def progress(i, n, x):
                self.store.progress(vid, int(100 * i / max(1, n)))

            out = model.run(GenerationRequest.from_json(job["params"]), callback=progress)
            out.metadata.update(video_id=vid, created_at=job["created_at"])
            out.save(self.store.path(vid, "video"))  # watermarked and sealed
            thumb, sprites = self.store.path(vid, "thumbnail"), self.store.path(vid, "spritesheet")
            vio.write_png(thumb, out.frames[len(out.frames) // 2], out.metadata)
            sheet = vio.contact_sheet(out.frames[:: max(1, len(out.frames) // 16)][:16])
            vio.write_png(sprites, sheet, out.metadata)
            if out.metadata.get("watermark"):  # the variants carry the same Content Credentials
                for p in (thumb, sprites):
                    credentials.sign(p, out.metadata)
            result = {
                "layout": out.metadata.get("layout"),
                "not_expanded": out.metadata.get("not_expanded", []),
            }
            if not self.store.finish(vid, seconds=f"{out.seconds:g}", result=result):  # deleted meanwhile
                self.store.delete(vid)
        except Exception as e:  # a failed job is reported on the job, never lost
            log.error("job %s failed: %s\n%s", vid, e, traceback.format_exc())
            code = "invalid_input" if isinstance(e, ValueError) else "generation_failed"
            self.store.fail(vid, code, str(e))
