"""Roles (the reviewers and auditors groups): what the pages show and allow, read once a request
by ``approvals.backends.RoleBackend``, and never from a stale list."""

import re

from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.models import in_group, is_auditor, is_reviewer

AUDIT_LINK = re.compile(r'<a class="nav-link[^"]*" href="/audit/"')


def group_queries(queries) -> list[str]:
    return [query["sql"] for query in queries if '"auth_user_groups"' in query["sql"]]


def test_a_page_reads_the_signed_in_users_groups_once(client, alice):
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(reverse("runs:list")).content.decode()
    # The navigation asks for both roles: the Audit link and the reviewer tag.
    assert AUDIT_LINK.search(body)
    assert '<span class="role">reviewer</span>' in body
    assert len(group_queries(queries)) == 1


def test_a_page_that_asks_for_no_role_reads_no_groups(client, alice):
    client.force_login(alice)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("runs:list"), headers={"HX-Request": "true"}).status_code == 200
    assert group_queries(queries) == []


def test_a_role_taken_away_is_gone_on_the_next_request(client, alice):
    client.force_login(alice)
    assert AUDIT_LINK.search(client.get(reverse("home")).content.decode())
    alice.groups.clear()
    body = client.get(reverse("home")).content.decode()
    assert not AUDIT_LINK.search(body)
    assert '<span class="role">reviewer</span>' not in body
    assert client.get(reverse("audit:log")).status_code == 403


def test_a_role_given_counts_on_the_next_request(client, bob):
    client.force_login(bob)
    assert client.get(reverse("audit:log")).status_code == 403
    bob.groups.add(Group.objects.get_or_create(name="auditors")[0])
    assert client.get(reverse("audit:log")).status_code == 200


def test_a_user_object_not_loaded_for_a_request_is_asked_afresh(bob):
    assert not is_reviewer(bob)
    bob.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    assert is_reviewer(bob)
    assert is_auditor(bob)
    assert in_group(bob, "reviewers")
    assert not in_group(bob, "finance-leads")


def role_badges(body: str) -> list[str]:
    return re.findall(r'<span class="role">([^<]*)</span>', body)


def test_the_header_shows_every_role_but_viewer(client, alice, bob, carol):
    for user, expected in ((alice, ["reviewer"]), (bob, ["engineer"]), (carol, ["auditor"])):
        client.force_login(user)
        assert role_badges(client.get(reverse("home")).content.decode()) == expected


def test_the_header_shows_a_users_several_roles_in_the_matrix_order(client, bob):
    for name in ("admins", "auditors", "reviewers"):
        bob.groups.add(Group.objects.get_or_create(name=name)[0])
    client.force_login(bob)
    body = client.get(reverse("home")).content.decode()
    assert role_badges(body) == ["engineer", "reviewer", "auditor", "admin"]


def test_the_header_shows_admin_for_a_superuser_and_no_badge_for_a_plain_viewer(
        client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    assert role_badges(client.get(reverse("home")).content.decode()) == ["admin"]
    viewer = django_user_model.objects.create_user("vera", "vera@example.com", "pw")
    client.force_login(viewer)
    assert role_badges(client.get(reverse("home")).content.decode()) == []
