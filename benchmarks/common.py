"""What the benchmark scripts share: their PostgreSQL databases, and Django's fixed cost of a
signed-in request to read their figures against. Imported by name (``import common``): a script
run as ``python benchmarks/x.py`` has this folder on its path."""


def ensure_database(url: str) -> None:
    """Create the database ``url`` names (``postgres://…/name``) unless it exists."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    """Drop the database ``url`` names, closing its connections first."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def reference_url() -> str:
    """Route ``/_bench/signed-in/`` (in this process only) to a view that needs a signed-in user
    and returns an empty page: Django's own cost of a request (middleware, session, user) with
    nothing of Handoff's in it, to read a page's figures against. Returns the path."""
    from django.contrib.auth.decorators import login_required
    from django.http import HttpResponse
    from django.urls import clear_url_caches, path

    from dashboard import urls

    @login_required
    def signed_in(request):
        return HttpResponse(b"")

    urls.urlpatterns.append(path("_bench/signed-in/", signed_in))
    clear_url_caches()
    return "/_bench/signed-in/"
