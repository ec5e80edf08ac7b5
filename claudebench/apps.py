from django.apps import AppConfig


class ClaudeBenchConfig(AppConfig):
    name = "claudebench"
    label = "claudebench"
    verbose_name = "ClaudeBench"

    def ready(self) -> None:
        from claudebench.core import checks  # noqa: F401  (registers system checks)
