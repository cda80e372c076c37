"""`python -m site_agent` is the `computenet-agent` command."""

from site_agent.cli import main

main()
