"""The job store: one SQLite table of video jobs, and their files in a folder beside it.

SQLite (in WAL mode) because it is embedded, survives a crash mid-write, and is plenty for
one machine's queue. A restart finds every job where it was: queued jobs stay queued, and
jobs that were running when the process died go back to the queue.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path

COLUMNS = (
    "id", "seq", "created_at", "completed_at", "expires_at", "status", "progress", "model",
    "prompt", "seconds", "size", "remixed_from_video_id", "error", "params", "result",
)  # fmt: skip
STATUSES = ("queued", "in_progress", "completed", "failed")
SUFFIX = {"video": "mp4", "thumbnail": "png", "spritesheet": "sheet.png"}  # download variants


class Store:
    def __init__(self, data_dir: str | Path, retention_s: int = 7 * 86400):
        self.dir = Path(data_dir)
        self.files = self.dir / "videos"
        self.files.mkdir(parents=True, exist_ok=True)
        self.retention_s = retention_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.dir / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS videos (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
            "created_at INTEGER NOT NULL, completed_at INTEGER, expires_at INTEGER, status TEXT NOT NULL, "
            "progress INTEGER NOT NULL, model TEXT, prompt TEXT, seconds TEXT, size TEXT, "
            "remixed_from_video_id TEXT, error TEXT, params TEXT NOT NULL, result TEXT)"
        )
        # a store made before results were kept gains the column; its old jobs have none
        if "result" not in {r["name"] for r in self._db.execute("PRAGMA table_info(videos)")}:
            self._db.execute("ALTER TABLE videos ADD COLUMN result TEXT")
        # interrupted jobs go back to the queue; expired ones go
        self._db.execute("UPDATE videos SET status='queued', progress=0 WHERE status='in_progress'")
        for row in self._db.execute(
            "SELECT id FROM videos WHERE expires_at IS NOT NULL AND expires_at < ?", (now(),)
        ):
            self.delete(row["id"])

    # ---- writes --------------------------------------------------------------------------
    @staticmethod
    def new_id() -> str:
        return "video_" + secrets.token_hex(16)

    def create(
        self, *, vid: str, model: str, prompt: str, seconds: str, size: str, params: dict, remixed_from=None
    ) -> dict:
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM videos").fetchone()[0]
            self._db.execute(
                "INSERT INTO videos (id, seq, created_at, status, progress, model, prompt, seconds, size, "
                "remixed_from_video_id, params) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?)",
                (vid, seq, now(), model, prompt, seconds, size, remixed_from, json.dumps(params)),
            )
        return self.get(vid)

    def claim(self) -> dict | None:
        """The oldest queued job, now marked in progress (None if the queue is empty)."""
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM videos WHERE status='queued' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            self._db.execute("UPDATE videos SET status='in_progress', progress=0 WHERE id=?", (row["id"],))
        return self.get(row["id"])

    def progress(self, vid: str, percent: int) -> None:
        self._db.execute(
            "UPDATE videos SET progress=? WHERE id=? AND status='in_progress'",
            (max(0, min(99, percent)), vid),
        )

    def finish(self, vid: str, seconds: str | None = None, result: dict | None = None) -> bool:
        """Mark a job completed, with what the generation reports about itself (`result`: the
        layout it followed, why a prompt was not expanded); False if it was deleted meanwhile."""
        t = now()
        cur = self._db.execute(
            "UPDATE videos SET status='completed', progress=100, completed_at=?, expires_at=?, "
            "seconds=COALESCE(?, seconds), result=? WHERE id=?",
            (t, t + self.retention_s, seconds, json.dumps(result) if result is not None else None, vid),
        )
        return cur.rowcount == 1

    def fail(self, vid: str, code: str, message: str) -> None:
        self._db.execute(
            "UPDATE videos SET status='failed', completed_at=?, error=? WHERE id=?",
            (now(), json.dumps({"code": code, "message": message}), vid),
        )

    def delete(self, vid: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM videos WHERE id=?", (vid,))
        for f in self.files.glob(f"{vid}.*"):
            f.unlink(missing_ok=True)
        for f in (self.dir / "inputs").glob(f"{vid}.*"):
            f.unlink(missing_ok=True)
        return cur.rowcount == 1

    # ---- reads ---------------------------------------------------------------------------
    def get(self, vid: str) -> dict | None:
        row = self._db.execute("SELECT * FROM videos WHERE id=?", (vid,)).fetchone()
        return _row(row) if row else None

    def page(self, after: str | None, limit: int, order: str) -> tuple[list[dict], bool]:
        """A page of jobs after the job `after` (cursor pagination), newest first for desc."""
        op, direction = ("<", "DESC") if order == "desc" else (">", "ASC")
        args: list = []
        where = ""
        if after:
            ref = self._db.execute("SELECT seq FROM videos WHERE id=?", (after,)).fetchone()
            if ref is None:
                raise KeyError(after)
            where, args = f"WHERE seq {op} ?", [ref["seq"]]
        rows = self._db.execute(
            f"SELECT * FROM videos {where} ORDER BY seq {direction} LIMIT ?", (*args, limit + 1)
        ).fetchall()
        return [_row(r) for r in rows[:limit]], len(rows) > limit

    def count(self, status: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM videos WHERE status=?", (status,)).fetchone()[0]

    def path(self, vid: str, variant: str) -> Path:
        return self.files / f"{vid}.{SUFFIX[variant]}"

    def close(self) -> None:
        self._db.close()


def now() -> int:
    return int(time.time())


def _row(row: sqlite3.Row) -> dict:
    d = {k: row[k] for k in COLUMNS}
    d["params"] = json.loads(d["params"])
    d["error"] = json.loads(d["error"]) if d["error"] else None
    d["result"] = json.loads(d["result"]) if d["result"] else {}
    return d
