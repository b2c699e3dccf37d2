"""`python -m bench` is the same as the `resnet-bench` console script.

``python -m`` puts the current directory first on sys.path; unless this checkout is where the
user stands, it is taken off before anything else is imported, so a json.py or torch.py in the
current directory cannot run inside resnet-bench."""

import os
import sys

_here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == os.getcwd() and os.getcwd() != _here:
    del sys.path[0]

from bench.cli import main  # noqa: E402

raise SystemExit(main())
