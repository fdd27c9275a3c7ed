"""core/processes.py: the kept process id follows a fork; the collector is tuned only in a server's own
process (the app served from the main thread), never in a program that runs the app in a side thread."""

import gc
import os
import subprocess
import sys
import threading

from core.processes import SERVER_GEN0_THRESHOLD, current_pid, settle_server_heap


def test_the_kept_pid_is_this_processes_and_a_forked_childs_own():
    assert current_pid() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports what it keeps, then leaves at once
        os.write(write, f"{current_pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write)
    kept, actual = os.read(read, 100).decode().split()
    os.waitpid(child, 0)
    assert kept == actual == str(child)
    assert current_pid() == os.getpid() != child


def test_a_side_thread_leaves_the_heap_alone():
    before = gc.get_threshold(), gc.get_freeze_count()
    tuned = []
    thread = threading.Thread(target=lambda: tuned.append(settle_server_heap()))
    thread.start()
    thread.join()
    assert tuned == [False]
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_server_process_freezes_its_start_up_heap_and_collects_less_often():
    script = (
        "import gc; from core.processes import settle_server_heap; "
        "frozen_before = gc.get_freeze_count(); tuned = settle_server_heap(); "
        "print(tuned, frozen_before, gc.get_freeze_count(), gc.get_threshold()[0])"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    tuned, frozen_before, frozen_after, threshold = out.split()
    assert tuned == "True"
    assert int(frozen_before) == 0 and int(frozen_after) > 1000  # every object of the start-up heap
    assert int(threshold) == SERVER_GEN0_THRESHOLD
