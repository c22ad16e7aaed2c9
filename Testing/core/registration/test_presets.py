"""Presets are plain elastix parameter files that both engines read the same way."""

import itk
import pytest

from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.registration.parameter_files import format_parameter_map, parse_parameter_text, read_parameter_file
from ElastixMonaiLabelLib.registration.presets import default_preset, get_preset, list_presets


def test_parser_reads_quoted_numbers_lists_and_comments():
    text = """// a comment
(Transform "EulerTransform") // trailing comment
(NumberOfResolutions 3)
(ImagePyramidSchedule 4 4 2  2 2 1
)
(InitialTransformParametersFileName "C:/path with spaces//x.txt")
(Spacing 0.5 1e-3) (Flag "true")
"""
    # A value spread over lines is not valid elastix; the parser says where.
    with pytest.raises(InputError, match="line 4"):
        parse_parameter_text(text)
    parsed = parse_parameter_text(text.replace("1\n)", "1)"))
    assert parsed["Transform"] == ("EulerTransform",)
    assert parsed["NumberOfResolutions"] == ("3",)
    assert parsed["ImagePyramidSchedule"] == ("4", "4", "2", "2", "2", "1")
    assert parsed["InitialTransformParametersFileName"] == ("C:/path with spaces//x.txt",)
    assert parsed["Spacing"] == ("0.5", "1e-3") and parsed["Flag"] == ("true",)
    assert parse_parameter_text(format_parameter_map(parsed)) == parsed


@pytest.mark.parametrize("preset", list_presets(), ids=lambda p: p.name)
def test_presets_read_identically_by_itk_elastix(preset, tmp_path):
    for path in preset.stage_files:
        ours = read_parameter_file(path)
        parameter_object = itk.ParameterObject.New()
        parameter_object.ReadParameterFile(str(path))
        theirs = {key: tuple(value) for key, value in dict(parameter_object.GetParameterMap(0)).items()}
        assert ours == theirs


def test_default_preset_is_rigid_and_documented():
    preset = default_preset()
    assert preset.name == "brain-rigid" and preset.is_linear
    assert [m["Transform"][0] for m in preset.parameter_maps()] == ["EulerTransform"]
    assert not get_preset("brain-deformable").is_linear


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(InputError, match="unknown preset 'fast'.*brain-rigid"):
        get_preset("fast")
    with pytest.raises(InputError, match="cannot read parameter file"):
        get_preset("/nonexistent/params.txt")


def test_custom_parameter_file_is_a_preset(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text('(Transform "AffineTransform")\n')
    preset = get_preset(str(path))
    assert preset.parameter_maps() == [{"Transform": ("AffineTransform",)}]
