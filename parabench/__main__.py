import sys

from .cli import main

# guarded: worker processes started with `spawn` re-import the driver's main module
if __name__ == "__main__":
    sys.exit(main())
