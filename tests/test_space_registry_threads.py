"""The space registry loads the bundled spaces once, also when several threads ask first."""

import subprocess
import sys
import textwrap


def test_threads_asking_for_a_space_at_once_all_find_it():
    # A fresh interpreter, so that the registry is still empty when the threads start.
    script = textwrap.dedent("""
        import threading
        from nas.space import get_space

        barrier = threading.Barrier(8)
        errors = []

        def ask():
            barrier.wait()
            try:
                get_space("mobilenet_v2")
            except Exception as exc:  # collected, so that the parent sees every failure
                errors.append(repr(exc))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(len(errors), errors[:1])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 "), result.stdout
