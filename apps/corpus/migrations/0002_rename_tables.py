"""The tables take the corpus app's names: ingestion_section → corpus_section and ingestion_chunk
→ corpus_chunk, renamed in place (ALTER TABLE ... RENAME TO on SQLite and PostgreSQL: no row is
copied, foreign keys follow the rename). Constraint and index names are kept as they are.

Content types of the two models are relabelled from ingestion to corpus, so permissions and admin
log entries that point at them keep pointing at the same models."""

from django.db import migrations

MODELS = ("section", "chunk")


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def forwards(apps, schema_editor):
    _relabel(apps, "ingestion", "corpus")


def backwards(apps, schema_editor):
    _relabel(apps, "corpus", "ingestion")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("corpus", "0001_initial"),
        ("ingestion", "0003_section_chunk_moved_to_corpus"),
    ]

    operations = [
        migrations.AlterModelTable(name="section", table=None),
        migrations.AlterModelTable(name="chunk", table=None),
        migrations.RunPython(forwards, backwards),
    ]
