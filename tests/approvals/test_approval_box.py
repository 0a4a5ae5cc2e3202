"""The approval box: the decision on a function call as its step on the run page shows it,
served by approvals (``/approvals/<pk>/box/``), which it polls while the call is open."""

from django.utils import timezone

from approvals.models import Approval
from runs.models import Run
from tests.factories import function_call, make_interaction, make_pending_approval, make_run, make_step, make_approval


def url(approval: Approval) -> str:
    return f"/approvals/{approval.pk}/box/"


def box(client, approval: Approval) -> str:
    response = client.get(url(approval), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode().strip()


def test_a_pending_call_polls_its_box_and_links_to_its_review(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)  # a reviewer
    body = box(client, approval)
    assert body.startswith(f'<aside id="approval-{approval.pk}" aria-label="Approval #{approval.pk}" class="approval-box approval-pending" '
                           f'hx-get="/approvals/{approval.pk}/box/" hx-trigger="every 2s" hx-swap="outerHTML">')
    assert body.endswith("</aside>")  # the box alone
    assert "Refunds above $200 need a reviewer" in body
    assert f'href="/approvals/{approval.pk}/">Review</a>' in body


def test_who_may_not_decide_reads_the_box_with_a_link_to_view_the_call(client, carol):
    approval = make_pending_approval()
    client.force_login(carol)  # an auditor: anyone signed in may read it, not decide it
    body = box(client, approval)
    assert "Refunds above $200 need a reviewer" in body
    assert ">Review</a>" not in body
    assert f'href="/approvals/{approval.pk}/">View approval #{approval.pk}</a>' in body


def test_an_approved_call_polls_until_its_result_is_sent(client, alice, bob):
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(status=Approval.Status.APPROVED, decided_by=bob,
                                                   decided_at=timezone.now())
    client.force_login(alice)
    body = box(client, approval)
    assert 'hx-trigger="every 2s"' in body and "<strong>bob</strong>" in body

    Approval.objects.filter(pk=approval.pk).update(settled_at=timezone.now(), result={"status": "issued"})
    body = box(client, approval)
    assert "hx-get" not in body
    assert "Result sent" in body and "&quot;status&quot;: &quot;issued&quot;" in body
    assert f'href="/approvals/{approval.pk}/">View approval #{approval.pk}</a>' in body


def test_a_rejected_call_shows_who_and_why_and_stops_polling(client, alice, bob):
    approval = make_pending_approval()
    Approval.objects.filter(pk=approval.pk).update(status=Approval.Status.REJECTED, decided_by=bob,
                                                   decided_at=timezone.now(), reason="Too large")
    client.force_login(alice)
    body = box(client, approval)
    assert body.startswith(f'<aside id="approval-{approval.pk}" aria-label="Approval #{approval.pk}" class="approval-box approval-rejected">')
    assert "Reason:</span> Too large" in body


def test_nothing_polls_once_the_run_has_ended(client, alice):
    approval = make_pending_approval()
    Run.objects.filter(pk=approval.run_id).update(status=Run.Status.CANCELLED)
    client.force_login(alice)
    assert "hx-get" not in box(client, approval)


def test_the_run_page_shows_the_same_box(client, alice):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run)
    approval = make_approval(interaction, make_step(interaction, function_call()))
    client.force_login(alice)
    page = client.get(run.get_absolute_url()).content.decode()
    assert box(client, approval) in page


def test_it_answers_404_for_no_such_approval(client, alice):
    client.force_login(alice)
    assert client.get("/approvals/999999/box/").status_code == 404


def test_it_redirects_anonymous_users_to_sign_in(client, db):
    approval = make_pending_approval()
    response = client.get(url(approval))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_it_refuses_post(client, alice):
    approval = make_pending_approval()
    client.force_login(alice)
    assert client.post(url(approval)).status_code == 405


# --- What the box and the run page read of an approval ----------------------------------------------


def test_a_call_is_open_while_pending_or_approved_and_unsent():
    assert Approval(status=Approval.Status.PENDING).is_open
    assert Approval(status=Approval.Status.APPROVED).is_open
    assert not Approval(status=Approval.Status.APPROVED, settled_at=timezone.now()).is_open
    for status in (Approval.Status.AUTO, Approval.Status.REJECTED, Approval.Status.EXPIRED):
        assert not Approval(status=status).is_open


def test_by_step_finds_the_approvals_of_a_runs_calls_in_one_query(db, django_assert_num_queries):
    run = make_run(status=Run.Status.WAITING_FOR_APPROVAL)
    interaction = make_interaction(run)
    calls = [make_step(interaction, function_call(call_id=f"c{i}")) for i in range(3)]
    approvals = [make_approval(interaction, step) for step in calls[:2]]
    # Another run's call with the same call id is not this run's.
    other = make_interaction(make_run())
    make_approval(other, make_step(other, function_call(call_id="c2")))

    with django_assert_num_queries(1):
        found = run.approvals.by_step(calls)
        assert found == {calls[0].pk: approvals[0], calls[1].pk: approvals[1]}
        assert found[calls[0].pk].run == run and found[calls[0].pk].decided_by is None  # loaded
    with django_assert_num_queries(0):
        assert run.approvals.by_step([]) == {}
