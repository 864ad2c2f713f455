"""cryostack: hardware-tuned cryo-EM images for Slurm clusters on AWS ParallelCluster."""

__version__ = "0.1.0"
