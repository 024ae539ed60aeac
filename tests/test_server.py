"""The OpenAI Videos API: driven by the official `openai` client, unmodified, against a real
uvicorn server on a free port; plus errors, auth, the queue limit and restart recovery."""

from __future__ import annotations

import io
import socket
import threading
import time

import httpx
import numpy as np
import openai
import pytest
import uvicorn

from nanosora import video
from nanosora.generation.request import GenerationRequest, Sampling
from nanosora.model import load
from nanosora.server.api import create_app
from nanosora.server.store import Store
from tests.helpers import make_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load(make_tiny_model(tmp_path_factory.mktemp("tiny-model")))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app):
        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    app = create_app(lambda: model, tmp_path_factory.mktemp("data"), api_key="sekrit", steps=2)
    with Server(app) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sekrit", max_retries=0)


def test_create_and_poll_download_list_delete_with_the_openai_client(client, tmp_path):
    v = client.videos.create_and_poll(
        prompt="a red circle moves right", size="64x32", seconds="1", poll_interval_ms=100
    )
    assert v.status == "completed" and v.progress == 100 and v.object == "video"
    assert v.size == "64x32" and v.seconds == "1" and v.prompt == "a red circle moves right"
    assert v.completed_at >= v.created_at and v.expires_at > v.completed_at
    out = tmp_path / "v.mp4"
    client.videos.download_content(v.id).write_to_file(out)
    clip = video.read(out)
    assert clip.frames.shape == (8, 32, 64, 3)  # 1 s at 8 fps
    assert clip.metadata["video_id"] == v.id and clip.metadata["prompt"] == "a red circle moves right"
    thumb = client.videos.download_content(v.id, variant="thumbnail").read()
    assert thumb[:8] == b"\x89PNG\r\n\x1a\n"
    sheet = client.videos.download_content(v.id, variant="spritesheet").read()
    assert sheet[:4] == b"\x89PNG"
    import c2pa  # every download carries Content Credentials a C2PA reader validates

    (tmp_path / "t.png").write_bytes(thumb)
    for f in (out, tmp_path / "t.png"):
        with c2pa.Reader(str(f)) as r:
            assert r.get_validation_state() == "Valid", f

    second = client.videos.create_and_poll(
        prompt="a blue square", seconds="1", size="1280x720", poll_interval_ms=100
    )
    assert second.size == "112x64"  # Sora's size, made at the nearest size this model makes
    ids = [x.id for x in client.videos.list(limit=1)]  # the client follows the cursor
    assert ids[:2] == [second.id, v.id]
    page = client.videos.list(limit=1, order="asc")
    assert page.data[0].id == v.id and page.has_more

    deleted = client.videos.delete(second.id)
    assert deleted.deleted and deleted.id == second.id and deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(second.id)


def test_poll_header_and_models_listing(client, server):
    """client.videos.poll() waits for the openai-poll-after-ms header; /v1/models names the
    served model and the Sora names it answers to."""
    v = client.videos.create(prompt="a red circle", size="32x32", seconds="1")
    raw = client.videos.with_raw_response.retrieve(v.id)
    assert int(raw.headers["openai-poll-after-ms"]) > 0
    done = client.videos.poll(v.id)  # no interval given: the header's
    assert done.status == "completed"
    ids = [m.id for m in client.models.list()]
    assert "nanosora-default" in ids and "sora-2" in ids
    auth = {"Authorization": "Bearer sekrit"}
    for method, url in (("POST", "/v1/videos/characters"), ("GET", "/v1/videos/characters/char_1")):
        r = httpx.request(method, server.url + url, headers=auth)
        assert r.status_code == 501 and r.json()["error"]["code"] == "not_implemented"
        assert "input_reference" in r.json()["error"]["message"]


def test_the_video_object_says_why_a_prompt_was_not_expanded(client, server):
    """A prompt the expander reads but cannot place (the world cannot keep a ball rolling
    right in view while the camera pans left) is made from its raw words, and the video
    object says so with the expander's reason; a prompt it places has none."""
    pan_prompt = "a crimson ball rolling to the right, the camera pans left"
    pan = client.videos.create(prompt=pan_prompt, size="32x32", seconds="4")
    plain = client.videos.create(prompt="a red circle moves right", size="32x32", seconds="1")
    for v in (pan, plain):
        assert client.videos.poll(v.id, poll_interval_ms=100).status == "completed"
    auth = {"Authorization": "Bearer sekrit"}
    got = {v.id: httpx.get(f"{server.url}/v1/videos/{v.id}", headers=auth).json() for v in (pan, plain)}
    reasons = got[pan.id]["not_expanded"]
    assert len(reasons) == 1 and "cannot place" in reasons[0] and "pans left" in reasons[0]
    assert got[plain.id]["not_expanded"] == []
    assert got[plain.id]["layout"] is None  # this model has no planner: no layout to report


def test_remix_keeps_seed_and_settings(client, server):
    src = client.videos.create_and_poll(
        prompt="a red circle", seconds="1", size="32x32", poll_interval_ms=100, extra_body={"seed": 42}
    )
    remix = client.videos.remix(src.id, prompt="a green circle")
    assert remix.remixed_from_video_id == src.id and remix.prompt == "a green circle"
    done = client.videos.poll(remix.id, poll_interval_ms=100)
    assert done.status == "completed" and done.size == src.size and done.seconds == src.seconds
    store = server.server.config.app.state.store
    meta = [video.read_metadata(store.path(v, "video")) for v in (src.id, done.id)]
    assert meta[0]["seed"] == meta[1]["seed"] == 42 and meta[1]["prompt"] == "a green circle"


def test_a_remix_keeps_the_entities_of_its_source(client, server):
    src = client.videos.create_and_poll(
        prompt="a large red square stays still", seconds="1", size="32x32", poll_interval_ms=100
    )
    done = client.videos.poll(
        client.videos.remix(src.id, prompt="the red square bounces").id, poll_interval_ms=100
    )
    assert done.status == "completed"
    store = server.server.config.app.state.store
    meta = video.read_metadata(store.path(done.id, "video"))
    # "the red square" is the source's large one, not a new medium square
    assert meta["story"] == ["a large red square stays still"]
    assert "large red square" in meta["caption"] and "bounces" in meta["caption"]
    again = client.videos.poll(
        client.videos.remix(done.id, prompt="the red square spins").id, poll_interval_ms=100
    )
    meta = video.read_metadata(store.path(again.id, "video"))
    assert meta["story"] == ["a large red square stays still", "the red square bounces"]
    # a remix naming as known what its source never showed is refused with a 400
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.remix(src.id, prompt="the blue circle spins")
    assert "the blue" in str(e.value)


def test_image_to_video_extend_and_edit(client, tmp_path):
    img = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(img, format="PNG")
    v = client.videos.create_and_poll(
        prompt="it moves", seconds="1", size="32x32", input_reference=("a.png", img.getvalue(), "image/png"),
        poll_interval_ms=100,
    )  # fmt: skip
    assert v.status == "completed"
    first = video.read(write(tmp_path, client, v.id))
    assert np.abs(first.frames[0].astype(int) - 200).mean() < 6  # the image is the first frame (after H.264)

    upload = write(tmp_path, client, v.id).read_bytes()
    ext = client.videos.extend(prompt="it keeps moving", seconds="1", video=("v.mp4", upload, "video/mp4"))
    ext = client.videos.poll(ext.id, poll_interval_ms=100)
    assert ext.status == "completed" and ext.seconds == "2"  # the stitched duration
    assert video.read(write(tmp_path, client, ext.id)).frames.shape[0] == 16

    # a completed video by id (JSON; the client only sends uploads for this field)
    r = client.post(
        "/videos/extensions", cast_to=dict, body={"prompt": "more", "seconds": "1", "video": {"id": ext.id}}
    )
    assert client.videos.poll(r["id"], poll_interval_ms=100).seconds == "3"

    ed = client.videos.edit(prompt="a blue square", video=("up.mp4", upload, "video/mp4"))
    ed = client.videos.poll(ed.id, poll_interval_ms=100)
    assert ed.status == "completed" and video.read(write(tmp_path, client, ed.id)).frames.shape[0] == 8


def write(tmp_path, client, vid):
    out = tmp_path / f"{vid}.mp4"
    client.videos.download_content(vid).write_to_file(out)
    return out


@pytest.mark.parametrize(
    "kwargs, param",
    [
        (dict(prompt="a red circle", size="100x100"), "size"),
        (dict(prompt="a red circle", seconds="0"), "seconds"),
        (dict(prompt="a red circle", model="dall-e-2"), "model"),
        (dict(prompt=""), "prompt"),
        (dict(prompt="x" * 2001), "prompt"),
        (dict(prompt="a", input_reference=("a.png", b"not an image", "image/png")), "input_reference"),
    ],
)
def test_bad_requests_get_openai_shaped_400s(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(**kwargs)
    err = e.value.body
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]


def test_unknown_video_and_bad_variant(client):
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_nope")
    with pytest.raises(openai.NotFoundError):
        client.post("/videos/extensions", cast_to=dict, body={"prompt": "x", "video": {"id": "video_nope"}})
    with pytest.raises(openai.BadRequestError):
        client.videos.download_content("video_nope", variant="poster")


def test_api_key_is_required_when_configured(server):
    r = httpx.get(server.url + "/v1/videos")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(server.url + "/v1/videos", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # health needs no key
    assert httpx.get(server.url + "/").status_code == 200


def test_queue_limit_answers_429_with_retry_after(model, tmp_path):
    app = create_app(lambda: model, tmp_path, queue_limit=2, start_workers=False)
    with Server(app) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        c.videos.create(prompt="a red circle")
        c.videos.create(prompt="a red circle")
        with pytest.raises(openai.RateLimitError) as e:
            c.videos.create(prompt="a red circle")
        assert e.value.response.headers["retry-after"] == "10"
        assert len(c.videos.list().data) == 2  # nothing half-made was stored


def test_restart_resumes_queued_and_interrupted_jobs(model, tmp_path):
    store = Store(tmp_path)
    req = GenerationRequest(
        prompt="a red circle", seed=1, sampling=Sampling(steps=1), width=32, height=32, seconds=1.0
    )
    params = req.to_json()
    a = store.create(vid=store.new_id(), model="m", prompt="a", seconds="1", size="32x32", params=params)
    b = store.create(vid=store.new_id(), model="m", prompt="b", seconds="1", size="32x32", params=params)
    assert store.claim()["id"] == a["id"]  # a was running when the process died
    store.close()
    app = create_app(lambda: model, tmp_path)
    with Server(app) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        for vid in (a["id"], b["id"]):
            assert c.videos.poll(vid, poll_interval_ms=100).status == "completed"


def test_a_failed_job_reports_its_error(tmp_path):
    def broken():
        raise RuntimeError("the model exploded")

    app = create_app(broken, tmp_path)
    with Server(app) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        v = c.videos.create_and_poll(prompt="a red circle", poll_interval_ms=100)
        assert v.status == "failed" and "exploded" in v.error.message and v.error.code == "generation_failed"


def test_extra_body_fields_of_other_local_servers_reach_the_request(model, tmp_path):
    app = create_app(lambda: model, tmp_path, start_workers=False)
    with Server(app) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        extra = {
            "num_inference_steps": 3,
            "guidance_scale": 2.5,
            "negative_prompt": "blur",
            "fps": 4,
            "seed": 7,
        }
        v = c.videos.create(prompt="a red circle", seconds="1", extra_body=extra)
        req = GenerationRequest.from_json(app.state.store.get(v.id)["params"])
        assert req.sampling == Sampling(steps=3, guidance=2.5)
        assert (req.negative_prompt, req.fps, req.seed) == ("blur", 4, 7)
        # the SDK sends a form, where every value is text: a number is a valid negative prompt
        bad_values = [("num_inference_steps", 0), ("num_inference_steps", 2.5), ("guidance_scale", "lots"),
                      ("fps", 31), ("seed", -1)]  # fmt: skip
        for name, bad in bad_values:
            with pytest.raises(openai.BadRequestError) as e:
                c.videos.create(prompt="a red circle", extra_body={name: bad})
            assert e.value.body["param"] == name and name in e.value.body["message"]
        assert len(c.videos.list().data) == 1  # no refused request was stored


def test_lora_field_names_loaded_adapters_only(model, tmp_path):
    app = create_app(lambda: model, tmp_path, start_workers=False, adapters=("style",))
    with Server(app) as s:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0)
        v = c.videos.create(prompt="a red circle", extra_body={"lora": "style:0.5"})
        assert GenerationRequest.from_json(app.state.store.get(v.id)["params"]).lora == {"style": 0.5}
        v = c.videos.create(prompt="a red circle", extra_body={"lora": ""})  # the base model
        assert GenerationRequest.from_json(app.state.store.get(v.id)["params"]).lora == {}
        for bad, says in [("other", "not loaded"), ("style:lots", "number"), ("style:9", "from 0 to")]:
            with pytest.raises(openai.BadRequestError) as e:
                c.videos.create(prompt="a red circle", extra_body={"lora": bad})
            assert e.value.body["param"] == "lora" and says in e.value.body["message"]
