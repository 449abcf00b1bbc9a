"""``python -m grl_props`` is ``grl-props``."""

import sys

from grl_props.cli import main

sys.exit(main())
