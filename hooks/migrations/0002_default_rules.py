"""Store the built-in validator rules (SPEC §10.1) so operators can edit them in the admin."""

from django.db import migrations


def seed(apps, schema_editor):
    from hooks.rules import default_rule_rows

    HookRule = apps.get_model("hooks", "HookRule")
    if HookRule.objects.exists():
        return
    HookRule.objects.bulk_create(HookRule(**row) for row in default_rule_rows())


def unseed(apps, schema_editor):
    apps.get_model("hooks", "HookRule").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("hooks", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
