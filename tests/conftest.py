"""Root test configuration: registers the service harness fixtures for the whole suite."""

pytest_plugins = ["tests.harness.postgres", "tests.harness.slurm"]
