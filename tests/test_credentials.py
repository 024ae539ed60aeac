"""C2PA Content Credentials: every generated file carries a signed manifest that the C2PA
reference library reads on its own, and that no longer validates once the file changes."""

from __future__ import annotations

import json
import stat

import c2pa
import numpy as np
import pytest
from cryptography import x509

from nanosora import cli, credentials, provenance, video
from tests.test_provenance import marked

SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def read_with_c2pa(path):
    """The file's active manifest and validation, through c2pa-python alone."""
    with c2pa.Reader(str(path)) as r:
        return r.get_active_manifest(), r.get_validation_state(), r.get_validation_results()["activeManifest"]


def frame_byte(data: bytes, ext: str) -> int:
    """A byte inside the encoded frames: the mp4's media data box, or the gif's image data
    (past its header and colour table)."""
    if ext == "mp4":
        at = data.index(b"mdat")
        return at + 4 + (int.from_bytes(data[at - 4 : at], "big") - 8) // 2
    return data.index(b",") + 40  # a gif's first image descriptor, then its pixels


@pytest.mark.parametrize("ext", ["mp4", "gif", "png"])
def test_every_written_format_carries_credentials_a_c2pa_reader_validates(tmp_path, ext):
    path = marked().save(tmp_path / f"a.{ext}")
    m, state, results = read_with_c2pa(path)
    assert state == "Valid"
    # the only failure is who signed: a local chain nobody vouches for
    assert [f["code"] for f in results.get("failure", [])] == ["signingCredential.untrusted"]
    assert m["claim_generator_info"][0]["name"] == "nanosora"
    actions = next(a["data"]["actions"] for a in m["assertions"] if a["label"].startswith("c2pa.actions"))
    assert {"action": "c2pa.created", "digitalSourceType": SOURCE}.items() <= actions[0].items()
    generation = next(a["data"] for a in m["assertions"] if a["label"] == credentials.GENERATION_LABEL)
    assert generation == {"prompt": "a red circle moves right", "model": "test", "seed": 3}
    # our own seal still holds beside it
    assert provenance.verify(path).intact


@pytest.mark.parametrize("ext", ["mp4", "gif"])
def test_reencoded_or_edited_files_no_longer_validate(tmp_path, ext):
    path = marked().save(tmp_path / f"a.{ext}")
    v = video.read(path)
    video.write(tmp_path / f"re.{ext}", v.frames, 8, v.metadata)  # re-encoded: the manifest is gone
    assert c2pa.Reader.try_create(str(tmp_path / f"re.{ext}")) is None
    r = provenance.verify(tmp_path / f"re.{ext}")
    assert r.c2pa is None and r.watermarked
    data = bytearray(path.read_bytes())
    data[frame_byte(data, ext)] ^= 0xFF  # one byte of the encoded frames changed
    (tmp_path / f"ed.{ext}").write_bytes(bytes(data))
    _, state, results = read_with_c2pa(tmp_path / f"ed.{ext}")
    assert state == "Invalid"
    assert any("mismatch" in f["code"] for f in results["failure"])
    assert not provenance.verify(tmp_path / f"ed.{ext}").authentic


def test_verify_reports_the_credentials_and_exits_by_them(tmp_path, capsys):
    path = marked().save(tmp_path / "a.mp4")
    assert cli.main(["verify", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    c = out["c2pa"]
    assert c["state"] == "Valid" and c["created_by_ai"] and c["untrusted_signer"]
    assert out["c2pa"]["generation"]["prompt"] == "a red circle moves right"
    data = bytearray(path.read_bytes())
    data[frame_byte(data, "mp4")] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cli.main(["verify", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["c2pa"]["state"] == "Invalid"


def test_the_local_chain_is_made_once_in_the_config_folder_with_a_private_key(tmp_path, monkeypatch):
    monkeypatch.setenv("NANOSORA_CONFIG_DIR", str(tmp_path / "cfg"))
    first = credentials.identity()
    assert first.local and first.chain.count("BEGIN CERTIFICATE") == 2
    key = tmp_path / "cfg" / "c2pa" / "local-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert credentials.identity() == first  # made on first use only


def test_the_users_own_certificate_signs_when_configured(tmp_path, monkeypatch):
    chain, key = credentials.make_local_chain()
    (tmp_path / "chain.pem").write_text(chain)
    (tmp_path / "key.pem").write_text(key)
    monkeypatch.setenv("NANOSORA_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv(credentials.CERT_ENV, str(tmp_path / "chain.pem"))
    monkeypatch.setenv(credentials.KEY_ENV, str(tmp_path / "key.pem"))
    path = marked().save(tmp_path / "a.gif")
    m, state, _ = read_with_c2pa(path)
    assert state == "Valid"
    assert m["signature_info"]["cert_serial_number"] == str(
        x509.load_pem_x509_certificate(chain.encode()).serial_number
    )
    assert not (tmp_path / "cfg").exists()  # no local chain made beside the user's own
    monkeypatch.delenv(credentials.KEY_ENV)
    with pytest.raises(ValueError, match="set both"):
        marked().save(tmp_path / "b.gif")
    assert not (tmp_path / "b.gif").exists()


def test_a_folder_of_frames_is_written_unsigned(tmp_path):
    v = marked()
    out = v.save(f"{tmp_path / 'frames'}/")
    assert out.is_dir() and len(list(out.glob("*.png"))) == len(v.frames)
    assert credentials.read(next(out.glob("*.png"))) is None
    assert np.array_equal(video.read_image(next(out.glob("*.png")))[None].shape[1:], v.frames.shape[1:])
