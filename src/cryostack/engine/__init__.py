"""Container engines: every call to Docker or Apptainer goes through this package."""
