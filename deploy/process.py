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
"""
from __future__ import annotations

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


def main() -> None:
    keep_out()
    from nameko.cli.main import main as nameko
    sys.argv[0] = "nameko"
    nameko()


if __name__ == "__main__":
    main()
