from services.common.migrations import run_env
from services.profile.models import Base

run_env(Base.metadata)
