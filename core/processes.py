"""Whether a process is alive, for the files processes leave behind (the metrics directory's)."""

import os


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the kernel only checks the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
