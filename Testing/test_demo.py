"""The demo the README's first command runs, at 3 mm so that it is quick here."""

import json

from ElastixMonaiLabelLib.demo import run_demo


def test_demo_writes_pictures_files_and_accurate_figures(tmp_path, capsys):
    summary = run_demo(tmp_path / "demo", seed=1, spacing_mm=3.0)
    printed = capsys.readouterr().out
    assert "Done. Outputs in" in printed and str((tmp_path / "demo" / "overlay.png").resolve()) in printed
    picture = (tmp_path / "demo" / "overlay.png").read_bytes()
    assert picture.startswith(b"\x89PNG") and len(picture) > 50_000
    assert json.loads((tmp_path / "demo" / "summary.json").read_text()) == summary
    for modality in ("t2", "flair"):
        figures = summary["modalities"][modality]
        assert figures["misalignment_rotation_deg"] >= 5.0
        assert figures["error_mean_mm"] < 1.0, figures
        for path in figures["files"].values():
            assert (tmp_path / "demo" / "registered").joinpath(path.split("/")[-1]).exists()
