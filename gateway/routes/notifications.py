"""Routes of the notifications area (see gateway/http.py for how a route is declared)."""
from __future__ import annotations


class NotificationRoutes:
    pass
