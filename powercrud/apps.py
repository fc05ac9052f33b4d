from django.apps import AppConfig


class PowerCRUDConfig(AppConfig):
    name = "powercrud"
    verbose_name = "PowerCRUD"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from powercrud import checks  # noqa: F401  (registers the system checks)
