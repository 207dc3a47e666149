"""Workers never outlive their nnsam2 command: a stand-in command run through ``run_cli`` starts the
three kinds of workers nnU-Net uses (a fork Process like batchgenerators' augmenters, a Manager,
a spawn Pool like the predictor's export) and is then killed."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.processes import alive, descendants, wait_until

COMMAND = textwrap.dedent('''
    import multiprocessing
    import time

    from nnsam2.cli.common import run_cli


    def _sleep(seconds):
        time.sleep(seconds)


    def work():
        worker = multiprocessing.get_context("fork").Process(target=_sleep, args=(600,), daemon=True)
        worker.start()
        manager = multiprocessing.Manager()
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            pool.map_async(_sleep, [600, 600])
            while len(multiprocessing.active_children()) < 4:
                time.sleep(0.1)
            print("ready", flush=True)
            time.sleep(600)


    if __name__ == "__main__":
        run_cli("standin", work)
''')

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """Three stand-in commands, started together (imports dominate), each with its workers up."""
    script = tmp_path_factory.mktemp("guard") / "standin.py"
    script.write_text(COMMAND)
    procs = {sig: subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
             for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)}
    for proc in procs.values():
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    yield procs
    for proc in procs.values():
        proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=lambda s: s.name)
def test_workers_die_with_their_command(started, sig):
    proc = started[sig]
    workers = descendants(proc.pid)
    assert len(workers) >= 5  # fork worker, manager, two pool workers, resource tracker
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    assert wait_until(lambda: not any(alive(p) for p in workers), timeout=10), \
        [open(f"/proc/{p}/cmdline").read() for p in workers if alive(p)]
    stderr = proc.stderr.read()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        return
    assert proc.returncode == 128 + sig
    assert f"standin: stopped by {sig.name}" in stderr and "Traceback" not in stderr, stderr
