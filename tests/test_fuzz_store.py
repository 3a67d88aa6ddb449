"""Property-based fuzzing (hypothesis) of stores and configs: whatever a careless edit, a crash or a crafted file
makes of them, a command exits 0 or 2 with one line, never with a traceback or a signal, touches nothing beside
the store and allocates no more than the run's own data.  The examples run in tests/fuzz_store_run.py, in a
subprocess whose address space is capped at 3 GiB."""

import json
import os
import resource
import subprocess
import sys

from helpers import ROOT

ADDRESS_SPACE = 3 << 30
EXAMPLES = int(os.environ.get("GPUSIM_FUZZ_EXAMPLES", "60"))  # each property; derandomized, so CI sees the same


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_fuzzed_stores_and_configs_give_exit_0_or_2_and_touch_nothing_else(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz_store_run.py"), str(tmp_path), str(EXAMPLES)],
                            capture_output=True, text=True, timeout=1500, preexec_fn=limit_memory)
    assert result.returncode in (0, 1), f"the fuzzer died (signal {-result.returncode}): {result.stderr[-3000:]}"
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert not summary["failures"], "\n".join(summary["failures"]) + result.stdout[-3000:]
    stores, configs = summary["outcomes"]["store"], summary["outcomes"]["config"]
    assert stores["2"] > 0 and stores["0"] > 0  # the mutations both break stores and leave some readable
    assert configs["2"] > 0
