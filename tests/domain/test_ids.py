import pytest

from axon_dagster.domain import InvalidIdError, Order, validate_id


@pytest.mark.parametrize(
    "bad,reason",
    [
        ("", "empty"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "'..'"),
        ("x..y", "'..'"),
        ("../etc", "path separator"),
        ("tab\there", "control"),
        ("nl\n", "control"),
        ("x" * 129, "longer than 128"),
        (".hidden", "only letters"),
        ("sp ace", "only letters"),
        (None, "string"),
    ],
)
def test_unsafe_ids_are_refused_with_the_reason(bad, reason):
    with pytest.raises(InvalidIdError) as err:
        validate_id(bad, "task_id")
    assert reason in str(err.value)
    assert "task_id" in str(err.value)


@pytest.mark.parametrize("good", ["a", "order-1", "o_1.2", "X" * 128, "9lives"])
def test_safe_ids_pass_unchanged(good):
    assert validate_id(good) == good


def test_entities_validate_their_ids_and_labels():
    with pytest.raises(InvalidIdError):
        Order(order_id="../o", scene="warehouse", skills=("nav",))
    with pytest.raises(InvalidIdError):
        Order(order_id="o", scene="ware/house", skills=("nav",))
    with pytest.raises(InvalidIdError):
        Order(order_id="o", scene="warehouse", sub_scene="..", skills=("nav",))
