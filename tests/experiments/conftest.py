"""The experiment drivers' folder on `sys.path`, as the drivers put it themselves, so these
tests import the drivers' helpers (`reproduce_common`, `paper_numbers`) by name."""

import os
import sys

EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "experiments")
if EXPERIMENTS not in sys.path:
    sys.path.insert(0, EXPERIMENTS)
