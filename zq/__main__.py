"""`python -m zq` runs the command line."""

from zq.cli import main

main()
