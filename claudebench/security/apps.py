from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "claudebench.security"
    label = "security"
    verbose_name = "Security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from claudebench.security import signals  # noqa: F401  (token changes drop the cached copy)
