"""The last step of launch/gpu_check.sh: one JSON and one markdown table of the whole check.

    python launch/gpu_report.py --tests DIR/gpu_tests.xml --bench DIR/train_bench.json --out DIR [--dry-run]

Reads pytest's JUnit XML (each GPU test: passed, failed or skipped, with the reason) and the
training benchmark's JSON (tokens/s of (a) padded baseline and (b) packed, MFU with ViT FLOPs
counted, peak memory), checks the targets (MFU >= 50%, packed >= 2x padded) and writes
DIR/gpu_check.json and DIR/gpu_check.md, ready to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

TARGET_MFU = 0.50
TARGET_PACKED_VS_PADDED = 2.0


def read_tests(path: Path) -> list[dict]:
    if not path.exists():
        return [{"name": "(pytest wrote no report)", "outcome": "failed", "detail": str(path)}]
    cases = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        if not case.get("classname"):  # a module skipped at collection (e.g. needs torchvision)
            continue
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "skipped" if child.tag == "skipped" else "failed"
                detail = (child.get("message") or "").splitlines()[0][:200] if child.get("message") else ""
        cases.append(
            {"name": f"{case.get('classname', '')}::{case.get('name')}", "outcome": outcome, "detail": detail}
        )
    return cases


def targets(bench: dict, dry_run: bool) -> dict:
    packed = bench["summary"]["packed"]
    checks = {
        "packed_vs_padded": {
            "value": packed["ratio_vs_baseline"],
            "target": TARGET_PACKED_VS_PADDED,
            "met": packed["ratio_vs_baseline"] >= TARGET_PACKED_VS_PADDED,
        },
        "mfu_packed": {
            "value": packed["mfu"],
            "target": TARGET_MFU,
            "met": packed["mfu"] is not None and packed["mfu"] >= TARGET_MFU,
        },
    }
    if dry_run:  # the CPU's tiny flavor measures nothing about a GPU: record, do not judge
        for check in checks.values():
            check["met"] = None
    return checks


def markdown(report: dict) -> str:
    bench = report["bench"]
    lines = [
        f"GPU check ({'dry run on the CPU' if report['dry_run'] else bench['device']}), {bench['date']}: "
        f"flavor {bench['flavor']}, seq_len {bench['seq_len']}, torch {bench['versions']['torch']}, "
        f"transformers {bench['versions']['transformers']}, deepspeed {bench['versions']['deepspeed']}",
        "",
        "| variant | tokens/s | vs (a) | model TFLOP/s | MFU | peak memory GB | real / slots |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, row in bench["summary"].items():
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a"
        lines.append(
            f"| {variant} | {row['tokens_per_s']:.0f} | {row['ratio_vs_baseline']:.2f}x | "
            f"{row['model_tflops_per_s']:.2f} | {mfu} | {row['peak_memory_gb']:.2f} | {row['slot_efficiency']:.1%} |"
        )
    lines += ["", "| target | value | wanted | met |", "|---|---|---|---|"]
    for name, check in report["targets"].items():
        value = "n/a" if check["value"] is None else f"{check['value']:.3g}"
        met = {True: "yes", False: "NO", None: "not judged (dry run)"}[check["met"]]
        lines.append(f"| {name} | {value} | >= {check['target']} | {met} |")
    lines += ["", "| GPU test | outcome | detail |", "|---|---|---|"]
    lines += [f"| `{case['name']}` | {case['outcome']} | {case['detail']} |" for case in report["tests"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=Path, required=True)
    parser.add_argument("--bench", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    bench = json.loads(args.bench.read_text())
    tests = read_tests(args.tests)
    report = {
        "dry_run": args.dry_run,
        "tests": tests,
        "bench": bench,
        "targets": targets(bench, args.dry_run),
    }
    report["tests_passed"] = sum(case["outcome"] == "passed" for case in tests)
    report["tests_failed"] = sum(case["outcome"] == "failed" for case in tests)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "gpu_check.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 1 if report["tests_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
