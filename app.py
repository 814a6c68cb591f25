"""Entry point: `python app.py` serves the playground with settings from env and CLI.

Same as `python -m playground serve`; kept at the top level for hosting platforms
that look for an app.py.
"""

import sys

from playground.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
