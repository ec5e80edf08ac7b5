from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "hooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from hooks import checks, signals  # noqa: F401  (rule changes bump the rules version; env rule check)
