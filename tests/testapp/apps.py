import os

from django.apps import AppConfig


class PowercrudTestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    verbose_name = "powercrud test app"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tests.testapp import signals  # noqa: F401  (connects the Shelf receiver)

        if os.environ.get("POWERCRUD_TEST_LIFECYCLE"):  # tests/test_lifecycle_worker.py
            from tests import lifecycle_hooks  # noqa: F401  (registers its lifecycle hooks)
