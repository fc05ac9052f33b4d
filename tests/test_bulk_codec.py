"""The one JSON codec: a value has one plain form wherever it travels."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from django.db import models

from powercrud.bulk.codec import NotJsonable, frozen_json, json_pk, sorted_values, to_json


def test_python_values_become_plain_json() -> None:
    key = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {
        "price": decimal.Decimal("12.50"),
        "day": datetime.date(2024, 1, 31),
        "at": datetime.datetime(2024, 1, 31, 9, 30, tzinfo=datetime.UTC),
        "time": datetime.time(9, 30),
        "took": datetime.timedelta(days=1, hours=2),
        "key": key,
        "tags": {3, 1, 2},
        "pair": (1, "a"),
        1: None,
    }
    assert to_json(value) == {
        "price": "12.50",
        "day": "2024-01-31",
        "at": "2024-01-31T09:30:00+00:00",
        "time": "09:30:00",
        "took": "P1DT02H00M00S",
        "key": str(key),
        "tags": [1, 2, 3],
        "pair": [1, "a"],
        "1": None,
    }


def test_a_duration_reads_back_through_its_model_field() -> None:
    took = datetime.timedelta(days=1, hours=2, microseconds=5)
    assert models.DurationField().to_python(to_json(took)) == took


def test_strict_mode_refuses_what_has_no_plain_form() -> None:
    assert to_json(object()).startswith("<object object")
    with pytest.raises(NotJsonable, match="a object value has no plain JSON form"):
        to_json({"x": [object()]}, strict=True)


def test_keys_and_sorting() -> None:
    assert (json_pk(5), json_pk(True), json_pk(uuid.UUID(int=1))) == (5, "True", str(uuid.UUID(int=1)))
    assert sorted_values([3, "a", 1]) == [1, 3, "a"]


def test_frozen_json_is_a_read_only_copy() -> None:
    source = {"a": [1, 2]}
    frozen = frozen_json("Thing.data", source)
    source["a"].append(3)
    assert frozen == {"a": [1, 2]}
    with pytest.raises(TypeError):
        frozen["b"] = 1  # type: ignore[index]
    with pytest.raises(TypeError, match=r"^Thing.data must hold JSON-able data"):
        frozen_json("Thing.data", {"x": decimal.Decimal("1")})
    with pytest.raises(TypeError, match="must hold JSON-able data"):
        frozen_json("Thing.data", {"x": float("nan")})
    with pytest.raises(TypeError, match="must be a dict"):
        frozen_json("Thing.data", [1])  # type: ignore[arg-type]
