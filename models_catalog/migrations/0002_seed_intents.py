from django.db import migrations


def seed(apps, schema_editor):
    from models_catalog.services.intents import intents_seed

    intents_seed(intent_model=apps.get_model("models_catalog", "Intent"))


def unseed(apps, schema_editor):
    from models_catalog.seed_intents import INTENTS

    apps.get_model("models_catalog", "Intent").objects.filter(slug__in=[i["slug"] for i in INTENTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("models_catalog", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
