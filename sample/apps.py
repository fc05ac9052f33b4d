from django.apps import AppConfig


class SampleConfig(AppConfig):
    name = "sample"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sample import signals  # noqa: F401  (connects receivers)
