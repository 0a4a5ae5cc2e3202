from approvals.models import Approval, is_reviewer


def navigation(request):
    """The pending-approvals badge in the navigation bar (one COUNT, signed-in users only). The
    queue's polled partial renders it again out of band, so the badge follows the queue live."""
    if not request.user.is_authenticated:
        return {}
    return {
        "pending_approvals_count": Approval.objects.pending().count(),
        "user_is_reviewer": is_reviewer(request.user),
    }
