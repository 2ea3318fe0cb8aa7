"""handlers.envelope shape plans: maps whose attribute names recur are written by a function
made for their shape. Plans must change speed only: every test here compares a planned
image's text with the generic walk's text (plans switched off) and with the oracle of
test_envelope, and checks that a plan was really used."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from handlers import envelope as E
from tests.test_envelope import _number, _string, exact_loads, oracle, value_of_kind


@pytest.fixture(autouse=True)
def fresh_plans(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(E, "_PLANS", {})
    monkeypatch.setattr(E, "_SEEN", {})
    monkeypatch.setattr(E, "_MISSES", {})
    monkeypatch.setitem(E._PLAN_BUDGET, "values_left", 16_384)
    yield


def generic(image: dict[str, Any]) -> str:
    """The image's text from the generic walk alone."""
    saved = E._MIN_PLAN_KEYS
    E._MIN_PLAN_KEYS = 10**9
    try:
        return E.image_json(image)
    finally:
        E._MIN_PLAN_KEYS = saved


def planned(image: dict[str, Any]) -> str:
    """The image's text once its plan exists (the second sighting compiles it)."""
    E.image_json(image)
    text = E.image_json(image)
    assert callable(E._PLANS.get(tuple(image))), "no plan was compiled for this shape"
    return text


def check(image: dict[str, Any]) -> str:
    text = E.image_json(image)
    assert text == generic(image)
    assert exact_loads(text) == {k: oracle(v) for k, v in image.items()}
    return text


# ------------------------------------------------------------------- shapes and values


def _shape(rng: random.Random, depth: int = 0, width: tuple[int, int] = (6, 12)) -> Any:
    """A map shape: names -> kind, nested maps and lists of maps as nested shapes."""
    shape = {}
    for i in range(rng.randrange(*width)):
        kinds = ["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"]
        if depth < 3:
            kinds += ["M", "LM", "LN", "L"]
        kind = rng.choice(kinds)
        name = _string(rng) + f"#{i}"
        if kind == "M":
            shape[name] = ("M", _shape(rng, depth + 1, (0, 6)))
        elif kind == "LM":
            shape[name] = ("LM", _shape(rng, depth + 1, (1, 5)))
        else:
            shape[name] = (kind, None)
    return shape


def _fill(rng: random.Random, shape: dict[str, Any]) -> dict[str, Any]:
    """An image of `shape` with fresh values (list lengths vary too)."""
    image: dict[str, Any] = {}
    for name, (kind, inner) in shape.items():
        if kind == "M":
            image[name] = {"M": _fill(rng, inner)}
        elif kind == "LM":
            image[name] = {"L": [{"M": _fill(rng, inner)} for _ in range(rng.randrange(0, 4))]}
        elif kind == "LN":
            image[name] = {"L": [{"N": _number(rng)} for _ in range(rng.randrange(0, 4))]}
        elif kind == "L":
            items = [value_of_kind(rng, rng.choice("SNM"), 2) for _ in range(rng.randrange(4))]
            image[name] = {"L": items}
        else:
            image[name] = value_of_kind(rng, kind)
    return image


# ------------------------------------------------------------------------------ tests


def test_planned_images_are_written_exactly_like_the_generic_walk() -> None:
    rng = random.Random(23)
    for _ in range(40):
        shape = _shape(rng)
        planned(_fill(rng, shape))
        plan = E._PLANS[tuple(shape)]
        for _ in range(15):
            check(_fill(rng, shape))
        assert E._PLANS[tuple(shape)] is plan  # the same plan wrote them all
    assert not E._MISSES  # same shapes, only values changed: no plan ever missed


def _sample() -> dict[str, Any]:
    return {
        "s": {"S": "text"},
        "n": {"N": "12345678901234567890123456789012345678"},
        "b": {"B": "AAE="},
        "t": {"BOOL": True},
        "z": {"NULL": True},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "-2.5"]},
        "bs": {"BS": ["AA==", "AQ=="]},
        "m": {"M": {"x": {"S": "1"}, "y": {"M": {"deep": {"N": "7"}}}}},
        "lm": {"L": [{"M": {"sku": {"S": "A"}, "qty": {"N": "1"}}}]},
        "ln": {"L": [{"N": "1"}, {"N": "2"}]},
        "l": {"L": [{"S": "x"}, {"N": "3"}]},
    }


OTHER_VALUES = [
    {"S": "now a string"},
    {"N": "-0.5E+7"},
    {"B": "AAAA"},
    {"BOOL": False},
    {"NULL": True},
    {"SS": ["q"]},
    {"NS": ["9"]},
    {"BS": ["AQ=="]},
    {"M": {}},
    {"M": {"x": {"N": "1"}, "y": {"M": {"deep": {"S": "now S"}}}}},
    {"M": {"y": {"S": "1"}, "x": {"S": "2"}}},
    {"M": {"x": {"S": "1"}, "y": {"M": {"other": {"N": "7"}}}}},
    {"L": []},
    {"L": [{"M": {"sku": {"S": "A"}, "qty": {"N": "1"}}}, {"S": "not a map"}]},
    {"L": [{"M": {"qty": {"N": "1"}, "sku": {"S": "A"}}}]},
    {"L": [{"N": "1"}, {"S": "two"}]},
    {"L": [{"L": [{"N": "1"}]}]},
]


@pytest.mark.parametrize("position", list(_sample()))
def test_a_value_of_another_type_is_written_right(position: str) -> None:
    planned(_sample())
    for other in OTHER_VALUES:
        image = _sample()
        image[position] = other
        check(image)


def test_boto3_form_binary_in_a_planned_position() -> None:
    planned(_sample())
    image = _sample()
    image["b"] = {"B": b"\x00\x01"}
    image["bs"] = {"BS": [b"\x00", b"\x01"]}
    text = E.image_json(image)
    assert text == generic(image)
    assert '"b":"AAE="' in text and '"bs":["AA==","AQ=="]' in text
    assert not E._MISSES  # the backfill's form is written by the plan, not by a fallback


@pytest.mark.parametrize(
    ("position", "bad"),
    [
        ("s", {"S": 5}),
        ("s", {"S": None}),
        ("n", {"N": "1,2"}),
        ("n", {"N": 5}),
        ("n", {"N": "NaN"}),
        ("t", {"BOOL": 1}),
        ("ss", {"SS": "abc"}),
        ("ss", {"SS": ["a", 1]}),
        ("bs", {"BS": [1]}),
        ("ns", {"NS": "1"}),
        ("ln", {"L": [{"N": "1e"}]}),
        ("ln", {"L": [{"N": 1}]}),
        ("ln", {"L": "12"}),
        ("lm", {"L": {"M": {}}}),
        ("lm", {"L": [{"M": {"sku": {"S": 1}, "qty": {"N": "1"}}}]}),
        ("m", {"M": [1, 2]}),
        ("m", {"M": {"x": {"S": "1"}, "y": {"M": {"deep": {"N": "1e"}}}}}),
        ("l", {"L": [{"X": "1"}, {"N": "3"}]}),
        ("z", {}),
        ("z", "NULL"),
    ],
)
def test_malformed_values_in_planned_positions_are_envelope_errors(
    position: str, bad: Any
) -> None:
    planned(_sample())
    image = _sample()
    image[position] = bad
    with pytest.raises(E.EnvelopeError):
        E.image_json(image)


def test_a_shape_whose_types_keep_changing_goes_back_to_the_generic_walk() -> None:
    planned(_sample())
    keys = tuple(_sample())
    for i in range(E._MAX_PLAN_MISSES + 5):
        image = _sample()
        image["s"] = {"N": str(i)}  # the plan expects S here: a miss every time
        check(image)
    assert E._PLANS[keys] is False
    assert check(_sample()) == generic(_sample())


def test_plan_caches_are_bounded() -> None:
    rng = random.Random(3)
    shapes = [_shape(rng, 3) for _ in range(E._MAX_PLANS + 40)]
    for shape in shapes:
        for _ in range(2):
            check(_fill(rng, shape))
    assert len(E._PLANS) == E._MAX_PLANS
    for _ in range(5 * E._MAX_PLANS):  # names seen once only
        check({f"once{len(E._SEEN)}-{i}-{rng.random()}": {"S": "x"} for i in range(6)})
    assert len(E._SEEN) <= 4 * E._MAX_PLANS


def test_plans_share_a_budget_of_unrolled_values(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(4)
    monkeypatch.setitem(E._PLAN_BUDGET, "values_left", 20)
    first, second = _shape(rng, 3, (12, 13)), _shape(rng, 3, (12, 13))
    for shape in (first, second):
        for _ in range(3):
            check(_fill(rng, shape))
    assert callable(E._PLANS[tuple(first)])  # 12 values of the 20
    assert tuple(second) not in E._PLANS  # budget spent: the generic walk writes it
    assert E._PLAN_BUDGET["values_left"] == 8


def test_odd_names_and_deep_nesting_are_safe() -> None:
    names = ["'''", '"""', "{", "}", "%s", "%%", "\\", "\n", "__import__('os').system('false')",
             "f'{x}'", "\U0001f600", "", " ", "nums", "m"]
    image: dict[str, Any] = {name: {"S": name} for name in names}
    inner: dict[str, Any] = {"leaf": {"N": "1"}}
    for level in range(31):  # DynamoDB allows 32 levels of nesting
        inner = {f"level{level}": {"M": inner}, "n": {"N": str(level)}}
    image["deep"] = {"M": inner}
    text = planned(image)
    assert text == generic(image)
    assert exact_loads(text) == {k: oracle(v) for k, v in image.items()}

    def constants(code: Any) -> Iterator[Any]:
        for const in code.co_consts:
            if hasattr(const, "co_consts"):
                yield from constants(const)
            else:
                yield const

    # the only string literals a plan's code holds are the writer's own: type tags and
    # JSON punctuation; attribute names and their JSON reach it as namespace constants
    plan = E._PLANS[tuple(image)]
    literals = {c for c in constants(plan.__code__) if isinstance(c, str)}
    assert literals <= {"S", "N", "M", "L", "B", "BOOL", "NULL", "SS", "BS", "NS",
                        "true", "null", "[", "]", ",", "}", "{}", ""}, literals


def test_a_record_stream_uses_one_plan_per_table_shape() -> None:
    rng = random.Random(9)
    shape = _shape(rng)
    key_names = list(shape)[:1]
    for i in range(20):
        new, old = _fill(rng, shape), _fill(rng, shape)
        keys = {name: new[name] for name in key_names}
        old.update(keys)
        record = {
            "eventID": f"e{i}", "eventName": "MODIFY",
            "eventSourceARN": "arn:aws:dynamodb:eu-west-1:1:table/t/stream/x",
            "dynamodb": {"Keys": keys, "NewImage": new, "OldImage": old,
                         "SequenceNumber": str(i), "ApproximateCreationDateTime": 1},
        }
        envelope = E.stream_envelope(record, "t")
        body = exact_loads(envelope.data)
        assert body["new"] == {k: oracle(v) for k, v in new.items()}
        assert body["old"] == {k: oracle(v) for k, v in old.items()}
    assert [bool(p) for p in E._PLANS.values()] == [True]


# ------------------------------------------------- hostile shapes (review of the plans)


def test_a_huge_nested_map_is_not_unrolled() -> None:
    image: dict[str, Any] = {f"a{i}": {"S": "x"} for i in range(6)}
    image["big"] = {"M": {f"{i:x}": {"NULL": True} for i in range(5000)}}
    before = E._PLAN_BUDGET["values_left"]
    text = planned(image)
    assert text == generic(image)
    # the top level's 7 values were unrolled; the 5000-key map is left to `_map`
    assert before - E._PLAN_BUDGET["values_left"] == 7


@pytest.mark.parametrize("empty", [[], "", (), b""])
def test_an_empty_map_position_still_wants_a_map(empty: Any) -> None:
    sample: dict[str, Any] = {f"a{i}": {"S": "x"} for i in range(6)}
    sample["e"] = {"M": {}}
    sample["le"] = {"L": [{"M": {}}]}
    planned(sample)
    for position in ("e", "le"):
        image = dict(sample)
        image[position] = {"M": empty} if position == "e" else {"L": [{"M": empty}]}
        with pytest.raises(E.EnvelopeError):
            E.image_json(image)


@pytest.mark.parametrize("position", ["b", "t", "z", "ss", "ns", "bs"])
def test_an_extra_key_beside_a_rare_type_is_an_error(position: str) -> None:
    planned(_sample())
    image = _sample()
    image[position] = {**image[position], "junk": 1}
    with pytest.raises(E.EnvelopeError):
        E.image_json(image)
    with pytest.raises(E.EnvelopeError):
        generic(image)


def test_python_subclasses_cannot_reach_plan_source() -> None:
    ran: list[str] = []

    class Tag(str):
        def __format__(self, spec: str) -> str:
            ran.append("format")
            return "S'];__import__('sys').exit(3);#"

    class Map(dict):
        pass

    image: dict[str, Any] = {f"a{i}": {Tag("S"): "x"} for i in range(6)}
    image["ss"] = {"SS": ["a"]}
    for _ in range(3):
        assert E.image_json(image) == generic(image)
    assert not ran
    planned(_sample())
    odd = _sample()
    odd["ss"] = Map({"SS": ["a"]})
    with pytest.raises(E.EnvelopeError):
        E.image_json(odd)


def test_long_names_are_not_kept() -> None:
    image = {f"{i}" + "n" * 1000: {"S": "x"} for i in range(6)}
    for _ in range(3):
        assert E.image_json(image) == generic(image)
    assert tuple(image) not in E._PLANS
    assert all(isinstance(key, int) for key in E._SEEN)  # hashes, not the names


def test_absurd_nesting_is_an_envelope_error() -> None:
    image: dict[str, Any] = {"leaf": {"N": "1"}}
    for level in range(5000):
        image = {f"l{level}": {"M": image}}
    with pytest.raises(E.EnvelopeError):
        E.image_json(image)
