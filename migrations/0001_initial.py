"""Data sources and the per-tenant source counter."""

from peewee import BigIntegerField, CharField, DateTimeField, JSONField, Model, TextField


def up(migrator, db):
    class DataSource(Model):
        id = CharField(primary_key=True, max_length=64)
        tenant_id = CharField(max_length=255)
        key = CharField(max_length=255)
        name = CharField(max_length=255)
        description = TextField(default="")
        connector_key = TextField(default="")
        source_config = JSONField()
        file_format = TextField(null=True)
        sync_mode = CharField(max_length=32)
        schedule = JSONField()
        schema_key = TextField(null=True)
        status = CharField(max_length=32)
        last_sync_at = DateTimeField(null=True)
        last_sync_status = TextField(null=True)
        record_count = BigIntegerField()
        row_version = BigIntegerField()
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "data_sources"
            indexes = (
                (("tenant_id", "key"), True),
                (("tenant_id", "created_at", "id"), False),
            )

    class TenantCount(Model):
        tenant_id = CharField(primary_key=True, max_length=255)
        sources = BigIntegerField()

        class Meta:
            database = db
            table_name = "datasources_tenant_counts"

    db.create_tables([DataSource, TenantCount])


def down(migrator, db):
    db.execute_sql("DROP TABLE datasources_tenant_counts")
    db.execute_sql("DROP TABLE data_sources")
