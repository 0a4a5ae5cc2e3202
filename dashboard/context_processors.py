from django.utils.functional import SimpleLazyObject

from approvals.models import Approval
from audit import roles


def navigation(request):
    """The navigation bar's pending-approvals badge (one COUNT), the roles it shows beside the
    user's name (``user_roles``: every role but viewer, in ``audit.roles.ROLES`` order) and that
    decide which links it shows, and ``user_may`` (``audit.roles.allowed``: ``{action: bool}``,
    on no run in particular) for the buttons of every page, for signed-in users. The queue's polled partial
    renders the badge again out of band, so it follows the queue live.

    Lazy: a partial that does not show the navigation (an htmx poll) costs no query."""
    if not request.user.is_authenticated:
        return {}
    return {
        "pending_approvals_count": SimpleLazyObject(lambda: Approval.objects.pending().count()),
        # Viewer goes without saying: every signed-in user holds it.
        "user_roles": SimpleLazyObject(lambda: [
            role for role in roles.ROLES
            if role != roles.VIEWER and role in roles.roles_of(request.user)
        ]),
        "user_is_auditor": SimpleLazyObject(lambda: roles.may(request.user, "read_audit")),
        "user_may": SimpleLazyObject(lambda: roles.allowed(request.user)),
    }
