"""One export path, always recorded: every address that hands out the audit log, and every export
link the pages show, writes an ``audit.exported`` event naming who took it."""

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import make_pending_approval

DOWNLOAD_LINK = re.compile(r'href="([^"]+)"[^>]*\bdownload\b|href="(/audit/download/[^"]*)"')


@pytest.fixture
def decided(alice):
    approval = make_pending_approval()
    approval.reject(by=alice, shown_hash=approval.arguments_hash, reason="Not this one")
    return approval


def exports_by(username: str) -> int:
    return AuditEvent.objects.filter(verb="audit.exported", actor=username).count()


def fetch(client, url: str):
    response = client.get(url)
    assert response.status_code == 200, url
    b"".join(response.streaming_content)
    return response


@pytest.mark.parametrize("url", [
    "/audit/download/", "/audit/download/?format=jsonl", "/audit/download/?verb=approval",
    "/approvals/audit.csv", "/approvals/audit.csv?format=jsonl",
])
def test_every_export_address_records_the_export(client, carol, decided, url):
    client.force_login(carol)

    response = fetch(client, url)

    assert response["Content-Disposition"].startswith('attachment; filename="handoff-audit.')
    assert exports_by("carol") == 1


def test_the_old_address_serves_the_same_export_as_the_audit_page(client, carol, decided):
    client.force_login(carol)

    old = b"".join(client.get("/approvals/audit.csv").streaming_content)
    new = b"".join(client.get(reverse("audit:download")).streaming_content)

    # The second download holds the first one's audit.exported event: compare up to it.
    assert new.startswith(old.rstrip(b"\r\n"))


def test_an_evidence_bundle_download_is_recorded(client, carol, decided):
    client.force_login(carol)

    fetch(client, reverse("evidence_bundle", args=[decided.run_id]))

    assert exports_by("carol") == 1


@pytest.mark.parametrize("page", ["home", "approvals:queue", "audit:log"])
def test_every_export_link_on_the_pages_leads_to_a_recorded_export(client, carol, decided, page):
    client.force_login(carol)
    body = client.get(reverse(page)).content.decode()
    links = {(a or b).replace("&amp;", "&") for a, b in DOWNLOAD_LINK.findall(body)}
    assert links

    for n, link in enumerate(sorted(links), start=1):
        fetch(client, link)
        assert exports_by("carol") == n, link
