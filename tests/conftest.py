import os

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def config_folder(tmp_path_factory):
    """Generated files are signed with a local C2PA chain made in the user's config folder
    (credentials.py): for the tests, a folder of their own, never the user's."""
    before = os.environ.get("NANOSORA_CONFIG_DIR")
    os.environ["NANOSORA_CONFIG_DIR"] = str(tmp_path_factory.mktemp("config"))
    for k in ("NANOSORA_C2PA_CERT", "NANOSORA_C2PA_KEY"):
        os.environ.pop(k, None)
    yield
    if before is None:
        os.environ.pop("NANOSORA_CONFIG_DIR", None)
    else:
        os.environ["NANOSORA_CONFIG_DIR"] = before
