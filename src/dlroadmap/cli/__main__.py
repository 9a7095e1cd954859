"""`python -m dlroadmap.cli`: the same as the `dlr` command."""

from dlroadmap.cli import main

main()
