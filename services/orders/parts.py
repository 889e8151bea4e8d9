"""What every command family of the orders service works with, built once per call of the service."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.idempotency import IdempotencyKeys
from services.orders.billing import Billing
from services.orders.catalogue import Catalogue
from services.orders.operations import OperationStore, PendingOperations
from services.orders.repository import OrderRepository


@dataclass
class Parts:
    uow: object
    catalogue: Catalogue
    clock: object
    profile: object
    keys: IdempotencyKeys
    repository: OrderRepository
    billing: Billing
    store: OperationStore
    pending: PendingOperations
