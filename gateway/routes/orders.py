"""Plans and orders (docs/requirements.md O1 to O7); see gateway/http.py for how a route is declared."""
from __future__ import annotations

from gateway.http import route
from gateway.language import lines_in
from services.common.pagination import PageQuerySchema
from services.orders.schemas import (CancelQuoteQuerySchema, CancelQuoteSchema, CancellationResultSchema,
                                     CancelSchema, ChangePlanSchema, ChangeQuoteQuerySchema, ChangeQuoteSchema,
                                     NewOrderSchema, OrderChangeSchema, OrderDetailSchema, OrderQuoteQuerySchema,
                                     OrderQuoteSchema, OrderSchema,
                                     PlanChangeResultSchema, PlanSchema, PlansQuerySchema, RenewQuoteQuerySchema,
                                     RenewQuoteSchema, RenewSchema)

TAGS = ("orders",)


class OrdersRoutes:
    @route("GET", "/api/v1/plans", query=PlansQuerySchema, response=PlanSchema, many=True, tags=TAGS, auth=False,
           summary="The plans on sale (public: no session needed)", errors=(400,),
           description="?kind=dedicated or vps. Prices are for the whole period, VAT included.")
    def list_plans(self, call):
        return 200, self.orders.list_plans(call.query["kind"])

    @route("GET", "/api/v1/orders", query=PageQuerySchema, response=OrderSchema, many=True, tags=TAGS,
           summary="Active orders: every status but cancelled and closed, newest first", errors=(400,))
    def list_active_orders(self, call):
        return 200, self.orders.list_active(call.account_id, call.query["limit"], call.query["cursor"])

    @route("GET", "/api/v1/orders/history", query=PageQuerySchema, response=OrderSchema, many=True,
           tags=TAGS, summary="Every order of the customer, newest first", errors=(400,))
    def list_order_history(self, call):
        return 200, self.orders.list_history(call.account_id, call.query["limit"], call.query["cursor"])

    @route("GET", "/api/v1/orders/<order_id>", response=OrderDetailSchema, tags=TAGS,
           summary="One order with its events, oldest first", errors=(404,))
    def get_order(self, call, order_id):
        return 200, self.orders.get_customer_order(call.account_id, order_id)

    @route("GET", "/api/v1/orders/quote", query=OrderQuoteQuerySchema, response=OrderQuoteSchema, tags=TAGS,
           summary="What placing an order would charge now", errors=(400, 422),
           description="This customer's price for the plan and period (less than the list price only under the "
                       "EU reverse charge), as the order's payment charges it when the balance pays it at once; "
                       "`paid_until` as if paid today. 400 for a period the plan does not offer; 422 "
                       "`unknown_plan`. The lines' descriptions are in the language of Accept-Language (pl, en), "
                       "else the customer's.")
    def quote_order(self, call):
        quote = self.orders.order_quote(call.account_id, call.query["plan_id"], call.query["period_months"])
        return 200, lines_in(quote, self.language_for(call))

    @route("POST", "/api/v1/orders", body=NewOrderSchema, response=OrderSchema, status=201, idempotent=True,
           tags=TAGS, summary="Order a plan", errors=(404, 422),
           description="`active` when the balance paid it, `pending_payment` when it could not (paid "
                       "automatically, oldest first, once the balance allows; cancelled after 7 days unpaid). "
                       "422 `payments_blocked`, `postal_address_required`, `out_of_stock`, `unknown_plan`, "
                       "`idempotency_conflict`.")
    def place_order(self, call):
        return 201, self.order_writes.place_order(call.account_id, call.body, call.idempotency_key)

    @route("PATCH", "/api/v1/orders/<order_id>", body=OrderChangeSchema, response=OrderSchema, tags=TAGS,
           summary="Switch an order's auto-renew on or off", errors=(400, 404, 409),
           description="`auto_renew`: renewed from the balance before paid-until by the lifecycle timer. "
                       "409 `conflict` for a cancelled or closed order.")
    def update_order(self, call, order_id):
        return 200, self.orders.update_order(call.account_id, order_id, call.body)

    @route("GET", "/api/v1/orders/<order_id>/renew/quote", query=RenewQuoteQuerySchema, response=RenewQuoteSchema,
           tags=TAGS, summary="What a renewal would charge now, and the paid-until after it",
           errors=(400, 404, 409, 422),
           description="The exact amount `POST .../renew` with this period takes from the balance now (the "
                       "order's current plan, this customer's price). 409 `not_renewable`; 400 for a period "
                       "the plan does not offer. The lines' descriptions are in the language of Accept-Language "
                       "(pl, en), else the customer's.")
    def quote_renewal(self, call, order_id):
        quote = self.orders.renew_quote(call.account_id, order_id, call.query["period_months"])
        return 200, lines_in(quote, self.language_for(call))

    @route("POST", "/api/v1/orders/<order_id>/renew", body=RenewSchema, response=OrderSchema, idempotent=True,
           tags=TAGS, summary="Renew an order from the balance", errors=(404, 409, 422),
           description="Extends paid-until by the period from the later of paid-until and today. "
                       "422 `insufficient_funds` (nothing changes); 409 `not_renewable`.")
    def renew_order(self, call, order_id):
        return 200, self.order_writes.renew(call.account_id, order_id, call.body, call.idempotency_key)

    @route("GET", "/api/v1/orders/<order_id>/change-plan/quote", query=ChangeQuoteQuerySchema,
           response=ChangeQuoteSchema, tags=TAGS, summary="What a plan change would charge or credit now",
           errors=(400, 404, 409, 422),
           description="Prorated over the unused whole days after today, per paid period, each line rounded "
                       "to the cent in the customer's favour. 409 `not_changeable`. The lines' descriptions are "
                       "in the language of Accept-Language (pl, en), else the customer's.")
    def quote_plan_change(self, call, order_id):
        quote = self.orders.change_plan_quote(call.account_id, order_id, call.query["plan_id"])
        return 200, lines_in(quote, self.language_for(call))

    @route("POST", "/api/v1/orders/<order_id>/change-plan", body=ChangePlanSchema, response=PlanChangeResultSchema,
           idempotent=True, tags=TAGS, summary="Change an active order's plan", errors=(404, 409, 422),
           description="Charges or credits exactly what the quote says; paid-until does not move. "
                       "409 `not_changeable`; 422 `insufficient_funds`.")
    def change_plan(self, call, order_id):
        return 200, self.order_writes.change_plan(call.account_id, order_id, call.body, call.idempotency_key)

    @route("GET", "/api/v1/orders/<order_id>/cancel/quote", query=CancelQuoteQuerySchema,
           response=CancelQuoteSchema, tags=TAGS, summary="The refund a cancellation would give now",
           errors=(400, 404, 409))
    def quote_cancellation(self, call, order_id):
        return 200, self.orders.cancel_quote(call.account_id, order_id, call.query["when"])

    @route("POST", "/api/v1/orders/<order_id>/cancel", body=CancelSchema, response=CancellationResultSchema,
           idempotent=True, tags=TAGS, summary="Cancel an order", errors=(404, 409, 422),
           description="`now`: cancelled, the unused whole days refunded to the balance, the IP released. "
                       "`end_of_period`: stays active with cancel_at = paid_until, refund 0.00, closed then. "
                       "409 `not_cancellable` (a new key on an order already cancelled).")
    def cancel_order(self, call, order_id):
        return 200, self.order_writes.cancel(call.account_id, order_id, call.body, call.idempotency_key)
