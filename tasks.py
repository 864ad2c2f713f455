"""The checkout's task map (`invoke --list`): cryostack's own task collection, plus developer tasks.

Every user task lives in the package (src/cryostack/tasks.py), which the `cryostack` console script
serves too; only what needs this checkout's tests is added here.
"""

import sys
from pathlib import Path

from invoke import task

from cryostack.tasks import collection

ROOT = Path(__file__).resolve().parent


@task(help={"slow": "also run the slow tests (full RELION and CTFFIND builds)", "k": "only tests matching this expression"})
def test(c, slow=False, k=None):
    """Run the test suite (real services; slow builds only with --slow)."""
    marker = "" if slow else "-m 'not slow'"
    select = f"-k {k!r}" if k else ""
    c.run(f"{sys.executable} -m pytest {marker} {select}", pty=False)


namespace = collection(root=str(ROOT))
namespace.add_task(test)
