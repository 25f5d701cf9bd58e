"""Model updates over the twin: download, verify, unpack, repository, manager."""
