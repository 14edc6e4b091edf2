"""Đà Nẵng 5697/2017 Art. 3 step 3: 5 working days for service conditions, 15 for procedure."""

from services.workflow.domain.remediation import remedies_for


def test_a_satisfied_rating_obliges_nothing() -> None:
    assert remedies_for("satisfied", ["attitude"]) == []
    assert remedies_for("very_satisfied", []) == []


def test_reasons_split_into_the_two_statutory_categories() -> None:
    remedies = {r.category: r for r in remedies_for("dissatisfied", ["attitude", "processing_time", "documents"])}
    assert remedies["service_conditions"].working_days == 5
    assert remedies["service_conditions"].reasons == ("attitude",)
    assert remedies["procedure"].working_days == 15
    assert remedies["procedure"].reasons == ("processing_time", "documents")


def test_informal_cost_is_high_severity() -> None:
    (remedy,) = remedies_for("very_dissatisfied", ["informal_cost", "equipment"])
    assert remedy.severity == "high" and remedy.category == "service_conditions"
    (plain,) = remedies_for("dissatisfied", ["equipment"])
    assert plain.severity == "normal"


def test_normal_is_below_satisfied_and_an_unexplained_answer_takes_the_shorter_deadline() -> None:
    (remedy,) = remedies_for("normal", [])
    assert remedy.category == "service_conditions" and remedy.working_days == 5
    (other,) = remedies_for("dissatisfied", ["other"])
    assert other.category == "service_conditions"
