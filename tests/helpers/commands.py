"""The real commands in fresh processes, one at a time or several at once."""
import subprocess
from concurrent.futures import ThreadPoolExecutor


def run(*cmd, env, ok=True):
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=900)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def run_together(*calls, ok=True, at_once=None):
    """:func:`run` for independent commands, each a (command list, env) pair, ``at_once`` at a
    time (default: all; short commands spend most of their time importing, each on one core);
    returns their results in order."""
    with ThreadPoolExecutor(at_once or len(calls)) as pool:
        return list(pool.map(lambda call: run(*call[0], env=call[1], ok=ok), calls))
