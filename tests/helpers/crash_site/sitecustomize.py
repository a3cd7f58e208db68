"""Arms the crash hook in any Python process started with this folder on PYTHONPATH (tests only).

PYTHONPATH=$REPO:$REPO/tests/helpers/crash_site XMR_CRASH_AT=3 xmr index PHOTOS
kills ``xmr index`` just before its third persistent write (see tests/helpers/crash_hook.py).
"""

import os

if os.environ.get("XMR_CRASH_AT"):
    from tests.helpers.crash_hook import arm_from_env

    arm_from_env()
