"""``nameko`` as the suite's processes run it: Nameko's own command line, without two imports it never uses.

``python -m deploy.process run --config <config.yml> <module:Class>`` takes ``nameko``'s arguments
(``deploy.serve`` and the local runner build them). What it leaves out, each resident in every
process that imported it (README Performance, "Memory"):

- ``pkg_resources`` (2.4 MB in the development environment, and a deprecation warning at each
  start): Nameko's command line imports it for ``nameko --version`` alone, and setuptools' module
  reads every installed distribution when it is imported. Nameko is given the one function it calls,
  answered by ``importlib.metadata``.
- ``rich`` (3.8 MB with Pygments): structlog imports it whenever it is installed, for its console
  renderer's tracebacks. The development environment has it (the operators' CLI, Schemathesis), the
  image does not, and the services format their tracebacks without it either way
  (services/common/logging.py).

And what it adds: the garbage collector told that what a process builds before it serves is there
for good (README Performance, "The garbage collector"). Once the service runner has started, every
object then alive (modules, classes, SQLAlchemy's mappers, marshmallow's schemas, the open
connections) is moved out of the collector's generations (``gc.freeze``): the older generations'
collections no longer walk the 85,000 to 115,000 of them, and a full collection, which held the
gateway 50 to 70 ms with every request in flight waiting, takes a few.
"""
from __future__ import annotations

import gc
import sys
from importlib.metadata import version
from types import ModuleType, SimpleNamespace


def nameko_version_only() -> ModuleType:
    """A ``pkg_resources`` that answers ``get_distribution(name).version``, all Nameko asks of it."""
    module = ModuleType("pkg_resources")
    module.get_distribution = lambda name: SimpleNamespace(version=version(name))
    return module


def keep_out() -> None:
    """Before anything imports them."""
    sys.modules["pkg_resources"] = nameko_version_only()
    sys.modules["rich"] = None   # ``import rich`` raises ImportError, as where it is not installed


def collect_after_start(runner_cls: type) -> type:
    """``runner_cls`` (Nameko's ``ServiceRunner``), which freezes what the process holds once it has started."""
    class FrozenAfterStart(runner_cls):
        def start(self):
            super().start()
            gc.collect()   # what the start left behind is garbage, not something to keep for good
            gc.freeze()
    return FrozenAfterStart


def run_frozen_after_start(args, *unknown_args) -> None:
    """Nameko's ``run`` command (``nameko.cli.commands.Run.main``), its runner :func:`collect_after_start`'s."""
    import eventlet
    eventlet.monkey_patch()  # as Nameko's, before the command imports anything that opens a socket
    from nameko.cli import run
    run.ServiceRunner = collect_after_start(run.ServiceRunner)
    run.main(args)


def main() -> None:
    keep_out()
    from nameko.cli import commands
    from nameko.cli.main import main as nameko
    commands.Run.main = staticmethod(run_frozen_after_start)
    sys.argv[0] = "nameko"
    nameko()


if __name__ == "__main__":
    main()
