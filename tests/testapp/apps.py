from django.apps import AppConfig


class PowercrudTestAppConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    verbose_name = "powercrud test app"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tests.testapp import signals  # noqa: F401  (connects the Shelf receiver)
