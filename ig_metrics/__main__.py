"""`python -m ig_metrics` runs the command line."""

from ig_metrics.cli import main

main()
