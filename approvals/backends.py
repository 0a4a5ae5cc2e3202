"""Authentication: Django's ``ModelBackend``, its signed-in user carrying the names of the groups
(roles) it is in, read at most once a request."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.utils.functional import SimpleLazyObject


class RoleBackend(ModelBackend):
    """``ModelBackend`` whose ``get_user`` (what ``AuthenticationMiddleware`` calls for
    ``request.user``) gives the user a lazy ``group_names`` (a frozenset of ``Group.name``): the
    first role check of the request reads them in one query, the next ones (the navigation asks
    for the reviewer and the auditor role on every page) cost none. Signing in, passwords and
    permissions are ``ModelBackend``'s."""

    def get_user(self, user_id):
        user = super().get_user(user_id)
        if user is not None:
            user.group_names = SimpleLazyObject(lambda: frozenset(user.groups.values_list("name", flat=True)))
        return user
