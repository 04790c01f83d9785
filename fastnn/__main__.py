"""`python -m fastnn ...`: the fastnn command (fastnn/cli.py)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
