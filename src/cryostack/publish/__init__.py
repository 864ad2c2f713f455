"""Publishing: SIF files to a shared EFS tree with a manifest, OCI images to registries."""
