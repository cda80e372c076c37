"""Root test configuration: registers the service harness and PKI fixtures for the whole suite."""

pytest_plugins = [
    "tests.harness.postgres",
    "tests.harness.slurm",
    "tests.support.pki",
    "tests.harness.netns",
    "tests.harness.slurm_nodes",
    "tests.chaos.plugin",
]
