"""Cancellation (O5, O6): now, with the unused days refunded, or at the end of the paid time."""
from __future__ import annotations

from services.common.idempotency import KeyedRequest
from services.common.outbox import publish_later
from services.common.schemas import load
from services.orders import domain
from services.orders.domain import Status
from services.orders.operations import keyed_request, release
from services.orders.parts import Parts
from services.orders.repository import Loaded, about, iso_date
from services.orders.schemas import CancelSchema


class Cancellation:
    def __init__(self, parts: Parts):
        self.parts = parts
        self.uow, self.repository, self.clock = parts.uow, parts.repository, parts.clock
        self.profile = parts.profile  # the profile service (RPC)

    def cancel_quote(self, account_id: str, order_id, when: str = domain.CANCEL_NOW) -> dict:
        with self.uow.transaction() as session:
            loaded = self.repository.load(session, order_id, account_id)
        return {"refund": domain.quote_cancellation(loaded.state, self.clock.today(), when).to_wire()}

    def cancel(self, account_id: str, order_id, body, idempotency_key: str | None = None) -> dict:
        data = load(CancelSchema, body)
        keyed = keyed_request(account_id, "cancel", idempotency_key, {"order_id": order_id, **data})
        return self.parts.keys.once(keyed, lambda: self._cancel(account_id, order_id, data["when"], data.get("reason"),
                                                                data.get("verification_id"), keyed))

    def _cancel(self, account_id: str, order_id, when: str, reason: str | None,
                verification_id: str | None = None, keyed: KeyedRequest | None = None) -> dict:
        loaded = self.parts.store.claim(order_id, account_id, "cancel")
        try:
            row = loaded.row
            cancellation = domain.cancel(loaded.state, self.clock.today(), when)
            # A customer who confirms sensitive operations by call must bring a proof (issue 8).
            self.profile.require_operation_proof(account_id, "cancel_order", verification_id, row.id)
            refunds = []
            if cancellation.refund:
                refunds = self.parts.billing.refund(row, cancellation.refund, f"order:{row.id}:cancel",
                                                    f"{loaded.state.plan.name}: refund of unused days")
            cancelled = cancellation.order
            with self.uow.transaction() as session:
                current = self.repository.load(session, row.id, lock=True)
                self.repository.save(session, current.row, cancelled)
                self.repository.record_refunds(session, refunds)
                if cancelled.status == Status.CANCELLED:
                    self.repository.free_ip(session, row.id)
                self.repository.event(session, row.id, "cancelled", {
                    "when": when, "reason": reason, "refund": cancellation.refund.to_wire(),
                    "cancel_at": iso_date(cancelled.cancel_at)})
                if cancellation.refund:
                    self.repository.event(session, row.id, "refunded", {"amount": cancellation.refund.to_wire(),
                                                                        "reason": "cancellation"})
                publish_later(session, "order_cancelled", {
                    **about(Loaded(current.row, cancelled)), "when": when,
                    "refund": cancellation.refund.to_wire(), "cancel_at": iso_date(cancelled.cancel_at)})
                release(current.row)
                answer = {"order": self.repository.view(Loaded(current.row, cancelled)),
                          "refund": cancellation.refund.to_wire()}
                if keyed is not None:
                    self.parts.keys.remember(session, keyed, answer)
                return answer
        except BaseException:
            self.parts.store.release_lease(order_id)  # dropped with the cancellation when it is written
            raise
