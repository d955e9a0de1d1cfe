"""``python -m nas.export_check DIR``, as the README of every export written before the export
modules became the package :mod:`nas.export`, still checks the folder: the checker is now
:mod:`nas.export.check` (``python -m nas.export.check DIR``)."""

import sys

from nas.export.check import main

if __name__ == "__main__":
    print("note: nas.export_check is now nas.export.check (python -m nas.export.check DIR)", file=sys.stderr)
    sys.exit(main())
