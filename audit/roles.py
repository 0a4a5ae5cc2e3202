"""Who may do what: the one role matrix every page, command and API checks.

Roles come from groups (``ROLE_GROUPS``); a user holds every role one of their groups gives,
plus *viewer* (every signed-in user), plus *admin* when they are a superuser. ``MATRIX`` names,
per action, the roles that may take it and on which runs: ``ANY`` run, or only the runs the
user ``OWN``s (started, or asked an interaction of: continued or tracked it). The README's
"Roles" table is this matrix.

It lives in ``audit``, the ground floor, because every layer checks it: the layers import one
way (dashboard → approvals → runs → audit), so only the bottom one may be imported by all. The
audit app also records what this matrix refuses (``audit.middleware.AccessDeniedMiddleware``)
and who signs in (``audit.signals``): who may do what sits beside the record of who did.

Deciding a function call passes two checks: this coarse one (the *reviewer* role may decide at
all), then the call's own (``Approval.check_group``: a member of the call's approver group,
not one of its requesters where policy says so). The model has the last word.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied

VIEWER, ENGINEER, REVIEWER, AUDITOR, ADMIN = "viewer", "engineer", "reviewer", "auditor", "admin"
ROLES = (VIEWER, ENGINEER, REVIEWER, AUDITOR, ADMIN)

# The group names are a contract (docs/contracts.md, "Contracts added later"): reviewers,
# auditors and finance-leads keep theirs. Finance leads decide the calls escalated to them, so
# their group gives the reviewer role; which calls each group decides is the call's approver group.
ROLE_GROUPS: dict[str, tuple[str, ...]] = {
    ENGINEER: ("engineers",),
    REVIEWER: ("reviewers", "finance-leads"),
    AUDITOR: ("auditors",),
    ADMIN: ("admins",),
}

ANY, OWN = "any", "own"

# action -> {role: scope}. Actions: read (runs, steps, artifacts, the approval queue: every
# signed-in user, so ``login_required`` is its check), start,
# cancel, continue, rerun (a new run of one's own with another run's request), track (record an
# interaction started elsewhere), decide (approve, reject, claim function calls), read_audit
# (the audit log and its verification), export (audit downloads, export jobs, evidence
# bundles), administer (release others' claims; admin actions on runs).
MATRIX: dict[str, dict[str, str]] = {
    "read": {VIEWER: ANY, ENGINEER: ANY, REVIEWER: ANY, AUDITOR: ANY, ADMIN: ANY},
    "start": {ENGINEER: ANY, ADMIN: ANY},
    "cancel": {ENGINEER: OWN, ADMIN: ANY},
    "continue": {ENGINEER: OWN, ADMIN: ANY},
    "rerun": {ENGINEER: ANY, ADMIN: ANY},
    "track": {ENGINEER: ANY, ADMIN: ANY},
    "decide": {REVIEWER: ANY},
    "read_audit": {REVIEWER: ANY, AUDITOR: ANY, ADMIN: ANY},
    "export": {REVIEWER: ANY, AUDITOR: ANY, ADMIN: ANY},
    "administer": {ADMIN: ANY},
}
ACTIONS = tuple(MATRIX)

# An API token (``dashboard.models.ApiToken``) acts with its user's roles, limited to the actions
# of its scopes: the request's user then carries ``api_scopes`` (a set of these names), and every
# check here (so every model method's) applies it. No scope gives ``administer``.
SCOPES = ("read", "run", "decide", "audit")
SCOPE_ACTIONS: dict[str, tuple[str, ...]] = {
    "read": ("read",),
    "run": ("start", "cancel", "continue", "rerun", "track"),
    "decide": ("decide",),
    "audit": ("read_audit", "export"),
}


def scope_for(action: str) -> str | None:
    """The token scope that gives ``action``, or ``None`` (no token may take it)."""
    return next((scope for scope, actions in SCOPE_ACTIONS.items() if action in actions), None)


def _scoped_out(user, action: str) -> bool:
    """Whether ``user`` acts through an API token whose scopes do not give ``action``."""
    scopes = getattr(user, "api_scopes", None)
    return scopes is not None and scope_for(action) not in scopes

# What a refusal says, by action: "bob may not cancel runs: …".
_WHAT = {
    "read": "read runs",
    "start": "start runs",
    "cancel": "cancel runs",
    "continue": "continue runs",
    "rerun": "repeat runs",
    "track": "track interactions",
    "decide": "decide function calls",
    "read_audit": "read the audit log",
    "export": "export the audit log",
    "administer": "administer Handoff",
}


def group_names(user) -> frozenset[str]:
    """The names of ``user``'s groups. At most one query."""
    # ``RoleBackend`` gives a request's user its group names, read once for all of the request's
    # checks; any other user object is asked afresh, so it never answers from a stale list.
    names = getattr(user, "group_names", None)
    if names is not None:
        return frozenset(names)
    return frozenset(user.groups.values_list("name", flat=True))


def roles_of(user) -> frozenset[str]:
    """The roles of ``user`` (a set of ``ROLES`` names): empty for an anonymous or inactive
    user; else *viewer*, the roles its groups give, and *admin* for a superuser. At most one
    query (none for a request's user once its groups are read)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    groups = group_names(user)
    roles = {VIEWER, *(role for role, names in ROLE_GROUPS.items() if groups.intersection(names))}
    if user.is_superuser:
        roles.add(ADMIN)
    return frozenset(roles)


def owns(user, run) -> bool:
    """Whether ``user`` started ``run`` or asked for one of its interactions (continued or
    tracked it). One query when they did not start it."""
    if run.created_by_id is not None and run.created_by_id == user.pk:
        return True
    return run.interactions.filter(requested_by=user.pk).exists()


def _scopes(roles: frozenset[str], action: str) -> set[str]:
    return {scope for role, scope in MATRIX[action].items() if role in roles}


def may(user, action: str, run=None) -> bool:
    """Whether ``user`` may take ``action`` (one of ``ACTIONS``; ``KeyError`` otherwise), on
    ``run`` when given. For an action some roles take on their own runs only (cancel, continue),
    ``run=None`` asks whether the user may take it on some run (to show a control at all)."""
    if _scoped_out(user, action):
        return False
    scopes = _scopes(roles_of(user), action)
    if ANY in scopes:
        return True
    if not scopes:
        return False
    return run is None or owns(user, run)


def allowed(user, run=None) -> dict[str, bool]:
    """``{action: may(user, action, run)}`` for every action, what the templates show; at most
    two queries (the user's groups, whether they own ``run``)."""
    roles = roles_of(user)
    owned = None
    result = {}
    for action in ACTIONS:
        if _scoped_out(user, action):
            result[action] = False
            continue
        scopes = _scopes(roles, action)
        if ANY in scopes or not scopes or run is None:
            result[action] = bool(scopes)
            continue
        if owned is None:
            owned = owns(user, run)
        result[action] = owned
    return result


def _described(role: str) -> str:
    if role == ADMIN:
        return "the admin role (a superuser or the admins group)"
    return f"the {role} role (the {' or '.join(ROLE_GROUPS[role])} group)"


def require(user, action: str, run=None) -> None:
    """Raise ``PermissionDenied`` (a 403 on a page, an error on a command) with a message for
    people unless ``may(user, action, run)``: who may not do what, and which role (and groups)
    it takes."""
    if may(user, action, run):
        return
    who = user.get_username() if user is not None and user.is_authenticated else "Someone signed out"
    if user is not None and _scoped_out(user, action):
        scope = scope_for(action)
        raise PermissionDenied(
            f"{who}'s API token may not {_WHAT[action]}: "
            + (f"that takes the {scope} scope." if scope else "no token may, only the pages.")
        )
    takers = [role for role in ROLES if role in MATRIX[action]]
    own = [role for role in takers if MATRIX[action][role] == OWN and role in roles_of(user)]
    if run is not None and own:
        raise PermissionDenied(
            f"{who} may not {_WHAT[action].removesuffix(' runs')} run {run.pk}: "
            f"{' and '.join(own)}s may only {_WHAT[action]} they started or continued."
        )
    raise PermissionDenied(f"{who} may not {_WHAT[action]}: that takes {' or '.join(map(_described, takers))}.")


def acting_as(username: str, action: str):
    """The user named ``username``, who may take ``action`` (``require``): whom a command run
    with ``--as USERNAME`` acts as. Raises ``PermissionDenied`` with a message for people when no
    user has that name or they may not."""
    try:
        user = get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise PermissionDenied(f"No user named {username!r}.") from None
    require(user, action)
    return user
