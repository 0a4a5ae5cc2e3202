"""Bad input gets a 400 naming the field, never a 500, and nothing is stored half: dates at the
edge of the calendar in the list filters, and JSON that Python reads but PostgreSQL's jsonb
cannot store (or that is not a finite number) typed by a reviewer."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.forms import model_to_dict
from django.urls import reverse

from approvals.models import Approval
from audit.models import AuditEvent
from tests.factories import make_pending_approval, make_run

# What a reviewer might type, with the words the page answers.
HOSTILE_JSON = {
    "NaN": ("NaN", "NaN is not a JSON number"),
    "Infinity": ("Infinity", "Infinity is not a JSON number"),
    "-Infinity": ("-Infinity", "-Infinity is not a JSON number"),
    "1e400": ("1e400", "1e400 is too large a number"),
    "null character": ('"Damaged\\u0000"', "Text cannot hold the null character"),
    "lone surrogate": ('"Damaged\\ud800"', "lone surrogate"),
    "100,000 deep": ("[" * 100_000 + "]" * 100_000, "nested too deep"),
    "5,000 digits": ("1" * 5_000, "too many digits"),
}


def _edit_arguments(value: str) -> str:
    # ``amount`` and ``reason`` carry the hostile value where the tool's schema allows any value
    # of that type, so only the JSON itself can refuse it.
    if value.startswith('"'):
        return '{"order_id": "A-1003", "amount": 100, "reason": %s}' % value
    if value.startswith("["):
        return '{"order_id": "A-1003", "amount": 100, "reason": "Damaged", "extra": %s}' % value
    return '{"order_id": "A-1003", "amount": %s, "reason": "Damaged"}' % value


def _snapshot(approval: Approval) -> dict:
    approval.refresh_from_db()
    return {**model_to_dict(approval), "decisions": approval.decisions.count(),
            "events": AuditEvent.objects.filter(object_type="approval", object_id=str(approval.pk)).count()}


@pytest.mark.parametrize("value, message", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_edited_arguments_that_jsonb_cannot_hold_are_refused_naming_the_field(client, alice, value, message):
    approval = make_pending_approval()
    before = _snapshot(approval)
    client.force_login(alice)

    response = client.post(reverse("approvals:approve", args=[approval.pk]),
                           {"shown_hash": approval.arguments_hash, "arguments": _edit_arguments(value)})

    assert response.status_code == 400
    errors = response.context["edit_form"].errors
    assert list(errors) == ["arguments"]
    assert message in errors["arguments"][0]
    assert message in response.content.decode().replace("&#x27;", "'")
    assert _snapshot(approval) == before


@pytest.mark.parametrize("value, message", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_a_typed_result_that_jsonb_cannot_hold_is_refused_naming_the_field(client, alice, value, message):
    approval = make_pending_approval(name="send_customer_email", requires_manual_result=True)
    before = _snapshot(approval)
    client.force_login(alice)

    response = client.post(reverse("approvals:approve", args=[approval.pk]),
                           {"shown_hash": approval.arguments_hash, "result": '{"sent": %s}' % value})

    assert response.status_code == 400
    errors = response.context["respond_form"].errors
    assert list(errors) == ["result"]
    assert message in errors["result"][0]
    assert _snapshot(approval) == before


@pytest.mark.parametrize("value, message", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_the_decide_command_refuses_the_same_result_with_the_same_words(alice, value, message):
    approval = make_pending_approval(name="send_customer_email", requires_manual_result=True)
    before = _snapshot(approval)

    with pytest.raises(CommandError, match="--result") as refused:
        call_command("decide", str(approval.pk), "--approve", "--result", '{"sent": %s}' % value, "--as", "alice")

    assert message in str(refused.value)
    assert _snapshot(approval) == before


def test_strict_json_still_reads_what_jsonb_stores():
    from approvals.forms import parse_json

    text = '{"a": [1, -2.5e10, 1e308, "naïve \\u00e9 \\ud83d\\ude00", null, true], "b": {"c": {}}}'
    assert parse_json(text) == {"a": [1, -2.5e10, 1e308, "naïve é 😀", None, True], "b": {"c": {}}}


def test_json_nested_as_deep_as_the_limit_is_read():
    from approvals.forms import parse_json

    assert parse_json("[" * 100 + "]" * 100) is not None


# --- Dates at the edge of the calendar -------------------------------------------------------


def test_the_run_list_refuses_an_end_date_with_no_day_after_it(client, alice):
    make_run(input="listed anyway")
    client.force_login(alice)

    response = client.get(reverse("runs:list"), {"to": "9999-12-31"})

    assert response.status_code == 400
    assert "to" in response.context["form"].errors
    assert "To: Give a date before 9999-12-31." in response.content.decode()


def test_an_htmx_refresh_of_the_run_list_answers_400_with_the_error_in_the_table(client, alice):
    client.force_login(alice)

    response = client.get(reverse("runs:list"), {"to": "9999-12-31"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 400
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="run-table"')
    assert "To: Give a date before 9999-12-31." in body


def test_the_audit_page_refuses_an_until_date_with_no_day_after_it(client, carol):
    client.force_login(carol)

    response = client.get(reverse("audit:log"), {"until": "9999-12-31"})

    assert response.status_code == 400
    assert response.context["form"].errors["until"] == ["Give a date before 9999-12-31."]
    assert "Give a date before 9999-12-31." in response.content.decode()


def test_the_audit_download_refuses_an_until_date_naming_the_field(client, carol):
    client.force_login(carol)

    response = client.get(reverse("audit:download"), {"until": "9999-12-31", "format": "jsonl"})

    assert response.status_code == 400
    assert response.content.decode() == "Invalid filters. Until (inclusive): Give a date before 9999-12-31."
    assert not AuditEvent.objects.filter(verb="audit.exported").exists()


def test_a_background_export_refuses_an_until_date_naming_the_field_and_starts_no_job(client, carol):
    from audit.models import AuditExport

    client.force_login(carol)

    response = client.post(reverse("audit:export_start"), {"until": "9999-12-31", "format": "csv"})

    assert response.status_code == 400
    assert response.content.decode() == "Invalid filters. Until (inclusive): Give a date before 9999-12-31."
    assert not AuditExport.objects.exists()
