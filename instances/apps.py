from django.apps import AppConfig


class InstancesConfig(AppConfig):
    name = "instances"
    default_auto_field = "django.db.models.BigAutoField"
