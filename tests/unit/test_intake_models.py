"""Property tests over intake's request models: any JSON is either a valid request or a ValidationError that
names fields — never another exception (which the API would turn into a 500)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake.schemas import AssessmentIn, DossierIn, OfficerIn, RatingIn
from shared.auth import respondent_hash
from tests.support.data import dossier, rating

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
valid_rating = rating("H29.58-261118-0001", device_id="KIOSK-1")
valid_dossier = dossier("79.SNV")


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The valid body with some fields replaced by arbitrary JSON, dropped, or joined by unknown ones."""
    return st.builds(
        lambda changes, dropped: {k: v for k, v in {**base, **changes}.items() if k not in dropped},
        st.dictionaries(st.sampled_from([*base, "extra"]), json_values, max_size=3),
        st.sets(st.sampled_from(list(base)), max_size=2),
    )


def validates_or_names_fields(model: type, body: Any) -> None:
    try:
        parsed = model.model_validate(body)
    except ValidationError as error:
        assert error.errors() and all(isinstance(e["loc"], tuple) for e in error.errors())
    else:
        assert model.model_validate(parsed.model_dump(mode="json")) == parsed  # what it accepts survives a round trip


@settings(max_examples=300, deadline=None)
@given(mutated(valid_rating))
def test_rating_bodies(body: dict[str, Any]) -> None:
    validates_or_names_fields(RatingIn, body)


@settings(max_examples=300, deadline=None)
@given(mutated(valid_dossier))
def test_dossier_bodies(body: dict[str, Any]) -> None:
    validates_or_names_fields(DossierIn, body)


@settings(max_examples=200, deadline=None)
@given(mutated({"period": "2026-Q3", "feedback_handling": 17.5, "public_listing": True, "feedback_received": 4}))
def test_assessment_bodies(body: dict[str, Any]) -> None:
    validates_or_names_fields(AssessmentIn, body)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_anything_at_all(body: Any) -> None:
    for model in (RatingIn, DossierIn, AssessmentIn, OfficerIn):
        validates_or_names_fields(model, body)


def test_the_valid_examples_are_valid() -> None:
    assert RatingIn.model_validate(valid_rating).overall == "satisfied"
    assert DossierIn.model_validate(valid_dossier).unit_code == "79.SNV"


@given(st.sampled_from(["+84 901 234 567", "+84-901-234-567", "+84.901.234.567", "+84901234567"]))
def test_a_phone_hashes_the_same_however_it_is_written(phone: str) -> None:
    assert respondent_hash("k", phone) == respondent_hash("k", "+84901234567") != respondent_hash("other key", "+84901234567")
