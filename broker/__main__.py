"""`python -m broker` is the `computenet-broker` command."""

from broker.cli import main

main()
