"""LocalServer, which the demo, ``segment``, ``serve`` and the tests use to run the app: where its files go,
what it hands the server, and that it never leaves a server behind."""

from __future__ import annotations

import pytest

from ElastixMonaiLabelLib.client.rest import ServerError
from ElastixMonaiLabelLib.errors import CancelledError
from ElastixMonaiLabelLib.runtime.processes import CancelToken
from ElastixMonaiLabelLib.client.local_server import LocalServer, absolute_settings, default_app, runtime_app_dir


def test_path_settings_are_made_absolute_for_the_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf = absolute_settings({"cache": "atlas-cache", "model_dir": "/abs/models", "synthseg_weights": "none",
                              "synthseg_label_maps": "maps/*.nii.gz", "atlases": "3"})
    assert conf == {"cache": str(tmp_path / "atlas-cache"), "model_dir": "/abs/models", "synthseg_weights": "none",
                    "synthseg_label_maps": str(tmp_path / "maps" / "*.nii.gz"), "atlases": "3"}
    assert LocalServer("store", conf={"cache": "c"}).conf["cache"] == str(tmp_path / "c")
    assert LocalServer("store").studies == tmp_path / "store"


def test_the_stand_in_app_runs_the_real_one_and_holds_no_link(tmp_path):
    folder = runtime_app_dir(tmp_path)
    assert folder == tmp_path / ".server" / "app" and not any(p.is_symlink() for p in folder.iterdir())
    text = (folder / "main.py").read_text()
    assert repr(str(default_app().resolve() / "main.py")) in text
    compile(text, "main.py", "exec")


def test_a_wildcard_address_is_reached_through_the_loopback():
    assert LocalServer("x", host="0.0.0.0", port=8123).url == "http://127.0.0.1:8123"
    assert LocalServer("x", host="::1", port=8123).url == "http://[::1]:8123"


def test_a_cancelled_start_stops_the_server(tmp_path):
    cancel = CancelToken()
    cancel.cancel()
    server = LocalServer(tmp_path / "store", conf={"atlases": "1", "atlas_spacing": "3"})
    with pytest.raises(CancelledError):
        server.start(cancel)
    assert server.process is None  # stopped, not left running


def test_a_server_that_refuses_us_is_said_at_once_and_stopped(tmp_path, monkeypatch):
    # The server requires a token this client does not have: it answers 401, which waiting will not change.
    monkeypatch.delenv("ELASTIXMONAILABEL_TOKEN", raising=False)
    server = LocalServer(tmp_path / "store", conf={"atlases": "1", "atlas_spacing": "3", "cache": str(tmp_path / "cache")},
                         env={"ELASTIXMONAILABEL_TOKEN": "only-the-server-knows"})
    with pytest.raises(ServerError) as refused:
        server.start()
    assert refused.value.status == 401 and server.process is None
    assert (tmp_path / "store" / ".server" / "app" / "logs").is_dir()  # its working files went to the datastore
