"""The app's one reading of yes/no request params (lib.http.params.yes_no)."""

import pytest
from fastapi import HTTPException

from lib.http.params import yes_no


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), (1.0, True), ("true", True), ("False", False), (" YES ", True),
    ("no", False), ("1", True), ("0", False), (None, "default"),
])
def test_yes_and_no_in_every_usual_spelling(value, expected):
    assert yes_no(value, "flag", default="default") == expected


@pytest.mark.parametrize("value", ["maybe", "", "2", -1, 1e308, [], {}, "auto"])
def test_anything_else_is_a_422_naming_the_param(value):
    with pytest.raises(HTTPException, match="flag must be true or false, not") as error:
        yes_no(value, "flag")
    assert error.value.status_code == 422


def test_auto_where_the_model_may_decide():
    assert yes_no("AUTO", "skull_stripped", default=None, auto=True) is None
    assert yes_no(None, "skull_stripped", default=None, auto=True) is None
    with pytest.raises(HTTPException, match="skull_stripped must be true, false or auto"):
        yes_no("perhaps", "skull_stripped", auto=True)
