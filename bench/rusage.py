"""Run a command and print, as JSON on stderr's last line, what it and every process under it used:
CPU seconds and context switches (voluntary: waits on locks, I/O, futexes; involuntary: preempted).
Waited-for descendants add into RUSAGE_CHILDREN, so a coordinator's processes and their threads count."""
import json
import resource
import subprocess
import sys
import time

before = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
code = subprocess.call(sys.argv[1:])
after = resource.getrusage(resource.RUSAGE_CHILDREN)
print(
    json.dumps(
        {
            "code": code,
            "wall_s": time.monotonic() - t0,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "voluntary_switches": after.ru_nvcsw - before.ru_nvcsw,
            "involuntary_switches": after.ru_nivcsw - before.ru_nivcsw,
        }
    ),
    file=sys.stderr,
)
sys.exit(code)
