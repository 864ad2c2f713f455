"""The cluster side: ParallelCluster configs, Slurm wrappers, RELION qsub templates, modules."""
