from services.common.migrations import run_env
from services.ledger.models import Base

run_env(Base.metadata)
