"""Which SynthSeg the server offers as model mri_synthseg, from its configuration."""

import pytest

from ElastixMonaiLabelLib.errors import InputError
from lib.infers.mri_synthseg import configured_synthseg


def test_auto_offers_the_model_only_where_synthseg_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ELASTIXMONAILABEL_SYNTHSEG", raising=False)
    assert configured_synthseg({}) is None  # auto, not installed: no model, the server still starts
    program = tmp_path / "mri_synthseg"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert configured_synthseg({}).program == (str(program),)
    assert configured_synthseg({"synthseg": "off"}) is None


def test_asking_for_a_synthseg_that_is_not_there_stops_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ELASTIXMONAILABEL_SYNTHSEG", raising=False)
    with pytest.raises(InputError, match="SynthSeg is not installed"):
        configured_synthseg({"synthseg": "on"})
    with pytest.raises(InputError, match="not a SynthSeg checkout"):
        configured_synthseg({"synthseg_checkout": str(tmp_path)})
