"""Run by torchrun from tests/train/test_distributed.py: process 1 fails at once, process 0 would run on."""

import os
import sys
import time

if os.environ.get("RANK") == "1":
    print("error: process one broke", file=sys.stderr)
    sys.exit(3)
time.sleep(120)
