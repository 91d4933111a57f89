"""The `tomp-deploy` command line: one module per command group.

The CLI is the one layer that combines the runtime with training, export and engine building; the
runtime modules beside it import none of those.
"""

# isort: off
# Imported in the order `tomp-deploy --help` lists the commands; importing a module registers them.
from tomp_deploy.cli import models, tracking, datasets, benchmark, training, vot  # noqa: F401

# isort: on
from tomp_deploy.cli.app import app

__all__ = ["app"]
