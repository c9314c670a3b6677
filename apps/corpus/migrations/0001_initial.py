"""Section and Chunk move here from the ingestion app, in Django's state only: their tables
(ingestion_section, ingestion_chunk, made by ingestion/0001-0002) and every row stay where they
are. ingestion/0003 then drops the models from ingestion's state, and 0002 renames the tables."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("documents", "0002_initial"),
        ("ingestion", "0002_chunk_embedding_input"),
    ]

    state_operations = [
        migrations.CreateModel(
            name="Section",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("ordinal", models.PositiveIntegerField()),
                ("heading", models.CharField(blank=True, max_length=500)),
                ("text", models.TextField()),
                ("start_offset", models.PositiveIntegerField()),
                ("end_offset", models.PositiveIntegerField()),
                ("page", models.PositiveIntegerField(blank=True, null=True)),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="sections",
                        to="documents.documentversion",
                    ),
                ),
            ],
            options={
                "db_table": "ingestion_section",
                "ordering": ["version", "ordinal"],
                "constraints": [
                    models.UniqueConstraint(fields=("version", "ordinal"), name="section_ordinal_unique_in_version")
                ],
            },
        ),
        migrations.CreateModel(
            name="Chunk",
            fields=[
                ("id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                ("ordinal", models.PositiveIntegerField()),
                ("text", models.TextField()),
                ("text_sha256", models.CharField(db_index=True, max_length=64)),
                ("start_offset", models.PositiveIntegerField()),
                ("end_offset", models.PositiveIntegerField()),
                ("token_count", models.PositiveIntegerField(default=0)),
                ("embedding", models.BinaryField()),
                ("embedding_model", models.CharField(max_length=200)),
                ("embedding_input_sha256", models.CharField(default="", max_length=64)),
                (
                    "version",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="documents.documentversion",
                    ),
                ),
                (
                    "section",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="chunks",
                        to="corpus.section",
                    ),
                ),
            ],
            options={
                "db_table": "ingestion_chunk",
                "ordering": ["version", "ordinal"],
                "indexes": [
                    models.Index(fields=["embedding_input_sha256", "embedding_model"], name="chunk_embedding_reuse")
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("version", "ordinal"), name="chunk_ordinal_unique_in_version")
                ],
            },
        ),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=state_operations)]
