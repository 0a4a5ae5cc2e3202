"""``python manage.py create_app_db_role --role NAME [--password PASSWORD] [--execute]``: the
SQL that sets up a least-privilege PostgreSQL role for the application (printed; run with
``--execute``, connected as the tables' owner).

The role may SELECT, INSERT, UPDATE and DELETE the tables of Handoff's models, but only SELECT
and INSERT the audit tables (events, chain links, checkpoints). It is no superuser and owns no
table, so it cannot ALTER, TRUNCATE or DISABLE TRIGGER on them, nor set
``session_replication_role`` to skip the append-only triggers. Migrations keep running as the
owner; run this again after each ``migrate`` (idempotent), so new tables get their grants and an
audit table added later loses UPDATE and DELETE.
"""

import re

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from audit.models import AuditCheckpoint, AuditEvent, ChainLink

AUDIT_MODELS = (AuditEvent, ChainLink, AuditCheckpoint)
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def role_sql(role: str, *, password: str | None = None) -> list[str]:
    """The statements (in order) that create or update ``role``: a lowercase PostgreSQL
    identifier. Reads the database's name, schema and Handoff's tables from ``connection``.
    Raises ``CommandError`` for another database, a bad role name, or a role that owns the
    audit tables (an owner can always disable their triggers)."""
    if connection.vendor != "postgresql":
        raise CommandError(f"The database is {connection.vendor}: a database role is a PostgreSQL setting.")
    if not ROLE_NAME.fullmatch(role):
        raise CommandError(f"--role {role!r}: use a lowercase name of letters, digits and _ (up to 63).")
    quote = connection.ops.quote_name
    audit_tables = [model._meta.db_table for model in AUDIT_MODELS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = cursor.fetchone()
        cursor.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
                       [schema, audit_tables])
        owners = {owner for (owner,) in cursor.fetchall()}
        literal = None
        if password is not None:
            cursor.execute("SELECT quote_literal(%s)", [password])
            (literal,) = cursor.fetchone()
    if role in owners:
        raise CommandError(f"{role} owns the audit tables, and an owner can disable their triggers: choose another "
                           f"role for the application and keep {role} for migrations.")
    tables = sorted(connection.introspection.django_table_names(only_existing=True, include_views=False))
    if not tables:
        raise CommandError("No table of Handoff's exists yet: run migrate (as the owner) first.")
    name, listed, audit = quote(role), ", ".join(quote(t) for t in tables), ", ".join(quote(t) for t in audit_tables)
    return [
        # A role name matching ROLE_NAME needs no escaping inside the literal.
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {name}; END IF; END $$",
        f"ALTER ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        + (f" PASSWORD {literal}" if literal is not None else ""),
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {name}",
        f"GRANT USAGE ON SCHEMA {quote(schema)} TO {name}",
        f"REVOKE CREATE ON SCHEMA {quote(schema)} FROM {name}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {listed} TO {name}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON TABLE {audit} FROM {name}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quote(schema)} TO {name}",
        # Tables and sequences the owner creates later (new migrations) are usable at once.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quote(schema)} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {name}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quote(schema)} GRANT USAGE, SELECT ON SEQUENCES TO {name}",
    ]


class Command(BaseCommand):
    help = "Print (or run, with --execute) the SQL of a least-privilege PostgreSQL role for the application."

    def add_arguments(self, parser):
        parser.add_argument("--role", default="handoff_app", help="Role name (default handoff_app).")
        parser.add_argument("--password", help="Password to set for the role (printed in the SQL: prefer --execute).")
        parser.add_argument("--execute", action="store_true",
                            help="Run the SQL on the configured database, as its owner, instead of printing it.")

    def handle(self, *args, **options):
        statements = role_sql(options["role"], password=options["password"])
        if not options["execute"]:
            self.stdout.write("".join(f"{statement};\n" for statement in statements))
            return
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(f"Role {options['role']} is set up: it may not update, delete or truncate the audit "
                          f"tables, nor alter them or disable their triggers.")
