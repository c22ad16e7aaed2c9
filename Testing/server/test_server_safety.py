"""Issue 13's probes replayed against the real server (127.0.0.1, this project's app, one server for the module).

The server starts on a datastore prepared to be awkward: a damaged index (it must start and
keep the metadata that survives), a link to a file outside the datastore, reviewed (final)
labels, a case lacking channels; files outside the datastore (canaries) must never change.
It requires an access token, allows one extra host name and one browser origin, and takes
requests up to 16 MB (synthseg's weights at 16 filters are 11.7 MB). Every probe checks the status, the message, and that nothing outside
the datastore or any saved label changed; a seeded fuzz run sends a few hundred random
ids, tags and params. The upstream monailabel.client.MONAILabelClient is refused the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import random
import shutil
import subprocess
import tarfile
import textwrap
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import nibabel
import numpy as np
import pytest

from ElastixMonaiLabelLib.client.rest import MonaiLabelClient, ServerError
from ElastixMonaiLabelLib.data.images import read_volume
from ElastixMonaiLabelLib.data.labels import freesurfer_to_values
from ElastixMonaiLabelLib.data.multimodal import write_case
from ElastixMonaiLabelLib.client.local_server import CHECKOUT, RUNTIME_FOLDER, LocalServer, default_app, default_python

TOKEN = "test-token-" + uuid.uuid4().hex
ORIGIN = "http://localhost:3000"
EXTRA_HOST = "monai.example.org"
SECRET_LINE = "TOP-SECRET-do-not-show"


class Reply:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self.body, self.headers = status, body, {k.lower(): v for k, v in headers.items()}

    @property
    def detail(self) -> str:
        try:
            detail = json.loads(self.body).get("detail", "")
        except (ValueError, AttributeError):
            return self.body.decode(errors="replace")
        return detail if isinstance(detail, str) else json.dumps(detail)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r}>"


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]] | list[tuple[str, tuple[str, bytes]]]
               ) -> tuple[bytes, str]:
    """A multipart body; ``files`` as {field: (name, data)}, or a list of (field, (name, data)) for repeated fields."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
              for k, (name, data) in (files.items() if isinstance(files, dict) else files)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Server:
    """The running server, its datastore and the sandbox around it."""

    def __init__(self, local: LocalServer, client: MonaiLabelClient, sandbox: Path, files: dict[str, Path]) -> None:
        self.local, self.client, self.sandbox = local, client, sandbox
        self.datastore, self.outside = sandbox / "datastore", sandbox / "outside"
        self.files = files

    def call(self, method: str, path: str, query: dict | None = None, fields: dict | None = None,
             files: dict | None = None, headers: dict | None = None, token: str | None = TOKEN) -> Reply:
        url = path + ("?" + urlencode(query) if query else "")
        sent = {"Host": f"127.0.0.1:{self.local.port}"}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        body = None
        if fields is not None or files is not None:
            body, sent["Content-Type"] = _multipart(fields or {}, files or {})
        sent.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.local.port, timeout=300)
        try:
            connection.request(method, url, body=body, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.read(), dict(response.getheaders()))
        finally:
            connection.close()

    def objects(self) -> dict:
        return self.client.datastore()["objects"]


def _is_server_runtime(path: Path, folder: Path) -> bool:
    """The server's own working folder in the datastore (``.server``: MONAI Label's logs, links to the app)."""
    return path.relative_to(folder).parts[:1] == (RUNTIME_FOLDER,)


def _tree(folder: Path, skip: Path | None = None) -> dict[str, tuple[int, str]]:
    """Every file (and link) under ``folder`` but ``skip`` and the server's runtime folder: size and content digest."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents) or _is_server_runtime(path, folder):
            continue
        if path.is_symlink() or path.is_file():
            data = path.read_bytes() if path.is_file() else str(path.readlink()).encode()
            state[str(path.relative_to(folder))] = (len(data), hashlib.sha256(data).hexdigest())
    return state


def _nifti_bytes(array: np.ndarray, affine: np.ndarray, descrip: str | None = None) -> bytes:
    image = nibabel.Nifti1Image(array, affine)
    if descrip:
        image.header["descrip"] = descrip.encode()
    return gzip.compress(image.to_bytes(), mtime=0)


@pytest.fixture(scope="module")
def server(make_subject, tmp_path_factory):
    subject = make_subject(seed=20, spacing_mm=3.0)
    sandbox = tmp_path_factory.mktemp("sandbox")
    datastore, outside = sandbox / "datastore", sandbox / "outside"
    (datastore / "labels" / "final").mkdir(parents=True)
    outside.mkdir()
    (outside / "canary").write_text("canary\n")
    (outside / "secret.txt").write_text(f"{SECRET_LINE}\nmore\n")
    t1 = read_volume(subject.path("t1"))
    write_case({"t1": t1}, outside / "target.nii.gz")
    shutil.copy(outside / "target.nii.gz", outside / "evil.nii.gz")
    for case, channels in (("case-001", ("t1", "t2", "flair")), ("case-002", ("t1", "t2", "flair")),
                           ("case-003", ("t1", "t2", "flair")), ("case-t1only", ("t1",))):
        write_case({c: t1 for c in channels}, datastore / f"{case}.nii.gz")
    reference = nibabel.load(str(datastore / "case-001.nii.gz"))
    labels = freesurfer_to_values(np.asarray(nibabel.load(str(subject.labels)).dataobj)).astype(np.uint8)
    assert labels.shape == reference.shape[:3] and labels.max() == 32
    for case in ("case-001", "case-t1only"):
        nibabel.save(nibabel.Nifti1Image(labels, reference.affine), str(datastore / "labels" / "final" / f"{case}.nii.gz"))
    (datastore / "linked.nii.gz").symlink_to(outside / "target.nii.gz")
    # The index MONAI Label keeps, with a reviewer's metadata, cut off in the middle of its last entry
    # (as a crash while writing leaves it).
    entry = {"image": {"ext": ".nii.gz", "info": {"ts": 1, "name": "case-001.nii.gz", "note": "scanned twice"}},
             "labels": {"final": {"ext": ".nii.gz", "info": {"ts": 2, "name": "case-001.nii.gz", "reviewer": "alice"}}}}
    index = {"name": "study", "description": "probes", "images_dir": ".", "labels_dir": "labels",
             "objects": {"case-001": entry, "case-003": {"image": {"ext": ".nii.gz", "info": {"ts": 3, "note": "lost"}},
                                                         "labels": {}}}}
    text = json.dumps(index, indent=2)
    (datastore / "datastore_v2.json").write_text(text[: text.index('"note": "lost"') + 8])
    files = {"t1": outside / "target.nii.gz", "label": datastore / "labels" / "final" / "case-001.nii.gz"}
    # The server's temporary files and sessions in its runtime folder, inside the sandbox: a file that a
    # session upload would unpack to '../../..' then lands where the probes look.
    runtime = datastore / RUNTIME_FOLDER
    (runtime / "tmp").mkdir(parents=True)
    local = LocalServer(datastore, token=TOKEN, conf={
        "atlases": "1", "atlas_spacing": "3", "cache": str(tmp_path_factory.mktemp("cache")), "max_upload_mb": "16",
        "cors_origins": ORIGIN, "allowed_hosts": EXTRA_HOST},
        env={"TMPDIR": str(runtime / "tmp"), "MONAI_LABEL_SESSION_PATH": str(runtime / "sessions")})
    client = local.start()
    yield Server(local, client, sandbox, files)
    local.stop()


@pytest.fixture(scope="module")
def outside_before(server):
    return _tree(server.sandbox, skip=server.datastore)


def _assert_outside_untouched(server, before) -> None:
    assert _tree(server.sandbox, skip=server.datastore) == before
    assert (server.outside / "canary").read_text() == "canary\n"


# -- 1. path traversal -------------------------------------------------------------------------

def test_ids_and_tags_cannot_reach_outside_the_datastore(server, outside_before):
    t1 = server.files["t1"].read_bytes()
    label = server.files["label"].read_bytes()
    canary = str(server.outside / "canary")
    probes = [
        ("PUT", "/datastore/image", {"image": "../outside/canary"}, {"file": ("t1.nii.gz", t1)}),
        ("PUT", "/datastore/image", {"image": canary}, {"file": ("t1.nii.gz", t1)}),
        ("PUT", "/datastore/image", {"image": "../outside/"}, {"file": ("x.bashrc", b"echo pwned\n")}),
        ("PUT", "/datastore/", {"image": "../outside/canary"}, {"file": ("t1.nii.gz", t1)}),
        ("PUT", "/datastore/label", {"image": "case-001", "tag": "../../outside"}, {"label": ("l.nii.gz", label)}),
        ("PUT", "/datastore/label", {"image": "../outside/evil", "tag": "final"}, {"label": ("l.nii.gz", label)}),
        ("DELETE", "/datastore/image", {"id": "../outside/evil"}, None),
        ("DELETE", "/datastore/image", {"id": str(server.outside / "evil")}, None),
        ("DELETE", "/datastore/label", {"id": "case-001", "tag": "../../../outside/evil"}, None),
        ("GET", "/datastore/image", {"image": "../outside/canary"}, None),
        ("GET", "/datastore/image", {"image": canary}, None),
        ("GET", "/datastore/label", {"label": "../outside/canary", "tag": "final"}, None),
        ("GET", "/datastore/image/info", {"image": "../outside/canary"}, None),
        ("PUT", "/datastore/image/info", {"image": "../outside/canary"}, None),
        ("HEAD", "/datastore/image", {"image": "../../etc/passwd"}, None),
        ("POST", "/infer/atlas_registration", {"image": "../outside/target"}, None),
    ]
    for method, path, query, files in probes:
        reply = server.call(method, path, query, files=files, fields={"params": "{}"} if files else None)
        assert reply.status == 400, (method, path, query, reply)
        if method != "HEAD":
            assert "is not a valid" in reply.detail and "canary\n" not in reply.body.decode(errors="replace")
    # A link inside the datastore that points outside is refused for reads and writes alike.
    assert server.call("GET", "/datastore/image", {"image": "linked"}).status == 403
    reply = server.call("PUT", "/datastore/label", {"image": "linked", "tag": "final"}, files={"label": ("l.nii.gz", label)})
    assert reply.status == 403 and "outside" in reply.detail
    _assert_outside_untouched(server, outside_before)
    assert server.files["label"].read_bytes() == label


def _archive_escaping_its_folder(depths: range) -> bytes:
    """A .tar.gz whose members climb out of the folder it is unpacked in ('../escaped-1.txt', '../../escaped-2.txt'...)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for depth in depths:
            data = b"written outside\n"
            member = tarfile.TarInfo("../" * depth + f"escaped-{depth}.txt")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_sessions_hold_one_checked_case_and_never_unpack_archives(server, outside_before, tmp_path):
    runtime = server.datastore / RUNTIME_FOLDER
    # MONAI Label's PUT /session/?uncompress=true unpacks with shutil.unpack_archive, which follows '../'.
    # The server's temporary folder is runtime/tmp: depths 1-4 reach runtime, the datastore and the sandbox.
    reply = server.call("PUT", "/session/", {"uncompress": "true"},
                        files={"files": ("case.tar.gz", _archive_escaping_its_folder(range(1, 5)))})
    assert not list(server.sandbox.rglob("escaped-*")), reply
    assert reply.status == 422 and "does not unpack archives" in reply.detail, reply
    t1 = server.files["t1"].read_bytes()
    reply = server.call("PUT", "/session/", files=[("files", ("a.nii.gz", t1)), ("files", ("b.nii.gz", t1))])
    assert reply.status == 422 and "one case file" in reply.detail, reply
    reply = server.call("PUT", "/session/", files={"files": ("notes.nii.gz", b"patient name: nobody\n" * 20)})
    assert reply.status == 422 and "is not a NIfTI file" in reply.detail, reply
    # One case file: a session that infer reads by its id, until it is removed.
    reply = server.call("PUT", "/session/", {"expiry": "600"}, files={"files": ("../../../x.nii.gz", t1)})
    assert reply.status == 200, reply
    session_id = json.loads(reply.body)["session_id"]
    stored = Path(json.loads(reply.body)["session_info"]["image"])
    assert stored.read_bytes() == t1 and stored.resolve().is_relative_to((runtime / "sessions").resolve())
    assert server.call("GET", f"/session/{session_id}").status == 200
    result = server.call("POST", "/infer/atlas_registration", {"session_id": session_id}, fields={"params": "{}"})
    assert result.status == 200, result
    assert server.call("DELETE", f"/session/{session_id}").status == 200
    gone = server.call("POST", "/infer/atlas_registration", {"session_id": session_id}, fields={"params": "{}"})
    assert gone.status == 404 and "not found" in gone.detail, gone
    # Session ids are the server's UUIDs (MONAI Label joins them into the folder it reads, and DELETE removes).
    (runtime / "sessions" / "keep").write_text("kept\n")
    for method, path in (("DELETE", "/session/.."), ("DELETE", "/session/%2e%2e"), ("GET", "/session/.."),
                         ("DELETE", "/session/keep"), ("GET", "/session/no-such-session")):
        reply = server.call(method, path)
        assert reply.status == 400 and "is not a session id" in reply.detail, (method, path, reply)
    reply = server.call("POST", "/infer/atlas_registration", {"session_id": ".."}, fields={"params": "{}"})
    assert reply.status == 400 and "is not a session id" in reply.detail, reply
    assert (runtime / "sessions" / "keep").read_text() == "kept\n" and (runtime / "app" / "main.py").exists()
    assert session_id not in server.objects()  # a session is not a datastore image
    _assert_outside_untouched(server, outside_before)


# -- 2. cross-site requests, host names, token --------------------------------------------------

def test_other_hosts_and_origins_are_refused(server, outside_before):
    evil_origin = server.call("PUT", "/datastore/image", {"image": "from-web"}, headers={"Origin": "http://evil.example"},
                              fields={"params": "{}"}, files={"file": ("t1.nii.gz", server.files["t1"].read_bytes())})
    assert evil_origin.status == 403 and "cross-origin request from 'http://evil.example' refused" in evil_origin.detail
    assert "access-control-allow-origin" not in evil_origin.headers
    preflight = server.call("OPTIONS", "/datastore/image", headers={"Origin": "http://evil.example",
                                                                     "Access-Control-Request-Method": "DELETE"})
    assert preflight.status == 403 and "access-control-allow-origin" not in preflight.headers
    allowed = server.call("OPTIONS", "/datastore/image", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
                                                                  "Access-Control-Request-Headers": "authorization"})
    assert allowed.status == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in allowed.headers
    assert server.call("GET", "/info/", headers={"Origin": ORIGIN}).status == 200
    same_origin = f"http://127.0.0.1:{server.local.port}"  # the server's own pages (/docs)
    assert server.call("GET", "/info/", headers={"Origin": same_origin}).status == 200
    rebinding = server.call("GET", "/datastore/", {"output": "all"}, headers={"Host": f"attacker.example:{server.local.port}"})
    assert rebinding.status == 400 and "does not answer to host 'attacker.example" in rebinding.detail
    assert b"case-001" not in rebinding.body
    for host in (f"localhost:{server.local.port}", f"[::1]:{server.local.port}", f"{EXTRA_HOST}:{server.local.port}"):
        assert server.call("GET", "/info/", headers={"Host": host}).status == 200, host
    assert "from-web" not in server.objects()
    _assert_outside_untouched(server, outside_before)


def test_the_access_token_is_required(server):
    for token in (None, "wrong-" + TOKEN):
        reply = server.call("GET", "/datastore/", {"output": "all"}, token=token)
        assert reply.status == 401 and "access token" in reply.detail
        assert reply.headers["www-authenticate"] == "Bearer" and b"case-001" not in reply.body
    with pytest.raises(ServerError, match="401") as refused:
        MonaiLabelClient(server.local.url, token="wrong").info()
    assert refused.value.status == 401
    assert server.client.token == TOKEN and "atlas_registration" in server.client.info()["models"]


# -- 3. infer reads only datastore images; presets by name ----------------------------------------

def test_infer_reads_only_datastore_images_and_named_presets(server, outside_before):
    replies = {path: server.call("POST", "/infer/atlas_registration", {"image": path}, fields={"params": "{}"})
               for path in ("/etc/passwd", "/no/such/file", str(server.outside / "secret.txt"))}
    # The same answer whether the file exists or not: no oracle for the server's files.
    assert {r.status for r in replies.values()} == {400}
    assert all("is not a valid image id" in r.detail and "exist" not in r.detail for r in replies.values())
    reply = server.call("POST", "/infer/atlas_registration", {"image": "case-002"},
                        fields={"params": json.dumps({"preset": str(server.outside / "secret.txt")})})
    assert reply.status == 422 and "unknown preset" in reply.detail and "atlas-deformable" in reply.detail
    assert SECRET_LINE not in reply.body.decode()
    reply = server.call("POST", "/infer/atlas_registration", {"image": "case-002"},
                        fields={"params": json.dumps({"image": "/etc/passwd"})})
    assert reply.status == 422 and "params may not set image" in reply.detail
    _assert_outside_untouched(server, outside_before)


# -- 4. reviewed labels are never lost silently ------------------------------------------------

def test_infer_never_writes_a_final_label(server, tmp_path):
    label = server.files["label"].read_bytes()
    for save in (True, "true", 1):
        reply = server.call("POST", "/infer/atlas_registration", {"image": "case-001"},
                            fields={"params": json.dumps({"save_label": save, "label_tag": "final"})})
        assert reply.status == 403 and "never writes the final (reviewed) label" in reply.detail
    assert server.files["label"].read_bytes() == label
    # Another tag is fine: the model's output is saved as it always was.
    result = server.client.infer("atlas_registration", "case-002", tmp_path / "seg.nii.gz",
                                 params={"save_label": True, "label_tag": "original"})
    assert result.params["label_names"]["Brain-Stem"] == 13
    assert "original" in server.objects()["case-002"]["labels"]
    assert (server.datastore / "labels" / "original" / "case-002.nii.gz").exists()


def _case_bytes(server, seed: int) -> bytes:
    image = nibabel.load(str(server.files["t1"]))
    data = np.asarray(image.dataobj, dtype=np.float32) * (1 + seed / 10)
    return _nifti_bytes(data, image.affine, "channels=t1")


def _upload(server, image_id: str, data: bytes, params: dict | None = None) -> Reply:
    return server.call("PUT", "/datastore/image", {"image": image_id}, fields={"params": json.dumps(params or {})},
                       files={"file": ("case.nii.gz", data)})


def _save_label(server, image_id: str, data: bytes, tag: str = "final", params: dict | None = None) -> Reply:
    return server.call("PUT", "/datastore/label", {"image": image_id, "tag": tag},
                       fields={"params": json.dumps(params or {})}, files={"label": ("label.nii.gz", data)})


def test_reupload_delete_and_overwrite_keep_reviewed_labels(server):
    label = server.files["label"].read_bytes()
    first, second = _case_bytes(server, 1), _case_bytes(server, 2)
    assert _upload(server, "review-a", first).status == 200
    assert _save_label(server, "review-a", label, params={"reviewer": "bob"}).status == 200
    stored_image = server.datastore / "review-a.nii.gz"
    stored_label = server.datastore / "labels" / "final" / "review-a.nii.gz"
    # The same image again changes nothing; a different one under the same id is refused.
    assert _upload(server, "review-a", first).status == 200
    refused = _upload(server, "review-a", second)
    assert refused.status == 409 and "already holds a different image with labels (final)" in refused.detail
    assert stored_image.read_bytes() == first and stored_label.read_bytes() == label
    # A second final label keeps the first, with its metadata, in labels/final/.history.
    edited = np.asarray(nibabel.load(str(stored_label)).dataobj).copy()
    edited[edited == 3] = 0
    edited_bytes = _nifti_bytes(edited, nibabel.load(str(stored_label)).affine)
    assert _save_label(server, "review-a", edited_bytes, params={"reviewer": "carol"}).status == 200
    history = server.datastore / "labels" / "final" / ".history"
    kept = sorted(history.glob("review-a.*.nii.gz"))
    assert len(kept) == 1 and kept[0].read_bytes() == label
    assert json.loads(kept[0].with_name(kept[0].name[:-len(".nii.gz")] + ".json").read_text())["info"]["reviewer"] == "bob"
    # Deleting the final label or the image needs force; then both go to .history.
    reply = server.call("DELETE", "/datastore/label", {"id": "review-a", "tag": "final"})
    assert reply.status == 409 and "force=true" in reply.detail and stored_label.exists()
    reply = server.call("DELETE", "/datastore/image", {"id": "review-a"})
    assert reply.status == 409 and "reviewed (final) label" in reply.detail and stored_image.exists()
    # Replacing on request: the old image and its labels move to .history together.
    assert _upload(server, "review-a", second, {"replace": True}).status == 200
    assert stored_image.read_bytes() == second and not stored_label.exists()
    assert server.objects()["review-a"]["labels"] == {}
    assert len(list(history.glob("review-a.*.nii.gz"))) == 2
    assert len(list((server.datastore / ".history").glob("review-a.*.nii.gz"))) == 1
    assert server.call("DELETE", "/datastore/image", {"id": "review-a"}).status == 200
    assert "review-a" not in server.objects() and len(list((server.datastore / ".history").glob("review-a.*.nii.gz"))) == 2


# -- 5. models ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(server, tmp_path_factory):
    """Checkpoints made by torch in the server's environment: one that fits no layer, a pickle that would
    create a file when unpickled, real weights of the segmentation network, and of the synthseg network at
    the GPU recipe's width (16 filters; random, made by the app's own builder)."""
    out = tmp_path_factory.mktemp("checkpoints")
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path[:0] = [{str(default_app())!r}, {str(CHECKOUT / 'ElastixMonaiLabel')!r}]
        from lib.models.networks import segresnet
        torch.manual_seed(0)
        torch.save({{"encoder.weight": torch.zeros(3, 3)}}, {str(out / 'mismatched.pt')!r})
        torch.save({{"model": segresnet(3).state_dict()}}, {str(out / 'good.pt')!r})
        torch.save(segresnet(1, 16).state_dict(), {str(out / 'synthseg-16.pt')!r})
        torch.save(segresnet(3, 16).state_dict(), {str(out / 'synthseg-3-channels.pt')!r})
        class Payload:
            def __reduce__(self):
                return (open, ({str(server.outside / 'pwned')!r}, "w"))
        torch.save({{"model": Payload()}}, {str(out / 'pickle.pt')!r})
    """)
    completed = subprocess.run([str(default_python()), "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out


def test_model_uploads_must_load_strictly(server, checkpoints, outside_before):
    def upload(name: str, model: str = "segmentation") -> Reply:
        return server.call("PUT", f"/model/{model}", files={"file": (name, (checkpoints / name).read_bytes())})

    reply = upload("mismatched.pt")
    assert reply.status == 422 and "do not fit the model's network" in reply.detail and "missing" in reply.detail
    reply = upload("pickle.pt")
    assert reply.status == 422 and "not a weights-only checkpoint" in reply.detail
    assert not (server.outside / "pwned").exists()
    assert server.client.info()["models"]["segmentation"]["trained"] is False
    reply = server.call("POST", "/infer/segmentation", {"image": "case-002"}, fields={"params": "{}"})
    assert reply.status == 409 and "not been trained" in reply.detail
    assert upload("good.pt", "atlas_registration").status == 404
    assert upload("good.pt").status == 200
    assert server.client.info()["models"]["segmentation"]["trained"] is True
    assert upload("good.pt").status == 200
    history = server.datastore / ".models" / "segmentation" / ".history"
    assert len(list(history.glob("model.*.pt"))) == 1  # the first upload, kept when the second replaced it
    _assert_outside_untouched(server, outside_before)


def test_synthseg_takes_uploaded_weights_of_their_own_width(server, checkpoints, tmp_path):
    def upload(name: str) -> Reply:
        return server.call("PUT", "/model/synthseg", {"spacing_mm": "3"}, files={"file": (name, (checkpoints / name).read_bytes())})

    folder = server.datastore / ".models" / "synthseg"
    reply = upload("synthseg-3-channels.pt")  # a SegResNet, but not one with synthseg's single channel in
    assert reply.status == 422 and "do not fit the model's network" in reply.detail and "another shape" in reply.detail, reply
    assert not (folder / "model.pt").exists()
    # 16 filters, as scripts/train-synthseg.sh trains them on a GPU: taken, described and served.
    reply = upload("synthseg-16.pt")
    assert reply.status == 200, reply
    assert (folder / "model.pt").read_bytes() == (checkpoints / "synthseg-16.pt").read_bytes()
    sidecar = json.loads((folder / "model.json").read_text())
    assert sidecar["init_filters"] == 16 and sidecar["spacing_mm"] == 3.0, sidecar
    assert server.client.info()["models"]["synthseg"]["trained"] is True
    result = server.client.infer("synthseg", "case-002", tmp_path / "synthseg.nii.gz")
    label, case = nibabel.load(str(result.label_path)), nibabel.load(str(server.datastore / "case-002.nii.gz"))
    assert label.shape == case.shape[:3] and np.asarray(label.dataobj).max() <= 32
    assert result.params["model"] == "synthseg"


# -- 6. what is stored is checked first ----------------------------------------------------------

def _bad_images(server) -> dict[str, tuple[bytes, int, str]]:
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    t1 = server.files["t1"].read_bytes()
    huge = nibabel.Nifti1Header()
    huge.set_data_shape((2000, 2000, 2000))
    huge.set_data_dtype(np.uint8)
    nan = np.ones((10, 12, 14), np.float32)
    nan[2, 3, 4] = np.nan
    return {
        "truncated": (t1[: len(t1) // 2], 422, "truncated or damaged"),
        "text": (b"patient name: nobody\n" * 20, 422, "is not a NIfTI file"),
        "empty": (b"", 422, "the file is empty"),
        "2d": (_nifti_bytes(np.ones((20, 20, 1), np.float32), affine), 422, "is a 2D image"),
        "png": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 400, 422, "is a PNG picture"),
        "nan": (_nifti_bytes(nan, affine), 422, "NaN or infinite"),
        "2000-cubed": (gzip.compress(huge.binaryblock + b"\x00" * 4 + b"\x00" * 1000), 413, "voxels is more than"),
        "17-megabytes": (np.random.default_rng(0).bytes(17 * 2**20), 413, "more than this server's limit of 16 MB"),
        "5d": (_nifti_bytes(np.ones((5, 5, 5, 2, 2), np.float32), affine), 422, "dimensions"),
    }


def test_bad_uploads_are_refused_and_nothing_is_stored(server, outside_before):
    index_before = server.objects()
    files_before = _tree(server.datastore)
    for name, (data, status, message) in _bad_images(server).items():
        reply = _upload(server, f"bad-{name}", data)
        assert reply.status == status and message in reply.detail, (name, reply)
        assert f"bad-{name}" in reply.detail or status == 413 and "request body" in reply.detail
    assert server.objects() == index_before
    assert _tree(server.datastore) == files_before
    _assert_outside_untouched(server, outside_before)


def test_bad_labels_are_refused_and_the_saved_label_is_kept(server):
    stored = server.files["label"]
    saved = stored.read_bytes()
    image = nibabel.load(str(server.datastore / "case-001.nii.gz"))
    good = np.asarray(nibabel.load(str(stored)).dataobj)
    shifted = image.affine.copy()
    shifted[:3, 3] += 5
    probes = {
        "another grid": (_nifti_bytes(good[:-1], image.affine), "differs from the image's"),
        "shifted": (_nifti_bytes(good, shifted), "voxel-to-world matrix differs"),
        "value 250": (_nifti_bytes(np.where(good == 1, 250, good).astype(np.uint8), image.affine), "holds values 250"),
        "value -7": (_nifti_bytes(np.where(good == 1, -7, good).astype(np.int16), image.affine), "holds values -7"),
        "fraction": (_nifti_bytes(good.astype(np.float32) * 0.5, image.affine), "fractional"),
        "nan": (_nifti_bytes(np.where(good == 1, np.nan, good).astype(np.float32), image.affine), "NaN"),
        "text": (b"left hippocampus looks fine\n", "is not a NIfTI file"),
    }
    for name, (data, message) in probes.items():
        reply = _save_label(server, "case-001", data)
        assert reply.status == 422 and message in reply.detail, (name, reply)
    assert stored.read_bytes() == saved
    assert not (stored.parent / ".history").exists() or not list((stored.parent / ".history").glob("case-001.*"))
    assert server.objects()["case-001"]["labels"]["final"]["info"]["reviewer"] == "alice"


# -- 7. a message for every mistake --------------------------------------------------------------

def test_client_mistakes_get_a_status_and_a_message(server, tmp_path):
    bad = _bad_images(server)
    cases = [
        (("POST", "/infer/atlas_registration", {}, {"params": "{}"}, {"file": ("x.nii.gz", bad["truncated"][0])}), 422, "truncated"),
        (("POST", "/infer/atlas_registration", {}, {"params": "{}"}, {"file": ("x.nii.gz", bad["2000-cubed"][0])}), 413, "voxels"),
        (("POST", "/infer/atlas_registration", {"image": "case-002"}, {"params": "{not json"}, None), 400, "params is not valid JSON"),
        (("PUT", "/datastore/image/info", {"image": "case-002"}, {"info": "[1, 2]"}, None), 422, "info must be a JSON object"),
        (("DELETE", "/datastore/image", {"id": "no-such-image"}, None, None), 404, "'no-such-image' is not in the datastore"),
        (("PUT", "/datastore/label", {"image": "no-such-image"}, {"params": "{}"},
          {"label": ("l.nii.gz", server.files["label"].read_bytes())}), 404, "is not in the datastore"),
        (("POST", "/activelearning/no-such-strategy", {}, None, None), 404, "unknown strategy 'no-such-strategy'; available: random, first"),
        (("PUT", "/datastore/image", {"image": "x" * 300}, {"params": "{}"}, {"file": ("t.nii.gz", server.files["t1"].read_bytes())}),
         400, "is not a valid image id"),
        (("POST", "/infer/no-such-model", {"image": "case-002"}, {"params": "{}"}, None), 404, "unknown model 'no-such-model'"),
        # Yes/no params: one reading everywhere, and a typo is an error, not a silent yes or no.
        (("POST", "/infer/atlas_registration", {"image": "case-002"}, {"params": '{"save_label": "maybe"}'}, None), 422,
         "save_label must be true or false, not 'maybe'"),
        (("POST", "/infer/atlas_registration", {"image": "case-002"}, {"params": '{"skull_stripped": "perhaps"}'}, None), 422,
         "skull_stripped must be true, false or auto, not 'perhaps'"),
        (("PUT", "/datastore/image", {"image": "yes-no"}, {"params": '{"replace": "si"}'},
          {"file": ("t.nii.gz", server.files["t1"].read_bytes())}), 422, "params.replace must be true or false, not 'si'"),
        (("POST", "/train/no-such-model", {}, None, None), 404, "unknown trainer 'no-such-model'; available: segmentation"),
        (("POST", "/infer/wsi_v2/atlas_registration", {"image": "case-002"}, None, None), 404, "not offered by this app"),
        (("GET", "/proxy/dicom/studies", {}, None, None), 404, "not offered by this app"),
    ]
    for (method, path, query, fields, files), status, message in cases:
        reply = server.call(method, path, query, fields=fields, files=files)
        assert reply.status == status and message in reply.detail, (path, query, reply)
    # A registration that elastix cannot finish (0.01 mm voxels): 422 with the reason, no 500.
    image = nibabel.load(str(server.files["t1"]))
    tiny = _nifti_bytes(np.asarray(image.dataobj, np.float32), np.diag([0.01, 0.01, 0.01, 1.0]), "channels=t1")
    reply = server.call("POST", "/infer/atlas_registration", {}, fields={"params": "{}"}, files={"file": ("tiny.nii.gz", tiny)})
    assert reply.status == 422 and reply.detail and "internal error" not in reply.detail, reply
    assert any(word in reply.detail.lower() for word in ("regist", "atlas", "elastix")), reply


# -- 8. a damaged index ----------------------------------------------------------------------------

def test_a_damaged_index_is_rebuilt_keeping_what_survives(server):
    objects = server.objects()
    assert {"case-001", "case-002", "case-003", "case-t1only"} <= set(objects)
    assert objects["case-001"]["image"]["info"]["note"] == "scanned twice"
    assert objects["case-001"]["labels"]["final"]["info"]["reviewer"] == "alice"
    assert "note" not in objects["case-003"]["image"]["info"]  # its entry was cut off; the file is still served
    assert "final" in objects["case-t1only"]["labels"]
    assert len(list(server.datastore.glob("datastore_v2.json.damaged-*"))) == 1
    assert any("could not be read" in line and "rebuilt from the files on disk" in line for line in server.local.log)
    json.loads((server.datastore / "datastore_v2.json").read_text())


# -- 9. training says why it cannot run ------------------------------------------------------------

def test_training_on_a_case_lacking_channels_says_why(server):
    server.client.train_start("segmentation", {"max_epochs": 1})
    status = server.client.wait_for_training(timeout=300, poll=1)
    details = "\n".join(status["details"])
    assert status["status"] == "ERROR", status
    assert "case-t1only.nii.gz has t1 (missing t2,flair)" in status["details"][-1], details
    assert "SelectChannelsd object at" not in details


# -- 10. the upstream client -------------------------------------------------------------------------

def test_upstream_monailabel_client_gets_the_same_answers(server, outside_before):
    script = textwrap.dedent(f"""
        import json
        from monailabel.client import MONAILabelClient
        def attempt(call):
            try:
                call()
                return "accepted"
            except Exception as error:
                return getattr(error, "msg", str(error))
        anonymous = MONAILabelClient({server.local.url!r})
        client = MONAILabelClient({server.local.url!r})
        client.update_auth({{"token_type": "Bearer", "access_token": {TOKEN!r}}})
        results = {{
            "anonymous": attempt(anonymous.info),
            "info": sorted(client.info()["models"]),
            "upload": attempt(lambda: client.upload_image({str(server.files['t1'])!r}, image_id="../outside/upstream")),
            "label": attempt(lambda: client.save_label("case-001", {str(server.files['label'])!r}, tag="../../outside")),
            "final": attempt(lambda: client.infer("atlas_registration", "case-001", {{"save_label": True, "label_tag": "final"}})),
            "path": attempt(lambda: client.infer("atlas_registration", "/etc/passwd", {{}})),
            "ok": client.upload_image({str(server.files['t1'])!r}, image_id="upstream-1")["image"],
        }}
        def authorized():
            # A fresh client for each session call: with auth headers set, MONAILabelClient keeps the last
            # multipart request's content-type and length in them, which spoils its next upload.
            fresh = MONAILabelClient({server.local.url!r})
            fresh.update_auth({{"token_type": "Bearer", "access_token": {TOKEN!r}}})
            return fresh
        session = authorized().create_session({str(server.files['t1'])!r})["session_id"]
        results["session"] = authorized().infer("atlas_registration", "", {{}}, session_id=session)[1]["model"]
        results["session_removed"] = authorized().remove_session(session)["name"] == session
        print(json.dumps(results))
    """)
    completed = subprocess.run([str(default_python()), "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "Status: 401" in results["anonymous"] or "401" in results["anonymous"]
    assert results["info"] == ["atlas_registration", "segmentation", "synthseg"]
    assert "Status: 400" in results["upload"] and "is not a valid image id" in results["upload"]
    assert "Status: 400" in results["label"] and "is not a valid label tag" in results["label"]
    assert "Status: 403" in results["final"]
    assert "Status: 400" in results["path"]
    assert results["ok"] == "upstream-1" and (server.datastore / "upstream-1.nii.gz").exists()
    assert results["session"] == "atlas_registration" and results["session_removed"]
    _assert_outside_untouched(server, outside_before)


# -- 11. fuzz ---------------------------------------------------------------------------------------

def _fuzz_name(rng: random.Random, outside: Path) -> str:
    pieces = ["..", "/", "\\", ".", "-", "_", "~", "%2e%2e", "%00", "\x00", " ", "\n", "é", "名", "$HOME", "*", "?", "#",
              "case", "final", "labels", "nii.gz", ".nii", "etc", "passwd", str(outside), "C:\\Windows", "//", "./"]
    if rng.random() < 0.15:
        return rng.choice(["", ".", "..", "../" * rng.randint(1, 6) + "outside/canary", str(outside / "canary"),
                           "a" * rng.randint(100, 400), "fz-" + "b" * 130])
    if rng.random() < 0.3:
        return "fz-" + "".join(rng.choice("abcdefghij0123456789_-+.") for _ in range(rng.randint(1, 12))).rstrip(".")
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))


def _fuzz_params(rng: random.Random, outside: Path) -> str:
    keys = ["preset", "save_label", "label_tag", "image", "model", "replace", "channel", "device", "result_extension",
            "client_id", "label", "session", "output", "threshold"]
    values = [True, False, None, 0, -1, 1e308, "true", "final", "original", "../x", str(outside / "secret.txt"),
              "brain-rigid", [], {}, {"a": [1, 2]}, "x" * 500]
    params = {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(0, 4))}
    text = json.dumps(params)
    return rng.choice([text, text, text, text[: max(0, len(text) - 3)], "[1,2]", "null", "\"text\"", ""])


def test_fuzzed_ids_tags_and_params_never_give_500_nor_touch_outside(server, outside_before):
    rng = random.Random(13)
    known = set(server.objects())
    label = server.files["label"].read_bytes()
    tiny = _nifti_bytes(np.ones((4, 4, 4), np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    tiny_label = _nifti_bytes(np.ones((4, 4, 4), np.uint8), np.diag([3.0, 3.0, 3.0, 1.0]))
    archive = _archive_escaping_its_folder(range(1, 5))
    outside = server.outside
    counts: dict[int, int] = {}
    for index in range(300):
        name, tag = _fuzz_name(rng, outside), _fuzz_name(rng, outside) if rng.random() < 0.6 else rng.choice(["final", "original"])
        kind = rng.randrange(12)
        if kind == 0:
            request = ("GET", "/datastore/image", {"image": name}, None, None)
        elif kind == 1:
            request = ("GET", "/datastore/label", {"label": name, "tag": tag}, None, None)
        elif kind == 2:
            request = ("PUT", "/datastore/image/info", {"image": name}, {"info": _fuzz_params(rng, outside)}, None)
        elif kind == 3:
            request = ("PUT", "/datastore/image", {"image": name}, {"params": _fuzz_params(rng, outside)},
                       {"file": (rng.choice(["x.nii.gz", "x.bashrc", "../../x", ""]), rng.choice([tiny, b"junk", b""]))})
        elif kind == 4:
            request = ("PUT", "/datastore/label", {"image": name, "tag": tag}, {"params": _fuzz_params(rng, outside)},
                       {"label": ("l.nii.gz", rng.choice([tiny_label, label, b"junk"]))})
        elif kind == 5 and name not in known:
            request = ("DELETE", "/datastore/image", {"id": name, "force": rng.choice(["true", "false", "x"])}, None, None)
        elif kind == 6 and name not in known:
            request = ("DELETE", "/datastore/label", {"id": name, "tag": tag, "force": "true"}, None, None)
        elif kind == 7 and not name.startswith("fz-") and name not in known:
            model = rng.choice(["atlas_registration", "segmentation", "synthseg", name])
            query = {"image": name} if rng.random() < 0.7 else {"image": "", "session_id": name}
            request = ("POST", f"/infer/{quote(model, safe='')}", query, {"params": _fuzz_params(rng, outside)}, None)
        elif kind == 8:
            request = ("GET", "/datastore/label/info", {"label": name, "tag": tag}, None, None)
        elif kind == 10:
            query = {"uncompress": rng.choice(["true", "false", "1", "x"]), "expiry": rng.choice(["0", "-5", "600", "x"])}
            request = ("PUT", "/session/", query, None,
                       {"files": (rng.choice(["x.nii.gz", "x.tar.gz", "../../x.zip", ""]), rng.choice([tiny, archive, b"junk"]))})
        elif kind == 11 and name not in known:
            request = (rng.choice(["GET", "DELETE"]), f"/session/{quote(name, safe='')}", {"image": rng.choice(["true", "x"])},
                       None, None)
        else:
            request = ("HEAD", "/datastore/image", {"image": name}, None, None)
        method, path, query, fields, files = request
        reply = server.call(method, path, query, fields=fields, files=files)
        counts[reply.status] = counts.get(reply.status, 0) + 1
        assert reply.status < 500, (index, request[:3], reply)
        if reply.status >= 400 and method != "HEAD":
            assert reply.detail.strip(), (index, request[:3], reply)
    print(f"fuzz: statuses {dict(sorted(counts.items()))}")
    assert counts.get(400, 0) > 50 and sum(counts.values()) == 300
    _assert_outside_untouched(server, outside_before)
    assert server.files["label"].read_bytes() == label
    assert not list(server.sandbox.rglob("escaped-*"))
    for path in server.datastore.rglob("*"):
        if not _is_server_runtime(path, server.datastore):
            assert path.resolve().is_relative_to(server.datastore.resolve()) or path.name == "linked.nii.gz", path
