from services.common.migrations import run_env
from services.verification.models import Base

run_env(Base.metadata)
