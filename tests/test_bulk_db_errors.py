"""Database refusals in the model's own words: real errors from the database in use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.test.utils import isolate_apps

from powercrud.bulk.db_errors import DatabaseRefusal, describe_db_error, explain_db_error
from tests.conftest import model_table
from tests.testapp.models import Asset, Book


@pytest.fixture
def widget_model(transactional_db: None) -> Iterator[Any]:
    with isolate_apps("tests.testapp"):

        class Widget(models.Model):  # noqa: DJ008
            kind = models.CharField(max_length=10)
            size = models.IntegerField(default=0)
            code = models.CharField(max_length=10, default="")
            serial = models.IntegerField(unique=True, null=True, verbose_name="serial number")

            class Meta:
                app_label = "testapp"
                constraints = [
                    models.CheckConstraint(
                        condition=models.Q(size__gte=0),
                        name="widget_size",
                        violation_error_message="Sizes start at 0.",
                    ),
                    models.UniqueConstraint(fields=["kind", "size"], name="widget_kind_size"),
                    models.UniqueConstraint(
                        fields=["code"],
                        condition=~models.Q(code=""),
                        name="widget_code",
                        violation_error_message="That code is taken.",
                    ),
                ]

    with model_table(Widget):
        yield Widget


def refusal(write: Callable[[], Any]) -> IntegrityError:
    """The ``IntegrityError`` the database raises for ``write``."""
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        write()
    return caught.value


def test_a_check_constraint_speaks_in_its_own_words(widget_model: Any) -> None:
    error = refusal(lambda: widget_model.objects.create(kind="a", size=-1))
    assert explain_db_error(error, widget_model) == DatabaseRefusal("Sizes start at 0.")


def test_a_unique_constraint_over_two_fields_says_what_django_says(widget_model: Any) -> None:
    widget_model.objects.create(kind="a", size=1)
    error = refusal(lambda: widget_model.objects.create(kind="a", size=1))
    assert explain_db_error(error, widget_model) == DatabaseRefusal(
        "Widget with this Kind and Size already exists."
    )


def test_a_unique_field_is_named(widget_model: Any) -> None:
    widget_model.objects.create(kind="a", size=1, serial=7)
    error = refusal(lambda: widget_model.objects.create(kind="b", size=1, serial=7))
    assert explain_db_error(error, widget_model) == DatabaseRefusal(
        "Widget with this Serial number already exists.", "serial"
    )


def test_a_constraint_with_its_own_message_and_one_field_names_the_field(widget_model: Any) -> None:
    widget_model.objects.create(kind="a", size=1, code="X")
    error = refusal(lambda: widget_model.objects.create(kind="b", size=2, code="X"))
    if connection.vendor == "sqlite":  # SQLite names the columns of a partial unique index
        assert explain_db_error(error, widget_model) == DatabaseRefusal(
            "Widget with this Code already exists.", "code"
        )
    else:
        assert explain_db_error(error, widget_model) == DatabaseRefusal("That code is taken.", "code")


def test_anything_else_keeps_the_first_line_of_the_database_message(transactional_db: None) -> None:
    """A foreign key refused at the commit: PostgreSQL's detail starts "Key (author_id)=",
    like a unique violation's, and must not be taken for one."""
    error = refusal(lambda: Book.objects.create(title="x", author_id=987654, price=1))
    explained = explain_db_error(error, Book)
    assert explained.field is None
    assert explained.message.startswith("The database rejected the change: ")
    assert "\n" not in explained.message  # no DETAIL line (it can hold row data)


def test_without_a_model_or_for_another_table_nothing_is_guessed(db: None) -> None:
    Asset.objects.create(code="A")
    error = refusal(lambda: Asset.objects.create(code="A"))
    assert explain_db_error(error, Asset) == DatabaseRefusal("Asset with this Code already exists.", "code")
    for model in (None, Book):
        message = describe_db_error(error, model)
        assert message.startswith("The database rejected the change: "), model


def test_a_validation_error_gives_its_messages() -> None:
    error = ValidationError(["Too big.", "Too red."])
    assert explain_db_error(error, Book) == DatabaseRefusal("Too big. Too red.")
