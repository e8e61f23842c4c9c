"""Processes: nothing mutation.py starts may outlive it, not even when mutation.py is SIGKILLed.

Three layers:

1. spawn.py: every child is started in its own session with the parent-death signal set (Linux
   `prctl(PR_SET_PDEATHSIG, SIGTERM)`): it receives SIGTERM the moment mutation.py dies.
2. ledger.py: a file in the results folder lists every process group a campaign has running
   (pgid, the leader's start time, role, trial). Grandchildren are in those groups too.
3. watchdog.py: a process in its own session (no terminal signal reaches it) waits on a pipe from
   mutation.py. The kernel closes the pipe when mutation.py dies, however it dies; the watchdog then
   ends every group in the ledger. At a clean end the ledger is empty and the watchdog just exits.

groups.py ends a group (SIGTERM, grace, SIGKILL, verify) through the OS seam of os_calls.py, and
managed.py names the states a group passes through. training.py and background.py run the
foreground training and the background loops on top of these.
"""
