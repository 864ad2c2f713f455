"""Functional checks: each family's image computes a known answer from synthetic input made at check
time (catalogue `check:`), in the Docker image and again in the SIF.

`spec` (the catalogue's models) is light; `run.run_check` brings in numpy, mrcfile and starfile,
so import it where a check actually runs.
"""
