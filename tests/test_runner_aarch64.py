"""The stand-alone runner as an aarch64 program: Debian's arm64 Python with the aarch64 wheels of
onnxruntime and numpy, under qemu's user-mode emulation (tools/arm64-runner-under-qemu.sh
builds that environment). It checks that the runner works on ARM and that the table it writes
loads here; the times are the emulator's and mean nothing, so only their form is checked."""

import json
import platform
import subprocess
from pathlib import Path

import pytest

from nas.latency import runner
from nas.latency.bundle import write_bundle
from nas.latency.importers import import_table
from nas.latency.table import LatencyTable
from nas.ops import resolve
from nas.space import get_space

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "arm64-runner-under-qemu.sh"


def _aarch64_environment() -> dict:
    """What the environment holds (python, machine, numpy, onnxruntime, qemu), or a skip."""
    if platform.machine() == "aarch64":
        pytest.skip("this host is aarch64: tests/test_latency_profile.py runs the runner natively here")
    check = subprocess.run([str(SCRIPT), "check"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip("no aarch64 Python with onnxruntime under qemu here (`tools/arm64-runner-under-qemu.sh "
                    "setup` builds one; it needs apt-get with Debian's arm64 packages, and pip): "
                    + check.stderr.strip())
    return dict(line.split(" ", 1) for line in check.stdout.splitlines())


def test_runner_measures_a_bundle_under_aarch64_emulation(tmp_path):
    environment = _aarch64_environment()
    ops = sorted(set(resolve(get_space("mobilenet_v1", (8, 8, 1), 10).sample(0))), key=lambda o: o.key)[:3]
    bundle = tmp_path / "ops.zip"
    write_bundle(ops, bundle, {"input": "8x8x1", "classes": 10, "spaces": ["mobilenet_v1"]}, progress=False)
    out = tmp_path / "arm64.csv"
    done = subprocess.run([str(SCRIPT), "runner", str(bundle), "-o", str(out), "--warmup", "1", "--repeats", "4",
                           "--rounds", "2", "--device", "qemu-aarch64"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"measured {len(ops)} ops" in done.stderr

    provenance = json.loads((tmp_path / "arm64.json").read_text())
    assert provenance["machine"] == "aarch64"  # it really ran as an aarch64 program
    assert provenance["runtime_version"] == environment["onnxruntime"]
    assert provenance["python"] == environment["python"]
    # the emulator's fake /proc/cpuinfo names itself, so the table cannot pass for a device's
    assert "qemu" in provenance["cpu_model"] and "Cortex-A72" in provenance["cpu_model"]
    assert provenance["overhead"]["median"] > 0

    table = import_table(out, "runner")
    assert set(table.entries) == {op.key for op in ops}
    assert all(entry["median"] > 0 and entry["n"] >= 1 for entry in table.entries.values())
    assert table.provenance["device"] == "qemu-aarch64" and table.provenance["machine"] == "aarch64"
    table.save(tmp_path / "imported.csv")
    reloaded = LatencyTable.from_file(tmp_path / "imported.csv")
    assert reloaded.predict(ops) > 0


PI4_64BIT = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
CPU implementer\t: 0x41
CPU part\t: 0xd08

Revision\t: c03114
Serial\t\t: 100000000a3b2c1d
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_cpu_model_names_arm_cores(tmp_path):
    """Linux on arm64 prints no CPU name: the runner names the cores from their part numbers
    (a phone's big and little cores apart), beside the board's model where it is given."""
    pi = tmp_path / "pi"
    pi.write_text(PI4_64BIT)
    assert runner.cpu_model(str(pi)) == "Raspberry Pi 4 Model B Rev 1.4 (2x ARM Cortex-A72)"
    phone = tmp_path / "phone"
    phone.write_text("".join(f"processor\t: {i}\nCPU implementer\t: 0x41\nCPU part\t: {part}\n\n"
                             for i, part in enumerate(["0xd05"] * 4 + ["0xd41"] * 3 + ["0xd44", "0xfff"])))
    assert runner.cpu_model(str(phone)) == ("4x ARM Cortex-A55 + 3x ARM Cortex-A78 + 1x ARM Cortex-X1"
                                            " + 1x ARM part 0xfff")
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R)\n")
    assert runner.cpu_model(str(x86)) == "Intel(R) Xeon(R)"
