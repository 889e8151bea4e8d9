"""What the notifier sent the customer (issue 6); the settings themselves are profile's routes."""
from __future__ import annotations

from gateway.http import route
from services.common.pagination import PageQuerySchema
from services.notifier.schemas import SentMessageSchema

TAGS = ("notifications",)
# What a customer sees of a delivery; the relay's error text and the attempts are for support staff.
CUSTOMER_FIELDS = tuple(SentMessageSchema().fields)


class NotificationRoutes:
    @route("GET", "/api/v1/notifications/sent", query=PageQuerySchema, response=SentMessageSchema, many=True,
           summary="E-mail sent to the customer, newest first", tags=TAGS, errors=(400,),
           description="Every message the panel wrote to the customer: when (`at`), which `kind`, the address it "
                       "went `to` (the invoices, support or complaints address, or the main e-mail), its "
                       "`subject` and delivery `state`: `pending` (waiting or being retried), `sent`, `failed` "
                       "(refused for good by the mail relay) or `dead` (every retry failed).")
    def list_sent_notifications(self, call):
        page = self.notifier.list_sent(call.account_id, call.query["limit"], call.query["cursor"])
        return 200, {"items": [{name: item.get(name) for name in CUSTOMER_FIELDS} for item in page["items"]],
                     "next_cursor": page["next_cursor"]}
