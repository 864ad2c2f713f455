"""`python -m cryostack`: the console script."""

from .tasks import program

program.run()
