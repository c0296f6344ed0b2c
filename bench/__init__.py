"""Load measurements for the sidecar (issue 5); see bench/README.md."""
