"""db-setup: make a fresh (or upgraded) RDS instance ready for the platform. Idempotent; run it as the
one-off ECS task after every deploy that changes the image (README: "Deploy", step 3).

As the master user (ADMIN_DATABASE_URL, from the master secret):
1. create the `canonical` and `dagster` databases, and the `dagster` role that owns the latter;
2. apply the schema migrations to `canonical` (resources/schema/migrations: they create the NOLOGIN roles
   `pipeline_writer` and `pipeline_reader` with their grants);
3. let each application role log in with the password from its own secret, and prepare its
   `<role>_clone` twin for Secrets Manager's multi-user rotation: a login role that is a member of
   the original, acts as it (`SET role`) and carries the same role settings (read-only default,
   timeouts), so either credential behaves the same;
4. on RDS, `<role>_iam`, the same kind of twin for the API, which logs in through RDS Proxy with IAM
   auth tokens (rds_iam).

Passwords never reach the log.
"""

from __future__ import annotations

import os
import sys

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from resources.schema.migrate import apply_migrations

CANONICAL_DB = "canonical"
DAGSTER_DB = "dagster"
DAGSTER_ROLE = "dagster"


def _password(url_var: str) -> tuple[str, str]:
    params = conninfo_to_dict(os.environ[url_var])
    return params["user"], params["password"]


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def mirror_role(conn: psycopg.Connection, base: str, twin: str) -> None:
    """`twin` is a member of `base`, carries its settings and acts as it (what it creates belongs to base)."""
    if not _role_exists(conn, twin):
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(twin)))
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(base), sql.Identifier(twin)))
    settings = conn.execute("SELECT unnest(rolconfig) FROM pg_roles WHERE rolname = %s", (base,)).fetchall()
    for (setting,) in settings:
        name, _, value = setting.partition("=")
        conn.execute(
            sql.SQL("ALTER ROLE {} SET {} = {}").format(
                sql.Identifier(twin), sql.Identifier(name), sql.Literal(value)
            )
        )
    conn.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(sql.Identifier(twin), sql.Literal(base)))


def ensure_iam_login(conn: psycopg.Connection, base: str) -> None:
    """`<base>_iam`, the role the API Lambda logs in as through RDS Proxy with IAM auth tokens (no password
    on that path): a twin of `base` granted RDS's rds_iam. A role of its own because rds_iam turns password
    login off for its holder, and the Dagster tasks log in as `base` (or its clone) with passwords.
    Outside RDS there is no rds_iam role and nothing to do."""
    if not _role_exists(conn, "rds_iam"):
        return
    twin = f"{base}_iam"
    mirror_role(conn, base, twin)
    conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN").format(sql.Identifier(twin)))
    conn.execute(sql.SQL("GRANT rds_iam TO {}").format(sql.Identifier(twin)))
    print(f"role {twin} logs in with IAM (the API, through the proxy)")


def ensure_login(conn: psycopg.Connection, secret_user: str, password: str) -> None:
    """The role the secret names logs in with its password; `<role>_clone` mirrors `<role>`.

    After a rotation the secret may name the clone: whichever it names gets the password, the other
    keeps the one the rotation gave it (none yet before the first rotation: it cannot log in).
    """
    base = secret_user.removesuffix("_clone")
    clone = f"{base}_clone"
    for role in (base, clone):
        if not _role_exists(conn, role):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(secret_user), sql.Literal(password)
        )
    )
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH LOGIN").format(sql.Identifier(clone if secret_user == base else base))
    )
    mirror_role(conn, base, clone)


def ensure_database(conn: psycopg.Connection, name: str, owner: str | None = None) -> None:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        print(f"created database {name}")
    if owner:
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner))
        )


def main() -> int:
    admin_url = os.environ["ADMIN_DATABASE_URL"]
    master_user = conninfo_to_dict(admin_url)["user"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        ensure_database(conn, CANONICAL_DB)
        dagster_user, dagster_password = _password("DAGSTER_DATABASE_URL")
        ensure_login(conn, dagster_user, dagster_password)
        # PostgreSQL 16+: the master may hand a database to a role only if it can act as that role.
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(DAGSTER_ROLE), sql.Identifier(master_user))
        )
        ensure_database(conn, DAGSTER_DB, owner=DAGSTER_ROLE)

    applied = apply_migrations(make_conninfo(admin_url, dbname=CANONICAL_DB))
    print(f"migrations applied: {', '.join(applied) or 'none (schema up to date)'}")

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for url_var in ("DATABASE_URL", "READONLY_DATABASE_URL"):
            user, password = _password(url_var)
            ensure_login(conn, user, password)
            print(f"role {user.removesuffix('_clone')} (and its rotation twin) can log in")
            ensure_iam_login(conn, user.removesuffix("_clone"))
    print("db-setup done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
