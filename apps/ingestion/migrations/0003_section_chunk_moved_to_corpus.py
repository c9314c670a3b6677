"""Section and Chunk now belong to the corpus app (corpus/0001 took them over): they leave
ingestion's state only. Nothing happens in the database; the tables and rows are corpus's now."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("corpus", "0001_initial"),
        ("ingestion", "0002_chunk_embedding_input"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Chunk"),  # first: it points at Section
                migrations.DeleteModel(name="Section"),
            ]
        ),
    ]
