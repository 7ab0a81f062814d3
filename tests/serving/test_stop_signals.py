"""The servers' stop signal: caught however the kernel delivers it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A SIGTERM sent to one worker thread (as the kernel may deliver a process's signal), then the main thread waits.
_PROGRAM = textwrap.dedent(
    """
    import signal, threading, time
    from ebgan_tf.cli import catch_stop_signals, wait_for_stop

    stopping = catch_stop_signals()
    def send():
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
    threading.Thread(target=send).start()
    wait_for_stop(stopping)
    print("stopped", flush=True)
    """
)


def test_a_stop_signal_delivered_to_another_thread_ends_the_wait():
    done = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped\n"
