"""Re-derive the shipped HW-NAS-Bench tables (Raspberry Pi 4, Pixel 3) from the shared ARM data.

    python tools/derive_arm_tables.py --data ../shared/data/arm [-o latency_tables] [--only fbnet|nasbench201]

Writes ``raspi4-fbnet.csv``/``.json`` and ``pixel3-fbnet.csv``/``.json`` (per-op tables of the
FBNet space, relative to the all-skip network; see nas.latency.hwnasbench) and
``raspi4-nasbench201.json`` and ``pixel3-nasbench201.json`` (per-op models of NAS-Bench-201
fitted to the whole-network measurements). Only derived tables are written; the raw files stay
in the data folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nas.latency.hwnasbench import DEVICES, FBNET_LUT, NB201_CSV, fbnet_table, nb201_model

COMMAND = "python tools/derive_arm_tables.py --data \"$NAS_ARM_DATA\" --only {space}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=os.environ.get("NAS_ARM_DATA"),
                        help="the shared ARM data folder (default $NAS_ARM_DATA)")
    parser.add_argument("-o", "--output", type=Path, default=Path("latency_tables"))
    parser.add_argument("--only", choices=("fbnet", "nasbench201"), help="derive one space's tables")
    args = parser.parse_args(argv)
    if args.data is None or not args.data.is_dir():
        parser.error(f"--data must be the shared ARM data folder, got {args.data}")
    for device in DEVICES:
        if args.only in (None, "fbnet"):
            table = fbnet_table(args.data / FBNET_LUT, device, COMMAND.format(space="fbnet"))
            table.save(args.output / f"{device}-fbnet.csv")
            print(f"{device}-fbnet: {len(table)} entries, offset {table.composition.offset_ms:.4f} ms")
        if args.only in (None, "nasbench201"):
            model = nb201_model(args.data / NB201_CSV, device, COMMAND.format(space="nasbench201"))
            model.save(args.output / f"{device}-nasbench201.json")
            print(f"{device}-nasbench201: validation {model.provenance['fit']['validation']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
