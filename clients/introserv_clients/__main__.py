"""``python -m introserv_clients ...`` is ``introserv-ops ...``."""
from introserv_clients.ops import main

main()
